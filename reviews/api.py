"""REST endpoints for campaigns and review work. Rows come from soxgov.access.restrict; writes go through
reviews.services (which refuse self-review, decisions on others' items and lost updates)."""

from dataclasses import asdict

from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from entitlements.models import Application
from reviews import samples, services
from reviews.campaign_drafts import CAMPAIGN_FIELDS, campaign_save
from reviews.filters import CampaignFilter, RemediationFilter, ReviewItemFilter, SampleFilter
from reviews.models import AuditSample, Campaign, Decision, RemediationTask, ReviewItem
from reviews.remediation import task_close_manually
from soxgov import access as acl
from soxgov.api.viewsets import RestrictedReadOnlyViewSet
from soxgov.models import User


class CampaignSerializer(serializers.ModelSerializer):
    applications = serializers.SlugRelatedField(
        many=True, slug_field="name", queryset=Application.objects.all(), required=False
    )
    fallback_reviewer = serializers.SlugRelatedField(slug_field="username", queryset=User.objects.all())
    named_reviewer = serializers.SlugRelatedField(
        slug_field="username", queryset=User.objects.all(), required=False, allow_null=True
    )

    class Meta:
        model = Campaign
        read_only_fields = [
            "status",
            "item_count",
            "created_at",
            "launched_at",
            "completed_at",
            "signed_off_at",
            "closed_at",
        ]
        fields = ["id", *CAMPAIGN_FIELDS, *read_only_fields]


class ReviewItemSerializer(serializers.ModelSerializer):
    reviewer = serializers.SlugRelatedField(slug_field="username", read_only=True)
    decided_by = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True, help_text="Username; null while pending."
    )
    flags = serializers.ListField(child=serializers.CharField(), read_only=True)

    class Meta:
        model = ReviewItem
        fields = [
            "id",
            "campaign",
            "grant_id",
            "application",
            "identity",
            "identity_name",
            "department",
            "account_key",
            "entitlement_key",
            "entitlement_name",
            "last_used_at",
            "flags",
            "reviewer",
            "status",
            "decided_by",
            "decided_at",
            "comment",
            "signed_off",
        ]
        read_only_fields = fields


class DecisionSerializer(serializers.ModelSerializer):
    actor = serializers.SlugRelatedField(slug_field="username", read_only=True)
    delegated_to = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True, help_text="Username; null unless delegated."
    )

    class Meta:
        model = Decision
        fields = ["id", "item", "action", "actor", "at", "comment", "delegated_to"]
        read_only_fields = fields


class DecideSerializer(serializers.Serializer):
    items = serializers.ListField(child=serializers.IntegerField(), min_length=1, max_length=50_000)
    action = serializers.ChoiceField(choices=["certify", "revoke"])
    comment = serializers.CharField(required=False, allow_blank=True, max_length=5000)


class DelegateSerializer(serializers.Serializer):
    items = serializers.ListField(child=serializers.IntegerField(), min_length=1, max_length=50_000)
    to_user = serializers.SlugRelatedField(
        slug_field="username", queryset=User.objects.filter(is_active=True)
    )
    reason = serializers.CharField(max_length=2000)


class SignOffSerializer(serializers.Serializer):
    attest = serializers.BooleanField(
        default=False, help_text="True: I confirm the attestation statement (SOXGOV_ATTESTATION_TEXT)."
    )


class CampaignViewSet(RestrictedReadOnlyViewSet, mixins.CreateModelMixin, mixins.UpdateModelMixin):
    """Campaigns: admins create and change drafts, preview, launch and close; reviewers sign off their part."""

    queryset = Campaign.objects.prefetch_related("applications")
    serializer_class = CampaignSerializer
    filterset_class = CampaignFilter

    def get_permissions(self):
        if self.action == "sign_off":
            return [IsAuthenticated()]
        return super().get_permissions()

    def perform_create(self, serializer):
        serializer.instance = campaign_save(user=self.request.user, **serializer.validated_data)

    def perform_update(self, serializer):
        serializer.instance = campaign_save(
            user=self.request.user, campaign_id=serializer.instance.pk, **serializer.validated_data
        )

    @extend_schema(responses={200: dict})
    @action(detail=True, methods=["get"])
    def preview(self, request, pk=None):
        acl.require(request.user, Campaign, acl.CHANGE)
        preview = services.campaign_preview(self.get_object())
        return Response(
            {
                "total": preview.total,
                "by_application": dict(preview.by_application),
                "by_reviewer": dict(preview.by_reviewer),
                "flagged": preview.flagged,
            }
        )

    @extend_schema(request=None, responses={200: CampaignSerializer})
    @action(detail=True, methods=["post"])
    def launch(self, request, pk=None):
        campaign = services.campaign_launch(campaign_id=self.get_object().pk, user=request.user)
        return Response(CampaignSerializer(campaign).data)

    @extend_schema(request=None, responses={200: CampaignSerializer})
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None):
        campaign = services.campaign_close(campaign_id=self.get_object().pk, user=request.user)
        return Response(CampaignSerializer(campaign).data)

    @extend_schema(request=SignOffSerializer, responses={201: dict})
    @action(detail=True, methods=["post"], url_path="sign-off")
    def sign_off(self, request, pk=None):
        acl.require(request.user, services.SignOff, acl.ADD)
        body = SignOffSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        record = services.sign_off(
            campaign_id=self.get_object().pk, user=request.user, attested=body.validated_data["attest"]
        )
        return Response({"campaign": record.campaign_id, "items": record.items, "at": record.at}, status=201)


