"""Ed25519 signatures (RFC 8032, section 5.1), standard library only.

Shipped inside evidence packs next to the chain's encoding, so an auditor checks SOXGov's signatures with nothing
but Python; SOXGov itself signs with the ``cryptography`` package (evidence/signing.py) and the tests check that
both agree. Pure Python and not constant-time: use it to *verify* public material; ``sign`` exists for the tests
and for offline tools, never for keys an attacker can time.

The curve. The twisted Edwards curve edwards25519 over the prime field GF(p), p = 2^255 - 19::

    -x^2 + y^2 = 1 + d x^2 y^2,   d = -121665 / 121666 (mod p)

Its points form a group (the addition formula is complete: no special cases), of order 8 * L with
L = 2^252 + 27742317777372353535851937790883648493 prime. The base point B is the point with y = 4/5 and x
"positive" (even); it generates the subgroup of order L. Points are computed in extended coordinates
(X, Y, Z, T) with x = X/Z, y = Y/Z, x*y = T/Z, which avoids a field inversion per addition.

Encoding. A point is 32 bytes: y as a 255-bit little-endian integer, with the top bit of the last byte holding
the low bit of x (x is recovered from y by a square root, and that bit picks the root). A scalar is 32 bytes
little-endian. Decoding refuses y >= p, a y with no x on the curve, and the "negative zero" x = 0 with bit 1.

Keys. The private key is a 32-byte seed. SHA-512(seed) = h; the lower half, with bits 0-2 and 255 cleared and
bit 254 set, is the secret scalar a; the upper half is a prefix for nonces. The public key is A = encode(a * B).

Signing message M: r = SHA-512(prefix || M) mod L, R = r * B, k = SHA-512(encode(R) || A || M) mod L,
S = (r + k * a) mod L; the signature is encode(R) || S as 32-byte little-endian (64 bytes in all).

Verifying: refuse wrong lengths, an A or R that does not decode to a curve point, and S >= L (a non-canonical
S would let anyone derive a second valid signature from one); then accept exactly when S * B == R + k * A.
That is the cofactorless equation RFC 8032 allows, and the one OpenSSL (under ``cryptography``) checks.
"""

from __future__ import annotations

import hashlib

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, -1, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)  # a square root of -1 modulo p

_IDENTITY = (0, 1, 1, 0)


def _add(p1: tuple, p2: tuple) -> tuple:
    """Point addition in extended coordinates (RFC 8032, section 5.1.4); also doubles."""
    x1, y1, z1, t1 = p1
    x2, y2, z2, t2 = p2
    a = (y1 - x1) * (y2 - x2) % P
    b = (y1 + x1) * (y2 + x2) % P
    c = 2 * t1 * t2 * D % P
    d = 2 * z1 * z2 % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _multiply(scalar: int, point: tuple) -> tuple:
    """scalar * point by double-and-add."""
    result = _IDENTITY
    while scalar > 0:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    return result


def _same_point(p1: tuple, p2: tuple) -> bool:
    # x1/z1 == x2/z2 and y1/z1 == y2/z2, cross-multiplied to avoid inversions.
    return (p1[0] * p2[2] - p2[0] * p1[2]) % P == 0 and (p1[1] * p2[2] - p2[1] * p1[2]) % P == 0


def _recover_x(y: int, sign: int) -> int | None:
    """The x with this low bit such that (x, y) is on the curve, or None (RFC 8032, section 5.1.3)."""
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, -1, P) % P
    if x2 == 0:
        return None if sign else 0
    # p = 5 (mod 8): a candidate root is x2^((p+3)/8); if it squares to -x2 instead, multiply by sqrt(-1).
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None  # x2 is not a square: no point has this y
    if (x & 1) != sign:
        x = P - x
    return x


def _encode(point: tuple) -> bytes:
    x, y, z, _ = point
    z_inverse = pow(z, -1, P)
    x, y = x * z_inverse % P, y * z_inverse % P
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _decode(data: bytes) -> tuple | None:
    if len(data) != 32:
        return None
    y = int.from_bytes(data, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    x = _recover_x(y, sign)
    if x is None:
        return None
    return (x, y, 1, x * y % P)


_BASE_Y = 4 * pow(5, -1, P) % P
_BASE_X = _recover_x(_BASE_Y, 0)
B = (_BASE_X, _BASE_Y, 1, _BASE_X * _BASE_Y % P)


def _hash_int(*parts: bytes) -> int:
    return int.from_bytes(hashlib.sha512(b"".join(parts)).digest(), "little")


def _expand(seed: bytes) -> tuple[int, bytes]:
    """The secret scalar and the nonce prefix of a 32-byte seed (RFC 8032, section 5.1.5)."""
    if not isinstance(seed, bytes | bytearray) or len(seed) != 32:
        raise ValueError("an Ed25519 private key (seed) is exactly 32 bytes")
    digest = hashlib.sha512(bytes(seed)).digest()
    scalar = int.from_bytes(digest[:32], "little")
    scalar &= (1 << 254) - 8  # clear bits 0-2 (a multiple of the cofactor 8) and bits 254-255 ...
    scalar |= 1 << 254  # ... then set bit 254
    return scalar, digest[32:]


def public_key(seed: bytes) -> bytes:
    """The 32-byte public key of a 32-byte private key (seed)."""
    scalar, _ = _expand(seed)
    return _encode(_multiply(scalar, B))


def sign(seed: bytes, message: bytes) -> bytes:
    """The 64-byte signature of ``message`` (RFC 8032, section 5.1.6). Deterministic: no randomness needed."""
    scalar, prefix = _expand(seed)
    public = _encode(_multiply(scalar, B))
    r = _hash_int(prefix, bytes(message)) % L
    encoded_r = _encode(_multiply(r, B))
    k = _hash_int(encoded_r, public, bytes(message)) % L
    s = (r + k * scalar) % L
    return encoded_r + s.to_bytes(32, "little")


def verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True exactly when ``signature`` is a valid Ed25519 signature of ``message`` by ``public_key``.

    Never raises on malformed input: wrong types or lengths, points off the curve and S >= L are all False.
    """
    if not all(isinstance(value, bytes | bytearray) for value in (public_key, message, signature)):
        return False
    if len(public_key) != 32 or len(signature) != 64:
        return False
    point_a = _decode(bytes(public_key))
    point_r = _decode(bytes(signature[:32]))
    if point_a is None or point_r is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= L:
        return False
    k = _hash_int(bytes(signature[:32]), bytes(public_key), bytes(message)) % L
    return _same_point(_multiply(s, B), _add(point_r, _multiply(k, point_a)))
