"""REST endpoints for SoD: rules (read and, for admins, write), violations and their answers, checks, what-if.

Rows come from soxgov.access.restrict; writes go through sod.rules and sod.services, which ask it again.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from entitlements.models import Entitlement, Identity
from evidence.services import Actor
from sod import exceptions as exception_services
from sod import rules as rule_services
from sod import services
from sod.filters import ExceptionFilter, RuleFilter, ViolationFilter
from sod.models import Check, ControlException, Frequency, Mitigation, RiskAcceptance, Rule, Violation
from sod.selectors import violation_conflict, what_if
from soxgov import access as acl
from soxgov.api.viewsets import RestrictedReadOnlyViewSet
from soxgov.models import User


class SideSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    entitlements = serializers.PrimaryKeyRelatedField(many=True, queryset=Entitlement.objects.all())


class RuleSerializer(serializers.ModelSerializer):
    sides = SideSerializer(many=True)

    class Meta:
        model = Rule
        fields = [
            "id",
            "code",
            "name",
            "description",
            "risk",
            "process",
            "enabled",
            "side_count",
            "sides",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["side_count", "created_at", "updated_at"]

    def to_representation(self, instance):
        data = super().to_representation(instance)
        data["sides"] = [
            {"name": side.name, "entitlements": [e.pk for e in side.entitlements.all()]}
            for side in instance.sides.all()
        ]
        return data

    def spec(self) -> rule_services.RuleSpec:
        data = {**self.initial_instance_data(), **self.validated_data}
        return rule_services.RuleSpec(
            code=data["code"],
            name=data["name"],
            description=data.get("description", ""),
            risk=data.get("risk", "high"),
            process=data.get("process", ""),
            enabled=data.get("enabled", True),
            sides=[(side["name"], [e.pk for e in side["entitlements"]]) for side in data["sides"]],
        )

    def initial_instance_data(self) -> dict:
        """For PATCH: the stored rule, so omitted fields keep their values."""
        if self.instance is None:
            return {}
        rule = self.instance
        return {
            "code": rule.code,
            "name": rule.name,
            "description": rule.description,
            "risk": rule.risk,
            "process": rule.process,
            "enabled": rule.enabled,
            "sides": [{"name": s.name, "entitlements": list(s.entitlements.all())} for s in rule.sides.all()],
        }


class RuleViewSet(
    RestrictedReadOnlyViewSet, mixins.CreateModelMixin, mixins.UpdateModelMixin, mixins.DestroyModelMixin
):
    """SoD rules. Admins create, change and delete (a rule with violations on record can only be disabled)."""

    queryset = Rule.objects.prefetch_related("sides__entitlements")
    serializer_class = RuleSerializer
    filterset_class = RuleFilter

    def perform_create(self, serializer):
        serializer.instance = self._save(serializer, None)

    def perform_update(self, serializer):
        serializer.instance = self._save(serializer, serializer.instance)

    def _save(self, serializer, rule):
        saved = rule_services.rules_save(
            [(serializer.spec(), rule)], actor=Actor.for_user(self.request.user), source="api"
        )
        return Rule.objects.get(pk=(saved[0] if saved else rule).pk)

    def perform_destroy(self, instance):
        rule_services.rule_delete(instance, actor=Actor.for_user(self.request.user))


class ViolationSerializer(serializers.ModelSerializer):
    rule_code = serializers.CharField(source="rule.code", read_only=True)
    risk = serializers.CharField(source="rule.risk", read_only=True)

    class Meta:
        model = Violation
        fields = [
            "id",
            "rule",
            "rule_code",
            "risk",
            "identity",
            "account",
            "holder",
            "status",
            "opened_at",
            "status_changed_at",
            "resolved_at",
            "resolution",
        ]
        read_only_fields = fields


class MitigationSerializer(serializers.ModelSerializer):
    class Meta:
        model = Mitigation
        fields = [
            "id",
            "violation",
            "control",
            "description",
            "owner",
            "frequency",
            "expires_on",
            "recorded_by",
            "recorded_at",
            "ended_at",
            "end_reason",
        ]
        read_only_fields = fields


class AcceptanceSerializer(serializers.ModelSerializer):
    class Meta:
        model = RiskAcceptance
        fields = [
            "id",
            "violation",
            "justification",
            "expires_on",
            "status",
            "requested_by",
            "requested_at",
            "decided_by",
            "decided_at",
            "decision_note",
        ]
        read_only_fields = fields


class MitigateSerializer(serializers.Serializer):
    control = serializers.CharField(max_length=200)
    description = serializers.CharField()
    owner = serializers.PrimaryKeyRelatedField(queryset=Identity.objects.filter(kind=Identity.Kind.HUMAN))
    frequency = serializers.ChoiceField(choices=Frequency.choices)
    expires_on = serializers.DateField()


class AcceptanceRequestSerializer(serializers.Serializer):
    justification = serializers.CharField()
    expires_on = serializers.DateField()


class AcceptanceDecisionSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class ViolationViewSet(RestrictedReadOnlyViewSet):
    """Violations (with the conflicting grants on a single read); mitigate or request a risk acceptance."""

    queryset = Violation.objects.select_related("rule")
    serializer_class = ViolationSerializer
    filterset_class = ViolationFilter

    def get_permissions(self):
        # The actions ask the services, which require add on Mitigation / RiskAcceptance through soxgov.access.
        if self.action in ("mitigate", "request_acceptance"):
            return [IsAuthenticated()]
        return super().get_permissions()

    def retrieve(self, request, *args, **kwargs):
        violation = self.get_object()
        data = ViolationSerializer(violation).data
        data["conflict"] = {
            side: [
                {
                    "application": g.application,
                    "account_id": g.account_id,
                    "entitlement": g.entitlement_pk,
                    "entitlement_id": g.entitlement_id,
                }
                for g in grants
            ]
            for side, grants in (violation_conflict(violation) if violation.is_active else {}).items()
        }
        user = request.user
        mitigations = Mitigation.objects.restrict(user).filter(violation=violation)
        acceptances = RiskAcceptance.objects.restrict(user).filter(violation=violation)
        data["mitigations"] = MitigationSerializer(mitigations, many=True).data
        data["acceptances"] = AcceptanceSerializer(acceptances, many=True).data
        return Response(data)

    @extend_schema(request=MitigateSerializer, responses={201: MitigationSerializer})
    @action(detail=True, methods=["post"])
    def mitigate(self, request, pk=None):
        acl.require(request.user, Mitigation, acl.ADD)
        violation = self.get_object()
        body = MitigateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        mitigation = services.violation_mitigate(
            violation_id=violation.pk, user=request.user, **body.validated_data
        )
        return Response(MitigationSerializer(mitigation).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=AcceptanceRequestSerializer, responses={201: AcceptanceSerializer})
    @action(detail=True, methods=["post"], url_path="request-acceptance")
    def request_acceptance(self, request, pk=None):
        acl.require(request.user, RiskAcceptance, acl.ADD)
        violation = self.get_object()
        body = AcceptanceRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        acceptance = services.acceptance_request(
            violation_id=violation.pk, user=request.user, **body.validated_data
        )
        return Response(AcceptanceSerializer(acceptance).data, status=status.HTTP_201_CREATED)


class RiskAcceptanceViewSet(RestrictedReadOnlyViewSet):
    """Risk acceptances; approve or reject a pending one (not your own request)."""

    queryset = RiskAcceptance.objects.all()
    serializer_class = AcceptanceSerializer

    def get_permissions(self):
        if self.action in ("approve", "reject"):
            return [IsAuthenticated()]
        return super().get_permissions()

    @extend_schema(request=AcceptanceDecisionSerializer, responses={200: AcceptanceSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        return self._decide(request, approve=True)

    @extend_schema(request=AcceptanceDecisionSerializer, responses={200: AcceptanceSerializer})
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        return self._decide(request, approve=False)

    def _decide(self, request, *, approve: bool):
        acl.require(request.user, RiskAcceptance, acl.CHANGE)
        acceptance = self.get_object()
        body = AcceptanceDecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        acceptance = services.acceptance_decide(
            acceptance_id=acceptance.pk,
            user=request.user,
            approve=approve,
            note=body.validated_data.get("note", ""),
        )
        return Response(AcceptanceSerializer(acceptance).data)


class CheckSerializer(serializers.ModelSerializer):
    class Meta:
        model = Check
        fields = [
            "id",
            "trigger",
            "full",
            "connector_run",
            "rule",
            "actor_name",
            "started_at",
            "finished_at",
            "identities_checked",
            "accounts_checked",
            "opened",
            "resolved",
            "unchanged",
        ]
        read_only_fields = fields


class CheckViewSet(RestrictedReadOnlyViewSet):
    queryset = Check.objects.all()
    serializer_class = CheckSerializer


class WhatIfRequestSerializer(serializers.Serializer):
    identity = serializers.IntegerField()
    entitlements = serializers.ListField(child=serializers.IntegerField(), min_length=1, max_length=500)


class WhatIfView(APIView):
    """Would granting these entitlements to this identity create a conflict? Changes nothing."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=WhatIfRequestSerializer, responses={200: dict})
    def post(self, request):
        if not acl.can_attempt(request.user, Rule, acl.VIEW):
            raise PermissionDenied("viewing SoD rules is not allowed")
        body = WhatIfRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        identity = Identity.objects.restrict(request.user).filter(pk=body.validated_data["identity"]).first()
        if identity is None:
            raise NotFound({"identity": "no identity with this id that you can see"})
        wanted = body.validated_data["entitlements"]
        entitlements = list(Entitlement.objects.restrict(request.user).filter(pk__in=wanted))
        missing = sorted(set(wanted) - {e.pk for e in entitlements})
        if missing:
            raise ValidationError(
                {"entitlements": [f"no entitlement with id {pk} that you can see" for pk in missing]}
            )
        hits = what_if(identity, entitlements)
        return Response(
            {
                "identity": identity.pk,
                "conflict": any(not hit.already_violated for hit in hits),
                "rules_hit": [hit.as_dict() for hit in hits],
            }
        )


