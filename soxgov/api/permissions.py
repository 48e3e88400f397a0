"""The permission classes every API viewset uses (kept apart from viewsets: DRF settings import this).

The permission class only asks soxgov.access; row filtering happens in each viewset's ``get_queryset``
through ``restrict`` (so list endpoints never show rows a user may not see).
"""

from rest_framework import permissions

from soxgov import access
from soxgov.roles import user_roles

_METHOD_ACTIONS = {
    "GET": access.VIEW,
    "HEAD": access.VIEW,
    "OPTIONS": access.VIEW,
    "POST": access.ADD,
    "PUT": access.CHANGE,
    "PATCH": access.CHANGE,
    "DELETE": access.DELETE,
}


class RestrictedPermission(permissions.BasePermission):
    """Allow a request only if soxgov.access lets the user attempt the method's action on the view's model."""

    def has_permission(self, request, view) -> bool:
        model = _view_model(view)
        if model is None:
            return bool(request.user and request.user.is_authenticated)
        return access.can_attempt(request.user, model, _action(request, view))

    def has_object_permission(self, request, view, obj) -> bool:
        return access.can(request.user, obj, _action(request, view))


def _action(request, view) -> str:
    """The access action a request attempts: its method's, unless the view names one for its action (asking for
    an evidence pack is a POST that only reads: ``access_actions = {"create": access.VIEW}``)."""
    named = getattr(view, "access_actions", {}).get(getattr(view, "action", None))
    return named or _METHOD_ACTIONS.get(request.method, access.CHANGE)


class HasRole(permissions.BasePermission):
    """Signed in with one of SOXGov's roles (soxgov/roles.py): for what describes the whole API (the schema
    and its docs), which a user without a role has no business mapping."""

    def has_permission(self, request, view) -> bool:
        return bool(user_roles(request.user)) and request.user.is_active


def _view_model(view):
    queryset = getattr(view, "queryset", None)
    return queryset.model if queryset is not None else None
