"""Django admin for configuration. Every save and delete made here is evidenced in the same transaction."""

import datetime as dt
import decimal
import uuid

from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.forms.models import model_to_dict
from django.utils import timezone
from django_celery_beat import admin as beat_admin
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)
from knox.models import AuthToken as KnoxAuthToken
from simple_history.admin import SimpleHistoryAdmin

from evidence.services import Actor, Subject, event_record
from soxgov.models import ApiToken, User
from soxgov.services import identity_change_refusal, user_change_record, user_snapshot
from soxgov.signin import login_unlock
from soxgov.tokens import tokens_revoke, user_tokens_revoke


def _plain(value):
    if hasattr(value, "pk"):
        return value.pk
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if hasattr(value, "__iter__") and not isinstance(value, str | bytes):
        return sorted(_plain(v) for v in value)
    if value is None or isinstance(value, _JSON_ABLE):
        return value
    return str(value)  # a time zone, a file ...: its name


# What the evidence payload's encoder (DjangoJSONEncoder) writes as it is.
_JSON_ABLE = (str, int, float, dt.date, dt.time, dt.timedelta, decimal.Decimal, uuid.UUID)


def _values(obj, fields=None) -> dict:
    """The object's editable field values (many-to-many too), as plain JSON-able values."""
    return {k: _plain(v) for k, v in model_to_dict(obj, fields=fields).items()}


class EvidencedAdminMixin:
    """ModelAdmin mixin that writes ``config.<model>.created|changed|deleted`` evidence with old and new values.

    Saves and deletes through the object pages are atomic (Django admin); bulk actions are made atomic here, so
    the change and its event commit together.
    """

    def _action(self, verb: str) -> str:
        return f"config.{self.model._meta.model_name}.{verb}"

    def save_model(self, request, obj, form, change):
        # The form has already written the new values onto obj; the old ones are still in the database.
        if change:
            obj._soxgov_before = _values(self.model._default_manager.get(pk=obj.pk))
        super().save_model(request, obj, form, change)

    # Recorded in save_related, which runs after many-to-many fields are saved, so the event holds final values.
    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        obj = form.instance
        after = _values(obj)
        if change:
            before = getattr(obj, "_soxgov_before", {})
            # A form may call a field changed whose value is not (a time zone's widget, for one).
            fields = [name for name in form.changed_data if name in after and before.get(name) != after[name]]
            changed = {name: {"old": before.get(name), "new": after[name]} for name in fields}
        else:
            changed = {name: {"old": None, "new": value} for name, value in after.items()}
        event_record(
            actor=Actor.for_user(request.user),
            action=self._action("changed" if change else "created"),
            subject=obj,
            payload={"changed": changed},
        )

    def delete_model(self, request, obj):
        with transaction.atomic():
            subject, before = Subject.of(obj), _values(obj)
            super().delete_model(request, obj)
            event_record(
                actor=Actor.for_user(request.user),
                action=self._action("deleted"),
                subject=subject,
                payload={"deleted": before},
            )

    def delete_queryset(self, request, queryset):
        with transaction.atomic():
            gone = [(Subject.of(obj), _values(obj)) for obj in queryset]
            super().delete_queryset(request, queryset)
            for subject, before in gone:
                event_record(
                    actor=Actor.for_user(request.user),
                    action=self._action("deleted"),
                    subject=subject,
                    payload={"deleted": before},
                )

    def bulk_change_evidenced(self, request, queryset, change) -> None:
        """Run ``change(queryset)`` (a bulk UPDATE such as an admin action's) and evidence each object it
        changed with old and new values."""
        with transaction.atomic():
            pks = list(queryset.values_list("pk", flat=True))
            locked = self.model._default_manager.select_for_update().filter(pk__in=pks)
            before = {obj.pk: _values(obj) for obj in locked}
            change(queryset)
            actor = Actor.for_user(request.user)
            for obj in self.model._default_manager.filter(pk__in=before):
                after = _values(obj)
                changed = {
                    name: {"old": before[obj.pk].get(name), "new": value}
                    for name, value in after.items()
                    if before[obj.pk].get(name) != value
                }
                if changed:
                    event_record(
                        actor=actor, action=self._action("changed"), subject=obj, payload={"changed": changed}
                    )


class EvidencedAdmin(EvidencedAdminMixin, SimpleHistoryAdmin):
    """The evidenced ModelAdmin with simple-history's history pages, read-only.

    simple-history's "revert" form saves without save_related (so without evidence) and checks only the view
    permission; an edit goes through the change form instead.
    """

    def revert_disabled(self, request, obj=None):
        return True

    def history_view(self, request, object_id, extra_context=None):
        if hasattr(self.model._meta, "simple_history_manager_attribute"):
            return super().history_view(request, object_id, extra_context)
        # A model without historical records (financial processes, connectors): Django's own change log; the
        # evidence trail holds its old and new values.
        response = admin.ModelAdmin.history_view(self, request, object_id, extra_context)
        if hasattr(response, "template_name"):
            response.template_name = ["admin/object_history.html"]
        return response

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        if request.method == "POST":
            raise PermissionDenied("Reverting from history is not offered: edit the object instead.")
        return super().history_form_view(request, object_id, version_id, extra_context)


class SoxgovUserChangeForm(UserChangeForm):
    def clean_identity(self):
        identity = self.cleaned_data.get("identity")
        if self.instance.pk and self.initial.get("identity") != (identity.pk if identity else None):
            refusal = identity_change_refusal(self.instance)
            if refusal:
                raise ValidationError(refusal)
        return identity


