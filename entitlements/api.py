"""REST endpoints for identities and access (read-only), applications and connectors (admins write). Rows come
from soxgov.access.restrict."""

import dataclasses

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from entitlements import services, thresholds
from entitlements.connectors.problems import ImportRefused
from entitlements.filters import (
    AccountFilter,
    ApplicationFilter,
    ConnectorRunFilter,
    EntitlementFilter,
    GrantFilter,
    IdentityFilter,
)
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
from evidence.services import Actor
from soxgov import access as acl
from soxgov import jobs
from soxgov.api.viewsets import RestrictedReadOnlyViewSet
from soxgov.models import Job


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
    financial_processes = serializers.SlugRelatedField(
        many=True, slug_field="code", queryset=FinancialProcess.objects.all(), required=False
    )

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
        read_only_fields = ["created_at", "updated_at"]


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


class ApplicationViewSet(RestrictedReadOnlyViewSet, mixins.CreateModelMixin, mixins.UpdateModelMixin):
    """Applications; admins create and change them (evidenced with old and new values)."""

    queryset = Application.objects.prefetch_related("financial_processes")
    serializer_class = ApplicationSerializer
    filterset_class = ApplicationFilter

    def perform_create(self, serializer):
        serializer.instance = self._save(serializer, None)

    def perform_update(self, serializer):
        serializer.instance = self._save(serializer, serializer.instance)

    def _save(self, serializer, application):
        from entitlements.applications import application_save

        return application_save(
            application=application,
            values=dict(serializer.validated_data),
            actor=Actor.for_user(self.request.user),
            via="api",
        )


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


@extend_schema_field(
    {
        "type": "object",
        "nullable": True,
        "properties": {"value": {"type": "string"}, "reference": {"type": "string"}},
        "description": 'write-only: {"value": "..."}, {"reference": "env:VAR" | "file:/path"}, or null to remove',
    }
)
class SecretField(serializers.Field):
    """A secret as written: {"value": "..."} (stored encrypted), {"reference": "env:VAR" | "file:/path"}, or
    null to remove it. Never read back."""

    def to_internal_value(self, data):
        from entitlements.connector_services import SecretInput

        if data is None:
            return SecretInput()
        if not isinstance(data, dict) or set(data) - {"value", "reference"} or len(data) != 1:
            raise ValidationError('give {"value": "..."}, {"reference": "env:VAR"} or null')
        value = data.get("value")
        reference = data.get("reference")
        if not isinstance(value or reference or "", str):
            raise ValidationError("must be text")
        return SecretInput(value=value, reference=reference)


class ConnectorSerializer(serializers.ModelSerializer):
    """Connectors. ``secrets`` is write-only (name -> value or reference); ``secret_names`` says which are set
    and how they are kept, never what they are."""

    secrets = serializers.DictField(child=SecretField(allow_null=True), write_only=True, required=False)
    secret_names = serializers.SerializerMethodField()

    def to_representation(self, instance):
        # Configuration says where systems are (hosts, queries): admins only. Secrets are never in it.
        data = super().to_representation(instance)
        request = self.context.get("request")
        if request is None or not acl.can_attempt(request.user, Connector, acl.CHANGE):
            data.pop("configuration", None)
            data.pop("secret_names", None)
        return data

    @extend_schema_field(serializers.ListField(child=serializers.DictField()))
    def get_secret_names(self, connector) -> list:
        return [
            {"name": secret.name, "kind": secret.kind, "updated_at": secret.updated_at}
            for secret in connector.secrets.all()
        ]

    class Meta:
        model = Connector
        fields = [
            "id",
            "name",
            "kind",
            "application",
            "configuration",
            "cron",
            "owner",
            "deletion_threshold_percent",
            "deletion_threshold_count",
            "enabled",
            "created_at",
            "secrets",
            "secret_names",
        ]
        read_only_fields = ["created_at"]
        # Checked by connector_save, with every problem named (and uniqueness with the others).
        extra_kwargs = {"name": {"validators": []}}


class ConnectorTestSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    unreachable = serializers.BooleanField()
    error = serializers.CharField()
    accounts = serializers.IntegerField()
    entitlements = serializers.IntegerField()
    grants = serializers.IntegerField()
    identities = serializers.IntegerField()
    samples = serializers.DictField()


class ConnectorRunSerializer(serializers.ModelSerializer):
    progress_percent = serializers.IntegerField(read_only=True)

    class Meta:
        model = ConnectorRun
        fields = [
            "id",
            "connector",
            "parent",
            "kind",
            "application",
            "status",
            "failure",
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


class RunCancelSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=2000, help_text="Why the run is cancelled (kept in the evidence)."
    )


class JobSerializer(serializers.ModelSerializer):
    label = serializers.CharField(read_only=True)

    class Meta:
        model = Job
        fields = [
            "id",
            "task",
            "label",
            "status",
            "attempts",
            "max_attempts",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]


class ConnectorRunDetailSerializer(ConnectorRunSerializer):
    jobs = serializers.SerializerMethodField(help_text="The run's own execution and its follow-up work.")

    class Meta(ConnectorRunSerializer.Meta):
        fields = [*ConnectorRunSerializer.Meta.fields, "jobs"]

    @extend_schema_field(JobSerializer(many=True))
    def get_jobs(self, run) -> list:
        return JobSerializer(jobs.of(run), many=True).data


