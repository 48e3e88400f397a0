from django.contrib import admin

from evidence.models import ChainVerification, EvidenceEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    """Evidence is written only by services; admin may look, never touch."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(EvidenceEvent)
class EvidenceEventAdmin(ReadOnlyAdmin):
    list_display = ("sequence", "occurred_at", "action", "subject_repr", "actor_name")
    list_filter = ("action", "actor_kind")
    search_fields = ("subject_repr", "actor_name", "action")


@admin.register(ChainVerification)
class ChainVerificationAdmin(ReadOnlyAdmin):
    list_display = ("id", "status", "requested_by_name", "requested_at", "event_count", "broken_sequence")
