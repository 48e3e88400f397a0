"""Hygiene checks: find every control failure that holds now, open an exception for each new one, and close the
exceptions whose condition is gone (automatically, with evidence). Runs after every applied import and daily.

Each condition is a key ("orphan_account:123"); at most one live exception per key (a database constraint).
An exception a control owner closed while its condition still holds is opened again by the next run: closing
does not make a failure go away, fixing it does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from entitlements.models import Account, Identity
from evidence.services import Actor, Event, Subject, events_record
from reviews.models import Campaign, RemediationTask, ReviewItem
from sod.models import ControlException, Risk, Violation
from soxgov.db import advisory_xact_lock

Kind = ControlException.Kind
# Days to close, by severity.
SLA_DAYS = {Risk.CRITICAL: 7, Risk.HIGH: 14, Risk.MEDIUM: 30, Risk.LOW: 60}
ACTOR = Actor.system("sod.hygiene")


@dataclass
class Condition:
    kind: str
    key: str
    severity: str
    title: str
    identity_id: int | None = None
    application_id: int | None = None
    violation_id: int | None = None
    detail: dict = field(default_factory=dict)


# Findings about something done (a review decided without evident scrutiny, reviews/stamps.py): opened elsewhere,
# they hold until a control owner closes them with proof; this check neither opens nor closes them.
KEPT_UNTIL_CLOSED = (Kind.REVIEW_RUBBER_STAMP,)

# "HYGN" in ASCII: serialises hygiene runs (imports on several workers, the daily run).
HYGIENE_LOCK_KEY = 0x4859474E


def _lock() -> None:
    advisory_xact_lock(HYGIENE_LOCK_KEY)


def _app_severity(sox: bool, criticality: str) -> str:
    return Risk.HIGH if sox or criticality in ("high", "critical") else Risk.MEDIUM


def conditions(today: dt.date | None = None) -> dict[str, Condition]:
    today = today or timezone.localdate()
    found: dict[str, Condition] = {}

    def add(condition: Condition) -> None:
        found[condition.key] = condition

    for violation in Violation.objects.filter(status__in=Violation.ACTIVE).select_related("rule"):
        add(
            Condition(
                Kind.SOD_VIOLATION,
                f"sod_violation:{violation.pk}",
                violation.rule.risk,
                f"SoD {violation.rule.code}: {violation.holder}",
                identity_id=violation.identity_id,
                violation_id=violation.pk,
                detail={"rule": violation.rule.code, "violation_status": violation.status},
            )
        )
    accounts = Account.objects.select_related("application", "identity")
    for account in accounts.filter(identity__isnull=True, grants__isnull=False).distinct():
        add(
            Condition(
                Kind.ORPHAN_ACCOUNT,
                f"orphan_account:{account.pk}",
                _app_severity(account.application.sox_in_scope, account.application.criticality),
                f"Orphan account {account.account_id} in {account.application.name}",
                application_id=account.application_id,
                detail={"account": account.account_id, "account_pk": account.pk},
            )
        )
    terminated = accounts.filter(identity__status=Identity.Status.TERMINATED, status=Account.Status.ENABLED)
    for account in terminated:
        add(
            Condition(
                Kind.TERMINATED_ACCESS,
                f"terminated_access:{account.pk}",
                Risk.CRITICAL if account.application.sox_in_scope else Risk.HIGH,
                f"{account.identity.display_name} (terminated) still has enabled account {account.account_id} "
                f"in {account.application.name}",
                identity_id=account.identity_id,
                application_id=account.application_id,
                detail={"account": account.account_id, "account_pk": account.pk},
            )
        )
    unowned = Identity.objects.exclude(kind=Identity.Kind.HUMAN).filter(
        Q(owner__isnull=True) | Q(owner__status=Identity.Status.TERMINATED)
    )
    for identity in unowned.exclude(status=Identity.Status.TERMINATED).select_related("owner"):
        why = "has no owner" if identity.owner_id is None else f"is owned by {identity.owner} (terminated)"
        add(
            Condition(
                Kind.NHI_WITHOUT_OWNER,
                f"nhi_without_owner:{identity.pk}",
                Risk.HIGH,
                f"{identity.get_kind_display()} {identity.display_name} {why}",
                identity_id=identity.pk,
            )
        )
    cutoff = timezone.now() - dt.timedelta(days=settings.SOXGOV_DORMANT_DAYS)
    dormant = accounts.filter(status=Account.Status.ENABLED, identity__isnull=False).annotate(
        used=Coalesce("last_used_at", "first_seen")
    )
    for account in dormant.filter(used__lt=cutoff, application__sox_in_scope=True):
        add(
            Condition(
                Kind.DORMANT_ACCOUNT,
                f"dormant_account:{account.pk}",
                Risk.MEDIUM if account.privileged else Risk.LOW,
                f"Account {account.account_id} in {account.application.name} unused for "
                f"{settings.SOXGOV_DORMANT_DAYS}+ days ({account.identity.display_name})",
                identity_id=account.identity_id,
                application_id=account.application_id,
                detail={"account": account.account_id, "account_pk": account.pk},
            )
        )
    late = RemediationTask.objects.filter(status=RemediationTask.Status.OPEN, due_on__lt=today)
    for task in late.select_related("application", "item"):
        add(
            Condition(
                Kind.REVOCATION_OVERDUE,
                f"revocation_overdue:{task.pk}",
                Risk.HIGH,
                f"Revocation past due: {task.entitlement_key} of {task.account_key} in {task.application.name} "
                f"(due {task.due_on:%Y-%m-%d})",
                # Whose access it is, so that they cannot answer it (sod.exceptions).
                identity_id=task.item.identity_id,
                application_id=task.application_id,
                detail={"task": task.pk},
            )
        )
    for condition in _returned_access_still_held():
        add(condition)
    overdue = (
        ReviewItem.objects.filter(
            status=ReviewItem.Status.PENDING,
            campaign__status=Campaign.Status.ACTIVE,
            campaign__kind=Campaign.Kind.PERIODIC,
            campaign__due_on__lt=today,
        )
        .values("campaign", "campaign__name", "campaign__due_on", "reviewer", "reviewer__username")
        .distinct()
    )
    for row in overdue:
        add(
            Condition(
                Kind.REVIEW_OVERDUE,
                f"review_overdue:{row['campaign']}:{row['reviewer']}",
                Risk.MEDIUM,
                f"Review overdue: {row['reviewer__username']} in {row['campaign__name']} "
                f"(due {row['campaign__due_on']:%Y-%m-%d})",
                detail={"campaign": row["campaign"], "reviewer": row["reviewer__username"]},
            )
        )
    return found


def _returned_access_still_held() -> list[Condition]:
    """Revoked access that a pull brought back (opened by reviews.remediation, which knows the run) holds while
    the grant is there: one query over the live exceptions' tasks; when the grant is gone again it closes."""
    from reviews.remediation import grant_still_there

    live = {
        e.detail.get("task"): e
        for e in ControlException.objects.filter(
            kind=Kind.REVOKED_ACCESS_RETURNED, status__in=ControlException.LIVE
        )
    }
    held = RemediationTask.objects.filter(pk__in=[pk for pk in live if pk]).annotate(back=grant_still_there())
    return [_still_holds(live[pk]) for pk in held.filter(back=True).values_list("pk", flat=True)]


