"""Connector secrets at rest: encrypted with MultiFernet, or referenced (``env:VARIABLE``, ``file:/path``).

``SOXGOV_SECRET_KEYS`` is a comma-separated list of Fernet keys. The first encrypts; every key decrypts, so a key
is rotated by putting a new one first, running ``manage.py connector_secrets_rotate`` (re-encrypts every secret
with the first key) and then dropping the old one. Without keys, literal secrets are refused (references still
work): nothing is derived from SECRET_KEY behind the operator's back.

A secret's value exists in memory only while a pull or a test reads the source; it is never returned by an
API, rendered by a page, logged, put in an exception message or evidenced (only its name and how it is kept).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError

from entitlements.connectors.sources import SourceUnreachable

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# SOXGov's own configuration: an admin must not be able to send the key that decrypts every secret, the evidence
# signing key or the database's URL to a server of their choosing by naming it as a connector's password.
_OWN_ENV_PREFIXES = ("SOXGOV_", "DJANGO_", "CELERY_", "PG")
_OWN_ENV_NAMES = frozenset({"DATABASE_URL", "REDIS_URL"})
NO_KEYS = (
    "SOXGOV_SECRET_KEYS is not set, so secrets cannot be stored encrypted: set it (see README, Connector "
    "secrets) or give the secret as a reference (env:VARIABLE or file:/path)"
)


def _fernet():
    from cryptography.fernet import Fernet, MultiFernet

    keys = [key for key in settings.SOXGOV_SECRET_KEYS if key]
    if not keys:
        return None
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except (ValueError, TypeError):
        raise ImproperlyConfigured(
            "SOXGOV_SECRET_KEYS: each key must be a Fernet key (32 url-safe base64-encoded bytes)"
        ) from None


def reference_problem(reference: str) -> str | None:
    """Why a reference is unusable as written (not whether the variable or file exists now)."""
    kind, _, target = reference.partition(":")
    if kind == "env":
        if not _ENV_NAME.match(target):
            return "env: needs an environment variable name, e.g. env:ERP_DB_PASSWORD"
        if target.upper() in _OWN_ENV_NAMES or target.upper().startswith(_OWN_ENV_PREFIXES):
            return f"env:{target} is SOXGov's own configuration, not a connector's secret"
        return None
    if kind == "file":
        if not Path(target).is_absolute():
            return "file: needs an absolute path, e.g. file:/run/secrets/erp"
        return _outside_roots(target)
    return "a reference is env:VARIABLE or file:/absolute/path"


def _outside_roots(target: str) -> str | None:
    """Secret files are read only under SOXGOV_SECRET_FILE_ROOTS (resolved, symlinks included): otherwise a
    reference could make the server send any file it can read (its signing key, /proc/self/environ) as a password."""
    roots = [Path(root).resolve() for root in settings.SOXGOV_SECRET_FILE_ROOTS]
    resolved = Path(target).resolve()
    if any(resolved.is_relative_to(root) and resolved != root for root in roots):
        return None
    where = ", ".join(str(root) for root in roots) or "none configured"
    return f"file:{target} is outside the directories secrets may be read from (SOXGOV_SECRET_FILE_ROOTS: {where})"


def encrypt(value: str) -> str:
    fernet = _fernet()
    if fernet is None:
        raise ValidationError(NO_KEYS)
    return fernet.encrypt(value.encode()).decode()


def reveal(secret) -> str:
    """The value of a ConnectorSecret, for the one pull or test that needs it. SourceUnreachable when it cannot
    be had (the source cannot be authenticated to), naming the secret and why, never a value."""
    where = f"secret {secret.name!r}"
    if secret.ciphertext:
        from cryptography.fernet import InvalidToken

        fernet = _fernet()
        if fernet is None:
            raise SourceUnreachable(f"{where} is encrypted but SOXGOV_SECRET_KEYS is not set")
        try:
            return fernet.decrypt(secret.ciphertext.encode()).decode()
        except InvalidToken:
            raise SourceUnreachable(
                f"{where} cannot be decrypted with any key in SOXGOV_SECRET_KEYS (was its key removed "
                "before connector_secrets_rotate ran?)"
            ) from None
    problem = reference_problem(secret.reference)
    if problem:  # stored before a rule or a setting changed: refused at use too
        raise SourceUnreachable(f"{where}: {problem}")
    kind, _, target = secret.reference.partition(":")
    if kind == "env":
        value = os.environ.get(target)
        if value is None:
            raise SourceUnreachable(f"{where}: the environment variable {target} is not set")
        return value
    try:
        return Path(target).read_text().rstrip("\r\n")
    except OSError as exc:
        raise SourceUnreachable(f"{where}: cannot read {target}: {exc.strerror}") from None


def secrets_for(connector) -> dict[str, str]:
    return {secret.name: reveal(secret) for secret in connector.secrets.all()}


def rotate() -> int:
    """Re-encrypt every encrypted secret with the first key; the number re-encrypted. The caller evidences it."""
    from entitlements.models import ConnectorSecret

    fernet = _fernet()
    if fernet is None:
        raise ImproperlyConfigured(NO_KEYS)
    rotated = 0
    for secret in ConnectorSecret.objects.select_for_update().exclude(ciphertext=""):
        secret.ciphertext = fernet.rotate(secret.ciphertext.encode()).decode()
        secret.save(update_fields=["ciphertext", "updated_at"])
        rotated += 1
    return rotated
