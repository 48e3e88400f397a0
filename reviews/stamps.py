"""How each reviewer actually reviewed: statistics per reviewer and campaign, and the rubber-stamp findings they
raise for the control owner.

Every number comes from the decision log (reviews.models.Decision), which keeps for each decision what the
reviewer was told (the recommendation), how many items the one request decided (``batch``) and the seconds from
the item first shown to that reviewer to the decision (``seconds_shown``, server side; none for an item decided
without being shown, e.g. through the API). docs/review-intelligence.md explains each statistic and rule to an
auditor, with the defaults and why.

Rules (settings ``SOXGOV_STAMP_*``), each a finding:

- ``fast``: more than FAST_COUNT decisions each under FAST_SECONDS from the item shown (a bulk decision's items
  share its time), or made without the item
  ever being shown to the reviewer (a script on the API decides unseen: that is no way around the rule);
- ``all_certified``: everything certified, with more than HIGH_RISK_COUNT high-risk items among it;
- ``bulk_over_revokes``: one bulk certify covering at least BULK_REVOKES items recommended for revoke.

A finding opens a control exception (kind ``review_rubber_stamp``, one per campaign, reviewer and rule) in the
control owners' queue, with the statistics as its detail; the reviewer it is about may not answer it
(sod/exceptions.py). Findings are raised when a reviewer signs off and when a campaign closes, and on demand.
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import asdict, dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Count, F, Min, Q
from django.db.models.functions import ExtractHour
from django.utils import timezone

from evidence.services import Actor, Event, Subject, events_record
from reviews.models import Advice, Campaign, Decision, ReviewItem
from sod.models import ControlException, Risk

CERTIFY, REVOKE = Decision.Action.CERTIFY, Decision.Action.REVOKE
SLA_DAYS = {Risk.HIGH: 14, Risk.MEDIUM: 30}
RULES = {
    "fast": (Risk.MEDIUM, "decided too fast to have looked"),
    "all_certified": (Risk.MEDIUM, "certified everything, high-risk access included"),
    "bulk_over_revokes": (Risk.HIGH, "certified in bulk what was recommended for revoke"),
}


@dataclass
class ReviewerStatistics:
    reviewer: str
    decisions: int = 0
    certified: int = 0
    revoked: int = 0
    in_bulk: int = 0
    timed: int = 0
    median_seconds: float | None = None
    fastest_seconds: int | None = None
    fast: int = 0
    unshown: int = 0
    revoked_standing: int = 0
    against_recommendation: int = 0
    high_risk: int = 0
    high_risk_certified_without_comment: int = 0
    bulk_certified_revokes: int = 0
    in_last_hours: int = 0
    by_hour: dict[int, int] = field(default_factory=dict)

    @property
    def certified_share(self) -> float:
        return self.certified / self.decisions if self.decisions else 0.0

    @property
    def bulk_share(self) -> float:
        return self.in_bulk / self.decisions if self.decisions else 0.0

    def as_dict(self) -> dict:
        return {
            **asdict(self),
            "certified_share": round(self.certified_share, 4),
            "bulk_share": round(self.bulk_share, 4),
            "by_hour": {str(h): n for h, n in sorted(self.by_hour.items())},
        }


# High risk, as the decision saw it: flagged access, or recommended for revoke.
HIGH_RISK = (
    Q(item__privileged=True)
    | Q(item__sod_conflict=True)
    | Q(item__terminated=True)
    | Q(item__orphan=True)
    | Q(item__owner_gone=True)
    | Q(recommendation=Advice.REVOKE)
)


def reviewer_statistics(campaign: Campaign, reviewer=None) -> list[ReviewerStatistics]:
    """One row per reviewer who decided something in the campaign (certify and revoke decisions; a delegation
    is not a decision), by user name; just ``reviewer``'s if given. Aggregated in the database: a campaign may
    hold a million decisions."""
    due_end = dt.datetime.combine(
        campaign.due_on + dt.timedelta(days=1), dt.time.min, tzinfo=timezone.get_current_timezone()
    )
    last_hours = due_end - dt.timedelta(hours=settings.SOXGOV_STAMP_LAST_HOURS)
    certify = Q(action=CERTIFY)
    decisions = Decision.objects.filter(item__campaign=campaign, action__in=[CERTIFY, REVOKE]).order_by()
    if reviewer is not None:
        decisions = decisions.filter(actor=reviewer)
    counted = decisions.values("actor__username").annotate(
        decisions=Count("id"),
        certified=Count("id", filter=certify),
        revoked=Count("id", filter=Q(action=REVOKE)),
        in_bulk=Count("id", filter=Q(batch__gt=1)),
        timed=Count("seconds_shown"),
        fastest_seconds=Min("seconds_shown"),
        # A bulk decision gives each of its items its share of the time: 50 rows certified a minute after the
        # page was shown had 1.2 s each.
        fast=Count("id", filter=Q(seconds_shown__lt=F("batch") * settings.SOXGOV_STAMP_FAST_SECONDS)),
        unshown=Count("id", filter=Q(seconds_shown__isnull=True)),
        against_recommendation=Count(
            "id",
            filter=(certify & Q(recommendation=Advice.REVOKE)) | Q(action=REVOKE, recommendation=Advice.FINE),
        ),
        high_risk=Count("id", filter=HIGH_RISK),
        high_risk_certified_without_comment=Count("id", filter=HIGH_RISK & certify & Q(comment="")),
        bulk_certified_revokes=Count("id", filter=certify & Q(batch__gt=1, recommendation=Advice.REVOKE)),
        in_last_hours=Count("id", filter=Q(at__gte=last_hours)),
    )
    rows = {}
    for values in counted:
        name = values.pop("actor__username")
        rows[name] = ReviewerStatistics(reviewer=name, **values)
    hours = (
        decisions.annotate(hour=ExtractHour("at"))
        .values_list("actor__username", "hour")
        .annotate(n=Count("id"))
    )
    for name, hour, n in hours:
        rows[name].by_hour[hour] = n
    # What stands: a revoke changed into a certify (reviews/changes.py) is no revoke.
    standing = ReviewItem.objects.filter(campaign=campaign, status=ReviewItem.Status.REVOKED).order_by()
    for name, n in standing.values_list("decided_by__username").annotate(n=Count("id")):
        if name in rows:
            rows[name].revoked_standing = n
    for name, row in rows.items():
        if row.timed:
            timed = decisions.filter(actor__username=name, seconds_shown__isnull=False)
            row.median_seconds = float(statistics.median(timed.values_list("seconds_shown", flat=True)))
    return [rows[name] for name in sorted(rows)]


def findings_of(row: ReviewerStatistics) -> list[tuple[str, str]]:
    """The rules a reviewer's statistics break: (rule, what was seen, in words)."""
    found = []
    fast_count, fast_seconds = settings.SOXGOV_STAMP_FAST_COUNT, settings.SOXGOV_STAMP_FAST_SECONDS
    if row.fast + row.unshown > fast_count:
        seen = f"{row.fast} decisions each under {fast_seconds} s from the item shown"
        found.append(("fast", seen + (f", {row.unshown} without it ever being shown" if row.unshown else "")))
    high_risk = settings.SOXGOV_STAMP_HIGH_RISK_COUNT
    # Judged on what stands: a revoke later changed into a certify is no way around the rule.
    if row.decisions and not row.revoked_standing and row.high_risk > high_risk:
        found.append(
            ("all_certified", f"nothing revoked in {row.decisions} decisions, {row.high_risk} high-risk")
        )
    if row.bulk_certified_revokes >= settings.SOXGOV_STAMP_BULK_REVOKES:
        found.append(
            (
                "bulk_over_revokes",
                f"{row.bulk_certified_revokes} items recommended for revoke certified in bulk",
            )
        )
    return found


