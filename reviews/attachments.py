"""What may be kept as proof of a remediation: a size limit and an allow-list of file types.

The extension must be allowed, and for binary types the first bytes must be that format's signature (so an
executable renamed ``.pdf`` is refused); text types must not contain NUL bytes, which every executable does.
Signatures from the formats' specifications; OOXML (xlsx, docx) is a zip holding ``[Content_Types].xml`` and
its main part, and Outlook .msg is an OLE2 compound file.
"""

from __future__ import annotations

import zipfile
from pathlib import PurePath

from django.conf import settings
from django.core.exceptions import ValidationError

HEAD_BYTES = 8192
_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_SIGNATURES = {
    "pdf": (b"%PDF-",),
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpg": (b"\xff\xd8\xff",),
    "jpeg": (b"\xff\xd8\xff",),
    "msg": (_OLE2,),
    "xlsx": (b"PK\x03\x04",),
    "docx": (b"PK\x03\x04",),
}
_OOXML_MAIN_PART = {"xlsx": "xl/workbook.xml", "docx": "word/document.xml"}
TEXT_TYPES = {"txt", "csv", "eml"}


def attachment_check(upload) -> None:
    """Refuse ``upload`` (a Django UploadedFile) unless it is an allowed type within the size limit.

    Raises ValidationError({"attachment": ...}) naming the file and what is allowed; reads only the first bytes
    (and, for OOXML, the zip's directory).
    """
    name = PurePath(upload.name or "").name
    allowed = settings.SOXGOV_ATTACHMENT_TYPES
    limit = settings.SOXGOV_ATTACHMENT_MAX_BYTES
    kind = PurePath(name).suffix.lower().lstrip(".")
    if kind not in allowed:
        _refuse(f"{name}: files of this type are not accepted as proof (allowed: {', '.join(allowed)}).")
    if upload.size > limit:
        _refuse(f"{name}: {upload.size} bytes is over the limit of {limit} bytes.")
    upload.seek(0)
    head = upload.read(HEAD_BYTES)
    upload.seek(0)
    if kind in TEXT_TYPES:
        if b"\x00" in head:
            _refuse(f"{name}: the content is binary, not a .{kind} text file.")
        return
    signatures = _SIGNATURES.get(kind)
    if signatures is None:
        # An extension an operator added to SOXGOV_ATTACHMENT_TYPES: no signature known, accepted by name.
        return
    if not head.startswith(signatures) or (kind in _OOXML_MAIN_PART and not _is_ooxml(upload, kind)):
        _refuse(f"{name}: the content is not a .{kind} file (its first bytes do not match the format).")


def _is_ooxml(upload, kind: str) -> bool:
    try:
        with zipfile.ZipFile(upload) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    finally:
        upload.seek(0)
    return {"[Content_Types].xml", _OOXML_MAIN_PART[kind]} <= names


def _refuse(message: str):
    raise ValidationError({"attachment": [message]})
