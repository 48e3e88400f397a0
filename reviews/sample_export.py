"""A sample's items with the full evidence an auditor tests, so testing needs no further requests: one XLSX with
the sheet "sample" (parameters and how to re-draw), one row per sampled item (decision, reviewer context,
recommendation, remediation proof, exception answers) and "evidence_events" (every chained event of the sampled
subjects). Every cell passes through evidence.binding.inert, so a spreadsheet runs no formula from the data."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections import defaultdict
from dataclasses import dataclass

from django.http import HttpResponse
from openpyxl import Workbook

from evidence.binding import inert
from evidence.models import EvidenceEvent
from reviews.exports import workbook_response
from reviews.models import AuditSample, Decision, RemediationTask
from reviews.samples import METHOD, size_for
from sod.models import ControlException

Kind = AuditSample.Kind
CHUNK = 500


@dataclass
class Sheet:
    name: str
    header: list[str]
    rows: list[list]


def cell(value):
    """A value as a spreadsheet cell: text for times (XLSX has no time zones) and structures, never a formula."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True, default=str)
    return inert("" if value is None else value)


def _username(user) -> str:
    return user.get_username() if user is not None else ""


# --- Events of the sampled subjects ---------------------------------------------------------------------------


def _events(subjects: dict[str, list[int]]) -> dict[tuple[str, str], list[EvidenceEvent]]:
    """Every chained event of these subjects (by type, then ids), in chain order."""
    found = defaultdict(list)
    for subject_type, ids in subjects.items():
        ids = sorted({str(pk) for pk in ids})
        for start in range(0, len(ids), CHUNK):
            rows = EvidenceEvent.objects.filter(
                subject_type=subject_type, subject_id__in=ids[start : start + CHUNK]
            )
            for event in rows.order_by("sequence"):
                found[(event.subject_type, event.subject_id)].append(event)
    return found


def _last(events, subject_type: str, pk) -> EvidenceEvent | None:
    mine = events.get((subject_type, str(pk)))
    return mine[-1] if mine else None


def _decision_event(events, decision: Decision) -> EvidenceEvent | None:
    for event in events.get(("reviews.reviewitem", str(decision.item_id)), []):
        if event.action.startswith("review.item.") and event.payload_data.get("decision") == decision.pk:
            return event
    return None


def _chained(event: EvidenceEvent | None) -> list:
    return [event.sequence, event.hash] if event else [None, ""]


# --- One row per sampled item ---------------------------------------------------------------------------------

DECISION_HEADER = [
    "decision_id", "item_id", "campaign_id", "application", "person", "department", "account", "entitlement",
    "entitlement_name", "flags", "last_used_at", "peers", "reviewer", "decision", "comment", "decided_at",
    "recommendation", "reasons", "batch", "seconds_shown", "event_sequence", "event_hash",
]  # fmt: skip
TASK_HEADER = [
    "task_id", "task_status", "due_on", "ticket", "notes", "proof", "attachment_sha256", "closed_at", "closed_by",
    "closing_run", "closing_run_input_sha256",
]  # fmt: skip
REMEDIATION_HEADER = [
    "task_id", "application", "person", "account", "entitlement", "owner", "due_on", "status", "ticket", "notes",
    "proof", "attachment_sha256", "closed_at", "closed_by", "closing_run", "closing_run_input_sha256", "item_id",
    "campaign_id", "decision_id", "revoked_by", "revoked_at", "justification", "recommendation", "reasons",
    "last_event_sequence", "last_event_hash",
]  # fmt: skip
EXCEPTION_HEADER = [
    "exception_id", "kind", "severity", "title", "status", "opened_at", "due_on", "owner", "answered_until",
    "closed_at", "closed_by", "close_reason", "proof", "acceptance_justification", "notes", "detail",
    "last_event_sequence", "last_event_hash",
]  # fmt: skip


def _peers(item) -> str:
    if not item.peer_size:
        return ""
    return f"{item.peer_holders or 0} of {item.peer_size} ({item.peer_basis})"


def _task_cells(task: RemediationTask | None) -> list:
    if task is None:
        return [None] * len(TASK_HEADER)
    run = task.closing_run
    return [
        task.pk, task.status, task.due_on, task.ticket, task.notes, task.proof, task.attachment_sha256,
        task.closed_at, _username(task.closed_by), run.pk if run else None, run.input_sha256 if run else "",
    ]  # fmt: skip


