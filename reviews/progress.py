"""Keeping ReviewerProgress true: rebuilt set-based after a launch, adjusted by every decision and delegation,
always inside the transaction that changes the items."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from django.db import connection
from django.db.models import F

from reviews.models import ReviewerProgress, ReviewItem


def rebuild(campaign_id: int) -> None:
    progress, items = ReviewerProgress._meta.db_table, ReviewItem._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {progress} WHERE campaign_id = %s", [campaign_id])
        cursor.execute(
            f"""INSERT INTO {progress} (campaign_id, reviewer_id, total, pending)
                SELECT campaign_id, reviewer_id, COUNT(*), SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END)
                FROM {items} WHERE campaign_id = %s GROUP BY campaign_id, reviewer_id""",
            [campaign_id],
        )


def added(items: Iterable[ReviewItem]) -> None:
    """New pending items (micro-reviews): add to the counters rather than rebuild them, so a decision running
    at the same time never updates a row that a rebuild just replaced."""
    for (campaign_id, reviewer_id), n in Counter((i.campaign_id, i.reviewer_id) for i in items).items():
        row, _ = ReviewerProgress.objects.get_or_create(campaign_id=campaign_id, reviewer_id=reviewer_id)
        ReviewerProgress.objects.filter(pk=row.pk).update(total=F("total") + n, pending=F("pending") + n)


def decided(items: Iterable[ReviewItem]) -> None:
    """Items that left pending (they were pending before: the deciding service checks it)."""
    for (campaign_id, reviewer_id), n in Counter((i.campaign_id, i.reviewer_id) for i in items).items():
        ReviewerProgress.objects.filter(campaign_id=campaign_id, reviewer_id=reviewer_id).update(
            pending=F("pending") - n
        )


def delegated(items: Iterable[ReviewItem], to_user) -> None:
    """Pending items that moved from their reviewer to ``to_user``."""
    for (campaign_id, reviewer_id), n in Counter((i.campaign_id, i.reviewer_id) for i in items).items():
        ReviewerProgress.objects.filter(campaign_id=campaign_id, reviewer_id=reviewer_id).update(
            total=F("total") - n, pending=F("pending") - n
        )
        row, _ = ReviewerProgress.objects.get_or_create(campaign_id=campaign_id, reviewer=to_user)
        ReviewerProgress.objects.filter(pk=row.pk).update(total=F("total") + n, pending=F("pending") + n)


def for_reviewer(user) -> list[dict]:
    return list(
        ReviewerProgress.objects.filter(reviewer=user, total__gt=0)
        .values("campaign", "total", "pending")
        .order_by("campaign")
    )
