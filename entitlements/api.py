"""Read-only REST endpoints for identities and access. Rows come from soxgov.access.restrict."""

from rest_framework import serializers

from entitlements.filters import AccountFilter, ApplicationFilter, EntitlementFilter, GrantFilter, IdentityFilter
from entitlements.models import Account, Application, Entitlement, Grant, Identity
from soxgov.api.viewsets import RestrictedReadOnlyViewSet


class IdentitySerializer(serializers.ModelSerializer):
    class Meta:
        model = Identity
        fields = [
            "id", "kind", "employee_id", "email", "display_name", "department", "title",
            "manager", "owner", "status", "termination_date", "created_at", "updated_at",
        ]


class ApplicationSerializer(serializers.ModelSerializer):
    financial_processes = serializers.SlugRelatedField(many=True, read_only=True, slug_field="code")

    class Meta:
        model = Application
        fields = [
            "id", "name", "description", "sox_in_scope", "criticality", "financial_processes", "owner",
            "created_at", "updated_at",
        ]


class AccountSerializer(serializers.ModelSerializer):
    class Meta:
        model = Account
        fields = [
            "id", "application", "account_id", "name", "identity", "status", "privileged", "last_used_at",
            "first_seen", "last_seen",
        ]


class EntitlementSerializer(serializers.ModelSerializer):
    class Meta:
        model = Entitlement
        fields = [
            "id", "application", "entitlement_id", "name", "kind", "description", "owner", "privileged",
            "sensitive", "created_at", "updated_at",
        ]


class GrantSerializer(serializers.ModelSerializer):
    class Meta:
        model = Grant
        fields = ["id", "account", "entitlement", "first_seen", "last_seen"]


class IdentityViewSet(RestrictedReadOnlyViewSet):
    queryset = Identity.objects.all()
    serializer_class = IdentitySerializer
    filterset_class = IdentityFilter


class ApplicationViewSet(RestrictedReadOnlyViewSet):
    queryset = Application.objects.prefetch_related("financial_processes")
    serializer_class = ApplicationSerializer
    filterset_class = ApplicationFilter


class AccountViewSet(RestrictedReadOnlyViewSet):
    queryset = Account.objects.all()
    serializer_class = AccountSerializer
    filterset_class = AccountFilter


class EntitlementViewSet(RestrictedReadOnlyViewSet):
    queryset = Entitlement.objects.all()
    serializer_class = EntitlementSerializer
    filterset_class = EntitlementFilter


class GrantViewSet(RestrictedReadOnlyViewSet):
    queryset = Grant.objects.all()
    serializer_class = GrantSerializer
    filterset_class = GrantFilter
