"""Django admin for configuration. Every save and delete made here is evidenced in the same transaction."""

from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.forms import UserChangeForm
from django.core.exceptions import ValidationError
from django.forms.models import model_to_dict
from django.utils import timezone
from knox.models import AuthToken as KnoxAuthToken
from simple_history.admin import SimpleHistoryAdmin

from evidence.services import Actor, Subject, event_record
from soxgov.models import ApiToken, User
from soxgov.services import identity_change_refusal
from soxgov.signin import login_unlock
from soxgov.tokens import tokens_revoke


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


# What access.user.changed compares, old against new. Never the password: a reset is its own event.
_USER_FIELDS = (
    "username",
    "email",
    "first_name",
    "last_name",
    "is_active",
    "is_staff",
    "is_superuser",
    "identity",
)


def _user_snapshot(user) -> dict:
    values = {f: _plain(getattr(user, f)) for f in _USER_FIELDS}
    values["roles"] = sorted(user.groups.values_list("name", flat=True)) if user.pk else []
    return values


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
            tokens_revoke(actor=actor, tokens=ApiToken.objects.filter(user=user), reason="user deleted")
            snapshot, subject = _user_snapshot(user), Subject.of(user)
            user.delete()
            event_record(actor=actor, action="access.user.deleted", subject=subject, payload=snapshot)

    def save_model(self, request, obj, form, change):
        obj._soxgov_actor = Actor.for_user(request.user)
        # The form has already written its values onto obj; the old ones are still in the database.
        obj._soxgov_before = _user_snapshot(User.objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        obj = form.instance
        after = _user_snapshot(obj)
        if change:
            before = obj._soxgov_before
            payload = {
                "changes": {
                    field: {"old": before[field], "new": after[field]}
                    for field in after
                    if before[field] != after[field]
                }
            }
        else:
            payload = after
        event_record(
            actor=Actor.for_user(request.user),
            action="access.user.changed" if change else "access.user.created",
            subject=obj,
            payload=payload,
        )


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
