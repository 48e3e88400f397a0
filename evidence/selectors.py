"""Reading evidence."""

from evidence.chain import Verification, verify
from evidence.models import ChainVerification, EvidenceEvent

_FIELDS = (
    "sequence",
    "occurred_at",
    "actor_kind",
    "actor_user_id",
    "actor_name",
    "action",
    "subject_type",
    "subject_id",
    "subject_repr",
    "payload",
    "prev_hash",
    "hash",
)


def _chain_rows(chunk_size: int):
    from evidence.chain import format_time

    rows = EvidenceEvent.objects.order_by("sequence").values_list(*_FIELDS).iterator(chunk_size=chunk_size)
    for values in rows:
        row = dict(zip(_FIELDS, values, strict=True))
        row["occurred_at"] = format_time(row["occurred_at"])
        row["actor_id"] = row.pop("actor_user_id")
        yield row


def chain_verify(*, chunk_size: int = 5000) -> Verification:
    """Recompute every link of the chain, streaming in sequence order (memory stays flat)."""
    return verify(_chain_rows(chunk_size))


def chain_head() -> EvidenceEvent | None:
    return EvidenceEvent.objects.order_by("-sequence").first()


def verification_latest() -> ChainVerification | None:
    return (
        ChainVerification.objects.exclude(status__in=["queued", "running"])
        .order_by("-finished_at", "-id")
        .first()
    )


def events_for_subject(obj, *, limit: int = 50):
    return EvidenceEvent.objects.filter(subject_type=obj._meta.label_lower, subject_id=str(obj.pk)).order_by(
        "-sequence"
    )[:limit]


def events_visible(user, obj, *, limit: int = 50):
    """The object's evidence, for users who may read evidence (an empty list for the others)."""
    from soxgov import access

    if not access.can_attempt(user, EvidenceEvent, access.VIEW):
        return []
    return events_for_subject(obj, limit=limit)
