"""Writing evidence. The only module that inserts EvidenceEvent rows.

Appends are serialised so the chain never forks or gaps: on PostgreSQL a transaction-scoped advisory lock
is taken before the chain head is read and held until the caller's transaction commits or rolls back; on
SQLite every write transaction is IMMEDIATE (settings), which holds the database write lock from BEGIN.
The event is written inside the caller's transaction, so it commits or vanishes with the change it records.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.utils import timezone

from evidence.chain import GENESIS_HASH, event_hash
from evidence.models import EvidenceEvent

_ACTION = re.compile(r"[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+")
# Arbitrary but fixed: the advisory lock key that guards the evidence chain head ("SOXG" in ASCII).
CHAIN_LOCK_KEY = 0x534F5847


@dataclass(frozen=True)
class Actor:
    """Who caused a change: a signed-in user, or a named system actor (a Celery task, a command)."""

    kind: str
    name: str
    user_id: int | None = None

    @classmethod
    def for_user(cls, user) -> Actor:
        name = user.get_full_name() or user.get_username()
        return cls(EvidenceEvent.ActorKind.USER, f"{name} ({user.get_username()})"[:200], user.pk)

    @classmethod
    def system(cls, name: str) -> Actor:
        return cls(EvidenceEvent.ActorKind.SYSTEM, f"system:{name}"[:200], None)


@dataclass(frozen=True)
class Subject:
    type: str
    id: str
    repr: str

    @classmethod
    def of(cls, obj) -> Subject:
        return cls(obj._meta.label_lower, str(obj.pk), str(obj)[:255])


@dataclass(frozen=True)
class Event:
    action: str
    subject: Subject
    payload: dict[str, Any] = field(default_factory=dict)


def canonical_payload(payload: dict[str, Any] | None) -> str:
    # Round-trip through DjangoJSONEncoder first so dates, decimals and UUIDs become strings; then encode
    # canonically. Floats are refused by allow_nan=False only for NaN/inf; callers should prefer strings.
    plain = json.loads(json.dumps(payload or {}, cls=DjangoJSONEncoder))
    return json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def event_record(
    *, actor: Actor, action: str, subject: Subject | Any, payload: dict | None = None
) -> EvidenceEvent:
    """Append one event to the chain inside the caller's transaction."""
    if not isinstance(subject, Subject):
        subject = Subject.of(subject)
    return events_record(actor=actor, events=[Event(action, subject, payload or {})])[-1]


def events_record(*, actor: Actor, events: Iterable[Event], batch_size: int = 2000) -> list[EvidenceEvent]:
    """Append many events under one lock (bulk paths: imports, seeding). Returns the events written."""
    _validate_actor(actor)
    written: list[EvidenceEvent] = []
    with transaction.atomic():
        _lock_chain()
        head = EvidenceEvent.objects.order_by("-sequence").values_list("sequence", "hash").first()
        sequence, prev_hash = head if head else (0, GENESIS_HASH)
        batch: list[EvidenceEvent] = []
        for event in events:
            _validate_action(event.action)
            sequence += 1
            row = EvidenceEvent(
                sequence=sequence,
                # Taken under the lock, so times never run backwards along the chain.
                occurred_at=timezone.now(),
                actor_kind=actor.kind,
                actor_user_id=actor.user_id,
                actor_name=actor.name,
                action=event.action,
                subject_type=event.subject.type,
                subject_id=event.subject.id[:64],
                subject_repr=event.subject.repr[:255],
                payload=canonical_payload(event.payload),
                prev_hash=prev_hash,
            )
            row.hash = event_hash(row.hashed_fields())
            prev_hash = row.hash
            batch.append(row)
            if len(batch) >= batch_size:
                written.extend(EvidenceEvent.objects.bulk_create(batch))
                batch = []
        if batch:
            written.extend(EvidenceEvent.objects.bulk_create(batch))
    return written


def _lock_chain() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [CHAIN_LOCK_KEY])


def _validate_actor(actor: Actor) -> None:
    if actor.kind == EvidenceEvent.ActorKind.USER and actor.user_id is None:
        raise ValueError("a user actor needs a user id")
    if not actor.name:
        raise ValueError("an actor needs a name")


def _validate_action(action: str) -> None:
    if not _ACTION.fullmatch(action):
        raise ValueError(
            f"evidence action {action!r} must be a dotted lower-case verb such as access.grant.added"
        )


