"""Evidence packs: a self-verifying ZIP in BagIt layout (RFC 8493) for one campaign.

    <bag>/bagit.txt, bag-info.txt, manifest-sha256.txt, tagmanifest-sha256.txt
    <bag>/verify_pack.py, evidence_chain.py        the offline verifier (standard library only) and the encoding
    <bag>/data/<table>.csv | .xlsx | .json         campaign, review items, decisions, SoD violations, remediation,
                                                   evidence events
    <bag>/data/chain.csv                           (sequence, prev_hash, hash) from the scope's first event to ...
    <bag>/data/checkpoint.json                     ... the checkpoint signed for this pack

Tables stream from the database (iterator) into CSV and JSON and into openpyxl's write-only workbook, whose
cells that a spreadsheet would run as formulas are neutralised, and which starts a new sheet beyond Excel's row
limit; on PostgreSQL, the database writes each query's CSV itself with COPY (pack_csv: the same bytes). Memory
stays flat whatever the size.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone
from openpyxl import Workbook

from evidence import chain as chain_module
from evidence import pack_csv
from evidence.chain import format_time
from evidence.checkpoints import checkpoint_create
from evidence.models import Checkpoint, EvidenceEvent
from evidence.selectors import subjects_in
from evidence.services import Actor

EXCEL_MAX_ROWS = 1_048_576  # per sheet, header included
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\x00")


def inert(value):
    """A cell value a spreadsheet shows and never evaluates."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


@dataclass
class Table:
    name: str
    header: list[str]
    rows: Callable[[], Iterable[list]]  # called once per output format
    # The same rows as CSV cell texts (pack_csv.csv_cells), for COPY on PostgreSQL; None for the tables built in
    # Python (the summaries), which the Python writer writes everywhere.
    cells: Callable[[], QuerySet] | None = None


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
                    dict(zip(table.header, row, strict=True)), cls=DjangoJSONEncoder, ensure_ascii=False
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


# --- What a campaign pack holds --------------------------------------------------------------------------------


def _query_table(name: str, queryset, fields: list[str]) -> Table:
    return Table(
        name,
        fields,
        lambda: (list(row) for row in queryset.values_list(*fields).iterator(chunk_size=5000)),
        lambda: pack_csv.csv_cells(queryset, fields),
    )


def campaign_tables(campaign) -> tuple[list[Table], Q]:
    """The campaign's tables, and which evidence events belong to its scope."""
    from reviews.models import Decision, RemediationTask, ReviewItem
    from sod.models import Violation

    items = ReviewItem.objects.filter(campaign=campaign).order_by("pk")
    item_fields = [
        "id", "grant_id", "application__name", "identity_name", "department", "account_key", "entitlement_key",
        "entitlement_name", "last_used_at", *ReviewItem.FLAGS, "reviewer__username", "status",
        "decided_by__username", "decided_at", "comment", "signed_off",
    ]  # fmt: skip
    decisions = Decision.objects.filter(item__campaign=campaign).order_by("pk")
    decision_fields = [
        "id",
        "item_id",
        "action",
        "actor__username",
        "at",
        "comment",
        "delegated_to__username",
    ]
    identities = items.exclude(identity_id=None).values("identity_id")
    violations = Violation.objects.filter(identity_id__in=identities).order_by("pk")
    violation_fields = [
        "id",
        "rule__code",
        "rule__name",
        "rule__risk",
        "holder",
        "status",
        "opened_at",
        "resolved_at",
        "resolution",
    ]
    tasks = RemediationTask.objects.filter(item__campaign=campaign).order_by("pk")
    task_fields = [
        "id", "item_id", "application__name", "account_key", "entitlement_key", "identity_name", "due_on", "status",
        "ticket", "created_at", "closed_at", "closing_run_id", "proof", "attachment_sha256",
    ]  # fmt: skip
    summary = [
        ["id", campaign.pk], ["name", campaign.name], ["kind", campaign.kind], ["status", campaign.status],
        ["start_on", campaign.start_on], ["due_on", campaign.due_on], ["launched_at", campaign.launched_at],
        ["completed_at", campaign.completed_at], ["signed_off_at", campaign.signed_off_at],
        ["closed_at", campaign.closed_at], ["items", campaign.item_count],
        ["routing", campaign.routing], ["fallback_reviewer", campaign.fallback_reviewer.get_username()],
    ]  # fmt: skip
    subjects = (
        Q(subject_type="reviews.campaign", subject_id=str(campaign.pk))
        | subjects_in("reviews.reviewitem", items)
        | subjects_in("reviews.remediationtask", tasks)
        | subjects_in("sod.violation", violations)
    )
    tables = [
        Table("campaign", ["field", "value"], lambda: iter(summary)),
        _query_table("review_items", items, item_fields),
        _query_table("decisions", decisions, decision_fields),
        _query_table("sod_violations", violations, violation_fields),
        _query_table("remediation", tasks, task_fields),
    ]
    return tables, subjects


