"""Django admin for configuration. Every save and delete made here is evidenced in the same transaction."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.forms.models import model_to_dict
from simple_history.admin import SimpleHistoryAdmin

from evidence.services import Actor, Subject, event_record
from soxgov.models import User


def _plain(value):
    if hasattr(value, "pk"):
        return value.pk
    if hasattr(value, "__iter__") and not isinstance(value, str | bytes):
        return sorted(_plain(v) for v in value)
    return value


class EvidencedAdmin(SimpleHistoryAdmin):
    """ModelAdmin that writes ``config.<model>.created|changed|deleted`` evidence (admin saves are atomic)."""

    def _action(self, verb: str) -> str:
        return f"config.{self.model._meta.model_name}.{verb}"

    # Recorded in save_related, which runs after many-to-many fields are saved, so the event holds final values.
    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        obj = form.instance
        data = model_to_dict(obj, fields=form.changed_data if change else None)
        event_record(
            actor=Actor.for_user(request.user),
            action=self._action("changed" if change else "created"),
            subject=obj,
            payload={"changed": {k: _plain(v) for k, v in data.items()}},
        )

    def delete_model(self, request, obj):
        subject = Subject.of(obj)
        super().delete_model(request, obj)
        event_record(actor=Actor.for_user(request.user), action=self._action("deleted"), subject=subject)

    def delete_queryset(self, request, queryset):
        subjects = [Subject.of(obj) for obj in queryset]
        super().delete_queryset(request, queryset)
        for subject in subjects:
            event_record(actor=Actor.for_user(request.user), action=self._action("deleted"), subject=subject)


@admin.register(User)
class SoxgovUserAdmin(UserAdmin):
    fieldsets = (*UserAdmin.fieldsets, ("SOXGov", {"fields": ("identity",)}))
    list_display = ("username", "email", "identity", "is_active", "is_staff")
    raw_id_fields = ("identity",)

    def get_readonly_fields(self, request, obj=None):
        # Only a superuser may mint superusers or hand out permissions outside the role groups; otherwise the
        # admin role could escalate itself past every restriction in soxgov/access.py.
        if request.user.is_superuser:
            return super().get_readonly_fields(request, obj)
        return ("is_superuser", "user_permissions", "last_login", "date_joined")

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        obj = form.instance
        changed = [f for f in form.changed_data if f != "password"]
        event_record(
            actor=Actor.for_user(request.user),
            action="access.user.changed" if change else "access.user.created",
            subject=obj,
            payload={
                "changed_fields": sorted(changed),
                "groups": sorted(obj.groups.values_list("name", flat=True)),
                "is_active": obj.is_active,
                "is_staff": obj.is_staff,
                "is_superuser": obj.is_superuser,
            },
        )
