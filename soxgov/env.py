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


def envint(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum of {minimum}")
    return value


def envlist(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


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
