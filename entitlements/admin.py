from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from entitlements import services, thresholds
from entitlements.models import (
    Account,
    Application,
    Connector,
    ConnectorRun,
    ConnectorThresholdChange,
    Entitlement,
    FinancialProcess,
    Grant,
    Identity,
)
from entitlements.models.connectors import THRESHOLD_FIELDS
from evidence.services import Actor
from soxgov.admin import EvidencedAdmin

PULLED = (
    "Access data comes from the pulls (identity and access imports, connectors): what is pulled is read-only "
    "here and changes only through a pull, which is staged, checked against the thresholds, evidenced and, "
    "when held, approved by a second admin."
)


class PulledDataAdmin(EvidencedAdmin):
    """Identities, accounts, grants and their links as the pulls left them: viewed here, never written.

    Editing them in Django admin would route reviews around the four-eyes rules: unlink one's own account (an
    orphan, reviewed by the application owner), re-point a bot's owner or a person's manager to oneself.
    """

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changelist_view(self, request, extra_context=None):
        return super().changelist_view(request, {**(extra_context or {}), "subtitle": PULLED})

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        return super().changeform_view(
            request, object_id, form_url, {**(extra_context or {}), "subtitle": PULLED}
        )


@admin.register(Identity)
class IdentityAdmin(PulledDataAdmin):
    list_display = ("display_name", "kind", "employee_id", "email", "department", "status")
    list_filter = ("kind", "status", "department")
    search_fields = ("display_name", "employee_id", "email")


@admin.register(Application)
class ApplicationAdmin(EvidencedAdmin):
    list_display = ("name", "sox_in_scope", "criticality", "owner")
    list_filter = ("sox_in_scope", "criticality", "financial_processes")
    search_fields = ("name",)
    raw_id_fields = ("owner",)
    filter_horizontal = ("financial_processes",)


@admin.register(Account)
class AccountAdmin(PulledDataAdmin):
    list_display = ("account_id", "application", "identity", "status", "privileged", "last_used_at")
    list_filter = ("application", "status", "privileged")
    search_fields = ("account_id", "name")
    list_select_related = ("application", "identity")


@admin.register(Entitlement)
class EntitlementAdmin(EvidencedAdmin):
    """The owner and the privileged / sensitive flags are configuration; the rest comes from the pulls.

    Not added or deleted here either: an entitlement arrives with a pull, and deleting one would delete its
    grants with it.
    """

    list_display = ("name", "entitlement_id", "application", "kind", "privileged", "sensitive", "owner")
    list_filter = ("application", "kind", "privileged", "sensitive")
    search_fields = ("name", "entitlement_id")
    raw_id_fields = ("owner",)
    list_select_related = ("application", "owner")
    fieldsets = (
        ("From the pulls", {"fields": ("application", "entitlement_id", "name", "kind", "description")}),
        ("Configuration", {"fields": ("owner", "privileged", "sensitive")}),
    )
    readonly_fields = ("application", "entitlement_id", "name", "kind", "description")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        return super().changeform_view(
            request, object_id, form_url, {**(extra_context or {}), "subtitle": PULLED}
        )


@admin.register(Grant)
class GrantAdmin(PulledDataAdmin):
    list_display = ("account", "entitlement", "first_seen", "last_seen")
    list_select_related = ("account__application", "entitlement__application")


@admin.register(FinancialProcess)
class FinancialProcessAdmin(EvidencedAdmin):
    list_display = ("code", "name")


@admin.register(Connector)
class ConnectorAdmin(EvidencedAdmin):
    """Thresholds are not saved here directly: they go through entitlements.thresholds, where raising one
    waits for a second admin (and lowering one is applied and evidenced with old and new). The configuration is
    checked per kind by the model's clean() (entitlements/connectors/configuration.py); secrets are only listed.
    """

    list_display = ("name", "kind", "application", "cron", "deletion_threshold_percent", "enabled")
    list_filter = ("kind", "enabled")
    raw_id_fields = ("owner",)
    readonly_fields = ("secrets_kept",)

    @admin.display(description="Secrets")
    def secrets_kept(self, connector):
        """Which secrets it has and how they are kept, never a value (set them on the Connectors page, the API
        or connector_add)."""
        kept = [
            f"{s.name} ({s.kind}, updated {s.updated_at:%Y-%m-%d %H:%M})" for s in connector.secrets.all()
        ]
        return ", ".join(kept) or "none"

    def save_model(self, request, obj, form, change):
        current = Connector.objects.get(pk=obj.pk).thresholds if change else thresholds.default_thresholds()
        for field, value in current.items():
            setattr(obj, field, value)
        # The config.connector.* event names what was saved; thresholds get their own events below.
        form.changed_data[:] = [name for name in form.changed_data if name not in THRESHOLD_FIELDS]
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        connector = form.instance
        wanted = form.cleaned_data  # the connector itself was saved with its current thresholds
        try:
            recorded = thresholds.thresholds_change(
                connector_id=connector.pk,
                user=request.user,
                percent=wanted["deletion_threshold_percent"],
                count=wanted["deletion_threshold_count"],
                reason="Django admin",
            )
        except ValidationError as exc:
            messages.error(request, f"Thresholds not changed: {' '.join(exc.messages)}")
            recorded = None
        if recorded is not None and recorded.status == ConnectorThresholdChange.Status.PENDING:
            messages.warning(
                request,
                f"Raising the thresholds of {connector} needs a second admin: change #{recorded.pk} "
                f"({recorded.proposed_percent}% / {recorded.proposed_count}) waits for approval on the Imports "
                f"page; until then pulls keep {recorded.old_percent}% / {recorded.old_count}.",
            )
        services.connector_sync_schedule(connector=connector, actor=Actor.for_user(request.user))


@admin.register(ConnectorThresholdChange)
class ConnectorThresholdChangeAdmin(admin.ModelAdmin):
    """Read here; proposed through the connector form or the API, decided on the Imports page or the API."""

    list_display = ("id", "connector", "status", "old_percent", "proposed_percent", "proposed_by_name")
    list_filter = ("status",)
    readonly_fields = [f.name for f in ConnectorThresholdChange._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ConnectorRun)
class ConnectorRunAdmin(admin.ModelAdmin):
    """Runs are read here; they are started, approved and rejected through SOXGov's pages, API or commands."""

    list_display = ("id", "kind", "source_name", "application", "status", "started_by_name", "queued_at")
    list_filter = ("status", "kind")
    readonly_fields = [f.name for f in ConnectorRun._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
