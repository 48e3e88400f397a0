"""A violation's lifecycle: open -> mitigated | risk accepted | resolved; expiry reopens.

Resolution is the engine's business (sod/checks.py): only the data can prove a conflict gone. People answer a
live violation with a compensating control, or with a risk acceptance that a second person approves. Every
transition writes its evidence event in the same transaction. Callers pass the acting user; these functions
check what the user may do through soxgov.access, so pages, API and commands share one rule.
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from entitlements.selves import four_eyes_refusal, is_own_case, require_known_person
from evidence.services import Actor, Event, Subject, event_record, events_record
from sod.models import Mitigation, RiskAcceptance, Violation
from soxgov import access
from soxgov.exceptions import Conflict


def _locked_violation(user, violation_id: int) -> Violation:
    """The live violation, locked, if the user may see it (callers check what they may do to it)."""
    violation = (
        access.restrict(Violation.objects.select_for_update(of=("self",)), user, access.VIEW)
        .select_related("rule", "identity")
        .filter(pk=violation_id)
        .first()
    )
    if violation is None:
        raise Violation.DoesNotExist(f"no violation #{violation_id}")
    if not violation.is_active:
        raise Conflict("This violation is resolved: the conflict is gone, so there is nothing to answer.")
    _refuse_own(user, violation)
    return violation


def _refuse_own(user, violation: Violation) -> None:
    """Nobody answers a conflict in their own access (or in a non-human identity they own), whether the user is
    that identity by their link or by their e-mail (entitlements/selves.py). A user who is no identity could
    be anyone's, so they answer nothing until linked."""
    if is_own_case(user, violation.identity, selves=require_known_person(user)):
        raise PermissionDenied(
            "This conflict is in your own access (or one you own): someone else must answer it."
        )


def answer_until_check(day: dt.date, *, field: str, what: str) -> None:
    """A mitigation or risk acceptance holds after today and at most SOXGOV_ANSWER_MAX_DAYS from today."""
    today = timezone.localdate()
    if day <= today:
        raise ValidationError({field: f"A {what} must expire after today."})
    latest = today + dt.timedelta(days=settings.SOXGOV_ANSWER_MAX_DAYS)
    if day > latest:
        raise ValidationError(
            {
                field: f"A {what} may hold at most {settings.SOXGOV_ANSWER_MAX_DAYS} days: {field} "
                f"{day.isoformat()} is after the latest allowed date, {latest.isoformat()}."
            }
        )


def acceptance_decision_check(*, requested_by, user, approve: bool, until: dt.date, field: str) -> None:
    """The rule for deciding any risk acceptance (a violation's here, an exception's in sod.exceptions): four
    eyes (the requester, or another account of the same person, may not decide it: 403), and an approval only
    while the date is ahead and within the ceiling, counted from the day it takes effect (409 once passed)."""
    refusal = four_eyes_refusal(
        requested_by, user, "You requested this risk acceptance; someone else must decide it"
    )
    if refusal:
        raise PermissionDenied(refusal)
    if not approve:
        return
    if until <= timezone.localdate():
        raise Conflict("The requested date has passed; ask for a new risk acceptance.")
    answer_until_check(until, field=field, what="risk acceptance")


def _refuse_conflicted_owner(violation: Violation, owner) -> None:
    """The control that compensates a conflict is not performed by the person in conflict (nor by the owner of
    the non-human identity in conflict): they would be checking themselves."""
    holder = violation.identity
    if holder is None:
        return
    if owner.pk in (holder.pk, holder.owner_id):
        raise ValidationError(
            {
                "owner": f"{owner} is the person in this conflict (or owns the account in it) and may not own "
                "its compensating control; choose someone independent."
            }
        )


def _set_status(violation: Violation, status: str, reason: str, now) -> str:
    previous = violation.status
    violation.status = status
    violation.status_changed_at = now
    violation._change_reason = reason
    violation.save(update_fields=["status", "status_changed_at"])
    return previous


