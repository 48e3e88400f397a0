"""Evidence packs: a self-verifying ZIP in BagIt layout (RFC 8493) for a campaign or a period.

    <bag>/README.txt                               what each file is, how to verify, what that proves
    <bag>/bagit.txt, bag-info.txt, manifest-sha256.txt, tagmanifest-sha256.txt
    <bag>/statement.json                           scope, time, chain head and the tag manifest's SHA-256
                                                   (covers the tag manifest, so is not listed in it)
    <bag>/verify_pack.py, evidence_chain.py,       the offline verifier (standard library only), the chain's
          evidence_binding.py                      encoding, and the rules binding rows to events
    <bag>/data/<table>.csv | .xlsx | .json         campaign (or scope), review items, decisions, sign-offs,
                                                   remediation, SoD violations, population source, evidence events
    <bag>/data/chain.csv                           (sequence, prev_hash, hash) from the scope's first event to ...
    <bag>/data/checkpoint.json                     ... the checkpoint signed for this pack

The tables and the scope's events are read in one consistent snapshot (a row and the event written with it are
both in the pack, or neither), then a checkpoint is signed, which covers every event of that snapshot. Tables
stream from the database (iterator) into CSV and JSON and into openpyxl's write-only workbook, whose cells that a
spreadsheet would run as formulas are neutralised, and which starts a new sheet beyond Excel's row limit; on
PostgreSQL, the database writes each query's CSV itself with COPY (pack_csv: the same bytes). Memory stays flat
whatever the size.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Max, Q
from django.utils import timezone
from openpyxl import Workbook

from evidence import binding, ed25519, pack_csv, pack_readme, signing
from evidence import chain as chain_module
from evidence.binding import inert
from evidence.chain import canonical_json, format_time
from evidence.checkpoints import checkpoint_create
from evidence.models import Checkpoint, EvidenceEvent
from evidence.pack_tables import Table, campaign_tables, period_tables, query_table
from evidence.services import Actor

__all__ = ["Table", "build_campaign_pack", "build_period_pack", "campaign_tables", "inert", "period_tables"]

EXCEL_MAX_ROWS = 1_048_576  # per sheet, header included
FORMAT = "soxgov-evidence-pack/2"
# The modules the offline verifier runs, by the name it loads them under.
SHIPPED_MODULES = {"evidence_chain": chain_module, "evidence_binding": binding, "evidence_ed25519": ed25519}
# Tag files every pack has, all listed in the tag manifest. statement.json covers the tag manifest, so it is not.
TAG_FILES = ("README.txt", "bagit.txt", "bag-info.txt", "manifest-sha256.txt", "verify_pack.py",
             "evidence_chain.py", "evidence_binding.py", "evidence_ed25519.py", "signing-key.pem")  # fmt: skip


class _PackJSONEncoder(DjangoJSONEncoder):
    """Date-times in full, as the CSV writes them (DjangoJSONEncoder cuts them to milliseconds): a JSON row binds
    to the chain's exact times as the CSV's does."""

    def default(self, o):
        if isinstance(o, dt.datetime):
            return o.isoformat()
        return super().default(o)


def _cell(value):
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _write_csv(table: Table, path: Path) -> int:
    """Both writers give the same bytes (pack_csv); PostgreSQL writes a query's table itself, at COPY's speed."""
    if table.cells is not None and connection.vendor == "postgresql":
        return _copy_csv(table, path)
    return _python_csv(table, path)


def _copy_csv(table: Table, path: Path) -> int:
    return pack_csv.copy_rows(table.header, table.cells(), path)


def _python_csv(table: Table, path: Path) -> int:
    return pack_csv.write_rows(table.header, table.rows(), path, lambda v: inert(_cell(v)))


def _write_json(table: Table, path: Path) -> None:
    with path.open("w", encoding="utf-8") as handle:
        handle.write("[")
        first = True
        for row in table.rows():
            handle.write("\n" if first else ",\n")
            handle.write(
                json.dumps(
                    dict(zip(table.header, row, strict=True)), cls=_PackJSONEncoder, ensure_ascii=False
                )
            )
            first = False
        handle.write("\n]\n")


def _write_xlsx(table: Table, path: Path, *, max_rows: int = EXCEL_MAX_ROWS) -> None:
    workbook = Workbook(write_only=True)
    sheet, used, part = None, max_rows, 0
    for row in table.rows():
        if used >= max_rows:
            part += 1
            sheet = workbook.create_sheet(table.name[:25] + (f" {part}" if part > 1 else ""))
            sheet.append(table.header)
            used = 1
        sheet.append([inert(_cell(v)) for v in row])
        used += 1
    if sheet is None:
        workbook.create_sheet(table.name[:25]).append(table.header)
    workbook.save(path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


EVENT_FIELDS = ["sequence", "occurred_at", "actor_kind", "actor_id", "actor_name", "action", "subject_type",
                "subject_id", "subject_repr", "payload", "prev_hash", "hash"]  # fmt: skip


def _event_rows(events) -> Iterator[list]:
    for e in events.iterator(chunk_size=5000):
        yield [
            e.sequence, format_time(e.occurred_at), e.actor_kind, e.actor_user_id, e.actor_name, e.action,
            e.subject_type, e.subject_id, e.subject_repr, e.payload, e.prev_hash, e.hash,
        ]  # fmt: skip


def events_table(subjects: Q, up_to: int) -> tuple[Table, int | None]:
    """The scope's events up to sequence ``up_to``, and the first one's sequence (None without any)."""
    events = EvidenceEvent.objects.filter(subjects, sequence__lte=up_to).order_by("sequence")
    event_columns = [
        "sequence", pack_csv.EventTime("occurred_at"), "actor_kind", "actor_user_id", "actor_name", "action",
        "subject_type", "subject_id", "subject_repr", "payload", "prev_hash", "hash",
    ]  # fmt: skip
    table = Table(
        "evidence_events",
        EVENT_FIELDS,
        lambda: _event_rows(events),
        lambda: pack_csv.csv_cells(events, event_columns),
    )
    return table, events.values_list("sequence", flat=True).first()


def chain_table(first: int, last: int) -> Table:
    segment = EvidenceEvent.objects.filter(sequence__gte=first, sequence__lte=last).order_by("sequence")
    return query_table("chain", segment, ["sequence", "prev_hash", "hash"])


def build_campaign_pack(
    campaign,
    out: Path,
    *,
    actor: Actor,
    progress: Callable[[int], None] = lambda p: None,
    scratch: Path | None = None,
) -> str:
    tables, subjects = campaign_tables(campaign)
    label = f"Evidence pack for campaign {campaign.pk} ({campaign.name})"
    scope = {"campaign": campaign.pk, "name": campaign.name}
    return build_pack(
        tables, subjects, out, name=f"campaign-{campaign.pk}", label=label, scope=scope, actor=actor,
        progress=progress, scratch=scratch,
    )  # fmt: skip


def build_period_pack(
    since, until, application_ids, out: Path, *, actor: Actor, progress=lambda p: None
) -> str:
    from entitlements.models import Application

    tables, subjects = period_tables(since, until, application_ids)
    label = f"Evidence pack for {since} to {until}, applications {sorted(application_ids)}"
    names = sorted(Application.objects.filter(pk__in=application_ids).values_list("name", flat=True))
    scope = {"since": str(since), "until": str(until), "applications": names}
    return build_pack(
        tables, subjects, out, name=f"period-{since}-{until}", label=label, scope=scope, actor=actor,
        progress=progress,
    )  # fmt: skip


@contextmanager
def _snapshot():
    """One consistent read of the tables and the events: a decision committed meanwhile is in neither, so no row
    lacks its event and no event its row, and the three formats of a table hold the same rows. PostgreSQL: a
    REPEATABLE READ transaction; SQLite: its write transaction (IMMEDIATE) already excludes every other writer.
    Inside a caller's transaction (a test, a shell session) that transaction's view is the one there is."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def build_pack(
    tables,
    subjects,
    out: Path,
    *,
    name: str,
    label: str,
    scope: dict,
    actor: Actor,
    progress=lambda p: None,
    scratch: Path | None = None,
) -> str:
    """Write the pack to ``out`` (a .zip); returns its SHA-256. The tables and events come from one snapshot;
    the checkpoint signed after it covers every event of the snapshot, and the chain segment reaches it.

    The files are written in ``scratch`` (a new temporary folder by default), removed when the build ends either
    way, and the zip is written beside ``out`` under a temporary name and renamed when it is complete: a build
    that dies leaves no pack at ``out``, only leftovers the reaper removes (pack_services.sweep_leftovers).
    """
    bag_name = f"soxgov-{name}-{timezone.now():%Y%m%dT%H%M%S}"
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
        scratch.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="soxgov-pack-", dir=scratch) as folder:
        bag = Path(folder) / bag_name
        data = bag / "data"
        data.mkdir(parents=True)
        with _snapshot():
            head = EvidenceEvent.objects.aggregate(m=Max("sequence"))["m"] or 0
            events, first = events_table(subjects, head)
            tables = [*tables, events]
            for n, table in enumerate(tables):
                _write_csv(table, data / f"{table.name}.csv")
                _write_json(table, data / f"{table.name}.json")
                _write_xlsx(table, data / f"{table.name}.xlsx")
                progress(10 + 70 * (n + 1) // len(tables))
        checkpoint = checkpoint_create(reason=Checkpoint.Reason.EVIDENCE_PACK, actor=actor)
        if checkpoint is None:
            raise ValueError("the evidence chain is empty: there is nothing a pack could be bound to")
        _write_csv(chain_table(first or checkpoint.sequence, checkpoint.sequence), data / "chain.csv")
        (data / "checkpoint.json").write_text(
            json.dumps(checkpoint.as_document(), indent=1, sort_keys=True) + "\n"
        )
        _write_tags(bag, label, [t.name for t in tables])
        _write_statement(bag, scope, checkpoint)
        progress(90)
        part = partial_path(out)
        try:
            _zip(bag, part)
            sha256 = _sha256(part)
            os.replace(part, out)
        finally:
            part.unlink(missing_ok=True)
    if scratch is not None:
        shutil.rmtree(scratch, ignore_errors=True)
    progress(100)
    return sha256


def partial_path(out: Path) -> Path:
    """Where the zip for ``out`` is written until it is complete (hidden, beside it: the rename is atomic)."""
    return out.with_name(f".{out.name}.part")


def _write_tags(bag: Path, label: str, tables: list[str]) -> None:
    (bag / "bagit.txt").write_text("BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n")
    payload = sorted(p for p in (bag / "data").rglob("*") if p.is_file())
    manifest = "".join(f"{_sha256(p)} {p.relative_to(bag).as_posix()}\n" for p in payload)
    (bag / "manifest-sha256.txt").write_text(manifest)
    octets = sum(p.stat().st_size for p in payload)
    (bag / "bag-info.txt").write_text(
        f"Source-Organization: SOXGov\nExternal-Description: {label}\n"
        f"Bagging-Date: {timezone.localdate().isoformat()}\n"
        f"Payload-Oxum: {octets}.{len(payload)}\n"
    )
    (bag / "verify_pack.py").write_text(verifier_source(), encoding="utf-8")
    for name, module in SHIPPED_MODULES.items():
        (bag / f"{name}.py").write_bytes(Path(module.__file__).read_bytes())
    (bag / "signing-key.pem").write_text(signing.current_public_key().pem, encoding="ascii")
    (bag / "README.txt").write_text(pack_readme.text(label, tables), encoding="utf-8")
    (bag / "tagmanifest-sha256.txt").write_text("".join(f"{_sha256(bag / t)} {t}\n" for t in TAG_FILES))


def _write_statement(bag: Path, scope: dict, checkpoint) -> None:
    """What the pack states, in canonical JSON: the document a signature over the pack signs (the tag manifest's
    hash covers every other file), signed with Ed25519 into statement.sig."""
    key = signing.current_public_key()
    statement = {
        "format": FORMAT,
        "bag": bag.name,
        "scope": scope,
        "created_at": format_time(timezone.now()),
        "chain_head": {"sequence": checkpoint.sequence, "hash": checkpoint.head_hash},
        "tagmanifest_sha256": _sha256(bag / "tagmanifest-sha256.txt"),
        "signing_key": {
            "algorithm": key.algorithm,
            "fingerprint": key.fingerprint,
            "public_key": key.public_key_hex,
        },
    }
    document = canonical_json(statement).encode("utf-8")
    with transaction.atomic():  # a first signature by a new key registers it, evidenced
        signature = signing.sign(document)
    if signature.fingerprint != key.fingerprint:
        raise RuntimeError("the signing key changed while the pack was being written")
    (bag / "statement.json").write_bytes(document)
    # Raw bytes, as `openssl pkeyutl -verify -sigfile` reads them.
    (bag / "statement.sig").write_bytes(bytes.fromhex(signature.signature_hex))


def verifier_source() -> str:
    """verify_pack.py with the keys this SOXGov trusts (current and retired) and the hashes of the modules it runs
    built in: the verifier an auditor keeps from a pack then refuses a pack re-signed by anyone else, and never
    runs code a forger put in a pack."""
    source = (Path(__file__).parent / "verify_pack.py").read_text(encoding="utf-8")
    pinned = {name: _sha256(Path(module.__file__)) for name, module in SHIPPED_MODULES.items()}
    for placeholder, value in (
        ("TRUSTED_KEYS: dict[str, str] = {}", signing.trusted_public_keys()),
        ("PINNED_MODULES: dict[str, str] = {}", pinned),
    ):
        if source.count(placeholder) != 1:
            raise RuntimeError(f"verify_pack.py has lost its placeholder {placeholder!r}")
        source = source.replace(placeholder, placeholder.removesuffix("{}") + repr(value))
    return source


def _zip(bag: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(bag.rglob("*")):
            if path.is_file():
                archive.write(path, f"{bag.name}/{path.relative_to(bag).as_posix()}")
