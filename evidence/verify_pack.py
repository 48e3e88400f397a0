"""Offline verifier for a SOXGov evidence pack. Python standard library only: an auditor runs it on their own
machine, without SOXGov, on the ZIP or on the unzipped folder (no argument: the folder this file is in):

    python3 -I verify_pack.py [PACK.zip | FOLDER] [--trust SHA256:<fingerprint> ...]

It checks (1) the BagIt manifests: every payload and tag file is present and has the SHA-256 the manifests list
(a changed byte anywhere names the file), and no file is in no manifest; (2) every evidence event in the pack:
its hash is recomputed from its content with the chain's encoding (evidence_chain.py, shipped in the pack); (3)
the chain segment: each link follows the one before, from the first event of the scope up to the checkpoint,
whose head it must reach; (4) statement.json: it names this tag manifest and this chain head; (5) every row of
every table, in CSV, JSON and XLSX alike, against the chained events by the rules in evidence_binding.py (also
shipped in the pack), naming the file and row at fault; (6) statement.sig: the Ed25519 signature over
statement.json, by a key this verifier trusts (TRUSTED_KEYS, built in when the pack was made, or a fingerprint
given with --trust), and the checkpoint's signature by a trusted key; it prints the fingerprint it trusted,
which the auditor compares with the one SOXGov publishes (integrity page, /api/evidence/signing-keys/).
Exit 0 when everything holds; 1 naming the first failure. Files are read as they are checked, row by row and
block by block: of a pack's data, only the chain segment and the evidence events are held in memory, whatever
the number of review items.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import importlib.util
import io
import itertools
import json
import os
import posixpath
import shutil
import sys
import tempfile
import zipfile
from abc import abstractmethod
from collections.abc import Iterator, MutableMapping
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree

BLOCK = 1 << 20
# statement.json covers the tag manifest, so no manifest lists it; statement.sig signs statement.json.
UNLISTED_TAG_FILES = {"statement.json", "statement.sig"}
# Fingerprint -> raw public key (hex) of the keys the SOXGov that built this pack signs with (current and
# retired): filled in when the pack is built. Other keys are trusted only when named with --trust.
TRUSTED_KEYS: dict[str, str] = {}
# SHA-256 of each module shipped in the pack that this verifier runs (the chain's encoding, the binding rules,
# Ed25519), also filled in when the pack is built: a verifier kept from SOXGov never runs code a forger put in a
# pack, whatever the manifests and the statement say.
PINNED_MODULES: dict[str, str] = {}
# DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410); the raw 32-byte key follows it.
_ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
# What Excel (and desktop file managers) write beside files an auditor opened in the unzipped folder.
_OPENED_BY_OFFICE = ("~$", ".~lock.")
_DESKTOP_FILES = {".DS_Store", "Thumbs.db", "desktop.ini"}


class PackError(Exception):
    pass


def _manifest(text: str, listed_in: str) -> dict[str, str]:
    entries = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        digest, _, name = line.partition(" ")
        name = name.strip().lstrip("*")  # sha256sum's binary-mode marker
        if len(digest) != 64 or not name:
            raise PackError(f"{listed_in}, line {number}: not '<sha256> <path>'")
        entries[name] = digest
    return entries


def _sha256(files, name: str) -> str:
    digest = hashlib.sha256()
    with files.open(name) as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_manifest(files, manifest_name: str) -> dict[str, str]:
    if manifest_name not in files:
        raise PackError(f"{manifest_name} is missing")
    listed = _manifest(files[manifest_name].decode("utf-8"), manifest_name)
    for name, digest in listed.items():
        if name not in files:
            raise PackError(f"{name}: listed in {manifest_name} but missing from the pack")
        if _sha256(files, name) != digest:
            raise PackError(f"{name}: SHA-256 does not match {manifest_name} (the file was changed)")
    return listed


def _load_module(files, name: str):
    """A module shipped in the pack, run from its bytes (``python3 -I`` does not import from the script's own
    folder) once its SHA-256 is the one pinned in this verifier."""
    source = files[f"{name}.py"]
    pinned = PINNED_MODULES.get(name)
    if pinned is None:
        raise PackError(
            f"{name}.py: this verifier pins no hash for it; use the verify_pack.py of a pack SOXGov built"
        )
    if hashlib.sha256(source).hexdigest() != pinned:
        raise PackError(
            f"{name}.py: not the code this verifier was built with (its SHA-256 differs); not run"
        )
    spec = importlib.util.spec_from_loader(name, loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    exec(compile(source, f"{name}.py", "exec"), module.__dict__)
    return module


class _Files(MutableMapping):
    """The pack's files by their path inside the bag, read only when asked for (a pack of 1M items holds ~850
    MB). Assigning bytes to a name replaces that file, as a forger would (the tests do)."""

    def __init__(self, members: dict[str, str], ignored: list[str]):
        self._members = members
        self._replaced: dict[str, bytes] = {}
        self.ignored = ignored

    @abstractmethod
    def _open_member(self, member: str):
        """A binary stream of one member, as the pack stores it."""

    def open(self, name: str):
        """A binary stream of the file."""
        if name in self._replaced:
            return io.BytesIO(self._replaced[name])
        return self._open_member(self._members[name])

    def __getitem__(self, name: str) -> bytes:
        if name not in self:
            raise KeyError(name)
        with self.open(name) as handle:
            return handle.read()

    def __setitem__(self, name: str, data: bytes) -> None:
        self._replaced[name] = data

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self._replaced.pop(name, None)
        self._members.pop(name, None)

    def __contains__(self, name) -> bool:  # without reading the file, as Mapping's would
        return name in self._replaced or name in self._members

    def __iter__(self) -> Iterator[str]:
        yield from self._members
        yield from (name for name in self._replaced if name not in self._members)

    def __len__(self) -> int:
        return len(self._members.keys() | self._replaced.keys())


def _ignored(name: str) -> bool:
    base = posixpath.basename(name)
    return base.startswith(_OPENED_BY_OFFICE) or base in _DESKTOP_FILES


class PackFiles(_Files):
    """The files of a pack's ZIP (one top-level folder, the bag)."""

    def __init__(self, path: str):
        self.path = path
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        root = PurePosixPath(names[0]).parts[0] if names else ""
        members = {}
        for name in names:
            parts = PurePosixPath(name).parts
            # What an unzip tool shows must be what is checked: one bag folder, each name once, no way out of it.
            if parts[0] != root or ".." in parts or name.startswith("/"):
                raise PackError(f"{name}: outside the pack's folder {root}/")
            if name.endswith("/"):
                continue
            inner = str(PurePosixPath(*parts[1:]))
            if inner in members:
                raise PackError(f"{name}: in the ZIP twice")
            members[inner] = name
        super().__init__(members, [])

    def _open_member(self, member: str):
        with zipfile.ZipFile(self.path) as archive:
            return archive.open(member)  # keeps the zip's file open until it is closed itself