def period_tables(since, until, application_ids: list[int]) -> tuple[list[Table], Q]:
    """A period (inclusive dates) and a set of applications: the review items of campaigns launched in the period,
    their decisions in it, SoD violations opened or resolved in it on rules touching the applications, and
    remediation opened or closed in it; events of all of these and of the applications' own objects."""
    from entitlements.models import Account, Application
    from reviews.models import Decision, RemediationTask, ReviewItem
    from sod.models import Violation

    in_period = {"date__gte": since, "date__lte": until}
    items = ReviewItem.objects.filter(
        application_id__in=application_ids, **{f"campaign__launched_at__{k}": v for k, v in in_period.items()}
    ).order_by("pk")
    item_fields = [
        "id", "campaign__name", "grant_id", "application__name", "identity_name", "department", "account_key",
        "entitlement_key", "entitlement_name", "last_used_at", *ReviewItem.FLAGS, "reviewer__username", "status",
        "decided_by__username", "decided_at", "comment", "signed_off",
    ]  # fmt: skip
    decisions = Decision.objects.filter(
        item__in=items, **{f"at__{k}": v for k, v in in_period.items()}
    ).order_by("pk")
    decision_fields = [
        "id",
        "item_id",
        "action",
        "actor__username",
        "at",
        "comment",
        "delegated_to__username",
    ]
    touched = Q(**{f"opened_at__{k}": v for k, v in in_period.items()}) | Q(
        **{f"resolved_at__{k}": v for k, v in in_period.items()}
    )
    violations = (
        Violation.objects.filter(touched, rule__members__entitlement__application_id__in=application_ids)
        .distinct()
        .order_by("pk")
    )
    violation_fields = [
        "id",
        "rule__code",
        "rule__name",
        "rule__risk",
        "holder",
        "status",
        "opened_at",
        "resolved_at",
        "resolution",
    ]
    tasks = (
        RemediationTask.objects.filter(application_id__in=application_ids)
        .filter(
            Q(**{f"created_at__{k}": v for k, v in in_period.items()})
            | Q(**{f"closed_at__{k}": v for k, v in in_period.items()})
        )
        .order_by("pk")
    )
    task_fields = [
        "id", "item_id", "application__name", "account_key", "entitlement_key", "identity_name", "due_on", "status",
        "ticket", "created_at", "closed_at", "closing_run_id", "proof", "attachment_sha256",
    ]  # fmt: skip
    names = list(
        Application.objects.filter(pk__in=application_ids).order_by("name").values_list("name", flat=True)
    )
    summary = [["since", since], ["until", until], ["applications", ", ".join(names)]]
    subjects = Q(occurred_at__date__gte=since, occurred_at__date__lte=until) & (
        subjects_in("reviews.reviewitem", items)
        | subjects_in("reviews.remediationtask", tasks)
        | subjects_in("sod.violation", violations)
        | Q(subject_type="entitlements.application", subject_id__in=[str(pk) for pk in application_ids])
        | subjects_in("entitlements.account", Account.objects.filter(application_id__in=application_ids))
    )
    tables = [
        Table("scope", ["field", "value"], lambda: iter(summary)),
        _query_table("review_items", items, item_fields),
        _query_table("decisions", decisions, decision_fields),
        _query_table("sod_violations", violations, violation_fields),
        _query_table("remediation", tasks, task_fields),
    ]
    return tables, subjects


EVENT_FIELDS = ["sequence", "occurred_at", "actor_kind", "actor_id", "actor_name", "action", "subject_type",
                "subject_id", "subject_repr", "payload", "prev_hash", "hash"]  # fmt: skip


