"""Reading CSV and XLSX files as a stream of rows, safely.

CSV: UTF-8 with or without BOM, RFC 4180 quoting, CRLF or LF. Undecodable bytes are reported by row and
column rather than by byte offset, by decoding with surrogateescape and checking each field.
XLSX: first sheet. Before any XML is parsed, every zip entry's declared uncompressed size and compression
ratio are checked (a "zip bomb" is refused before it is decompressed) and XML parts are scanned for DTDs and
entity declarations; openpyxl then parses with defusedxml. Formulas are read as their text, never evaluated.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from entitlements.connectors.problems import ProblemLog

_SURROGATE = re.compile("[\udc80-\udcff]")
_DTD = re.compile(rb"<!DOCTYPE|<!ENTITY", re.IGNORECASE)
ZIP_MAGIC = b"PK\x03\x04"
csv.field_size_limit(1_000_000)


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: Iterator[tuple[int, list[str]]]  # (row number as a spreadsheet user counts it, cells)


def open_table(path: Path, *, log: ProblemLog) -> Table:
    size = path.stat().st_size
    if size > settings.SOXGOV_IMPORT_MAX_BYTES:
        log.refuse(None, None, None, f"file is {size} bytes; the limit is {settings.SOXGOV_IMPORT_MAX_BYTES}")
    with path.open("rb") as probe:
        magic = probe.read(4)
    if magic == ZIP_MAGIC:
        return _open_xlsx(path, log=log)
    return _open_csv(path, log=log)


def _open_csv(path: Path, *, log: ProblemLog) -> Table:
    stream = path.open("rb")
    text = io.TextIOWrapper(stream, encoding="utf-8", errors="surrogateescape", newline="")
    if text.read(1) not in ("\ufeff", ""):
        text.seek(0)
    reader = csv.reader(text, strict=True)
    try:
        header = next(reader, None)
    except csv.Error as exc:
        stream.close()
        log.refuse(1, None, None, f"the header line is not valid CSV: {exc}")
    if header is None:
        stream.close()
        log.refuse(None, None, None, "the file is empty: a header line is required")
    for index, name in enumerate(header):
        if _SURROGATE.search(name):
            log.refuse(1, f"#{index + 1}", None, "the header is not valid UTF-8")
        if "\x00" in name:
            log.refuse(1, f"#{index + 1}", None, "the header contains a NUL character")

    def rows() -> Iterator[tuple[int, list[str]]]:
        try:
            row_number = 1
            while True:
                try:
                    cells = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    log.refuse(row_number + 1, None, None, f"not valid CSV: {exc}")
                row_number += 1
                if not cells:
                    continue
                for index, cell in enumerate(cells):
                    if not cell.isascii() and _SURROGATE.search(cell):
                        name = header[index] if index < len(header) else f"#{index + 1}"
                        log.add(
                            row_number,
                            name,
                            cell.encode("utf-8", "surrogateescape").hex(" ")[:60],
                            "the bytes are not valid UTF-8 (shown in hex)",
                        )
                        cells[index] = ""
                    elif "\x00" in cell:
                        # PostgreSQL text cannot hold NUL; report it here rather than fail in the database.
                        name = header[index] if index < len(header) else f"#{index + 1}"
                        log.add(row_number, name, None, "contains a NUL character, which is not allowed")
                        cells[index] = ""
                yield row_number, cells
        finally:
            stream.close()

    return Table(header, rows())


def _check_zip(path: Path, *, log: ProblemLog) -> None:
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        log.refuse(None, None, None, f"not a valid XLSX (zip) file: {exc}")
    with archive:
        total = 0
        for info in archive.infolist():
            total += info.file_size
            ratio = info.file_size / max(info.compress_size, 1)
            if (
                info.file_size > settings.SOXGOV_XLSX_MAX_ENTRY_BYTES
                or total > settings.SOXGOV_XLSX_MAX_TOTAL_BYTES
            ):
                log.refuse(
                    None,
                    None,
                    info.filename,
                    f"XLSX part {info.filename} would expand to {info.file_size} bytes; refused as too large",
                )
            if ratio > settings.SOXGOV_XLSX_MAX_RATIO and info.file_size > 1_000_000:
                log.refuse(
                    None,
                    None,
                    info.filename,
                    f"XLSX part {info.filename} has a compression ratio of {ratio:.0f}:1; refused as a zip bomb",
                )
        for info in archive.infolist():
            if info.filename.endswith((".xml", ".rels")) and _declares_dtd(archive, info, log=log):
                log.refuse(
                    None,
                    None,
                    info.filename,
                    f"XLSX part {info.filename} declares a DTD or entities; refused",
                )


def _declares_dtd(archive: zipfile.ZipFile, info: zipfile.ZipInfo, *, log: ProblemLog) -> bool:
    """Scan the whole part, streaming: comments or whitespace before the root element can push a DTD past any
    fixed-size head. Sizes were checked already, so this reads at most the declared (limited) bytes."""
    overlap = b""
    try:
        with archive.open(info) as part:
            while chunk := part.read(1 << 20):
                if _DTD.search(overlap + chunk):
                    return True
                overlap = chunk[-16:]
    except Exception as exc:  # a corrupt part: zipfile and zlib raise many types (bad CRC, bad data ...)
        reason = f"XLSX part {info.filename} cannot be read: {type(exc).__name__}: {exc}"
        log.refuse(None, None, info.filename, reason[:300])
    return False


def _cell_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _open_xlsx(path: Path, *, log: ProblemLog) -> Table:
    from openpyxl import load_workbook

    _check_zip(path, log=log)
    try:
        workbook = load_workbook(path, read_only=True, data_only=False, keep_links=False)
        sheet = workbook.worksheets[0]
        iterator = sheet.iter_rows(values_only=True)
        first = next(iterator, None)
    except Exception as exc:  # openpyxl raises many types for malformed parts
        log.refuse(None, None, None, f"not a readable XLSX workbook: {type(exc).__name__}: {exc}"[:300])
    if first is None:
        workbook.close()
        log.refuse(None, None, None, "the first sheet is empty: a header row is required")
    header = [_cell_text(v) for v in first]

    def rows() -> Iterator[tuple[int, list[str]]]:
        try:
            for row_number, values in enumerate(iterator, start=2):
                cells = [_cell_text(v) for v in values]
                if any(cells):
                    yield row_number, cells
        except Exception as exc:
            log.refuse(
                None,
                None,
                None,
                f"the workbook could not be read to the end: {type(exc).__name__}: {exc}"[:300],
            )
        finally:
            workbook.close()

    return Table(header, rows())
