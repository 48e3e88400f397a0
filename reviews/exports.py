"""Open revocations as CSV or XLSX, for teams without an integration. Streamed; cells that a spreadsheet would
run as formulas are neutralised."""

from __future__ import annotations

import csv
import tempfile

from django.http import FileResponse, StreamingHttpResponse
from django.utils import timezone
from openpyxl import Workbook

from evidence.binding import inert
from evidence.services import Actor, event_record

HEADER = (
    "task_id",
    "application",
    "account_id",
    "entitlement_id",
    "identity",
    "owner",
    "due_on",
    "status",
    "ticket",
    "campaign",
    "revoked_by",
    "revoked_at",
    "justification",
)


def _rows(tasks):
    for task in tasks.select_related("application", "owner", "item__campaign", "item__decided_by").iterator(
        chunk_size=2000
    ):
        item = task.item
        yield [
            inert(v)
            for v in (
                task.pk,
                task.application.name,
                task.account_key,
                task.entitlement_key,
                task.identity_name,
                str(task.owner) if task.owner else "",
                task.due_on.isoformat(),
                task.status,
                task.ticket,
                item.campaign.name,
                item.decided_by.get_username() if item.decided_by else "",
                item.decided_at.isoformat() if item.decided_at else "",
                item.comment,
            )
        ]


class _Echo:
    def write(self, value):
        return value


def remediation_response(tasks, fmt: str, *, user):
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    event_record(
        actor=Actor.for_user(user),
        action="remediation.export.downloaded",
        subject=user,
        payload={"format": fmt, "tasks": tasks.count()},
    )
    if fmt == "csv":
        writer = csv.writer(_Echo())
        stream = (writer.writerow(row) for row in _chain([list(HEADER)], _rows(tasks)))
        response = StreamingHttpResponse(stream, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="remediation-{stamp}.csv"'
        return response
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Remediation")
    sheet.append(list(HEADER))
    for row in _rows(tasks):
        sheet.append(row)
    return workbook_response(workbook, f"remediation-{stamp}.xlsx")


def workbook_response(workbook: Workbook, filename: str) -> FileResponse:
    """The workbook as a download, spooled to a temporary file (a large one stays out of memory)."""
    spool = tempfile.TemporaryFile()  # noqa: SIM115 (FileResponse closes it once sent)
    workbook.save(spool)
    spool.seek(0)
    return FileResponse(
        spool,
        as_attachment=True,
        filename=filename,
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    )


def _chain(*iterables):
    for iterable in iterables:
        yield from iterable
