"""Closed-loop remediation: a revocation opens a task; only a later pull proves the access gone.

Evidence links the decision (the review item), the task and, on verified closure, the connector run whose data
no longer contains the grant. A manual close needs proof and is marked as manual.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from entitlements.models import Application, Connector, ConnectorRun, Grant, Identity
from entitlements.selves import is_own_case, require_known_person
from evidence.chain import format_time
from evidence.services import Actor, Event, Subject, event_record, events_record
from reviews.attachments import attachment_check
from reviews.models import Campaign, Decision, RemediationTask, ReviewItem
from sod.hygiene import HYGIENE_LOCK_KEY, SLA_DAYS
from sod.models import ControlException, Risk
from soxgov import access
from soxgov.db import advisory_xact_lock
from soxgov.exceptions import Conflict

Kind = ControlException.Kind


def tasks_for_revocations(items: list[ReviewItem], *, now) -> list[Event]:
    """Open one task per revoked item (inside the deciding transaction); returns their evidence events.

    The owner is the first of the application owner, the connector owner and the campaign's fallback reviewer
    who is not the person whose access is removed (nor the owner of the non-human identity losing it): nobody
    carries out, and so proves, their own revocation. If none is left the task stays unassigned and its
    evidence says why; the queue shows it, and it becomes an exception when it falls past due."""
    apps = {item.application_id for item in items}
    app_owner = dict(Application.objects.filter(pk__in=apps).values_list("pk", "owner"))
    connector_owner = dict(
        Connector.objects.filter(application_id__in=apps, owner__isnull=False).values_list(
            "application_id", "owner"
        )
    )
    fallback_owner = dict(
        Campaign.objects.filter(pk__in={item.campaign_id for item in items}).values_list(
            "pk", "fallback_reviewer__identity"
        )
    )
    subject_owner = dict(
        Identity.objects.filter(pk__in={i.identity_id for i in items if i.identity_id}).values_list(
            "pk", "owner"
        )
    )

    def owner_of(item: ReviewItem) -> int | None:
        theirs = {item.identity_id, subject_owner.get(item.identity_id)} - {None}
        chain = (
            app_owner.get(item.application_id),
            connector_owner.get(item.application_id),
            fallback_owner.get(item.campaign_id),
        )
        return next((pk for pk in chain if pk is not None and pk not in theirs), None)

    due = timezone.localdate(now) + dt.timedelta(days=settings.SOXGOV_REMEDIATION_DAYS)
    tasks = RemediationTask.objects.bulk_create(
        RemediationTask(
            item=item,
            application_id=item.application_id,
            account_key=item.account_key,
            entitlement_key=item.entitlement_key,
            identity_name=item.identity_name,
            owner_id=owner_of(item),
            due_on=due,
            created_at=now,
        )
        for item in items
    )
    if any(task.pk is None for task in tasks):
        tasks = list(RemediationTask.objects.filter(item__in=items, status=RemediationTask.Status.OPEN))
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
                **(
                    {}
                    if task.owner_id
                    else {"unassigned": "no owner in the chain but the person losing access"}
                ),
                "due_on": task.due_on,
                "created_at": format_time(task.created_at),
            },
        )
        for task in tasks
    ]


def grant_still_there(grants=None):
    """EXISTS: the task's grant (application + account id + entitlement id) is held now (among ``grants``)."""
    grants = Grant.objects.all() if grants is None else grants
    return Exists(
        grants.filter(
            account__application_id=OuterRef("application_id"),
            account__account_id=OuterRef("account_key"),
            entitlement__entitlement_id=OuterRef("entitlement_key"),
        )
    )


def verify_after_run(*, run_id: int, application_ids: list[int]) -> int:
    """Close the open tasks of these applications whose grant the applied run no longer contains, and open a
    "revoked access returned" exception for each verified task whose grant the run brought back."""
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
            .annotate(still_there=grant_still_there())
            .filter(still_there=False)
        )
        events = []
        if gone:
            RemediationTask.objects.filter(pk__in=[t.pk for t in gone]).update(
                status=RemediationTask.Status.VERIFIED, closed_at=now, closing_run=run
            )
            events += [
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
                        "at": format_time(now),
                    },
                )
                for task in gone
            ]
        events += _returned_access(run, application_ids, now)
        if events:
            events_record(actor=Actor.system("reviews.remediation"), events=events)
    return len(gone)


