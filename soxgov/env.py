"""Typed environment helpers that fail loudly.

A mistyped value in production (``SOXGOV_DEBUG=ture``) must stop the process at start-up, not silently
fall back to a default an operator did not choose.
"""

import os
import re
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def envstr(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def envbool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={raw!r} is not a boolean (use one of 1/0, true/false, yes/no, on/off)"
    )


def envint(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum of {minimum}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name}={value} is above the maximum of {maximum}")
    return value


def envlist(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def envsigningkey(file_name: str, text_name: str) -> bytes | None:
    """An Ed25519 private key as PEM (PKCS#8), from a file named by ``file_name`` or the PEM text itself in
    ``text_name`` (for secret stores that inject variables); None when neither is set. The message names the
    variable and never echoes the key."""
    path, text = os.environ.get(file_name, "").strip(), os.environ.get(text_name, "").strip()
    if path and text:
        raise ImproperlyConfigured(f"set {file_name} or {text_name}, not both")
    if path:
        try:
            pem = Path(path).read_bytes()
        except OSError as exc:
            raise ImproperlyConfigured(f"{file_name}={path!r} cannot be read: {exc.strerror}") from None
        return ed25519_private_pem(pem, f"{file_name}={path!r}")
    if text:
        return ed25519_private_pem(text.encode("utf-8"), text_name)
    return None


def ed25519_private_pem(pem: bytes, source: str) -> bytes:
    """``pem`` itself when it holds an unencrypted PEM PKCS#8 Ed25519 private key; otherwise a clear refusal."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            f"{source} is not an unencrypted PEM PKCS#8 private key ({exc}); "
            "create one with: python manage.py signing_key create --out PATH"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ImproperlyConfigured(f"{source} is a {type(key).__name__}, not an Ed25519 private key")
    return pem


def envpublickeys(name: str) -> list[str]:
    """Ed25519 public keys as lowercase hex: a comma-separated list of raw hex keys (64 digits) or paths to
    PEM public keys (SubjectPublicKeyInfo)."""
    return [
        ed25519_public_hex(item, f"{name} item {number} ({item!r})")
        for number, item in enumerate(envlist(name), start=1)
    ]


def ed25519_public_hex(item: str, source: str) -> str:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key

    if len(item) == 64 and all(c in "0123456789abcdefABCDEF" for c in item):
        return item.lower()
    try:
        pem = Path(item).read_bytes()
    except OSError as exc:
        raise ImproperlyConfigured(
            f"{source} is neither 64 hex digits nor a readable PEM public key file ({exc.strerror})"
        ) from None
    try:
        key = load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"{source} is not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ImproperlyConfigured(f"{source} is a {type(key).__name__}, not an Ed25519 public key")
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def envpaths(name: str, default: list[Path]) -> list[Path]:
    """Absolute paths separated by the OS path separator (``:``) or commas; a relative one stops the process."""
    raw = os.environ.get(name)
    if raw is None:
        return list(default)
    paths = [Path(item.strip()) for item in re.split(rf"[,{re.escape(os.pathsep)}]", raw) if item.strip()]
    for path in paths:
        if not path.is_absolute():
            raise ImproperlyConfigured(f"{name}: {str(path)!r} is not an absolute path")
    return paths


def envchoice(name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={raw!r} is not one of {', '.join(choices)}")
    return value


def envrolemap(name: str) -> dict[str, frozenset[str]]:
    """IdP group -> SOXGov roles, from ``group=role`` pairs separated by commas or new lines
    (``SOXGov-Admins=admin, SOXGov-Audit=auditor``); a group named twice holds both roles. Group names are
    matched exactly as the IdP sends them (a name, an object id, a Keycloak path)."""
    from soxgov.roles import Role

    mapping: dict[str, set[str]] = {}
    for number, item in enumerate((i.strip() for i in re.split(r"[,\n]", os.environ.get(name, ""))), 1):
        if not item:
            continue
        group, sep, role = (part.strip() for part in item.rpartition("="))
        if not sep or not group:
            raise ImproperlyConfigured(f"{name} item {number} ({item!r}) is not group=role")
        if role not in Role.values:
            raise ImproperlyConfigured(
                f"{name} item {number} ({item!r}): {role!r} is not a role (use one of {', '.join(Role.values)})"
            )
        mapping.setdefault(group, set()).add(role)
    return {group: frozenset(roles) for group, roles in mapping.items()}
