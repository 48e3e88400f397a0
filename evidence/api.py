"""Read-only REST endpoints for the evidence trail, chain verifications, evidence packs and signing keys."""

from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from evidence import pack_services
from evidence.filters import EvidenceEventFilter
from evidence.models import ChainVerification, EvidenceEvent, EvidencePack, SigningKey
from evidence.views import pack_file_response
from soxgov import access
from soxgov.api.viewsets import RestrictedReadOnlyViewSet


class EvidenceEventSerializer(serializers.ModelSerializer):
    payload = serializers.JSONField(source="payload_data", read_only=True)
    payload_canonical = serializers.CharField(source="payload", read_only=True)

    class Meta:
        model = EvidenceEvent
        fields = [
            "sequence",
            "occurred_at",
            "actor_kind",
            "actor_user",
            "actor_name",
            "action",
            "subject_type",
            "subject_id",
            "subject_repr",
            "payload",
            "payload_canonical",
            "prev_hash",
            "hash",
        ]


class ChainVerificationSerializer(serializers.ModelSerializer):
    class Meta:
        model = ChainVerification
        fields = [
            "id",
            "status",
            "requested_by_name",
            "requested_at",
            "started_at",
            "finished_at",
            "event_count",
            "head_sequence",
            "head_hash",
            "broken_sequence",
            "detail",
        ]


class EvidenceEventViewSet(RestrictedReadOnlyViewSet):
    queryset = EvidenceEvent.objects.all()
    serializer_class = EvidenceEventSerializer
    filterset_class = EvidenceEventFilter


class ChainVerificationViewSet(RestrictedReadOnlyViewSet):
    queryset = ChainVerification.objects.all()
    serializer_class = ChainVerificationSerializer


class EvidencePackSerializer(serializers.ModelSerializer):
    download = serializers.SerializerMethodField(help_text="Where to fetch the ZIP once the pack is built.")

    class Meta:
        model = EvidencePack
        fields = [
            "id",
            "scope",
            "scope_label",
            "status",
            "progress",
            "requested_by_name",
            "requested_at",
            "finished_at",
            "sha256",
            "size",
            "error",
            "download",
        ]

    def get_download(self, pack) -> str | None:
        if pack.status != EvidencePack.Status.DONE:
            return None
        return self.context["request"].build_absolute_uri(reverse("evidencepack-download", args=[pack.pk]))


class PackCancelSerializer(serializers.Serializer):
    reason = serializers.CharField(
        max_length=2000, help_text="Why the pack is cancelled (kept in the evidence)."
    )


class EvidencePackRequestSerializer(serializers.Serializer):
    campaign = serializers.IntegerField(help_text="The campaign whose pack to build.")


class EvidencePackViewSet(RestrictedReadOnlyViewSet):
    """Evidence packs: ask for one (POST), follow its progress, and download the ZIP once built (check it with
    its own verify_pack.py).

    ``POST {"campaign": id}`` builds a campaign's pack: a POST, as it starts work, but one that only reads
    evidence (the export itself is evidenced), so whoever may view packs may ask, the read-only auditor too.
    """

    queryset = EvidencePack.objects.all()
    serializer_class = EvidencePackSerializer
    access_actions = {"create": access.VIEW, "cancel": access.CHANGE}

    @extend_schema(request=PackCancelSerializer, responses={200: EvidencePackSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        """Cancel a queued or building (stuck) pack, saying why (409 when it already ended)."""
        pack = self.get_object()
        body = PackCancelSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        pack = pack_services.pack_cancel(
            pack_id=pack.pk, user=request.user, reason=body.validated_data["reason"]
        )
        return Response(self.get_serializer(pack).data)

    @extend_schema(responses={(200, "application/zip"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        return pack_file_response(self.get_object())

    @extend_schema(
        request=EvidencePackRequestSerializer,
        responses={200: EvidencePackSerializer, 202: EvidencePackSerializer},
    )
    def create(self, request):
        """A campaign's pack: queued now (202), or the one this user asked for minutes ago (200 once built)."""
        from reviews.models import Campaign

        body = EvidencePackRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        campaign = Campaign.objects.restrict(request.user).filter(pk=body.validated_data["campaign"]).first()
        if campaign is None:
            raise serializers.ValidationError({"campaign": f"No campaign {body.validated_data['campaign']}."})
        pack = pack_services.pack_request(campaign=campaign, user=request.user)
        done = pack.status == EvidencePack.Status.DONE
        return Response(self.get_serializer(pack).data, status=200 if done else 202)


class SigningKeySerializer(serializers.ModelSerializer):
    public_key_hex = serializers.CharField(source="public_key", read_only=True)
    public_key_pem = serializers.CharField(read_only=True)
    current = serializers.BooleanField(source="is_current", read_only=True)

    class Meta:
        model = SigningKey
        fields = [
            "id",
            "fingerprint",
            "algorithm",
            "public_key_hex",
            "public_key_pem",
            "registered_at",
            "retired_at",
            "current",
        ]


class SigningKeyViewSet(RestrictedReadOnlyViewSet):
    """The public keys SOXGov has signed checkpoints and evidence packs with: the current one and the retired.

    Compare the fingerprint with the one you were given out of band before trusting a key.
    """

    queryset = SigningKey.objects.all()
    serializer_class = SigningKeySerializer
