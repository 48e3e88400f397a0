"""Ed25519 signatures over what SOXGov vouches for (checkpoints, evidence packs), and the keys an auditor trusts.

Contract for callers:

- ``sign(message) -> Signature``: signs ``message`` (bytes; sign a canonical encoding, such as
  ``evidence.chain.canonical_json(...)``) with the configured private key. The first signature by a key not yet
  registered records it (``SigningKey`` plus an ``evidence.signing_key.created`` / ``.rotated`` event) in the
  caller's transaction, so call it inside the transaction that uses the signature. Raises ImproperlyConfigured,
  naming the variables, when DEBUG is off and no key is configured.
- ``current_public_key() -> PublicKey``: the configured key's fingerprint and public key, without signing (to
  put the key id inside the signed statement first).
- ``verify(message, signature_hex, public_key_hex) -> bool``: never raises on malformed input.
- ``trusted_public_keys() -> dict[fingerprint, public_key_hex]``: the current key and the retired keys of
  ``SOXGOV_SIGNING_RETIRED_PUBLIC_KEYS``. Only configuration is trusted, never the database: whoever can write
  the database must not be able to add a key that verifiers accept.

The fingerprint of a key is ``"SHA256:"`` + the lowercase hex SHA-256 of its raw 32-byte public key
(``evidence.chain.key_fingerprint``; ``group()`` splits it into blocks of four for reading aloud). Public keys
travel as raw hex (64 digits) or PEM SubjectPublicKeyInfo (``public_key_pem``); signatures as hex (128 digits).

Where the private key comes from (soxgov/settings.py): ``SOXGOV_SIGNING_KEY_FILE`` (a PEM PKCS#8 file) or
``SOXGOV_SIGNING_KEY`` (the PEM text). With DEBUG on and neither set (the demo), one key is generated once into
``SOXGOV_SIGNING_GENERATED_KEY_FILE`` (mode 0600) and reused.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone

from evidence.chain import ED25519, key_fingerprint
from soxgov.env import ed25519_private_pem

ALGORITHM = ED25519


@dataclass(frozen=True)
class Signature:
    """One signature: ``signature_hex`` (128 hex digits) by the key ``fingerprint`` / ``public_key_hex``."""

    algorithm: str
    fingerprint: str
    public_key_hex: str
    signature_hex: str


@dataclass(frozen=True)
class PublicKey:
    """A signing key's public half: what an auditor is given, never the private key."""

    algorithm: str
    fingerprint: str
    public_key_hex: str

    @property
    def pem(self) -> str:
        return public_key_pem(self.public_key_hex)


# --- The API -------------------------------------------------------------------------------------------------


def sign(message: bytes) -> Signature:
    """Sign ``message`` with the configured key, registering the key first if it has never signed."""
    key = _private_key()
    public = _public_of(key)
    signing_key_register(public_key_hex=public.public_key_hex)
    return Signature(ALGORITHM, public.fingerprint, public.public_key_hex, key.sign(bytes(message)).hex())


def verify(message: bytes, signature_hex: str, public_key_hex: str) -> bool:
    """True exactly when ``signature_hex`` is a valid Ed25519 signature of ``message`` by ``public_key_hex``."""
    try:
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
        public.verify(bytes.fromhex(signature_hex), bytes(message))
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def current_public_key() -> PublicKey:
    return _public_of(_private_key())


def public_key_of(private_pem: bytes) -> PublicKey:
    """The public half of a PEM private key (a key file about to be configured)."""
    return _public_of(load_pem_private_key(private_pem, password=None))


def trusted_public_keys() -> dict[str, str]:
    """Fingerprint -> public key (hex) of every key a verifier should accept: current and retired."""
    keys = {fingerprint(hex_key): hex_key for hex_key in settings.SOXGOV_SIGNING_RETIRED_PUBLIC_KEYS}
    if settings.SOXGOV_SIGNING_KEY is not None or settings.DEBUG:
        current = current_public_key()
        keys[current.fingerprint] = current.public_key_hex
    return keys