class FolderFiles(_Files):
    """The files of an unzipped pack (the bag's folder); Office lock files and desktop litter are set aside."""

    def __init__(self, path: str):
        self.path = Path(path)
        members, ignored = {}, []
        for folder, _dirs, names in os.walk(self.path):
            for name in names:
                relative = (Path(folder) / name).relative_to(self.path).as_posix()
                if _ignored(relative):
                    ignored.append(relative)
                else:
                    members[relative] = relative
        super().__init__(members, sorted(ignored))

    def _open_member(self, member: str):
        return (self.path / member).open("rb")


def read_pack(path: str) -> _Files:
    return FolderFiles(path) if Path(path).is_dir() else PackFiles(path)


def verify(files, trust: tuple[str, ...] = ()) -> list[str]:
    """Returns what was checked; raises PackError naming the first failure. ``trust``: fingerprints of keys to
    trust besides TRUSTED_KEYS."""
    done = []
    if files.get("bagit.txt", b"").split(b"\n")[0].strip() != b"BagIt-Version: 1.0":
        raise PackError("bagit.txt: not a BagIt 1.0 bag")
    payload = _check_manifest(files, "manifest-sha256.txt")
    unlisted = [n for n in files if n.startswith("data/") and n not in payload]
    if unlisted:
        raise PackError(f"{unlisted[0]}: in the pack but not in manifest-sha256.txt")
    done.append(f"{len(payload)} payload files match manifest-sha256.txt")
    tags = _check_manifest(files, "tagmanifest-sha256.txt")
    stray = [
        n
        for n in files
        if not n.startswith("data/")
        and n not in tags
        and n not in UNLISTED_TAG_FILES
        and n != "tagmanifest-sha256.txt"
    ]
    if stray:
        raise PackError(f"{stray[0]}: in the pack but in no manifest")
    done.append(f"{len(tags)} tag files match tagmanifest-sha256.txt")

    _load_module(files, "evidence_ed25519")  # evidence_chain checks signatures with it
    chain = _load_module(files, "evidence_chain")
    checkpoint = json.loads(files["data/checkpoint.json"])
    by_sequence = {}
    previous = first = None
    for row in _csv_dicts(files, "data/chain.csv"):
        sequence = int(row["sequence"])
        if previous is not None:
            if sequence != previous[0] + 1:
                raise PackError(
                    f"data/chain.csv: sequence {sequence} follows {previous[0]} (a link is missing)"
                )
            if row["prev_hash"] != previous[1]:
                raise PackError(f"data/chain.csv: sequence {sequence} does not link to the event before it")
        by_sequence[sequence] = row["hash"]
        previous = (sequence, row["hash"])
        first = sequence if first is None else first
    if previous is None or previous[0] != checkpoint["sequence"] or previous[1] != checkpoint["head_hash"]:
        raise PackError("data/chain.csv: the segment does not end at the checkpoint's head")
    done.append(f"chain segment {first}..{previous[0]} links up to the checkpoint head")

    events = json.loads(files["data/evidence_events.json"])
    for event in events:
        fields = {name: event[name] for name in chain.HASHED_FIELDS}
        recomputed = chain.event_hash(fields)
        if recomputed != event["hash"]:
            raise PackError(f"data/evidence_events.json: event {event['sequence']} does not match its hash")
        if by_sequence.get(event["sequence"]) != recomputed:
            raise PackError(f"data/evidence_events.json: event {event['sequence']} is not the chain's event")
    done.append(f"{len(events)} evidence events recomputed and found in the chain")

    statement = _check_statement(files, checkpoint)
    done.append("statement.json names this tag manifest and the checkpoint's chain head")
    fingerprint, public_hex, how = _check_signature(files, chain, statement, trust)
    done.append(f"statement.sig: statement.json signed by {fingerprint} ({how})")
    problem = chain.checkpoint_problem(checkpoint, trusted_keys={**TRUSTED_KEYS, fingerprint: public_hex})
    if problem:
        raise PackError(f"data/checkpoint.json: {problem}")
    done.append(f"data/checkpoint.json: signed by {checkpoint['key_id']}, a trusted key")

    done.extend(_check_rows(files, events, whole_campaign="campaign" in statement.get("scope", {})))
    return done


