"""Read-only REST endpoints for identities and access. Rows come from soxgov.access.restrict."""

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from entitlements import services
from entitlements.connectors.problems import ImportRefused
from entitlements.filters import (
    AccountFilter,
    ApplicationFilter,
    ConnectorRunFilter,
    EntitlementFilter,
    GrantFilter,
    IdentityFilter,
)
from entitlements.models import Account, Application, Connector, ConnectorRun, Entitlement, Grant, Identity
from evidence.services import Actor
from soxgov import access as acl
from soxgov.api.viewsets import RestrictedReadOnlyViewSet


class IdentitySerializer(serializers.ModelSerializer):
    class Meta:
        model = Identity
        fields = [
            "id",
            "kind",
            "employee_id",
            "email",
            "display_name",
            "department",
            "title",
            "manager",
            "owner",
            "status",
            "termination_date",
            "created_at",
            "updated_at",
        ]


class ApplicationSerializer(serializers.ModelSerializer):
    financial_processes = serializers.SlugRelatedField(many=True, read_only=True, slug_field="code")

    class Meta:
        model = Application
        fields = [
            "id",
            "name",
            "description",
            "sox_in_scope",
            "criticality",
            "financial_processes",
            "owner",
            "created_at",
            "updated_at",
        ]


class AccountSerializer(serializers.ModelSerializer):
    last_seen = serializers.DateTimeField(read_only=True)

    class Meta:
        model = Account
        fields = [
            "id",
            "application",
            "account_id",
            "name",
            "identity",
            "status",
            "privileged",
            "last_used_at",
            "first_seen",
            "last_seen",
        ]


class EntitlementSerializer(serializers.ModelSerializer):
    class Meta:
        model = Entitlement
        fields = [
            "id",
            "application",
            "entitlement_id",
            "name",
            "kind",
            "description",
            "owner",
            "privileged",
            "sensitive",
            "created_at",
            "updated_at",
        ]


class GrantSerializer(serializers.ModelSerializer):
    last_seen = serializers.DateTimeField(read_only=True)

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
    queryset = Account.objects.select_related("application")
    serializer_class = AccountSerializer
    filterset_class = AccountFilter


class EntitlementViewSet(RestrictedReadOnlyViewSet):
    queryset = Entitlement.objects.all()
    serializer_class = EntitlementSerializer
    filterset_class = EntitlementFilter


class GrantViewSet(RestrictedReadOnlyViewSet):
    queryset = Grant.objects.select_related("account__application")
    serializer_class = GrantSerializer
    filterset_class = GrantFilter


class ConnectorSerializer(serializers.ModelSerializer):
    def to_representation(self, instance):
        # Configuration will hold credentials once SCIM/LDAP/cloud connectors arrive: admins only.
        data = super().to_representation(instance)
        request = self.context.get("request")
        if request is None or not acl.can_attempt(request.user, Connector, acl.CHANGE):
            data.pop("configuration", None)
        return data

    class Meta:
        model = Connector
        fields = [
            "id",
            "name",
            "kind",
            "application",
            "configuration",
            "owner",
            "deletion_threshold_percent",
            "deletion_threshold_count",
            "enabled",
            "created_at",
        ]


class ConnectorRunSerializer(serializers.ModelSerializer):
    progress_percent = serializers.IntegerField(read_only=True)

    class Meta:
        model = ConnectorRun
        fields = [
            "id",
            "connector",
            "kind",
            "application",
            "status",
            "source_name",
            "input_sha256",
            "input_bytes",
            "started_by_name",
            "decided_by_name",
            "decision_reason",
            "queued_at",
            "started_at",
            "finished_at",
            "decided_at",
            "rows_total",
            "counts",
            "problems",
            "problem_count",
            "warnings",
            "held_reason",
            "error",
            "changes_sha256",
            "progress_percent",
        ]
        read_only_fields = fields


class RunUploadSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=ConnectorRun.Kind.choices)
    application = serializers.SlugRelatedField(
        slug_field="name", queryset=Application.objects.all(), required=False, allow_null=True
    )
    file = serializers.FileField()


class RunDecisionSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class ConnectorViewSet(RestrictedReadOnlyViewSet):
    queryset = Connector.objects.all()
    serializer_class = ConnectorSerializer


class ConnectorRunViewSet(RestrictedReadOnlyViewSet, mixins.CreateModelMixin):
    """Runs: list and read; POST a file (multipart) to start one; approve or reject a held one."""

    queryset = ConnectorRun.objects.all()
    serializer_class = ConnectorRunSerializer
    filterset_class = ConnectorRunFilter
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(request=RunUploadSerializer, responses={202: ConnectorRunSerializer})
    def create(self, request, *args, **kwargs):
        upload = RunUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        data = upload.validated_data
        try:
            run = services.run_create(
                kind=data["kind"],
                source=data["file"],
                source_name=data["file"].name,
                actor=Actor.for_user(request.user),
                user=request.user,
                application=data.get("application"),
            )
        except ImportRefused as refused:
            raise ValidationError({"file": [str(p) for p in refused.problems]}) from None
        services.run_enqueue(run)
        run.refresh_from_db()
        return Response(ConnectorRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=RunDecisionSerializer, responses={200: ConnectorRunSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        return self._decide(request, services.run_approve)

    @extend_schema(request=RunDecisionSerializer, responses={200: ConnectorRunSerializer})
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        return self._decide(request, services.run_reject)

    def _decide(self, request, decide):
        run = self.get_object()
        body = RunDecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            decide(run_id=run.pk, user=request.user, reason=body.validated_data.get("reason", ""))
        except DjangoValidationError as exc:
            return Response({"detail": exc.messages[0]}, status=status.HTTP_409_CONFLICT)
        except DjangoPermissionDenied as exc:
            raise PermissionDenied(str(exc)) from None
        run.refresh_from_db()
        return Response(ConnectorRunSerializer(run).data)