def _returned_access(run: ConnectorRun, application_ids: list[int], now) -> list[Event]:
    """Verified revocations whose grant this run added back: one query over the run's added grants against the
    verified tasks; each opens a high-severity exception whose evidence links the decision, the run that
    verified the removal and the run that brought the access back. The task stays verified: that was true."""
    added = Grant.history.filter(history_change_reason=f"connector run {run.pk}", history_type="+")
    returned = list(
        RemediationTask.objects.filter(
            status=RemediationTask.Status.VERIFIED, application_id__in=application_ids
        )
        .annotate(back=grant_still_there(Grant.objects.filter(pk__in=added.values("id"))))
        .filter(back=True)
        .select_related("item", "application", "closing_run")
        .order_by("pk")
    )
    if not returned:
        return []
    advisory_xact_lock(HYGIENE_LOCK_KEY)  # a hygiene run must not close what is being opened
    keys = {f"{Kind.REVOKED_ACCESS_RETURNED.value}:{task.pk}": task for task in returned}
    live = set(
        ControlException.objects.filter(key__in=keys, status__in=ControlException.LIVE).values_list(
            "key", flat=True
        )
    )
    fresh = {key: task for key, task in keys.items() if key not in live}
    if not fresh:
        return []
    decisions = {
        d.item_id: d
        for d in Decision.objects.filter(
            item_id__in=[t.item_id for t in fresh.values()], action=Decision.Action.REVOKE
        ).select_related("actor")
    }
    today = timezone.localdate(now)
    created = []
    for key, task in fresh.items():
        decision = decisions.get(task.item_id)
        detail = {
            "task": task.pk,
            "item": task.item_id,
            "campaign": task.item.campaign_id,
            "decision": decision.pk if decision else None,
            "decided_by": decision.actor.get_username() if decision else None,
            "decided_at": decision.at.isoformat() if decision else None,
            "verified_by_run": task.closing_run_id,
            "verified_input_sha256": task.closing_run.input_sha256 if task.closing_run else None,
            "returned_by_run": run.pk,
            "returned_input_sha256": run.input_sha256,
            "account": task.account_key,
            "entitlement": task.entitlement_key,
        }
        created.append(
            ControlException.objects.create(
                kind=Kind.REVOKED_ACCESS_RETURNED,
                severity=Risk.HIGH,
                key=key,
                title=(
                    f"Revoked access returned: {task.entitlement_key} of {task.account_key} in "
                    f"{task.application.name} ({task.identity_name})"
                )[:300],
                detail=detail,
                identity_id=task.item.identity_id,
                application_id=task.application_id,
                due_on=today + dt.timedelta(days=SLA_DAYS[Risk.HIGH]),
                opened_at=now,
            )
        )
    return [
        event
        for exception in created
        for event in (
            Event("remediation.task.access_returned", Subject.of(fresh[exception.key]), exception.detail),
            Event(
                "exception.opened",
                Subject.of(exception),
                {
                    "kind": exception.kind,
                    "key": exception.key,
                    "severity": exception.severity,
                    "title": exception.title,
                    "due_on": exception.due_on,
                    **exception.detail,
                },
            ),
        )
    ]


def task_update(*, task_id: int, user, ticket: str, notes: str) -> RemediationTask:
    access.require(user, RemediationTask, access.CHANGE)
    with transaction.atomic():
        task = access.restrict(RemediationTask.objects.select_for_update(), user, access.CHANGE).get(
            pk=task_id
        )
        if not task.is_open:
            raise Conflict("This task is closed.")
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
            raise Conflict("This task is already closed.")
        subject = Identity.objects.filter(pk=task.item.identity_id).first() if task.item.identity_id else None
        if is_own_case(user, subject, selves=require_known_person(user)):
            raise PermissionDenied(
                "This revocation is of your own access (or of an account you own): someone else must close it."
            )
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
                "at": format_time(now),
            },
        )
    return task
