from django.contrib import admin

from evidence.admin import ReadOnlyAdmin
from reviews.models import AuditSample


@admin.register(AuditSample)
class AuditSampleAdmin(ReadOnlyAdmin):
    """A sample is a record of what an auditor drew: admin may look, never touch (reviews/samples.py draws)."""

    list_display = (
        "id",
        "kind",
        "campaign",
        "since",
        "until",
        "seed",
        "population_count",
        "drawn_by_name",
        "drawn_at",
    )
    list_filter = ("kind", "stratified")
    search_fields = ("seed", "drawn_by_name")