# --- Chain verification runs ----------------------------------------------------------------------------


def verification_request(*, actor: Actor, user=None):
    """Queue a verification of the whole chain; a worker runs it after this transaction commits."""
    from evidence.models import ChainVerification
    from evidence.tasks import verification_job
    from soxgov import jobs

    with transaction.atomic():
        verification = ChainVerification.objects.create(requested_by=user, requested_by_name=actor.name)
        event_record(actor=actor, action="evidence.verification.requested", subject=verification)
        jobs.enqueue(verification_job, verification.pk, origin=verification)
    return verification


def verification_run(*, verification_id: int) -> bool:
    """Run one queued verification. Safe to call twice and after a crash: only the caller that holds its lease
    and claims the row runs it, and one left running by a dead worker is run again."""
    from soxgov import leases

    with leases.held(leases.Kind.VERIFICATION, verification_id) as mine:
        return mine and _verification_run(verification_id)


def verification_give_up(job, cause: str) -> None:
    """The verification's job was given up (its attempts used up): it fails with the cause, once."""
    _verification_failed(job.args[0], cause)


def _verification_failed(verification_id: int, cause: str) -> None:
    from evidence.models import ChainVerification

    with transaction.atomic():
        ended = ChainVerification.objects.filter(
            pk=verification_id,
            status__in=[ChainVerification.Status.QUEUED, ChainVerification.Status.RUNNING],
        ).update(status=ChainVerification.Status.FAILED, finished_at=timezone.now(), detail=cause[:2000])
        if ended:
            event_record(
                actor=Actor.system("evidence.verify_chain"),
                action="evidence.verification.failed",
                subject=Subject(
                    "evidence.chainverification", str(verification_id), f"verification #{verification_id}"
                ),
                payload={"error": cause[:500]},
            )


def _verification_run(verification_id: int) -> bool:
    from django.db import InterfaceError, OperationalError

    from evidence.checkpoints import chain_against_checkpoint
    from evidence.models import ChainVerification
    from evidence.selectors import chain_verify
    from soxgov.jobs import describe

    claimed = ChainVerification.objects.filter(
        pk=verification_id,
        status__in=[ChainVerification.Status.QUEUED, ChainVerification.Status.RUNNING],
    ).update(status=ChainVerification.Status.RUNNING, started_at=timezone.now())
    if claimed != 1:
        return False
    try:
        result = chain_verify()
        # A chain rebuilt consistently verifies on its own; only the signed checkpoint outside the database says
        # it was rewritten (the same check as verify_evidence).
        check = chain_against_checkpoint() if result.intact else None
    except Exception as exc:  # recorded, then re-raised so the worker logs the traceback
        if not (connection.vendor == "postgresql" and isinstance(exc, InterfaceError | OperationalError)):
            _verification_failed(verification_id, describe(exc))
        raise  # a lost connection: the job runs it again
    intact = result.intact and check.ok
    broken_sequence = result.broken_sequence
    if check is not None and check.mismatch:
        broken_sequence = check.checkpoint["sequence"]
    if check is None:
        detail = result.summary()
    elif check.ok:
        detail = f"{result.summary()}; {check.summary()}"
    else:
        detail = f"{check.summary()} (its links recompute: {result.count} events, head {result.head_hash})"
    with transaction.atomic():
        verification = ChainVerification.objects.select_for_update().get(pk=verification_id)
        if verification.status != ChainVerification.Status.RUNNING:
            return False
        verification.status = ChainVerification.Status.INTACT if intact else ChainVerification.Status.BROKEN
        verification.finished_at = timezone.now()
        verification.event_count = result.count
        verification.head_sequence = result.head_sequence
        verification.head_hash = result.head_hash
        verification.broken_sequence = broken_sequence
        verification.detail = detail
        verification.save()
        event_record(
            actor=Actor.system("evidence.verify_chain"),
            action="evidence.chain.verified" if intact else "evidence.chain.broken",
            subject=verification,
            payload={
                "intact": intact,
                "event_count": result.count,
                "head_sequence": result.head_sequence,
                "head_hash": result.head_hash,
                "broken_sequence": broken_sequence,
                "checkpoint": None if check is None or check.checkpoint is None else check.checkpoint["path"],
                "detail": detail,
            },
        )
    return True