class ReviewItemViewSet(RestrictedReadOnlyViewSet):
    """Review items (a reviewer sees the items routed to them). Decide or delegate many at once."""

    queryset = ReviewItem.objects.select_related("reviewer", "decided_by")
    serializer_class = ReviewItemSerializer
    filterset_class = ReviewItemFilter

    def get_permissions(self):
        if self.action in ("decide", "delegate"):
            return [IsAuthenticated()]
        return super().get_permissions()

    @extend_schema(request=DecideSerializer, responses={200: dict})
    @action(detail=False, methods=["post"])
    def decide(self, request):
        acl.require(request.user, ReviewItem, acl.CHANGE)
        body = DecideSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        decided = services.decide(
            item_ids=data["items"],
            user=request.user,
            certify=data["action"] == "certify",
            comment=data.get("comment", ""),
        )
        return Response({"decided": decided})

    @extend_schema(request=DelegateSerializer, responses={200: dict})
    @action(detail=False, methods=["post"])
    def delegate(self, request):
        acl.require(request.user, ReviewItem, acl.CHANGE)
        body = DelegateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        delegated = services.delegate(
            item_ids=data["items"], user=request.user, to_user=data["to_user"], reason=data["reason"]
        )
        return Response({"delegated": delegated})


class DecisionViewSet(RestrictedReadOnlyViewSet):
    queryset = Decision.objects.select_related("actor", "delegated_to")
    serializer_class = DecisionSerializer


class RemediationTaskSerializer(serializers.ModelSerializer):
    class Meta:
        model = RemediationTask
        fields = [
            "id",
            "item",
            "application",
            "account_key",
            "entitlement_key",
            "identity_name",
            "owner",
            "due_on",
            "ticket",
            "notes",
            "status",
            "created_at",
            "closed_at",
            "closed_by",
            "closing_run",
            "proof",
            "attachment_sha256",
        ]
        read_only_fields = fields


class ManualCloseSerializer(serializers.Serializer):
    proof = serializers.CharField()
    ticket = serializers.CharField(required=False, allow_blank=True, max_length=100)
    attachment = serializers.FileField(required=False, help_text="multipart only; types and size: README")


class RemediationTaskViewSet(RestrictedReadOnlyViewSet):
    """Remediation tasks; control owners and admins close one manually with proof (POST .../close/)."""

    queryset = RemediationTask.objects.all()
    serializer_class = RemediationTaskSerializer
    filterset_class = RemediationFilter

    def get_permissions(self):
        if self.action == "close":
            return [IsAuthenticated()]
        return super().get_permissions()

    @extend_schema(request=ManualCloseSerializer, responses={200: RemediationTaskSerializer})
    @action(detail=True, methods=["post"], parser_classes=[JSONParser, MultiPartParser])
    def close(self, request, pk=None):
        acl.require(request.user, RemediationTask, acl.CHANGE)
        task = self.get_object()
        body = ManualCloseSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        task = task_close_manually(
            task_id=task.pk,
            user=request.user,
            proof=body.validated_data["proof"],
            ticket=body.validated_data.get("ticket", ""),
            attachment=body.validated_data.get("attachment"),
        )
        return Response(RemediationTaskSerializer(task).data)


# --- Samples for auditors -------------------------------------------------------------------------------------


class AuditSampleSerializer(serializers.ModelSerializer):
    drawn_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = AuditSample
        fields = [
            "id",
            "kind",
            "campaign",
            "since",
            "until",
            "size_asked",
            "size",
            "seed",
            "stratified",
            "population_count",
            "population_sha256",
            "selected",
            "strata",
            "drawn_by",
            "drawn_at",
        ]
        read_only_fields = fields


class AuditSampleDetailSerializer(AuditSampleSerializer):
    verification = serializers.SerializerMethodField(
        help_text="Re-drawn now from the stored parameters over the current population."
    )

    class Meta(AuditSampleSerializer.Meta):
        fields = [*AuditSampleSerializer.Meta.fields, "verification"]
        read_only_fields = fields

    @extend_schema_field(dict)
    def get_verification(self, sample) -> dict:
        check = samples.sample_verify(sample)
        return {**asdict(check), "summary": check.summary}


class SampleDrawSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=AuditSample.Kind.choices)
    campaign = serializers.IntegerField(
        required=False, allow_null=True, help_text="Decisions, revocations, remediation."
    )
    since = serializers.DateField(
        required=False, allow_null=True, help_text="Exceptions, remediation: opened from."
    )
    until = serializers.DateField(required=False, allow_null=True)
    size = serializers.IntegerField(required=False, allow_null=True, help_text="Empty: the sizing table.")
    seed = serializers.CharField(max_length=200)
    stratified = serializers.BooleanField(default=False)


class AuditSampleViewSet(RestrictedReadOnlyViewSet, mixins.CreateModelMixin):
    """Samples for auditors: drawn by auditors and admins (reproducible from the seed and the population's
    SHA-256, evidenced as ``review.sample.drawn``); control owners read them. Never changed or deleted."""

    queryset = AuditSample.objects.select_related("drawn_by")
    serializer_class = AuditSampleSerializer
    filterset_class = SampleFilter

    def get_serializer_class(self):
        return AuditSampleDetailSerializer if self.action == "retrieve" else AuditSampleSerializer

    @extend_schema(request=SampleDrawSerializer, responses={201: AuditSampleSerializer})
    def create(self, request, *args, **kwargs):
        body = SampleDrawSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        sample = samples.sample_draw(
            user=request.user,
            kind=data["kind"],
            seed=data["seed"],
            campaign_id=data.get("campaign"),
            since=data.get("since"),
            until=data.get("until"),
            size=data.get("size"),
            stratified=data["stratified"],
        )
        return Response(AuditSampleSerializer(sample).data, status=status.HTTP_201_CREATED)
