"""Closed-loop remediation: a revocation opens a task; only a later pull proves the access gone.

Evidence links the decision (the review item), the task and, on verified closure, the connector run whose data
no longer contains the grant. A manual close needs proof and is marked as manual.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from entitlements.models import Application, Connector, ConnectorRun, Grant
from evidence.services import Actor, Event, Subject, event_record, events_record
from reviews.attachments import attachment_check
from reviews.models import RemediationTask, ReviewItem
from soxgov import access


def tasks_for_revocations(items: list[ReviewItem], *, now) -> list[Event]:
    """Open one task per revoked item (inside the deciding transaction); returns their evidence events."""
    apps = {item.application_id for item in items}
    app_owner = dict(Application.objects.filter(pk__in=apps).values_list("pk", "owner"))
    connector_owner = dict(
        Connector.objects.filter(application_id__in=apps, owner__isnull=False).values_list(
            "application_id", "owner"
        )
    )
    due = timezone.localdate(now) + dt.timedelta(days=settings.SOXGOV_REMEDIATION_DAYS)
    tasks = RemediationTask.objects.bulk_create(
        RemediationTask(
            item=item,
            application_id=item.application_id,
            account_key=item.account_key,
            entitlement_key=item.entitlement_key,
            identity_name=item.identity_name,
            owner_id=app_owner.get(item.application_id) or connector_owner.get(item.application_id),
            due_on=due,
            created_at=now,
        )
        for item in items
    )
    if any(task.pk is None for task in tasks):
        tasks = list(RemediationTask.objects.filter(item__in=items))
    return [
        Event(
            "remediation.task.opened",
            Subject.of(task),
            {
                "item": task.item_id,
                "campaign": task.item.campaign_id,
                "application": task.application_id,
                "account": task.account_key,
                "entitlement": task.entitlement_key,
                "owner_id": task.owner_id,
                "due_on": task.due_on,
            },
        )
        for task in tasks
    ]


def _grant_still_there():
    return Exists(
        Grant.objects.filter(
            account__application_id=OuterRef("application_id"),
            account__account_id=OuterRef("account_key"),
            entitlement__entitlement_id=OuterRef("entitlement_key"),
        )
    )


def verify_after_run(*, run_id: int, application_ids: list[int]) -> int:
    """Close the open tasks of these applications whose grant the applied run no longer contains."""
    run = ConnectorRun.objects.get(pk=run_id)
    now = timezone.now()
    with transaction.atomic():
        gone = list(
            RemediationTask.objects.select_for_update()
            .filter(
                status=RemediationTask.Status.OPEN,
                application_id__in=application_ids,
                created_at__lte=run.queued_at,
            )
            .annotate(still_there=_grant_still_there())
            .filter(still_there=False)
        )
        if not gone:
            return 0
        RemediationTask.objects.filter(pk__in=[t.pk for t in gone]).update(
            status=RemediationTask.Status.VERIFIED, closed_at=now, closing_run=run
        )
        events_record(
            actor=Actor.system("reviews.remediation"),
            events=[
                Event(
                    "remediation.task.verified",
                    Subject.of(task),
                    {
                        "item": task.item_id,
                        "decision": "revoke",
                        "connector_run": run.pk,
                        "input_sha256": run.input_sha256,
                        "account": task.account_key,
                        "entitlement": task.entitlement_key,
                    },
                )
                for task in gone
            ],
        )
    return len(gone)


def task_update(*, task_id: int, user, ticket: str, notes: str) -> RemediationTask:
    access.require(user, RemediationTask, access.CHANGE)
    with transaction.atomic():
        task = access.restrict(RemediationTask.objects.select_for_update(), user, access.CHANGE).get(
            pk=task_id
        )
        if not task.is_open:
            raise ValidationError("This task is closed.")
        task.ticket, task.notes = ticket.strip(), notes
        task.save(update_fields=["ticket", "notes"])
        event_record(
            actor=Actor.for_user(user),
            action="remediation.task.updated",
            subject=task,
            payload={"ticket": task.ticket, "notes": notes},
        )
    return task


def task_close_manually(
    *, task_id: int, user, proof: str, ticket: str = "", attachment=None
) -> RemediationTask:
    """Close without a pull's confirmation: needs a note and a ticket or an attachment; marked as manual."""
    access.require(user, RemediationTask, access.CHANGE)
    proof, ticket = proof.strip(), ticket.strip()
    if not proof or not (ticket or attachment):
        raise ValidationError("A manual close needs proof: a note, and a ticket reference or an attachment.")
    if attachment is not None:
        attachment_check(attachment)
    now = timezone.now()
    with transaction.atomic():
        task = access.restrict(RemediationTask.objects.select_for_update(), user, access.CHANGE).get(
            pk=task_id
        )
        if not task.is_open:
            raise ValidationError("This task is already closed.")
        if attachment is not None:
            digest = hashlib.sha256()
            for chunk in attachment.chunks():
                digest.update(chunk)
            task.attachment_sha256 = digest.hexdigest()
            task.attachment.save(attachment.name, attachment, save=False)
        task.status = RemediationTask.Status.MANUAL
        task.proof, task.ticket = proof, ticket or task.ticket
        task.closed_at, task.closed_by = now, user
        task.save()
        event_record(
            actor=Actor.for_user(user),
            action="remediation.task.closed_manually",
            subject=task,
            payload={
                "item": task.item_id,
                "proof": proof,
                "ticket": task.ticket,
                "attachment": task.attachment.name if task.attachment else None,
                "attachment_sha256": task.attachment_sha256 or None,
            },
        )
    return task