def _check_signature(files, chain, statement: dict, trust: tuple[str, ...]) -> tuple[str, str, str]:
    """The statement's Ed25519 signature, by a trusted key. Returns the key's fingerprint, its public key (hex)
    and why it was trusted."""
    key = statement.get("signing_key") or {}
    try:
        public = bytes.fromhex(key.get("public_key", ""))
    except (TypeError, ValueError):
        public = b""
    if key.get("algorithm") != "Ed25519" or len(public) != 32:
        raise PackError("statement.json: signing_key does not name an Ed25519 public key")
    fingerprint = chain.key_fingerprint(public)
    if key.get("fingerprint") != fingerprint:
        raise PackError("statement.json: signing_key's fingerprint is not its public key's")
    if "statement.sig" not in files:
        raise PackError("statement.sig is missing: the pack is not signed")
    ed25519 = sys.modules["evidence_ed25519"]
    if not ed25519.verify(public, files["statement.json"], files["statement.sig"]):
        raise PackError(f"statement.sig: not a valid signature of statement.json by {fingerprint}")
    pem = files.get("signing-key.pem", b"").decode("ascii", "replace")
    body = "".join(line for line in pem.splitlines() if line and not line.startswith("-----"))
    try:
        der = base64.b64decode(body, validate=True)
    except ValueError:
        der = b""
    if der != _ED25519_SPKI_PREFIX + public:
        raise PackError("signing-key.pem: not the public key statement.json names")
    if TRUSTED_KEYS.get(fingerprint) == public.hex():
        return fingerprint, public.hex(), "a key built into this verifier"
    if fingerprint in trust:
        return fingerprint, public.hex(), "trusted with --trust"
    raise PackError(
        f"statement.sig: signed by {fingerprint}, which this verifier does not trust. Compare it with the "
        "fingerprint SOXGov publishes (integrity page, /api/evidence/signing-keys/); if it is the same, run "
        f"again with --trust {fingerprint}"
    )