def _event_rows(events) -> Iterator[list]:
    for e in events.iterator(chunk_size=5000):
        yield [
            e.sequence, format_time(e.occurred_at), e.actor_kind, e.actor_user_id, e.actor_name, e.action,
            e.subject_type, e.subject_id, e.subject_repr, e.payload, e.prev_hash, e.hash,
        ]  # fmt: skip


def evidence_tables(subjects: Q, checkpoint) -> tuple[Table, Table]:
    """The scope's events up to the checkpoint, and the chain segment from the first of them to the checkpoint."""
    events = EvidenceEvent.objects.filter(subjects, sequence__lte=checkpoint.sequence).order_by("sequence")
    first = events.values_list("sequence", flat=True).first() or checkpoint.sequence
    event_columns = [
        "sequence", pack_csv.EventTime("occurred_at"), "actor_kind", "actor_user_id", "actor_name", "action",
        "subject_type", "subject_id", "subject_repr", "payload", "prev_hash", "hash",
    ]  # fmt: skip
    events_table = Table(
        "evidence_events",
        EVENT_FIELDS,
        lambda: _event_rows(events),
        lambda: pack_csv.csv_cells(events, event_columns),
    )
    segment = EvidenceEvent.objects.filter(sequence__gte=first, sequence__lte=checkpoint.sequence).order_by(
        "sequence"
    )
    return events_table, _query_table("chain", segment, ["sequence", "prev_hash", "hash"])


def build_campaign_pack(
    campaign, out: Path, *, actor: Actor, progress: Callable[[int], None] = lambda p: None
) -> str:
    tables, subjects = campaign_tables(campaign)
    label = f"Evidence pack for campaign {campaign.pk} ({campaign.name})"
    return build_pack(
        tables, subjects, out, name=f"campaign-{campaign.pk}", label=label, actor=actor, progress=progress
    )


def build_period_pack(
    since, until, application_ids, out: Path, *, actor: Actor, progress=lambda p: None
) -> str:
    tables, subjects = period_tables(since, until, application_ids)
    label = f"Evidence pack for {since} to {until}, applications {sorted(application_ids)}"
    return build_pack(
        tables, subjects, out, name=f"period-{since}-{until}", label=label, actor=actor, progress=progress
    )


def build_pack(
    tables, subjects, out: Path, *, name: str, label: str, actor: Actor, progress=lambda p: None
) -> str:
    """Write the pack to ``out`` (a .zip); returns its SHA-256. Signs a checkpoint first, so every event of the
    scope lies inside the chain segment the pack proves."""
    checkpoint = checkpoint_create(reason=Checkpoint.Reason.EVIDENCE_PACK, actor=actor)
    events_table, chain_table = evidence_tables(subjects, checkpoint)
    tables.append(events_table)
    bag_name = f"soxgov-{name}-{timezone.now():%Y%m%dT%H%M%S}"
    with tempfile.TemporaryDirectory(prefix="soxgov-pack-") as folder:
        bag = Path(folder) / bag_name
        data = bag / "data"
        data.mkdir(parents=True)
        for n, table in enumerate(tables):
            _write_csv(table, data / f"{table.name}.csv")
            _write_json(table, data / f"{table.name}.json")
            _write_xlsx(table, data / f"{table.name}.xlsx")
            progress(10 + 70 * (n + 1) // len(tables))
        _write_csv(chain_table, data / "chain.csv")
        (data / "checkpoint.json").write_text(
            json.dumps(checkpoint.as_document(), indent=1, sort_keys=True) + "\n"
        )
        _write_tags(bag, label)
        progress(90)
        _zip(bag, out)
    progress(100)
    return _sha256(out)


def _write_tags(bag: Path, label: str) -> None:
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
    here = Path(__file__).parent
    (bag / "verify_pack.py").write_bytes((here / "verify_pack.py").read_bytes())
    (bag / "evidence_chain.py").write_bytes(Path(chain_module.__file__).read_bytes())
    tags = ["bagit.txt", "bag-info.txt", "manifest-sha256.txt", "verify_pack.py", "evidence_chain.py"]
    (bag / "tagmanifest-sha256.txt").write_text("".join(f"{_sha256(bag / t)} {t}\n" for t in tags))


def _zip(bag: Path, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(bag.rglob("*")):
            if path.is_file():
                archive.write(path, f"{bag.name}/{path.relative_to(bag).as_posix()}")
