"""Counters for campaigns launched before ReviewerProgress existed (reviewers reach their campaigns through them)."""

from django.db import migrations
from django.db.models import Count, Q


def backfill(apps, schema_editor):
    Campaign = apps.get_model("reviews", "Campaign")
    ReviewItem = apps.get_model("reviews", "ReviewItem")
    ReviewerProgress = apps.get_model("reviews", "ReviewerProgress")
    for campaign_id in Campaign.objects.exclude(status="draft").values_list("pk", flat=True):
        if ReviewerProgress.objects.filter(campaign_id=campaign_id).exists():
            continue
        rows = (
            ReviewItem.objects.filter(campaign_id=campaign_id)
            .values("reviewer_id")
            .annotate(total=Count("id"), pending=Count("id", filter=Q(status="pending")))
            .order_by()
        )
        ReviewerProgress.objects.bulk_create(
            ReviewerProgress(
                campaign_id=campaign_id, reviewer_id=r["reviewer_id"], total=r["total"], pending=r["pending"]
            )
            for r in rows
        )


class Migration(migrations.Migration):
    dependencies = [("reviews", "0004_reviewerprogress")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