def _check_statement(files, checkpoint: dict) -> dict:
    """statement.json names this pack: the tag manifest's SHA-256 (which covers every other file) and the chain
    head the checkpoint signed. It is the document a signature over the whole pack signs."""
    if "statement.json" not in files:
        raise PackError("statement.json is missing")
    try:
        statement = json.loads(files["statement.json"])
    except ValueError as exc:
        raise PackError(f"statement.json: not JSON ({exc})") from None
    if statement.get("tagmanifest_sha256") != _sha256(files, "tagmanifest-sha256.txt"):
        raise PackError("statement.json: tagmanifest_sha256 is not the SHA-256 of tagmanifest-sha256.txt")
    head = statement.get("chain_head") or {}
    if head.get("sequence") != checkpoint["sequence"] or head.get("hash") != checkpoint["head_hash"]:
        raise PackError("statement.json: chain_head is not the head data/checkpoint.json signed")
    return statement


# --- Rows: every format of every table, against the chained events -------------------------------------------


def _check_rows(files, events: list[dict], *, whole_campaign: bool) -> list[str]:
    binding = _load_module(files, "evidence_binding")
    chained = binding.Events(events)
    tables = sorted(
        {n[len("data/") : -len(".csv")] for n in files if n.startswith("data/") and n.endswith(".csv")}
        - {"chain"},
        key=lambda t: (
            list(binding.BOUND_COLUMNS).index(t)
            if t in binding.BOUND_COLUMNS
            else len(binding.BOUND_COLUMNS),
            t,
        ),
    )
    missing = [t for t in [*binding.BOUND_COLUMNS, "evidence_events"] if t not in tables]
    if missing:
        raise PackError(f"data/{missing[0]}.csv is missing")
    done = []
    for table in tables:
        reference = iter(events) if table == "evidence_events" else None
        count = _check_table(files, binding, table, chained, reference, whole_campaign)
        bound = "bound to the chained events" if table in binding.BOUND_COLUMNS else "the same in each format"
        if table == "evidence_events":
            bound = "the same as the chained events"
        done.append(f"{table}: {count} rows in CSV, JSON and XLSX, {bound}")
    return done


def _check_table(files, binding, table: str, chained, reference, whole_campaign: bool) -> int:
    names = {fmt: f"data/{table}.{fmt}" for fmt in ("csv", "json", "xlsx")}
    for name in names.values():
        if name not in files:
            raise PackError(f"{name} is missing")
    streams = {
        "csv": _csv_rows(files, names["csv"]),
        "json": _json_rows(files, names["json"], binding.cell_text),
        "xlsx": _xlsx_rows(files, names["xlsx"]),
    }
    header = next(streams["csv"])
    for fmt in ("json", "xlsx"):
        streams[fmt] = _with_header(streams[fmt], header, names[fmt])
    required = binding.BOUND_COLUMNS.get(table, ())
    absent = [c for c in required if c not in header]
    if absent:
        raise PackError(f"{names['csv']}: no column {absent[0]!r}")
    checkers = (
        {fmt: chained.checker(table, whole_campaign=whole_campaign) for fmt in names} if required else {}
    )
    count = 0
    for rows in itertools.zip_longest(*(streams[fmt] for fmt in names)):
        count += 1
        by_format = dict(zip(names, rows, strict=True))
        for fmt, found in by_format.items():
            if found is None:
                raise PackError(f"{names[fmt]} has {count - 1} rows, fewer than the other formats of {table}")
        for fmt, (where, row) in by_format.items():
            if fmt in checkers:
                try:
                    checkers[fmt].row(row)
                except binding.Mismatch as exc:
                    raise PackError(f"{names[fmt]}, {where}: {exc}") from None
        expected = by_format["csv"][1]
        said_by = names["csv"]
        if reference is not None:
            event = next(reference, None)
            expected = {c: binding.cell_text(event.get(c)) for c in header} if event else {}
            said_by = "data/evidence_events.json"
        for fmt, (where, row) in by_format.items():
            if names[fmt] == said_by:
                continue
            for column in header:
                if not binding.same_text(row.get(column, ""), expected.get(column, "")):
                    raise PackError(
                        f"{names[fmt]}, {where}: {column} {row.get(column, '')!r} but {said_by} says "
                        f"{expected.get(column, '')!r}"
                    )
    if reference is not None and next(reference, None) is not None:
        raise PackError(f"{names['csv']} has fewer rows than data/evidence_events.json")
    for fmt, checker in checkers.items():
        for problem in checker.finish():
            raise PackError(f"{names[fmt]}: {problem}")
    return count


