"""Connector safety thresholds: stricter at once, more permissive only once a second admin approves.

The safety gate (entitlements/services.py) holds a pull that would remove too much access. An admin who could
raise a connector's thresholds alone could wave a destructive pull through unseen, so raising one (up to
disabling the gate: 100 %) is only proposed; pulls keep the old thresholds until another admin approves.
Django admin, the API and the Imports page all come through here; every step is evidenced with old and new.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from entitlements.models import Connector, ConnectorThresholdChange
from entitlements.models.connectors import THRESHOLD_FIELDS
from entitlements.selves import four_eyes_refusal
from evidence.services import Actor, event_record
from soxgov import access as acl
from soxgov.exceptions import Conflict

Status = ConnectorThresholdChange.Status


def default_thresholds() -> dict[str, int]:
    """What a new connector starts from: raising past these on creation needs approval too."""
    return {
        "deletion_threshold_percent": settings.SOXGOV_DELETION_THRESHOLD_PERCENT,
        "deletion_threshold_count": settings.SOXGOV_DELETION_THRESHOLD_COUNT,
    }


def _validated(percent, count) -> dict[str, int]:
    errors = {}
    if not isinstance(percent, int) or not 0 <= percent <= 100:
        errors["deletion_threshold_percent"] = "A whole number from 0 to 100."
    if not isinstance(count, int) or not 0 <= count <= 2_147_483_647:
        errors["deletion_threshold_count"] = "A whole number, 0 or more."
    if errors:
        raise ValidationError(errors)
    return {"deletion_threshold_percent": percent, "deletion_threshold_count": count}


def _payload(change: ConnectorThresholdChange, **extra) -> dict:
    return {"change": change.pk, "old": change.old, "new": change.proposed, "reason": change.reason, **extra}


def thresholds_change(
    *, connector_id: int, user, percent: int, count: int, reason: str = ""
) -> ConnectorThresholdChange | None:
    """Set a connector's thresholds: applied at once if no value rises, else proposed for a second admin.

    Returns the recorded change (``applied`` or ``pending``), or None when the values are the current ones.
    """
    if not acl.can_attempt(user, Connector, acl.CHANGE):
        raise PermissionDenied("only an admin may change a connector's thresholds")
    new = _validated(percent, count)
    now, actor = timezone.now(), Actor.for_user(user)
    with transaction.atomic():
        connector = Connector.objects.select_for_update().get(pk=connector_id)
        old = connector.thresholds
        if new == old:
            return None
        raising = any(new[field] > old[field] for field in THRESHOLD_FIELDS)
        if raising:
            pending = connector.threshold_changes.filter(status=Status.PENDING).first()
            if pending is not None:
                raise Conflict(
                    f"{connector}: threshold change #{pending.pk} proposed by {pending.proposed_by_name} is "
                    "still waiting for approval; approve or reject it first."
                )
        change = ConnectorThresholdChange.objects.create(
            connector=connector,
            old_percent=old["deletion_threshold_percent"],
            old_count=old["deletion_threshold_count"],
            proposed_percent=new["deletion_threshold_percent"],
            proposed_count=new["deletion_threshold_count"],
            reason=reason,
            proposed_by=user,
            proposed_by_name=actor.name,
            proposed_at=now,
            status=Status.PENDING if raising else Status.APPLIED,
            decided_by=None if raising else user,
            decided_by_name="" if raising else actor.name,
            decided_at=None if raising else now,
        )
        if raising:
            event_record(
                actor=actor,
                action="config.connector.thresholds.proposed",
                subject=connector,
                payload=_payload(change),
            )
        else:
            Connector.objects.filter(pk=connector.pk).update(**new)
            event_record(
                actor=actor,
                action="config.connector.thresholds.lowered",
                subject=connector,
                payload=_payload(change),
            )
    return change


def _decide(*, change_id: int, user) -> ConnectorThresholdChange:
    """The pending change, locked, after the checks every decision shares."""
    if not acl.can_attempt(user, Connector, acl.CHANGE):
        raise PermissionDenied("only an admin may approve or reject a threshold change")
    change = (
        ConnectorThresholdChange.objects.select_for_update(of=("self",))
        .select_related("connector")
        .get(pk=change_id)
    )
    if change.status != Status.PENDING:
        raise Conflict(f"threshold change #{change.pk} is {change.status}, not waiting for approval")
    return change


def thresholds_approve(*, change_id: int, user, reason: str = "") -> ConnectorThresholdChange:
    """A second admin approves: the connector takes the proposed thresholds now."""
    with transaction.atomic():
        change = _decide(change_id=change_id, user=user)
        refusal = four_eyes_refusal(
            change.proposed_by, user, "the admin who proposed a threshold change cannot also approve it"
        )
        if refusal:
            raise PermissionDenied(refusal)
        connector = Connector.objects.select_for_update().get(pk=change.connector_id)
        before = connector.thresholds  # a stricter change may have been applied since the proposal
        _record_decision(change, user, Status.APPROVED, reason)
        Connector.objects.filter(pk=connector.pk).update(**change.proposed)
        event_record(
            actor=Actor.for_user(user),
            action="config.connector.thresholds.approved",
            subject=connector,
            payload={
                **_payload(change, decision_reason=reason),
                "old": before,
                "proposed_by": change.proposed_by_name,
            },
        )
    return change


def thresholds_reject(*, change_id: int, user, reason: str = "") -> ConnectorThresholdChange:
    """Another admin rejects the proposal, or its proposer withdraws it; the thresholds stay as they are."""
    with transaction.atomic():
        change = _decide(change_id=change_id, user=user)
        _record_decision(change, user, Status.REJECTED, reason)
        event_record(
            actor=Actor.for_user(user),
            action="config.connector.thresholds.rejected",
            subject=change.connector,
            payload={
                **_payload(change, decision_reason=reason),
                "proposed_by": change.proposed_by_name,
                "withdrawn": change.proposed_by_id == user.pk,
            },
        )
    return change


def _record_decision(change: ConnectorThresholdChange, user, status: str, reason: str) -> None:
    change.status = status
    change.decided_by = user
    change.decided_by_name = Actor.for_user(user).name
    change.decided_at = timezone.now()
    change.decision_reason = reason
    change.save(update_fields=["status", "decided_by", "decided_by_name", "decided_at", "decision_reason"])
