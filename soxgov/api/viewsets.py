from rest_framework import viewsets

from soxgov import access


class RestrictedReadOnlyViewSet(viewsets.ReadOnlyModelViewSet):
    """A read-only viewset whose rows come from ``restrict(user, "view")``."""

    def get_queryset(self):
        return access.restrict(super().get_queryset(), self.request.user, access.VIEW)
