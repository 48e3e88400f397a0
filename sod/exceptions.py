"""What control owners do with an exception: assign, comment, record remediation, mitigate with a compensating
control, accept the risk until a date (another person approves; expiry reopens), close with proof.

Each action writes a note in the exception's log and an evidence event in the same transaction. SoD violations
are answered on the violation itself (sod.services), which the exception mirrors.

Nobody answers their own case: an exception about a person's own access, a non-human identity they own, or their
own overdue review is mitigated, accepted, decided, closed or assigned to them by someone else.
"""

from __future__ import annotations

import datetime as dt

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from entitlements.selves import is_own_case, require_known_person
from evidence.services import Actor, event_record
from sod.models import ControlException, ExceptionNote, Violation
from sod.services import acceptance_decision_check, answer_until_check
from soxgov import access
from soxgov.exceptions import Conflict


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


def _refuse_own(user, exception: ControlException) -> None:
    """Refuse ``user`` an answer to an exception about themselves (their access, by identity link or e-mail; a
    non-human identity they own; their own overdue or rubber-stamped review). A user who is no identity could be anyone, so
    they answer nothing until linked."""
    if _is_about(user, exception, selves=require_known_person(user)):
        raise PermissionDenied(
            "This exception is about you (or an account you own): someone else must answer it."
        )


def _is_about(user, exception: ControlException, *, selves: frozenset[int] | None = None) -> bool:
    about_a_reviewer = (ControlException.Kind.REVIEW_OVERDUE, ControlException.Kind.REVIEW_RUBBER_STAMP)
    if exception.kind in about_a_reviewer and (
        exception.detail.get("reviewer") == user.get_username()
        or exception.detail.get("reviewer_id") == user.pk
    ):
        return True
    return is_own_case(user, exception.identity, selves=selves)


def _live(exception: ControlException) -> None:
    if not exception.is_live:
        raise Conflict("This exception is closed.")


def _not_sod(exception: ControlException) -> None:
    if exception.kind == ControlException.Kind.SOD_VIOLATION:
        raise Conflict("An SoD exception is mitigated or accepted on its violation, which it follows.")


def assign(*, exception_id: int, user, owner) -> ControlException:
    with transaction.atomic():
        exception = _locked(user, exception_id)
        _live(exception)
        if _is_about(owner, exception):
            raise ValidationError(
                {"owner": f"This exception is about {owner.display_name}: assign it to someone else."}
            )
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
    answer_until_check(until, field="until", what="mitigation")
    with transaction.atomic():
        exception = _locked(user, exception_id)
        _live(exception)
        _not_sod(exception)
        _refuse_own(user, exception)
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
    answer_until_check(until, field="until", what="risk acceptance")
    with transaction.atomic():
        exception = _locked(user, exception_id)
        _live(exception)
        _not_sod(exception)
        _refuse_own(user, exception)
        if exception.acceptance_requested_by_id:
            raise Conflict("A risk acceptance is already waiting for approval.")
        exception.acceptance_requested_by = user
        exception.acceptance_justification = justification.strip()
        exception.acceptance_until = until
        exception.save(
            update_fields=["acceptance_requested_by", "acceptance_justification", "acceptance_until"]
        )
        _record(exception, user, "acceptance_requested", justification.strip(), {"until": until})
    return exception


def decide_acceptance(*, exception_id: int, user, approve: bool, note: str = "") -> ControlException:
    """Approve or reject the pending risk acceptance (not your own request, not about you); a rejection says why."""
    note = note.strip()
    if not approve and not note:
        raise ValidationError({"note": "Rejecting a risk acceptance needs a reason."})
    with transaction.atomic():
        exception = _locked(user, exception_id)
        _live(exception)
        if not exception.acceptance_requested_by_id:
            raise Conflict("No risk acceptance is waiting for approval.")
        requested_by, until = exception.acceptance_requested_by, exception.acceptance_until
        _refuse_own(user, exception)
        acceptance_decision_check(
            requested_by=requested_by, user=user, approve=approve, until=until, field="until"
        )
        payload = {
            "requested_by": requested_by.get_username(),
            "until": until,
            "note": note,
            "previous_status": exception.status,
        }
        if approve:
            exception.status, exception.answered_until = ControlException.Status.ACCEPTED, until
        exception.acceptance_requested_by, exception.acceptance_until = None, None
        exception.acceptance_justification = ""
        exception.save()
        _record(exception, user, "accepted" if approve else "acceptance_rejected", note, payload)
    return exception


def close(*, exception_id: int, user, proof: str) -> ControlException:
    """Close with proof. If the condition still holds, the next hygiene check opens a new exception. An SoD
    exception closes only once its violation is resolved: the conflict itself must be gone."""
    if not proof.strip():
        raise ValidationError({"proof": "Closing needs proof: what was done, and where it can be checked."})
    now = timezone.now()
    with transaction.atomic():
        exception = _locked(user, exception_id)
        _live(exception)
        _refuse_own(user, exception)
        violation = exception.violation
        if violation is not None and violation.status != Violation.Status.RESOLVED:
            raise Conflict(
                f"The conflict still exists: its violation is {violation.get_status_display().lower()}. Remove "
                "the conflicting access (the next check resolves the violation and closes this exception), or "
                "answer it on the violation."
            )
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