def _end_answers(violation: Violation, now, *, reason: str, keep: Mitigation | RiskAcceptance) -> None:
    """A violation is answered by one thing at a time: a new answer ends the previous one."""
    mitigations = violation.mitigations.filter(ended_at__isnull=True)
    acceptances = violation.acceptances.filter(status=RiskAcceptance.Status.APPROVED)
    if isinstance(keep, Mitigation):
        mitigations = mitigations.exclude(pk=keep.pk)
    else:
        acceptances = acceptances.exclude(pk=keep.pk)
    mitigations.update(ended_at=now, end_reason=reason)
    acceptances.update(status=RiskAcceptance.Status.ENDED, ended_at=now)


def violation_mitigate(
    *, violation_id: int, user, control: str, description: str, owner, frequency: str, expires_on: dt.date
) -> Mitigation:
    """Record a compensating control; the violation is mitigated until the control expires."""
    access.require(user, Mitigation, access.ADD)
    answer_until_check(expires_on, field="expires_on", what="mitigation")
    now = timezone.now()
    with transaction.atomic():
        violation = _locked_violation(user, violation_id)
        _refuse_conflicted_owner(violation, owner)
        mitigation = Mitigation.objects.create(
            violation=violation,
            control=control,
            description=description,
            owner=owner,
            frequency=frequency,
            expires_on=expires_on,
            recorded_by=user,
            recorded_at=now,
        )
        _end_answers(violation, now, reason="superseded by a new mitigation", keep=mitigation)
        previous = _set_status(violation, Violation.Status.MITIGATED, "mitigated", now)
        event_record(
            actor=Actor.for_user(user),
            action="sod.violation.mitigated",
            subject=violation,
            payload={
                "rule": violation.rule.code,
                "holder": violation.holder,
                "previous_status": previous,
                "mitigation": mitigation.pk,
                "control": control,
                "description": description,
                "owner": str(owner),
                "owner_id": owner.pk,
                "frequency": frequency,
                "expires_on": expires_on,
            },
        )
    return mitigation


def acceptance_request(*, violation_id: int, user, justification: str, expires_on: dt.date) -> RiskAcceptance:
    """Ask to accept the risk until a date. Nothing changes for the violation until someone else approves."""
    access.require(user, RiskAcceptance, access.ADD)
    answer_until_check(expires_on, field="expires_on", what="risk acceptance")
    if not justification.strip():
        raise ValidationError({"justification": "A risk acceptance needs a justification."})
    now = timezone.now()
    with transaction.atomic():
        violation = _locked_violation(user, violation_id)
        if violation.acceptances.filter(status=RiskAcceptance.Status.REQUESTED).exists():
            raise Conflict("This violation already has a pending risk acceptance.")
        acceptance = RiskAcceptance.objects.create(
            violation=violation,
            justification=justification,
            expires_on=expires_on,
            requested_by=user,
            requested_at=now,
        )
        event_record(
            actor=Actor.for_user(user),
            action="sod.acceptance.requested",
            subject=violation,
            payload={
                "rule": violation.rule.code,
                "holder": violation.holder,
                "acceptance": acceptance.pk,
                "justification": justification,
                "expires_on": expires_on,
            },
        )
    return acceptance