def findings_raise(*, campaign_id: int, reviewer=None, actor: Actor | None = None) -> list[ControlException]:
    """Open an exception for each finding not open already (of one reviewer, or of all). Evidenced in the same
    transaction: ``review.stamp.found`` on the campaign and ``exception.opened`` on each exception."""
    from soxgov.models import User

    actor = actor or Actor.system("reviews.stamps")
    now = timezone.now()
    with transaction.atomic():
        campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
        rows = reviewer_statistics(campaign, reviewer)
        users = {u.get_username(): u for u in User.objects.filter(username__in=[r.reviewer for r in rows])}
        wanted = {
            f"rubber_stamp:{campaign.pk}:{users[row.reviewer].pk}:{rule}": (row, rule, seen)
            for row in rows
            for rule, seen in findings_of(row)
        }
        existing = set(ControlException.objects.filter(key__in=list(wanted)).values_list("key", flat=True))
        opened, events = [], []
        for key, (row, rule, seen) in sorted(wanted.items()):
            if key in existing:  # raised once; closing it with proof is the control owner's answer
                continue
            severity, meaning = RULES[rule]
            detail = {
                "campaign": campaign.pk,
                "reviewer": row.reviewer,
                # Whose case it is, by id: a renamed user is still the one it is about (sod/exceptions.py).
                "reviewer_id": users[row.reviewer].pk,
                "rule": rule,
                "seen": seen,
                "statistics": row.as_dict(),
            }
            exception = ControlException.objects.create(
                kind=ControlException.Kind.REVIEW_RUBBER_STAMP,
                severity=severity,
                key=key,
                title=f"Rubber stamp? {row.reviewer} {meaning} in {campaign.name}: {seen}"[:300],
                detail=detail,
                # Whose case it is: the reviewer may not answer it.
                identity_id=getattr(users.get(row.reviewer), "identity_id", None),
                due_on=timezone.localdate(now) + dt.timedelta(days=SLA_DAYS[severity]),
                opened_at=now,
            )
            opened.append(exception)
            events += [
                Event("review.stamp.found", Subject.of(campaign), {**detail, "exception": exception.pk}),
                Event(
                    "exception.opened",
                    Subject.of(exception),
                    {
                        "kind": exception.kind,
                        "key": key,
                        "severity": severity,
                        "title": exception.title,
                        "due_on": exception.due_on,
                    },
                ),
            ]
        if events:
            events_record(actor=actor, events=events)
    return opened


def campaign_findings(campaign: Campaign):
    """The rubber-stamp exceptions of a campaign, for its monitor and its evidence pack."""
    return ControlException.objects.filter(
        kind=ControlException.Kind.REVIEW_RUBBER_STAMP, key__startswith=f"rubber_stamp:{campaign.pk}:"
    ).order_by("key", "pk")