class ThresholdsSerializer(serializers.Serializer):
    deletion_threshold_percent = serializers.IntegerField(min_value=0, max_value=100, required=False)
    deletion_threshold_count = serializers.IntegerField(min_value=0, max_value=2_147_483_647, required=False)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class ConnectorThresholdChangeSerializer(serializers.ModelSerializer):
    connector_name = serializers.CharField(source="connector.name", read_only=True)

    class Meta:
        model = ConnectorThresholdChange
        fields = [
            "id",
            "connector",
            "connector_name",
            "status",
            "old_percent",
            "old_count",
            "proposed_percent",
            "proposed_count",
            "reason",
            "proposed_by_name",
            "proposed_at",
            "decided_by_name",
            "decided_at",
            "decision_reason",
        ]
        read_only_fields = fields


class ConnectorViewSet(RestrictedReadOnlyViewSet, mixins.CreateModelMixin, mixins.UpdateModelMixin):
    """Connectors: admins create and change them (evidenced; secrets write-only; a configuration error is a 400
    naming the field and the key). Raising a threshold, here or through POST .../thresholds/, is proposed for a
    second admin; lowering applies at once. POST .../test/ reads the source and counts; .../pull/ queues a pull.
    """

    queryset = Connector.objects.select_related("application").prefetch_related("secrets")
    serializer_class = ConnectorSerializer
    access_actions = {"test": acl.CHANGE, "pull": acl.CHANGE}

    def perform_create(self, serializer):
        serializer.instance = self._save(serializer, None)

    def perform_update(self, serializer):
        serializer.instance = self._save(serializer, serializer.instance)

    def _save(self, serializer, connector):
        from entitlements.connector_services import connector_save

        values = dict(serializer.validated_data)
        secrets = values.pop("secrets", {})
        saved = connector_save(
            connector=connector,
            values=values,
            secrets=secrets,
            actor=Actor.for_user(self.request.user),
            user=self.request.user,
            via="api",
        )
        return Connector.objects.prefetch_related("secrets").get(pk=saved.connector.pk)

    @extend_schema(request=None, responses={200: ConnectorTestSerializer})
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        """Connect and read the source; counts and a few rows. Changes nothing. ``ok`` false with the error
        (``unreachable``: no answer or credentials refused) when it cannot be read."""
        from entitlements.connector_services import connector_test
        from entitlements.connectors.sources import SourceError, SourceUnreachable

        connector = self.get_object()
        try:
            report = connector_test(connector=connector)
        except SourceError as exc:
            return Response(
                {"ok": False, "unreachable": isinstance(exc, SourceUnreachable), "error": str(exc)}
            )
        return Response({"ok": True, "unreachable": False, "error": "", **dataclasses.asdict(report)})

    @extend_schema(request=None, responses={202: ConnectorRunSerializer})
    @action(detail=True, methods=["post"])
    def pull(self, request, pk=None):
        """Queue a pull now (a worker executes it; follow the run)."""
        connector = self.get_object()
        run = services.connector_pull(
            connector=connector, actor=Actor.for_user(request.user), user=request.user
        )
        run.refresh_from_db()
        return Response(ConnectorRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=ThresholdsSerializer, responses={201: ConnectorThresholdChangeSerializer})
    @action(detail=True, methods=["post"])
    def thresholds(self, request, pk=None):
        connector = self.get_object()
        body = ThresholdsSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        wanted = {**connector.thresholds, **body.validated_data}
        change = thresholds.thresholds_change(
            connector_id=connector.pk,
            user=request.user,
            percent=wanted["deletion_threshold_percent"],
            count=wanted["deletion_threshold_count"],
            reason=wanted.get("reason", ""),
        )
        if change is None:
            return Response({"detail": "These are the connector's thresholds already."}, status=200)
        return Response(ConnectorThresholdChangeSerializer(change).data, status=status.HTTP_201_CREATED)


class ConnectorThresholdChangeViewSet(RestrictedReadOnlyViewSet):
    """Threshold changes; a pending one is approved or rejected by an admin other than its proposer (who may
    withdraw it by rejecting it)."""

    queryset = ConnectorThresholdChange.objects.select_related("connector")
    serializer_class = ConnectorThresholdChangeSerializer

    @extend_schema(request=RunDecisionSerializer, responses={200: ConnectorThresholdChangeSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        return self._decide(request, thresholds.thresholds_approve)

    @extend_schema(request=RunDecisionSerializer, responses={200: ConnectorThresholdChangeSerializer})
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        return self._decide(request, thresholds.thresholds_reject)

    def _decide(self, request, decide):
        change = self.get_object()
        body = RunDecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        change = decide(change_id=change.pk, user=request.user, reason=body.validated_data.get("reason", ""))
        return Response(ConnectorThresholdChangeSerializer(change).data)


class ConnectorRunViewSet(RestrictedReadOnlyViewSet, mixins.CreateModelMixin):
    """Runs: list and read; POST a file (multipart) to start one; approve or reject a held one."""

    queryset = ConnectorRun.objects.all()
    serializer_class = ConnectorRunSerializer
    filterset_class = ConnectorRunFilter
    parser_classes = [MultiPartParser, FormParser, JSONParser]
    access_actions = {"cancel": acl.CHANGE}

    def get_serializer_class(self):
        return ConnectorRunDetailSerializer if self.action == "retrieve" else ConnectorRunSerializer

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

    @extend_schema(request=RunCancelSerializer, responses={200: ConnectorRunSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel a queued, approved or running (stuck) run, saying why (409 when it already ended)."""
        return self._decide(request, services.run_cancel, body_class=RunCancelSerializer)

    def _decide(self, request, decide, body_class=None):
        run = self.get_object()
        body = (body_class or RunDecisionSerializer)(data=request.data)
        body.is_valid(raise_exception=True)
        decide(run_id=run.pk, user=request.user, reason=body.validated_data.get("reason", ""))
        run.refresh_from_db()
        return Response(ConnectorRunSerializer(run).data)