class ControlExceptionSerializer(serializers.ModelSerializer):
    owner = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True, help_text="Username; null until assigned."
    )

    class Meta:
        model = ControlException
        fields = [
            "id",
            "kind",
            "severity",
            "key",
            "title",
            "detail",
            "identity",
            "application",
            "violation",
            "owner",
            "due_on",
            "status",
            "opened_at",
            "answered_until",
            "closed_at",
            "close_reason",
            "proof",
            "acceptance_until",
        ]
        read_only_fields = fields


class ExceptionActionSerializer(serializers.Serializer):
    """The body of an exception action; which fields matter depends on the action."""

    owner = serializers.SlugRelatedField(
        slug_field="username", queryset=User.objects.filter(is_active=True), required=False
    )
    text = serializers.CharField(required=False, allow_blank=True)
    remediation = serializers.BooleanField(required=False, default=False)
    control = serializers.CharField(required=False, allow_blank=True)
    justification = serializers.CharField(required=False, allow_blank=True)
    until = serializers.DateField(required=False)
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    proof = serializers.CharField(required=False, allow_blank=True)

    REQUIRED = {
        "assign": ("owner",),
        "comment": ("text",),
        "mitigate": ("control", "until"),
        "accept": ("justification", "until"),
        "close": ("proof",),
    }

    def for_action(self, action: str) -> dict:
        data = self.validated_data
        missing = [name for name in self.REQUIRED.get(action, ()) if name not in data]
        if missing:
            raise ValidationError({name: ["This field is required."] for name in missing})
        return {
            "assign": lambda: {"owner": data["owner"]},
            "comment": lambda: {"text": data["text"], "remediation": data.get("remediation", False)},
            "mitigate": lambda: {"control": data["control"], "until": data["until"]},
            "accept": lambda: {"justification": data["justification"], "until": data["until"]},
            "approve": lambda: {"approve": True, "note": data.get("note", "")},
            "reject": lambda: {"approve": False, "note": data.get("note", "")},
            "close": lambda: {"proof": data["proof"]},
        }[action]()


