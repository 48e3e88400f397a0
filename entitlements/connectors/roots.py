"""Where file connectors may read: only under ``SOXGOV_CONNECTOR_FILE_ROOTS``.

A connector's path is typed by an admin in Django admin; without this check the server would copy any file it can
read (its own settings, keys, another system's exports) into an import, whose problems quote the file's rows back.
The path is resolved first (symlinks, ``..``), so a link inside a root that points outside it is refused too.
Checked when a connector is saved and again when it is pulled (a link or the roots may change in between).
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError


def allowed_roots() -> list[Path]:
    return [Path(root).resolve() for root in settings.SOXGOV_CONNECTOR_FILE_ROOTS]


def connector_file(raw: str) -> Path:
    """The resolved file a connector configured with ``raw`` may read; ValidationError naming the path and the
    allowed roots otherwise."""
    roots = allowed_roots()
    where = (
        f"file connectors may read only under {', '.join(str(root) for root in roots)} "
        "(SOXGOV_CONNECTOR_FILE_ROOTS)"
        if roots
        else "no file connector may read anything until SOXGOV_CONNECTOR_FILE_ROOTS names the directories it may"
    )
    path = Path(raw)
    if not raw or not path.is_absolute():
        raise ValidationError(f"{raw!r} is not an absolute path; {where}.", code="connector_path")
    resolved = path.resolve()
    if not any(resolved.is_relative_to(root) and resolved != root for root in roots):
        shown = f"{raw} (resolves to {resolved})" if str(resolved) != raw else raw
        raise ValidationError(f"{shown} is outside the allowed directories; {where}.", code="connector_path")
    return resolved
