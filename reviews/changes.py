"""Changing a decision before sign-off: a mistaken revoke withdrawn, a certification turned into a revoke.

The same people as a first decision: only the item's current reviewer (so a delegate once it was handed over),
never on their own access, and only until they sign off. The decision log stays append-only: a change is one
more certify or revoke decision whose evidence names the decision it replaces (``changed_from``). The
remediation task follows the decision: a withdrawn revoke cancels its open task, a new revoke opens one; a
task already closed means the access is gone, and the revoke then stands.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from evidence.chain import format_time
from evidence.services import Actor, Event, Subject, events_record
from reviews.models import Campaign, Decision, RemediationTask, ReviewItem
from reviews.remediation import tasks_for_revocations
from reviews.services import (
    Conflict,
    _decidable,
    _decision_binding,
    _decisions_create,
    _item_access,
    how_decided,
    previous_decisions,
)

# A micro-review has no sign-off; a periodic campaign whose items are all decided is "completed" until its
# reviewers sign off, and a decision may still change then.
CHANGEABLE = (Campaign.Status.ACTIVE, Campaign.Status.COMPLETED)


def decision_change(*, item_id: int, user, certify: bool, comment: str) -> ReviewItem:
    """Replace the decision on a decided item of ``user``'s with the other one; ``comment`` says why."""
    comment = comment.strip()
    if not comment:
        raise ValidationError({"comment": "Say why you change the decision."})
    new = ReviewItem.Status.CERTIFIED if certify else ReviewItem.Status.REVOKED
    now = timezone.now()
    with transaction.atomic():
        (item,) = _decidable(user, [item_id], campaign_states=CHANGEABLE)
        old = item.status
        if old == ReviewItem.Status.PENDING:
            raise ValidationError("This item is not decided yet: certify or revoke it.")
        if old == new:
            raise ValidationError(
                f"This item is already {item.get_status_display().lower()}. Nothing was changed."
            )
        events = []
        if old == ReviewItem.Status.REVOKED:
            events += _withdraw_revocation(item, user, now)
        changed = ReviewItem.objects.filter(pk=item.pk, status=old, signed_off=False).update(
            status=new, decided_by=user, decided_at=now, comment=comment
        )
        if changed != 1:
            raise Conflict("The item changed meanwhile. Nothing was changed; reload to see it.")
        replaced = Decision.objects.filter(item=item).exclude(action=Decision.Action.DELEGATE).last()
        action = Decision.Action.CERTIFY if certify else Decision.Action.REVOKE
        told = how_decided(
            item, now, batch=1, since=previous_decisions(user, [item.campaign_id]).get(item.campaign_id)
        )
        decision = _decisions_create(
            [Decision(item=item, action=action, actor=user, at=now, comment=comment, **told)]
        )
        if new == ReviewItem.Status.REVOKED:
            events += tasks_for_revocations([item], now=now)
        events.append(
            Event(
                f"review.item.{new}",
                Subject.of(item),
                {
                    **_item_access(item),
                    "comment": comment,
                    "changed_from": old,
                    "replaces_decision": replaced.pk if replaced else None,
                    **_decision_binding(decision[item.pk], user, now),
                    **told,
                },
            )
        )
        events_record(actor=Actor.for_user(user), events=events)
    item.refresh_from_db()
    return item


def _withdraw_revocation(item: ReviewItem, user, now) -> list[Event]:
    """Cancel the withdrawn revoke's open task; refuse if the access was already removed."""
    task = (
        RemediationTask.objects.select_for_update()
        .filter(item=item)
        .exclude(status=RemediationTask.Status.CANCELLED)
        .first()
    )
    if task is None:
        return []
    if not task.is_open:
        raise ValidationError(
            f"The access is already removed (remediation task {task.pk}: {task.get_status_display().lower()}), "
            "so the revocation stands. Nothing was changed."
        )
    task.status, task.closed_at, task.closed_by = RemediationTask.Status.CANCELLED, now, user
    task.save(update_fields=["status", "closed_at", "closed_by"])
    return [
        Event(
            "remediation.task.cancelled",
            Subject.of(task),
            {
                "item": item.pk,
                "reason": "the revocation was withdrawn",
                "by": user.get_username(),
                "at": format_time(now),
            },
        )
    ]