_EXCEPTION_SERVICES = {
    "assign": exception_services.assign,
    "comment": exception_services.comment,
    "mitigate": exception_services.mitigate,
    "accept": exception_services.request_acceptance,
    "approve": exception_services.decide_acceptance,
    "reject": exception_services.decide_acceptance,
    "close": exception_services.close,
}


class ControlExceptionViewSet(RestrictedReadOnlyViewSet):
    """The exception queue. POST /{id}/{assign|comment|mitigate|accept|approve|reject|close}/."""

    queryset = ControlException.objects.select_related("owner")
    serializer_class = ControlExceptionSerializer
    filterset_class = ExceptionFilter

    def get_permissions(self):
        if self.action in _EXCEPTION_SERVICES:
            return [IsAuthenticated()]
        return super().get_permissions()

    def _act(self, request, name: str):
        acl.require(request.user, ControlException, acl.CHANGE)
        exception = self.get_object()
        body = ExceptionActionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        exception = _EXCEPTION_SERVICES[name](
            exception_id=exception.pk, user=request.user, **body.for_action(name)
        )
        return Response(ControlExceptionSerializer(exception).data)

    @extend_schema(request=ExceptionActionSerializer, responses={200: ControlExceptionSerializer})
    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None):
        return self._act(request, "assign")

    @extend_schema(request=ExceptionActionSerializer, responses={200: ControlExceptionSerializer})
    @action(detail=True, methods=["post"])
    def comment(self, request, pk=None):
        return self._act(request, "comment")

    @extend_schema(request=ExceptionActionSerializer, responses={200: ControlExceptionSerializer})
    @action(detail=True, methods=["post"])
    def mitigate(self, request, pk=None):
        return self._act(request, "mitigate")

    @extend_schema(request=ExceptionActionSerializer, responses={200: ControlExceptionSerializer})
    @action(detail=True, methods=["post"])
    def accept(self, request, pk=None):
        return self._act(request, "accept")

    @extend_schema(request=ExceptionActionSerializer, responses={200: ControlExceptionSerializer})
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        return self._act(request, "approve")

    @extend_schema(request=ExceptionActionSerializer, responses={200: ControlExceptionSerializer})
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        return self._act(request, "reject")

    @extend_schema(request=ExceptionActionSerializer, responses={200: ControlExceptionSerializer})
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        return self._act(request, "close")