@admin.register(User)
class SoxgovUserAdmin(UserAdmin):
    form = SoxgovUserChangeForm
    fieldsets = (*UserAdmin.fieldsets, ("SOXGov", {"fields": ("identity",)}))
    list_display = ("username", "email", "identity", "is_active", "is_staff")
    raw_id_fields = ("identity",)

    def get_readonly_fields(self, request, obj=None):
        # Only a superuser may mint superusers or hand out permissions outside the role groups; otherwise the
        # admin role could escalate itself past every restriction in soxgov/access.py.
        if request.user.is_superuser:
            return super().get_readonly_fields(request, obj)
        return ("is_superuser", "user_permissions", "last_login", "date_joined")

    def get_object(self, request, object_id, from_field=None):
        # The change form and the password form both save the object fetched here: User.save's hooks then
        # name this admin in the identity, password-reset and token-revocation evidence.
        obj = super().get_object(request, object_id, from_field)
        if obj is not None:
            obj._soxgov_actor = Actor.for_user(request.user)
        return obj

    def delete_model(self, request, obj):
        self.delete_queryset(request, User.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        # The tokens would go with the user (CASCADE); revoke them first so that is evidenced too.
        actor = Actor.for_user(request.user)
        for user in queryset:
            user_tokens_revoke(actor=actor, user=user, reason="user deleted")
            snapshot, subject = user_snapshot(user), Subject.of(user)
            user.delete()
            event_record(actor=actor, action="access.user.deleted", subject=subject, payload=snapshot)

    def save_model(self, request, obj, form, change):
        obj._soxgov_actor = Actor.for_user(request.user)
        # The form has already written its values onto obj; the old ones are still in the database.
        obj._soxgov_before = user_snapshot(User.objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        obj = form.instance
        actor = Actor.for_user(request.user)
        if change:
            user_change_record(actor=actor, user=obj, before=obj._soxgov_before)
        else:
            event_record(actor=actor, action="access.user.created", subject=obj, payload=user_snapshot(obj))


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens by owner, prefix and dates; never the secret or its digest. Deleting one revokes it (evidenced).

    Nobody creates a token here: a token is for its owner, who gets it with their own password (the token
    endpoint) or from an operator's ``token_create`` command.
    """

    list_display = ("user", "prefix", "created", "expiry", "state")
    list_display_links = None
    list_filter = ("expiry",)
    search_fields = ("user__username",)
    fields = ("user", "prefix", "created", "expiry", "state")
    readonly_fields = fields
    actions = ["delete_selected"]

    @admin.display(description="state")
    def state(self, obj) -> str:
        return "expired" if obj.expiry and obj.expiry <= timezone.now() else "valid"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        tokens_revoke(
            actor=Actor.for_user(request.user),
            tokens=ApiToken.objects.filter(pk=obj.pk),
            reason="revoked in Django admin",
        )

    def delete_queryset(self, request, queryset):
        tokens_revoke(actor=Actor.for_user(request.user), tokens=queryset, reason="revoked in Django admin")


if admin.site.is_registered(KnoxAuthToken):
    # knox registers its own model, whose key is the digest; SOXGov's ApiToken replaces it.
    admin.site.unregister(KnoxAuthToken)


@admin.register(AccessAttempt)
class LoginAttemptAdmin(AccessAttemptAdmin):
    """Failed sign-ins that count towards a lockout. Deleting one unlocks that sign-in now (evidenced)."""

    actions = ["delete_selected"]

    def delete_model(self, request, obj):
        login_unlock(actor=Actor.for_user(request.user), attempts=AccessAttempt.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        login_unlock(actor=Actor.for_user(request.user), attempts=queryset)


# django-celery-beat's schedules decide when (and whether) connectors pull and the chain is verified: saves,
# deletes and its bulk enable/disable/toggle actions are evidenced like any configuration.
for _model in (PeriodicTask, CrontabSchedule, IntervalSchedule, SolarSchedule, ClockedSchedule):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)


@admin.register(PeriodicTask)
class EvidencedPeriodicTaskAdmin(EvidencedAdminMixin, beat_admin.PeriodicTaskAdmin):
    def _bulk(self, request, queryset, name):
        action = getattr(super(), name)
        self.bulk_change_evidenced(request, queryset, lambda tasks: action(request, tasks))

    @admin.action(description=beat_admin.PeriodicTaskAdmin.enable_tasks.short_description)
    def enable_tasks(self, request, queryset):
        self._bulk(request, queryset, "enable_tasks")

    @admin.action(description=beat_admin.PeriodicTaskAdmin.disable_tasks.short_description)
    def disable_tasks(self, request, queryset):
        self._bulk(request, queryset, "disable_tasks")

    @admin.action(description=beat_admin.PeriodicTaskAdmin.toggle_tasks.short_description)
    def toggle_tasks(self, request, queryset):
        self._bulk(request, queryset, "toggle_tasks")


@admin.register(CrontabSchedule)
class EvidencedCrontabScheduleAdmin(EvidencedAdminMixin, beat_admin.CrontabScheduleAdmin):
    pass


@admin.register(IntervalSchedule)
class EvidencedIntervalScheduleAdmin(EvidencedAdminMixin, beat_admin.IntervalScheduleAdmin):
    pass


@admin.register(SolarSchedule)
class EvidencedSolarScheduleAdmin(EvidencedAdminMixin, beat_admin.SolarScheduleAdmin):
    pass


@admin.register(ClockedSchedule)
class EvidencedClockedScheduleAdmin(EvidencedAdminMixin, beat_admin.ClockedScheduleAdmin):
    pass