def _with_header(rows, header: list[str], name: str):
    """Rows of the JSON or XLSX, each checked to have the CSV's columns (an XLSX repeats its header per sheet)."""
    for where, row in rows:
        if where is None:  # an XLSX sheet's header row
            if row != header:
                raise PackError(f"{name}: the columns {row} are not the CSV's {header}")
            continue
        if set(row) != set(header):
            raise PackError(f"{name}, {where}: the columns {sorted(row)} are not the CSV's {sorted(header)}")
        yield where, row


def _csv_dicts(files, name: str) -> Iterator[dict[str, str]]:
    with files.open(name) as handle:
        yield from csv.DictReader(io.TextIOWrapper(handle, encoding="utf-8", newline=""))


def _csv_rows(files, name: str):
    """The header, then ("row N", {column: text}) with N the row's number as a spreadsheet shows it."""
    with files.open(name) as handle:
        reader = csv.reader(io.TextIOWrapper(handle, encoding="utf-8", newline=""))
        header = next(reader, [])
        yield header
        for number, cells in enumerate(reader, start=2):
            if len(cells) != len(header):
                raise PackError(f"{name}, row {number}: {len(cells)} cells, the header has {len(header)}")
            yield f"row {number}", dict(zip(header, cells, strict=True))


def _json_rows(files, name: str, cell_text):
    """("item N", {column: text}) for each object of the file's top-level array, read incrementally."""
    decoder = json.JSONDecoder()
    with files.open(name) as raw:
        handle = io.TextIOWrapper(raw, encoding="utf-8")
        buffer, position, number, started = "", 0, 0, False
        while True:
            while position < len(buffer) and buffer[position] in " \t\r\n,":
                position += 1
            if position >= len(buffer):
                more = handle.read(1 << 16)
                if not more:
                    raise PackError(f"{name}: ends before its closing ']'")
                buffer, position = buffer[position:] + more, 0
                continue
            if not started:
                if buffer[position] != "[":
                    raise PackError(f"{name}: not a JSON array")
                started, position = True, position + 1
                continue
            if buffer[position] == "]":
                return
            try:
                value, end = decoder.raw_decode(buffer, position)
            except json.JSONDecodeError:
                more = handle.read(1 << 16)
                if not more:
                    raise PackError(f"{name}, item {number + 1}: not valid JSON") from None
                buffer, position = buffer[position:] + more, 0
                continue
            number += 1
            if not isinstance(value, dict):
                raise PackError(f"{name}, item {number}: not an object")
            position = end
            yield f"item {number}", {column: cell_text(v) for column, v in value.items()}


_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PACKAGE_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"


def _xlsx_rows(files, name: str):
    """(where, {column: text}) for every row of every sheet in order, a sheet's header row with where None.
    Read with zipfile and ElementTree (shared and inline strings, numbers, booleans), one row at a time."""
    # A copy on disk: a workbook is itself a ZIP, and reading one inside the pack's would decompress it again
    # for every backward seek.
    with tempfile.TemporaryFile() as copy:
        with files.open(name) as handle:
            shutil.copyfileobj(handle, copy, BLOCK)
        copy.seek(0)
        yield from _workbook_rows(copy, name)


