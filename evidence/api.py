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
from soxgov.api.viewsets import RestrictedReadOnlyViewSet
from soxgov.views import restricted_object


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


class EvidencePackViewSet(RestrictedReadOnlyViewSet):
    """Evidence packs: their progress, and the ZIP once built (check it with its own verify_pack.py).

    ``GET campaign/{id}/`` asks for a campaign's pack, a GET as in the browser: an export changes nothing an
    auditor could ask about (the export itself is evidenced), so the read-only auditor's token may do it.
    """

    queryset = EvidencePack.objects.all()
    serializer_class = EvidencePackSerializer

    @extend_schema(responses={(200, "application/zip"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        return pack_file_response(self.get_object())

    @extend_schema(responses={200: EvidencePackSerializer, 202: EvidencePackSerializer})
    @action(detail=False, methods=["get"], url_path=r"campaign/(?P<campaign_id>[0-9]+)")
    def campaign(self, request, campaign_id=None):
        """The pack of a campaign: queued now (202), or the one this user asked for minutes ago."""
        from reviews.models import Campaign

        campaign = restricted_object(request, Campaign, campaign_id)
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