def _opened_by(task: RemediationTask, revokes: list[Decision]) -> Decision | None:
    """The revoke decision that opened ``task``: the one made as it was opened (the same transaction and time),
    else the last revoke of its item before it. An item may hold several once a decision was changed."""
    before = [d for d in revokes if d.at <= task.created_at]
    return next((d for d in before if d.at == task.created_at), before[-1] if before else None)


def _by_item(rows) -> dict[int, list]:
    grouped = defaultdict(list)
    for row in rows:
        grouped[row.item_id].append(row)
    return grouped


def _decision_rows(sample: AuditSample):
    decisions = {
        d.pk: d
        for d in Decision.objects.filter(pk__in=sample.selected).select_related("item__application", "actor")
    }
    items = [d.item_id for d in decisions.values()]
    tasks = _by_item(
        RemediationTask.objects.filter(item_id__in=items)
        .select_related("closing_run", "closed_by")
        .order_by("created_at", "pk")
    )
    events = _events(
        {"reviews.reviewitem": items, "reviews.remediationtask": [t.pk for ts in tasks.values() for t in ts]}
    )
    revocations = sample.kind == Kind.REVOCATIONS
    header = DECISION_HEADER + (TASK_HEADER if revocations else [])
    rows = []
    for pk in sample.selected:
        d = decisions.get(pk)
        if d is None:
            rows.append(
                [pk] + [None] * (len(header) - 1)
            )  # gone since the draw: the row says so by its blanks
            continue
        item = d.item
        row = [
            d.pk, item.pk, item.campaign_id, item.application.name, item.identity_name, item.department,
            item.account_key, item.entitlement_key, item.entitlement_name, ", ".join(item.flags),
            item.last_used_at, _peers(item), _username(d.actor), d.action, d.comment, d.at, d.recommendation,
            d.reasons, d.batch, d.seconds_shown, *_chained(_decision_event(events, d)),
        ]  # fmt: skip
        if revocations:
            # The task this revoke opened: in its transaction, at its time.
            row += _task_cells(next((t for t in tasks.get(item.pk, []) if t.created_at == d.at), None))
        rows.append(row)
    return header, rows, events


def _remediation_rows(sample: AuditSample):
    tasks = {
        t.pk: t
        for t in RemediationTask.objects.filter(pk__in=sample.selected).select_related(
            "application", "owner", "closed_by", "closing_run", "item"
        )
    }
    revokes = _by_item(
        Decision.objects.filter(
            item_id__in=[t.item_id for t in tasks.values()], action=Decision.Action.REVOKE
        )
        .select_related("actor")
        .order_by("at", "pk")
    )
    events = _events({"reviews.remediationtask": list(tasks), "reviews.reviewitem": list(revokes)})
    rows = []
    for pk in sample.selected:
        t = tasks.get(pk)
        if t is None:
            rows.append([pk] + [None] * (len(REMEDIATION_HEADER) - 1))
            continue
        d = _opened_by(t, revokes.get(t.item_id, []))
        run = t.closing_run
        rows.append(
            [
                t.pk,
                t.application.name,
                t.identity_name,
                t.account_key,
                t.entitlement_key,
                str(t.owner or ""),
                t.due_on,
                t.status,
                t.ticket,
                t.notes,
                t.proof,
                t.attachment_sha256,
                t.closed_at,
                _username(t.closed_by),
                run.pk if run else None,
                run.input_sha256 if run else "",
                t.item_id,
                t.item.campaign_id,
                d.pk if d else None,
                _username(d.actor) if d else "",
                d.at if d else None,
                d.comment if d else "",
                d.recommendation if d else "",
                d.reasons if d else "",
                *_chained(_last(events, "reviews.remediationtask", t.pk)),
            ]
        )
    return REMEDIATION_HEADER, rows, events


def _exception_rows(sample: AuditSample):
    exceptions = {
        e.pk: e
        for e in ControlException.objects.filter(pk__in=sample.selected)
        .select_related("owner", "closed_by")
        .prefetch_related("notes")
    }
    events = _events({"sod.controlexception": list(exceptions)})
    rows = []
    for pk in sample.selected:
        e = exceptions.get(pk)
        if e is None:
            rows.append([pk] + [None] * (len(EXCEPTION_HEADER) - 1))
            continue
        notes = "\n".join(f"{n.at.isoformat()} {n.action} by {n.actor_name}: {n.text}" for n in e.notes.all())
        rows.append(
            [
                e.pk,
                e.kind,
                e.severity,
                e.title,
                e.status,
                e.opened_at,
                e.due_on,
                _username(e.owner),
                e.answered_until,
                e.closed_at,
                _username(e.closed_by),
                e.close_reason,
                e.proof,
                e.acceptance_justification,
                notes,
                e.detail,
                *_chained(_last(events, "sod.controlexception", e.pk)),
            ]
        )
    return EXCEPTION_HEADER, rows, events


