"""Figures for the dashboard (admins, control owners, auditors): open exceptions by age, time to remediate,
campaign completion, and review lag (from a grant appearing to its first certification)."""

from __future__ import annotations

import statistics

from django.db.models import Count, Min, OuterRef, Q, Subquery
from django.utils import timezone

from entitlements.models import Grant
from reviews.models import Campaign, RemediationTask, ReviewItem
from sod.models import ControlException
from soxgov import access

AGE_BUCKETS = (
    ("under 7 days", 0, 7),
    ("7-30 days", 7, 30),
    ("30-90 days", 30, 90),
    ("over 90 days", 90, None),
)
# Enough recent rows for stable percentiles without reading a decade of history on every page view.
SAMPLE = 5000


def exceptions_by_age(live) -> list[tuple[str, int]]:
    now = timezone.now()
    out = []
    for label, low, high in AGE_BUCKETS:
        rows = live.filter(opened_at__lte=now - timezone.timedelta(days=low))
        if high is not None:
            rows = rows.filter(opened_at__gt=now - timezone.timedelta(days=high))
        out.append((label, rows.count()))
    return out


def _percentiles(days: list[float]) -> dict:
    if not days:
        return {"count": 0, "median": None, "p90": None}
    p90 = statistics.quantiles(days, n=10, method="inclusive")[-1] if len(days) > 1 else days[0]
    return {"count": len(days), "median": round(statistics.median(days), 1), "p90": round(p90, 1)}


def time_to_remediate(user) -> dict:
    closed = (
        access.restrict(RemediationTask.objects.all(), user)
        .exclude(status__in=(RemediationTask.Status.OPEN, RemediationTask.Status.CANCELLED))
        .order_by("-closed_at")
        .values_list("created_at", "closed_at")[:SAMPLE]
    )
    return _percentiles([(end - start).total_seconds() / 86400 for start, end in closed if end])


def review_lag(user) -> dict:
    """Days from a grant's first appearance to its first certification, over recently certified grants."""
    first = (
        access.restrict(ReviewItem.objects.all(), user)
        .filter(status=ReviewItem.Status.CERTIFIED)
        .values("account_id", "entitlement_id")
        .annotate(
            certified=Min("decided_at"),
            appeared=Subquery(
                Grant.objects.filter(
                    account_id=OuterRef("account_id"), entitlement_id=OuterRef("entitlement_id")
                ).values("first_seen")[:1]
            ),
        )
        .order_by("-certified")[:SAMPLE]
    )
    return _percentiles(
        [(row["certified"] - row["appeared"]).total_seconds() / 86400 for row in first if row["appeared"]]
    )


def campaign_completion(user) -> list[dict]:
    campaigns = (
        access.restrict(Campaign.objects.all(), user)
        .filter(status__in=[Campaign.Status.ACTIVE, Campaign.Status.COMPLETED, Campaign.Status.SIGNED_OFF])
        .annotate(
            total=Count("items"), decided=Count("items", filter=~Q(items__status=ReviewItem.Status.PENDING))
        )
        .order_by("due_on")[:12]
    )
    return [
        {
            "name": c.name,
            "due_on": c.due_on,
            "total": c.total,
            "decided": c.decided,
            "percent": round(100 * c.decided / c.total) if c.total else 100,
        }
        for c in campaigns
    ]


def figures(user) -> dict:
    live = access.restrict(ControlException.objects.all(), user).filter(status__in=ControlException.LIVE)
    by_kind = dict(live.values_list("kind").annotate(n=Count("id")).order_by())
    campaigns = campaign_completion(user)
    return {
        "exceptions_by_age": exceptions_by_age(live),
        "exceptions_by_kind": [
            (label, by_kind.get(value, 0)) for value, label in ControlException.Kind.choices
        ],
        "overdue_exceptions": live.filter(due_on__lt=timezone.localdate()).count(),
        "time_to_remediate": time_to_remediate(user),
        "review_lag": review_lag(user),
        "campaigns": campaigns,
        "campaign_bars": [[c["name"], c["percent"]] for c in campaigns],
    }