def acceptance_decide(*, acceptance_id: int, user, approve: bool, note: str = "") -> RiskAcceptance:
    """Approve or reject a pending risk acceptance. The approver must not be the requester (four eyes); a
    rejection says why."""
    access.require(user, RiskAcceptance, access.CHANGE)
    note = note.strip()
    if not approve and not note:
        raise ValidationError({"note": "Rejecting a risk acceptance needs a reason."})
    now = timezone.now()
    with transaction.atomic():
        acceptance = (
            access.restrict(RiskAcceptance.objects.select_for_update(), user, access.CHANGE)
            .filter(pk=acceptance_id)
            .first()
        )
        if acceptance is None:
            raise RiskAcceptance.DoesNotExist(f"no risk acceptance #{acceptance_id}")
        if acceptance.status != RiskAcceptance.Status.REQUESTED:
            raise Conflict(f"This risk acceptance is already {acceptance.get_status_display().lower()}.")
        violation = _locked_violation(user, acceptance.violation_id)
        acceptance_decision_check(
            requested_by=acceptance.requested_by,
            user=user,
            approve=approve,
            until=acceptance.expires_on,
            field="expires_on",
        )
        acceptance.status = RiskAcceptance.Status.APPROVED if approve else RiskAcceptance.Status.REJECTED
        acceptance.decided_by = user
        acceptance.decided_at = now
        acceptance.decision_note = note
        acceptance.save()
        payload = {
            "rule": violation.rule.code,
            "holder": violation.holder,
            "acceptance": acceptance.pk,
            "requested_by": str(acceptance.requested_by),
            "justification": acceptance.justification,
            "expires_on": acceptance.expires_on,
            "note": note,
        }
        events = [
            Event(f"sod.acceptance.{'approved' if approve else 'rejected'}", Subject.of(violation), payload)
        ]
        if approve:
            _end_answers(violation, now, reason="superseded by a risk acceptance", keep=acceptance)
            payload = {
                **payload,
                "previous_status": _set_status(violation, Violation.Status.ACCEPTED, "risk accepted", now),
            }
            events.append(Event("sod.violation.accepted", Subject.of(violation), payload))
        events_record(actor=Actor.for_user(user), events=events)
    return acceptance


def expire_due(*, today: dt.date | None = None, actor: Actor | None = None) -> int:
    """Reopen violations whose mitigation or risk acceptance has expired (a daily task and ``sod_check``)."""
    today = today or timezone.localdate()
    actor = actor or Actor.system("sod.expire")
    now = timezone.now()
    reopened = 0
    with transaction.atomic():
        expired_mitigations = Mitigation.objects.select_for_update().filter(
            ended_at__isnull=True, expires_on__lt=today, violation__status=Violation.Status.MITIGATED
        )
        expired_acceptances = RiskAcceptance.objects.select_for_update().filter(
            status=RiskAcceptance.Status.APPROVED,
            expires_on__lt=today,
            violation__status=Violation.Status.ACCEPTED,
        )
        events = []
        for answer in [
            *expired_mitigations.select_related("violation__rule"),
            *expired_acceptances.select_related("violation__rule"),
        ]:
            violation = answer.violation
            what = "mitigation" if isinstance(answer, Mitigation) else "risk acceptance"
            if isinstance(answer, Mitigation):
                answer.ended_at, answer.end_reason = now, "expired"
            else:
                answer.status, answer.ended_at = RiskAcceptance.Status.EXPIRED, now
            answer.save()
            previous = _set_status(violation, Violation.Status.OPEN, f"{what} expired", now)
            events.append(
                Event(
                    "sod.violation.reopened",
                    Subject.of(violation),
                    {
                        "rule": violation.rule.code,
                        "holder": violation.holder,
                        "previous_status": previous,
                        "reason": f"{what} expired on {answer.expires_on.isoformat()}",
                    },
                )
            )
            reopened += 1
        # A request nobody decided before its date can never be approved: it expires, so a new one can be made.
        stale = RiskAcceptance.objects.select_for_update().filter(
            status=RiskAcceptance.Status.REQUESTED, expires_on__lte=today
        )
        for acceptance in stale.select_related("violation__rule"):
            acceptance.status, acceptance.ended_at = RiskAcceptance.Status.EXPIRED, now
            acceptance.save()
            events.append(
                Event(
                    "sod.acceptance.expired",
                    Subject.of(acceptance.violation),
                    {"acceptance": acceptance.pk, "expires_on": acceptance.expires_on, "decided": False},
                )
            )
        if events:
            events_record(actor=actor, events=events)
    return reopened