def fingerprint(public_key_hex: str) -> str:
    return key_fingerprint(bytes.fromhex(public_key_hex))


def group(fingerprint: str) -> str:
    """``SHA256:1a2b3c4d...`` as ``SHA256:1a2b 3c4d ...``, easier to compare by eye or over the phone."""
    prefix, _, digest = fingerprint.partition(":")
    return f"{prefix}:" + " ".join(digest[i : i + 4] for i in range(0, len(digest), 4))


def public_key_pem(public_key_hex: str) -> str:
    public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
    return public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode("ascii")


# --- Key files -----------------------------------------------------------------------------------------------


def new_private_key_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def private_key_write(path: Path, pem: bytes) -> None:
    """Write a private key readable by its owner only; FileExistsError rather than replace an existing file.

    Written to a temporary file, then linked into place: a reader never sees half a key, and of two writers
    racing, exactly one wins.
    """
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".signing-key-")  # created 0600
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        os.link(temporary, path)
    finally:
        os.unlink(temporary)


def _private_key() -> Ed25519PrivateKey:
    pem = settings.SOXGOV_SIGNING_KEY
    if pem is None:
        if not settings.DEBUG:
            raise ImproperlyConfigured(
                "no evidence signing key: set SOXGOV_SIGNING_KEY_FILE (path to a PEM PKCS#8 Ed25519 private key) "
                "or SOXGOV_SIGNING_KEY (the PEM text); create one with: python manage.py signing_key create --out PATH"
            )
        pem = _generated_key_pem()
    return load_pem_private_key(pem, password=None)


def _generated_key_pem() -> bytes:
    path = Path(settings.SOXGOV_SIGNING_GENERATED_KEY_FILE)
    if not path.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # another process generated it first: use theirs
            private_key_write(path, new_private_key_pem())
    return ed25519_private_pem(
        path.read_bytes(), f"the generated signing key {path} (delete it to start over)"
    )


def _public_of(key: Ed25519PrivateKey) -> PublicKey:
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return PublicKey(ALGORITHM, key_fingerprint(raw), raw.hex())


# --- Registration in the chain -------------------------------------------------------------------------------


def signing_key_register(*, public_key_hex: str, actor=None):
    """Record the key as the current signing key, if it is not already; returns (SigningKey, registered_now).

    The first key is recorded as ``evidence.signing_key.created``; a different one later as ``.rotated``, with
    the old and new fingerprint and public key, and the previous key gets its ``retired_at``.
    """
    from evidence.models import SigningKey
    from evidence.services import Actor, _lock_chain, event_record

    new_fingerprint = fingerprint(public_key_hex)
    current = SigningKey.objects.filter(retired_at__isnull=True).first()
    if current is not None and current.fingerprint == new_fingerprint:
        return current, False
    with transaction.atomic():
        # Under the chain lock, so two processes signing with a new key register it once.
        _lock_chain()
        current = SigningKey.objects.select_for_update().filter(retired_at__isnull=True).first()
        if current is not None and current.fingerprint == new_fingerprint:
            return current, False
        now = timezone.now()
        if current is not None:
            current.retired_at = now
            current.save(update_fields=["retired_at"])
        key, created = SigningKey.objects.get_or_create(
            fingerprint=new_fingerprint,
            defaults={"public_key": public_key_hex, "algorithm": ALGORITHM, "registered_at": now},
        )
        if not created:  # a retired key configured again
            key.retired_at = None
            key.save(update_fields=["retired_at"])
        event_record(
            actor=actor or Actor.system("evidence.signing"),
            action="evidence.signing_key.rotated" if current else "evidence.signing_key.created",
            subject=key,
            payload={
                "algorithm": ALGORITHM,
                "old_fingerprint": current.fingerprint if current else None,
                "old_public_key": current.public_key if current else None,
                "new_fingerprint": key.fingerprint,
                "new_public_key": key.public_key,
            },
        )
    return key, True
