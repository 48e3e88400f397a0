from django.contrib import admin

from entitlements import services
from entitlements.models import (
    Account,
    Application,
    Connector,
    ConnectorRun,
    Entitlement,
    FinancialProcess,
    Grant,
    Identity,
)
from evidence.services import Actor
from soxgov.admin import EvidencedAdmin


@admin.register(Identity)
class IdentityAdmin(EvidencedAdmin):
    list_display = ("display_name", "kind", "employee_id", "email", "department", "status")
    list_filter = ("kind", "status", "department")
    search_fields = ("display_name", "employee_id", "email")
    raw_id_fields = ("manager", "owner")


@admin.register(Application)
class ApplicationAdmin(EvidencedAdmin):
    list_display = ("name", "sox_in_scope", "criticality", "owner")
    list_filter = ("sox_in_scope", "criticality", "financial_processes")
    search_fields = ("name",)
    raw_id_fields = ("owner",)
    filter_horizontal = ("financial_processes",)


@admin.register(Account)
class AccountAdmin(EvidencedAdmin):
    list_display = ("account_id", "application", "identity", "status", "privileged", "last_used_at")
    list_filter = ("application", "status", "privileged")
    search_fields = ("account_id", "name")
    raw_id_fields = ("identity",)
    list_select_related = ("application", "identity")


@admin.register(Entitlement)
class EntitlementAdmin(EvidencedAdmin):
    list_display = ("name", "entitlement_id", "application", "kind", "privileged", "sensitive", "owner")
    list_filter = ("application", "kind", "privileged", "sensitive")
    search_fields = ("name", "entitlement_id")
    raw_id_fields = ("owner",)
    list_select_related = ("application", "owner")


@admin.register(Grant)
class GrantAdmin(EvidencedAdmin):
    list_display = ("account", "entitlement", "first_seen", "last_seen")
    raw_id_fields = ("account", "entitlement")
    list_select_related = ("account__application", "entitlement__application")


@admin.register(FinancialProcess)
class FinancialProcessAdmin(EvidencedAdmin):
    list_display = ("code", "name")


@admin.register(Connector)
class ConnectorAdmin(EvidencedAdmin):
    list_display = ("name", "kind", "application", "cron", "enabled")
    list_filter = ("kind", "enabled")
    raw_id_fields = ("owner",)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        services.connector_sync_schedule(connector=form.instance, actor=Actor.for_user(request.user))


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
