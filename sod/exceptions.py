"""What control owners do with an exception: assign, comment, record remediation, mitigate with a compensating
control, accept the risk until a date (another person approves; expiry reopens), close with proof.

Each action writes a note in the exception's log and an evidence event in the same transaction. SoD violations
are answered on the violation itself (sod.services), which the exception mirrors.
"""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from evidence.services import Actor, event_record
from sod.models import ControlException, ExceptionNote
from soxgov import access


def _locked(user, exception_id: int) -> ControlException:
    access.require(user, ControlException, access.CHANGE)
    exception = (
        access.restrict(ControlException.objects.select_for_update(), user, access.CHANGE)
        .filter(pk=exception_id)
        .first()
    )
    if exception is None:
        raise ControlException.DoesNotExist(f"no exception #{exception_id}")
    return exception


def _record(exception, user, action: str, text: str, payload: dict) -> None:
    now = timezone.now()
    actor = Actor.for_user(user)
    ExceptionNote.objects.create(exception=exception, action=action, actor_name=actor.name, at=now, text=text)
    event_record(
        actor=actor,
        action=f"exception.{action}",
        subject=exception,
        payload={"kind": exception.kind, "key": exception.key, "status": exception.status, **payload},
    )


def _live(exception: ControlException) -> None:
    if not exception.is_live:
        raise ValidationError("This exception is closed.")


def _not_sod(exception: ControlException) -> None:
    if exception.kind == ControlException.Kind.SOD_VIOLATION:
        raise ValidationError("An SoD exception is mitigated or accepted on its violation, which it follows.")


def _future(day: dt.date) -> None:
    if day <= timezone.localdate():
        raise ValidationError({"until": "The date must be after today."})


def assign(*, exception_id: int, user, owner) -> ControlException:
    with transaction.atomic():
        exception = _locked(user, exception_id)
        _live(exception)
        exception.owner = owner
        exception.save(update_fields=["owner"])
        _record(exception, user, "assigned", f"to {owner.display_name}", {"owner": owner.get_username()})
    return exception


def comment(*, exception_id: int, user, text: str, remediation: bool = False) -> ControlException:
    if not text.strip():
        raise ValidationError({"text": "Write something."})
    with transaction.atomic():
        exception = _locked(user, exception_id)
        action = "remediation_noted" if remediation else "commented"
        _record(exception, user, action, text.strip(), {"text": text.strip()})
    return exception


def mitigate(*, exception_id: int, user, control: str, until: dt.date) -> ControlException:
    if not control.strip():
        raise ValidationError({"control": "Describe the compensating control."})
    _future(until)
    with transaction.atomic():
        exception = _locked(user, exception_id)
        _live(exception)
        _not_sod(exception)
        previous = exception.status
        exception.status, exception.answered_until = ControlException.Status.MITIGATED, until
        exception.save(update_fields=["status", "answered_until"])
        _record(
            exception,
            user,
            "mitigated",
            control.strip(),
            {"control": control.strip(), "until": until, "previous_status": previous},
        )
    return exception


def request_acceptance(*, exception_id: int, user, justification: str, until: dt.date) -> ControlException:
    if not justification.strip():
        raise ValidationError({"justification": "A risk acceptance needs a justification."})
    _future(until)
    with transaction.atomic():
        exception = _locked(user, exception_id)
        _live(exception)
        _not_sod(exception)
        if exception.acceptance_requested_by_id:
            raise ValidationError("A risk acceptance is already waiting for approval.")
        exception.acceptance_requested_by = user
        exception.acceptance_justification = justification.strip()
        exception.acceptance_until = until
        exception.save(
            update_fields=["acceptance_requested_by", "acceptance_justification", "acceptance_until"]
        )
        _record(exception, user, "acceptance_requested", justification.strip(), {"until": until})
    return exception


def decide_acceptance(*, exception_id: int, user, approve: bool, note: str = "") -> ControlException:
    with transaction.atomic():
        exception = _locked(user, exception_id)
        _live(exception)
        if not exception.acceptance_requested_by_id:
            raise ValidationError("No risk acceptance is waiting for approval.")
        if exception.acceptance_requested_by_id == user.pk:
            raise PermissionDenied("You requested this risk acceptance; someone else must decide it.")
        requested_by, until = exception.acceptance_requested_by, exception.acceptance_until
        payload = {
            "requested_by": requested_by.get_username(),
            "until": until,
            "note": note,
            "previous_status": exception.status,
        }
        if approve:
            if until <= timezone.localdate():
                raise ValidationError("The requested date has passed; ask for a new acceptance.")
            exception.status, exception.answered_until = ControlException.Status.ACCEPTED, until
        exception.acceptance_requested_by, exception.acceptance_until = None, None
        exception.acceptance_justification = ""
        exception.save()
        _record(exception, user, "accepted" if approve else "acceptance_rejected", note, payload)
    return exception


def close(*, exception_id: int, user, proof: str) -> ControlException:
    """Close with proof. If the condition still holds, the next hygiene check opens a new exception."""
    if not proof.strip():
        raise ValidationError({"proof": "Closing needs proof: what was done, and where it can be checked."})
    now = timezone.now()
    with transaction.atomic():
        exception = _locked(user, exception_id)
        _live(exception)
        previous = exception.status
        exception.status, exception.closed_at, exception.closed_by = ControlException.Status.CLOSED, now, user
        exception.proof, exception.close_reason = proof.strip(), "closed with proof"
        exception.save()
        _record(
            exception,
            user,
            "closed",
            proof.strip(),
            {"proof": proof.strip(), "automatic": False, "previous_status": previous},
        )
    return exception