ROWS = {
    Kind.DECISIONS: _decision_rows,
    Kind.REVOCATIONS: _decision_rows,
    Kind.REMEDIATION: _remediation_rows,
    Kind.EXCEPTIONS: _exception_rows,
}


def item_sheet(sample: AuditSample) -> tuple[Sheet, dict]:
    """The sampled items, one row each in draw order (with its stratum), and the events of their subjects."""
    header, rows, events = ROWS[sample.kind](sample)
    taken_whole = set(sample.high_risk)
    rows = [
        [n, "high_risk" if row[0] in taken_whole else "random", *row] for n, row in enumerate(rows, start=1)
    ]
    return Sheet(sample.kind, ["order", "stratum", *header], rows), events


# --- The workbook ---------------------------------------------------------------------------------------------


def sample_sheet(sample: AuditSample) -> Sheet:
    table = "the sizing table" if sample.size_asked is None else "asked"
    rows = [
        ["sample", sample.pk], ["kind", sample.kind], ["campaign", sample.campaign_id],
        ["campaign_name", sample.campaign.name if sample.campaign else ""], ["since", sample.since],
        ["until", sample.until], ["seed", sample.seed], ["stratified", sample.stratified],
        ["size_asked", sample.size_asked], ["size_drawn", f"{sample.size} ({table})"],
        ["population_count", sample.population_count], ["population_sha256", sample.population_sha256],
        ["high_risk_taken_whole", len(sample.high_risk)], ["selected", len(sample.selected)],
        ["drawn_by", sample.drawn_by_name], ["drawn_at", sample.drawn_at],
        ["sizing_table", f"1-5: all; 6-50: 10 (all if fewer); 51-250: 25; over 250: 40 (here: {size_for(sample.population_count - len(sample.high_risk))})"],
        ["population_sha256_is", "SHA-256 of the population's ids, ascending, in decimal, one per line, no trailing newline"],
        ["how_to_redraw", METHOD],
        ["how_to_redraw_stratified", "the high-risk ids (ascending) are taken whole and listed first; the draw is from the other ids"],
        ["python", f'import hashlib, random; ids = sorted(...); sha = hashlib.sha256("\\n".join(map(str, ids)).encode()).hexdigest(); rest = [i for i in ids if i not in high_risk]; random.Random({sample.seed!r} + "\\n" + sha).sample(rest, {sample.size})'],
    ]  # fmt: skip
    return Sheet("sample", ["field", "value"], rows)


EVENT_HEADER = ["sequence", "hash", "prev_hash", "occurred_at", "action", "actor", "subject_type", "subject_id",
                "payload"]  # fmt: skip


def event_sheet(sample: AuditSample, events: dict) -> Sheet:
    own = EvidenceEvent.objects.filter(subject_type="reviews.auditsample", subject_id=str(sample.pk))
    every = sorted({e.sequence: e for e in [*own, *(e for es in events.values() for e in es)]}.items())
    rows = [
        [
            e.sequence,
            e.hash,
            e.prev_hash,
            e.occurred_at,
            e.action,
            e.actor_name,
            e.subject_type,
            e.subject_id,
            e.payload,
        ]
        for _, e in every
    ]
    return Sheet("evidence_events", EVENT_HEADER, rows)


def workbook_sheets(sample: AuditSample) -> list[Sheet]:
    items, events = item_sheet(sample)
    return [sample_sheet(sample), items, event_sheet(sample, events)]


def xlsx_response(sample: AuditSample):
    workbook = Workbook(write_only=True)
    for sheet in workbook_sheets(sample):
        out = workbook.create_sheet(sheet.name)
        out.append([cell(v) for v in sheet.header])
        for row in sheet.rows:
            out.append([cell(v) for v in row])
    return workbook_response(workbook, f"sample-{sample.pk}-{sample.kind}.xlsx")


def csv_response(sample: AuditSample) -> HttpResponse:
    """The sampled items' sheet as CSV."""
    sheet, _ = item_sheet(sample)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(sheet.header)
    writer.writerows([cell(v) for v in row] for row in sheet.rows)
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="sample-{sample.pk}-{sample.kind}.csv"'
    return response