def _workbook_rows(copy, name: str):
    with zipfile.ZipFile(copy) as book:
        shared = _shared_strings(book)
        for sheet, path in _sheets(book):
            header, rows = None, None
            with book.open(path) as stream:
                for event, element in ElementTree.iterparse(stream, events=("start", "end")):
                    if event == "start":
                        rows = element if element.tag == f"{_MAIN}sheetData" else rows
                        continue
                    if element.tag != f"{_MAIN}row":
                        continue
                    number = element.get("r")
                    try:
                        cells = _row_cells(element, shared)
                    except PackError as exc:
                        raise PackError(f"{name}, sheet {sheet!r}, row {number}: {exc}") from None
                    rows.remove(element)  # the one row parsed: memory stays flat however many rows follow
                    if header is None:
                        header = [cells.get(i, "") for i in range(max(cells, default=-1) + 1)]
                        yield None, header
                        continue
                    where = f"sheet {sheet!r}, row {number}"
                    if any(i >= len(header) for i in cells):
                        raise PackError(f"{name}, {where}: a cell beyond the header's columns")
                    yield where, {column: cells.get(i, "") for i, column in enumerate(header)}


def _sheets(book) -> list[tuple[str, str]]:
    workbook = ElementTree.fromstring(book.read("xl/workbook.xml"))
    relations = ElementTree.fromstring(book.read("xl/_rels/workbook.xml.rels"))
    targets = {r.get("Id"): r.get("Target") for r in relations.iter(f"{_PACKAGE_REL}Relationship")}
    sheets = []
    for sheet in workbook.iter(f"{_MAIN}sheet"):
        target = targets[sheet.get(f"{_REL}id")]
        path = (
            target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join("xl", target))
        )
        sheets.append((sheet.get("name"), path))
    return sheets


def _shared_strings(book) -> list[str]:
    if "xl/sharedStrings.xml" not in book.namelist():
        return []
    root = ElementTree.fromstring(book.read("xl/sharedStrings.xml"))
    return ["".join(t.text or "" for t in si.iter(f"{_MAIN}t")) for si in root.iter(f"{_MAIN}si")]


def _column(reference: str) -> int:
    index = 0
    for letter in reference:
        if not letter.isalpha():
            break
        index = index * 26 + ord(letter.upper()) - 64
    return index - 1


def _row_cells(row, shared: list[str]) -> dict[int, str]:
    cells, position = {}, 0
    for cell in row.iter(f"{_MAIN}c"):
        position = _column(cell.get("r")) if cell.get("r") else position
        kind = cell.get("t", "n")
        if cell.find(f"{_MAIN}f") is not None:  # a pack holds values only; a formula shows what it computes
            raise PackError(f"cell {cell.get('r')}: a formula, which a pack never holds")
        value = cell.find(f"{_MAIN}v")
        text = value.text if value is not None and value.text is not None else None
        if kind == "inlineStr":
            text = "".join(t.text or "" for t in cell.iter(f"{_MAIN}t"))
        elif kind == "s" and text is not None:
            text = shared[int(text)]
        elif kind == "b" and text is not None:
            text = "True" if text.strip() == "1" else "False"
        elif kind == "n" and text is not None:
            number = float(text)
            text = str(int(number)) if number.is_integer() and "e" not in text.lower() else text
        cells[position] = text or ""
        position += 1
    return cells


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "pack",
        nargs="?",
        help="the evidence pack: its .zip or its unzipped folder (default: this file's folder)",
    )
    parser.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="FINGERPRINT",
        help="also trust the signing key with this fingerprint (SHA256:...), after checking it with SOXGov",
    )
    args = parser.parse_args(argv)
    pack = args.pack or str(Path(__file__).resolve().parent)
    try:
        files = read_pack(pack)
        for name in files.ignored:
            print(f"ignored: {name} (written by the program that opened the pack)")
        for line in verify(files, tuple(args.trust)):
            print(f"ok: {line}")
    except (PackError, KeyError, ValueError, OSError, zipfile.BadZipFile, ElementTree.ParseError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    print("the pack verifies")
    return 0


if __name__ == "__main__":
    sys.exit(main())
