"""Durable jobs: work recorded with what it belongs to, sent to a worker, and retried or given up exactly once.

Life cycle of a ``soxgov.models.Job``::

    enqueue (in the caller's transaction) -> pending --send--> running --> done
                                               ^                 |  \\--> pending (error: retried after a pause)
                                               |   worker lost   |   \\-> failed (attempts used up: give_up hook)
                                               +---- reaper -----+
    cancel: pending | running -> cancelled (the owner of the work decides what that means for it)

Why an outbox and not ``transaction.on_commit(task.delay)``: a commit and a message to the broker cannot be made
atomic, so the message is only a wake-up call. Whatever happens to it (broker down when the run was requested,
Redis restarted without persistence, the worker killed after it took the message), the job row still says what
is left to do, and the reaper (``reap``, a beat task every ``SOXGOV_REAP_SECONDS``) sends it again. Sending twice
is harmless: a worker runs a job only while it holds the job's lease (soxgov/leases.py), and the work itself is
claimed by a status update, so a second delivery finds nothing to do.

Job functions are registered with ``@job(name, attempts=..., give_up=...)`` in each app's tasks module; their
arguments are JSON. A job function must be safe to run again after a crash at any point.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Callable

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from soxgov import leases
from soxgov.models import Job

log = logging.getLogger(__name__)

RETRY_FIRST_SECONDS = 5
RETRY_MAX_SECONDS = 3600


@dataclasses.dataclass(frozen=True)
class Spec:
    name: str
    func: Callable
    attempts: int | None
    give_up: Callable[[Job, str], None] | None
    label: str


_specs: dict[str, Spec] = {}
_sweepers: list[Callable[[], int]] = []


def job(
    name: str,
    *,
    label: str,
    attempts: int | None = None,
    give_up: Callable[[Job, str], None] | None = None,
):
    """Register ``func`` as the job ``name`` (``label``: what it does, in words for a page). ``attempts``: how
    many starts before it is given up (None: retried until done); ``give_up(job, cause)`` runs in the
    transaction that marks the job failed."""

    def register(func):
        spec = Spec(name, func, attempts, give_up, label)
        _specs[name] = spec
        func.job_spec = spec
        return func

    return register


def sweeper(func: Callable[[], int]) -> Callable[[], int]:
    """Register a clean-up the reaper runs each time (e.g. temporary files of a pack whose worker died)."""
    _sweepers.append(func)
    return func


def origin_of(instance) -> tuple[str, str]:
    return instance._meta.label_lower, str(instance.pk)


# --- Enqueueing and sending -------------------------------------------------------------------------------


def enqueue(target, *args, origin=None, send: bool = True) -> Job:
    """Record a job for ``target`` (a function registered with ``@job``) in the current transaction; it is sent
    to a worker after the commit (``send=False``: the caller runs it itself with ``execute``)."""
    spec: Spec = target.job_spec
    origin_type, origin_id = origin_of(origin) if origin is not None else ("", "")
    row = Job.objects.create(
        task=spec.name,
        args=list(args),
        origin_type=origin_type,
        origin_id=origin_id,
        max_attempts=spec.attempts,
    )
    if send:
        transaction.on_commit(lambda: dispatch(row.pk))
    return row


def _eager() -> bool:
    from soxgov.celery import app

    return bool(app.conf.task_always_eager)


def dispatch(job_id: int, *, countdown: float | None = None) -> bool:
    """Send the job to a worker. A broker outage is not an error here: the job stays unsent and the reaper sends
    it when the broker is back. In the embedded mode (no broker) the job runs now, in this process."""
    if _eager():
        Job.objects.filter(pk=job_id).update(sent_at=timezone.now(), sends=F("sends") + 1)
        execute(job_id)
        return True
    from soxgov.tasks import run_job

    try:
        run_job.apply_async((job_id,), countdown=countdown, retry=False)
    except Exception as exc:  # any broker failure; the job row is the record of what is left to do
        log.warning("job %s not sent; the reaper sends it when the broker is back: %s", job_id, describe(exc))
        return False
    Job.objects.filter(pk=job_id).update(sent_at=timezone.now(), sends=F("sends") + 1)
    return True


# --- Running ------------------------------------------------------------------------------------------------


def execute(job_id: int) -> str:
    """Run one job (the worker's entry point). Returns the job's status afterwards, or "busy" when another live
    worker holds it."""
    with leases.held(leases.Kind.JOB, job_id) as mine:
        if not mine:
            return "busy"
        row = Job.objects.filter(pk=job_id).first()
        if row is None or row.status not in Job.OPEN:
            return row.status if row else "missing"
        spec = _spec(row.task)
        if spec is None:
            return _give_up(row, f"no job named {row.task!r} is registered")
        if row.max_attempts is not None and row.attempts >= row.max_attempts:
            return _give_up(row, _gave_up_after(row))
        # Running too: holding the lease, a running job can only be one whose worker died.
        Job.objects.filter(pk=row.pk, status__in=Job.OPEN).update(
            status=Job.Status.RUNNING, attempts=F("attempts") + 1, started_at=timezone.now(), not_before=None
        )
        row.refresh_from_db()
        try:
            spec.func(*row.args)
        except Exception as exc:
            return _failed_attempt(row, exc)
        Job.objects.filter(pk=row.pk, status=Job.Status.RUNNING, attempts=row.attempts).update(
            status=Job.Status.DONE, finished_at=timezone.now(), error=""
        )
        return Job.Status.DONE


def _spec(name: str) -> Spec | None:
    if name not in _specs:
        # A process that did not import the tasks modules yet (a command, the web process): Celery knows them.
        from soxgov.celery import app

        app.loader.import_default_modules()
    return _specs.get(name)


def label(name: str) -> str:
    spec = _spec(name)
    return spec.label if spec is not None else name


def _failed_attempt(row: Job, exc: Exception) -> str:
    cause = describe(exc)
    recover_connection()
    log.warning("job %s (%s) attempt %s failed: %s", row.pk, row.task, row.attempts, cause)
    if row.max_attempts is not None and row.attempts >= row.max_attempts:
        status = _give_up(row, f"{_gave_up_after(row)}; the last error: {cause}")
    else:
        pause = min(RETRY_FIRST_SECONDS * 2 ** (row.attempts - 1), RETRY_MAX_SECONDS)
        retried = Job.objects.filter(pk=row.pk, status=Job.Status.RUNNING, attempts=row.attempts).update(
            status=Job.Status.PENDING,
            error=cause[:4000],
            not_before=timezone.now() + dt.timedelta(seconds=pause),
        )
        status = Job.Status.PENDING
        if retried and not _eager():
            dispatch(row.pk, countdown=pause)
    if _eager():
        raise exc  # the embedded mode has no worker log: the caller sees the error, as Celery's eager mode does
    return status


def _gave_up_after(row: Job) -> str:
    return f"given up after {row.attempts} attempt(s)"


def _give_up(row: Job, cause: str) -> str:
    spec = _specs.get(row.task)
    with transaction.atomic():
        ended = Job.objects.filter(pk=row.pk, status__in=Job.OPEN).update(
            status=Job.Status.FAILED, finished_at=timezone.now(), error=cause[:4000]
        )
        if ended and spec is not None and spec.give_up is not None:
            spec.give_up(row, cause)
    return Job.Status.FAILED


def cancel(*, origin) -> int:
    """Cancel the open jobs of ``origin`` (in the caller's transaction, which evidences why)."""
    origin_type, origin_id = origin_of(origin)
    return Job.objects.filter(origin_type=origin_type, origin_id=origin_id, status__in=Job.OPEN).update(
        status=Job.Status.CANCELLED, finished_at=timezone.now()
    )


def of(origin):
    """The jobs of ``origin``, oldest first (a run's page shows its follow-ups)."""
    origin_type, origin_id = origin_of(origin)
    return Job.objects.filter(origin_type=origin_type, origin_id=origin_id).order_by("pk")


# --- The reaper ---------------------------------------------------------------------------------------------


def reap(*, resend_after: float | None = None) -> dict[str, int]:
    """Find work whose worker is gone and work that was never delivered, and set both going again.

    A running job whose lease is free goes back to pending (or is given up when its attempts are used up). A
    pending job is sent when it never was, or when it was sent ``resend_after`` seconds ago (doubling with each
    send, up to 64 times that) and still has not started: its message was lost.
    """
    resend_after = settings.SOXGOV_JOB_RESEND_SECONDS if resend_after is None else resend_after
    found = {"restarted": 0, "given_up": 0, "sent": 0, "unsent": 0, "swept": 0}
    for row in Job.objects.filter(status=Job.Status.RUNNING).order_by("pk"):
        with leases.orphaned(leases.Kind.JOB, row.pk, started_at=row.started_at) as gone:
            if not gone:
                continue
            row.refresh_from_db()
            if row.status != Job.Status.RUNNING:
                continue
            lost = f"its worker was lost during attempt {row.attempts}"
            if row.max_attempts is not None and row.attempts >= row.max_attempts:
                _give_up(row, f"{_gave_up_after(row)}; {lost}")
                found["given_up"] += 1
                continue
            Job.objects.filter(pk=row.pk, status=Job.Status.RUNNING).update(
                status=Job.Status.PENDING, sent_at=None, error=lost
            )
            found["restarted"] += 1
    now = timezone.now()
    due = Job.objects.filter(status=Job.Status.PENDING).filter(
        Q(not_before__isnull=True) | Q(not_before__lte=now)
    )
    for row in due.order_by("pk"):
        if row.sent_at is not None:
            wait = resend_after * 2 ** min(max(row.sends - 1, 0), 6)
            if row.sent_at > now - dt.timedelta(seconds=wait):
                continue
        if dispatch(row.pk):
            found["sent"] += 1
        else:
            found["unsent"] += Job.objects.filter(status=Job.Status.PENDING, sent_at__isnull=True).count()
            break  # the broker is down: the next round tries again
    for sweep in _sweepers:
        found["swept"] += sweep()
    return found


# --- Errors and connections -----------------------------------------------------------------------------------


def describe(exc: BaseException) -> str:
    """``exc`` with the errors it happened during, innermost last: "InterfaceError: connection already closed"
    alone hides that the server terminated the connection first."""
    parts, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        parts.append(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return " <- during: ".join(parts)


def recover_connection() -> None:
    """Drop this thread's database connection when it is broken, so that the next query opens a fresh one."""
    if connection.connection is None or connection.in_atomic_block:
        return
    try:
        usable = connection.is_usable()
    except Exception:
        usable = False
    if not usable:
        connection.close()
