"""Cancelling background work that is stuck or no longer wanted (an import run, an evidence pack): one rule for
all of it, because an auditor asks the same questions of each: who, why, from what state, and what else ended."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.utils import timezone

from evidence.services import Actor, event_record
from soxgov import access as acl
from soxgov import jobs
from soxgov.exceptions import Conflict


def work_cancel(
    *, model: type[models.Model], pk: int, user, reason: str, open_statuses, open_label: str, action: str
) -> tuple[models.Model, str]:
    """Cancel ``model`` row ``pk`` (its ``status`` one of ``open_statuses``) with its open jobs, saying why; an
    admin's act, evidenced as ``action`` with the reason and the status before. Returns the row and that status.
    Whatever still runs for it finds it cancelled when it would finish (the model's service sees to that)."""
    noun = model._meta.verbose_name
    if not acl.can_attempt(user, model, acl.CHANGE):
        raise PermissionDenied(f"only an admin may cancel this {noun}")
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": f"Say why the {noun} is cancelled."})
    actor = Actor.for_user(user)
    with transaction.atomic():
        row = model.objects.select_for_update().get(pk=pk)
        if row.status not in open_statuses:
            raise Conflict(
                f"{noun} {row.pk} is {row.get_status_display().lower()}; only {open_label} can be cancelled"
            )
        previous = row.status
        model.objects.filter(pk=row.pk).update(
            status="cancelled",
            finished_at=timezone.now(),
            error=f"cancelled by {actor.name}: {reason}"[:2000],
        )
        cancelled_jobs = jobs.cancel(origin=row)
        event_record(
            actor=actor,
            action=action,
            subject=row,
            payload={"reason": reason, "status_before": previous, "jobs_cancelled": cancelled_jobs},
        )
    row.refresh_from_db()
    return row, previous
