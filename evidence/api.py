"""Read-only REST endpoints for the evidence trail and chain verifications."""

from rest_framework import serializers

from evidence.filters import EvidenceEventFilter
from evidence.models import ChainVerification, EvidenceEvent
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
