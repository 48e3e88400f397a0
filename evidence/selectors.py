"""Reading evidence."""

from django.db.models import BigIntegerField, Case, Exists, OuterRef, Q, When
from django.db.models.functions import Cast
from django.db.models.lookups import Regex

from evidence.chain import Verification, verify
from evidence.models import ChainVerification, EvidenceEvent

# What str(pk) writes: no sign, no leading zero, no spaces, so '007', '+7' or 'abc' name no row. 18 digits keep
# the cast inside bigint whatever the subject_id holds.
_CANONICAL_ID = r"^[1-9][0-9]{0,17}$"

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


def subjects_in(subject_type: str, rows) -> Q:
    """Events about any row of ``rows`` (a queryset of the model ``subject_type`` names).

    One correlated EXISTS per event probing the row's primary key: the rows' ids are never listed in Python (a
    1M-item campaign made a 10 MB statement) nor compared as text (``subject_id IN (SELECT pk::text ...)`` inside
    an OR re-scanned 1M text values per event on PostgreSQL: 558 s). The CASE casts only canonical decimals, so
    the other events' subject_ids never reach the cast, whatever order the database evaluates conditions in.
    """
    subject_pk = Case(
        When(
            Regex(OuterRef("subject_id"), _CANONICAL_ID),
            then=Cast(OuterRef("subject_id"), BigIntegerField()),
        )
    )
    return Q(subject_type=subject_type) & Q(Exists(rows.filter(pk=subject_pk)))