def _still_holds(e: ControlException) -> Condition:
    """A live exception as the condition that keeps it open."""
    return Condition(
        e.kind,
        e.key,
        e.severity,
        e.title,
        identity_id=e.identity_id,
        application_id=e.application_id,
        detail=e.detail,
    )


def _follow_violations(live: dict, current: dict[str, Condition]) -> list[Event]:
    """An SoD exception is answered where the violation is (sod.services): mirror the violation's status."""
    mirror = {
        Violation.Status.OPEN: ControlException.Status.OPEN,
        Violation.Status.MITIGATED: ControlException.Status.MITIGATED,
        Violation.Status.ACCEPTED: ControlException.Status.ACCEPTED,
    }
    events = []
    for key, exception in live.items():
        condition = current.get(key)
        if condition is None or condition.kind != Kind.SOD_VIOLATION:
            continue
        status = mirror[condition.detail["violation_status"]]
        if status != exception.status:
            ControlException.objects.filter(pk=exception.pk).update(status=status)
            events.append(
                Event(
                    "exception.status_followed",
                    Subject.of(exception),
                    {"from": exception.status, "to": status},
                )
            )
    return events


def run_hygiene(*, today: dt.date | None = None, actor: Actor = ACTOR) -> tuple[int, int]:
    """Open exceptions for new conditions and close those whose condition is gone. Returns (opened, closed)."""
    today = today or timezone.localdate()
    now = timezone.now()
    with transaction.atomic():
        _lock()  # one run at a time: two would open the same exceptions twice
        current = conditions(today)
        live = {
            e.key: e
            for e in ControlException.objects.select_for_update().filter(status__in=ControlException.LIVE)
        }
        new = [current[key] for key in sorted(current.keys() - live.keys())]
        gone = [
            live[key]
            for key in sorted(live.keys() - current.keys())
            if live[key].kind not in KEPT_UNTIL_CLOSED
        ]
        created = ControlException.objects.bulk_create(
            ControlException(
                kind=c.kind,
                severity=c.severity,
                key=c.key,
                title=c.title[:300],
                detail=c.detail,
                identity_id=c.identity_id,
                application_id=c.application_id,
                violation_id=c.violation_id,
                due_on=today + dt.timedelta(days=SLA_DAYS[c.severity]),
                opened_at=now,
            )
            for c in new
        )
        if any(e.pk is None for e in created):
            created = list(ControlException.objects.filter(key__in=[c.key for c in new], status="open"))
        ControlException.objects.filter(pk__in=[e.pk for e in gone]).update(
            status=ControlException.Status.CLOSED,
            closed_at=now,
            close_reason="condition no longer holds (verified by the hygiene check)",
        )
        events = [
            Event(
                "exception.opened",
                Subject.of(e),
                {"kind": e.kind, "key": e.key, "severity": e.severity, "title": e.title, "due_on": e.due_on},
            )
            for e in created
        ] + [
            Event(
                "exception.closed",
                Subject.of(e),
                {"kind": e.kind, "key": e.key, "automatic": True, "previous_status": e.status},
            )
            for e in gone
        ]
        # Answers that expired reopen (a mitigation or risk acceptance holds only until its date).
        expired = ControlException.objects.filter(
            status__in=[ControlException.Status.MITIGATED, ControlException.Status.ACCEPTED],
            answered_until__lt=today,
        )
        for e in expired:
            events.append(
                Event(
                    "exception.reopened",
                    Subject.of(e),
                    {"previous_status": e.status, "expired_on": e.answered_until},
                )
            )
        expired.update(status=ControlException.Status.OPEN, answered_until=None)
        events += _follow_violations(live, current)
        if events:
            events_record(actor=actor, events=events)
    return len(created), len(gone)
