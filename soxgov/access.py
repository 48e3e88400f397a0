"""Access control in one place.

Every page, htmx fragment, API endpoint and export asks ``Model.objects.restrict(user, action)`` (or
``restrict(queryset, user, action)``) for the rows a user may see or change. Two questions decide it:

1. May this user attempt ``action`` on this model at all?  Django model permissions, granted to the role
   groups in soxgov/roles.py.
2. Which rows?  Admins, control owners and auditors see every row they hold the permission for; a reviewer
   sees only rows connected to their own identity (their reports, the non-human identities they own, the
   applications and entitlements they own). Deny by default: a model without a reviewer scope shows nothing.

Anonymous and inactive users see nothing. Objects outside a user's scope answer 404, so existence does not leak.
"""

from collections.abc import Callable

from django.core.exceptions import PermissionDenied
from django.db import models
from django.db.models import Q

from soxgov.roles import Role, user_roles

VIEW, ADD, CHANGE, DELETE = "view", "add", "change", "delete"
ACTIONS = (VIEW, ADD, CHANGE, DELETE)

# Roles that see every row of a model they hold the permission for.
FULL_SCOPE_ROLES = frozenset({Role.ADMIN, Role.CONTROL_OWNER, Role.AUDITOR})

# Reviewer row scopes, keyed by model label; ``me`` is the reviewer's identity id.
_REVIEWER_SCOPES: dict[str, Callable[[int], Q]] = {
    "entitlements.identity": lambda me: Q(pk=me) | Q(manager_id=me) | Q(owner_id=me),
    "entitlements.application": lambda me: Q(owner_id=me),
    "entitlements.entitlement": lambda me: Q(owner_id=me) | Q(application__owner_id=me),
    "entitlements.account": lambda me: (
        Q(identity_id=me)
        | Q(identity__manager_id=me)
        | Q(identity__owner_id=me)
        | Q(application__owner_id=me)
    ),
    "entitlements.grant": lambda me: (
        Q(account__identity_id=me)
        | Q(account__identity__manager_id=me)
        | Q(account__identity__owner_id=me)
        | Q(entitlement__owner_id=me)
        | Q(account__application__owner_id=me)
    ),
    # The SoD conflicts of the people and accounts a reviewer already sees.
    "sod.violation": lambda me: (
        Q(identity_id=me)
        | Q(identity__manager_id=me)
        | Q(identity__owner_id=me)
        | Q(account__application__owner_id=me)
    ),
}


def _reviews_scope(user) -> dict[str, Callable[[], Q]]:
    """Review work belongs to a user (the reviewer), not to an identity: scoped by the user itself."""
    from django.db.models import Exists, OuterRef

    from reviews.models import ReviewerProgress

    # Through the progress counters (one row per campaign and reviewer), not the items (millions).
    mine = ReviewerProgress.objects.filter(campaign=OuterRef("pk"), reviewer=user, total__gt=0)
    return {
        "reviews.reviewitem": lambda: Q(reviewer=user),
        "reviews.campaign": lambda: Q(Exists(mine)),
        "reviews.decision": lambda: Q(item__reviewer=user) | Q(actor=user),
        "reviews.signoff": lambda: Q(reviewer=user),
        "reviews.notification": lambda: Q(user=user),
        "reviews.reviewerprogress": lambda: Q(reviewer=user),
        "reviews.remediationtask": lambda: Q(item__reviewer=user),
    }


# Actions a reviewer may take on their own rows (beyond viewing them).
_REVIEWER_USER_ACTIONS = {"reviews.reviewitem": {VIEW, CHANGE}, "reviews.signoff": {VIEW, ADD}}


def permission_name(model: type[models.Model], action: str) -> str:
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    opts = model._meta
    return f"{opts.app_label}.{action}_{opts.model_name}"


def can_attempt(user, model: type[models.Model], action: str) -> bool:
    """May ``user`` perform ``action`` on some rows of ``model``?"""
    if not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    return user.has_perm(permission_name(model, action))


def users_who_may(model: type[models.Model], action: str) -> models.QuerySet:
    """Every user who may attempt ``action`` on ``model`` (``can_attempt`` for all users at once, as a queryset
    that set-based SQL can use as a subquery): active, and a superuser or holding the permission."""
    from soxgov.models import User

    # Two backends are configured (axes only guards sign-in); permissions come from the model backend.
    return User.objects.with_perm(
        permission_name(model, action), backend="django.contrib.auth.backends.ModelBackend"
    )


def require(user, model: type[models.Model], action: str) -> None:
    """Raise PermissionDenied (403) unless the user may attempt ``action`` on ``model``."""
    if not can_attempt(user, model, action):
        raise PermissionDenied(f"{action} {model._meta.verbose_name_plural} is not allowed")


def restrict(queryset: models.QuerySet, user, action: str = VIEW) -> models.QuerySet:
    model = queryset.model
    if not can_attempt(user, model, action):
        return queryset.none()
    if user.is_superuser:
        return queryset
    roles = user_roles(user)
    if roles & FULL_SCOPE_ROLES:
        return queryset
    label = model._meta.label_lower
    if Role.REVIEWER in roles and label.startswith("reviews."):
        if action == VIEW or action in _REVIEWER_USER_ACTIONS.get(label, ()):
            scope = _reviews_scope(user).get(label)
            if scope is not None:
                return queryset.filter(scope())
        return queryset.none()
    if Role.REVIEWER in roles and action == VIEW:
        scope = _REVIEWER_SCOPES.get(label)
        if scope is not None and user.identity_id is not None:
            return queryset.filter(scope(user.identity_id))
    return queryset.none()


def can(user, obj: models.Model, action: str = VIEW) -> bool:
    """Object-level check through the same rules."""
    return restrict(type(obj)._default_manager.filter(pk=obj.pk), user, action).exists()


class RestrictedQuerySet(models.QuerySet):
    def restrict(self, user, action: str = VIEW) -> models.QuerySet:
        return restrict(self, user, action)
