"""Writes for identities and access: connector runs (pull -> stage -> diff -> hold | apply), approvals.

Every transition of a run writes evidence in the same transaction. A run's changes are applied in one
transaction together with its status and its evidence; a refused or held run changes nothing else.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Max
from django.utils import timezone

from entitlements import progress
from entitlements.connectors.files import AccessFileConnector, IdentityFileConnector
from entitlements.connectors.problems import ImportRefused, Problem, ProblemLog
from entitlements.connectors.roots import connector_file
from entitlements.connectors.sources import SourceError, SourceUnreachable, source_class
from entitlements.imports import access, digest, identities, sql
from entitlements.models import (
    Account,
    Application,
    Connector,
    ConnectorRun,
    Entitlement,
    Grant,
    Identity,
)
from entitlements.selves import four_eyes_refusal
from entitlements.signals import access_changed
from evidence.services import Actor, Event, Subject, event_record, events_record
from soxgov import access as acl
from soxgov import jobs, leases
from soxgov.exceptions import Conflict

IDENTITY_LOCK_KEY = 0x534F5849  # advisory lock serialising identity pulls ("SOXI")


class Held(Exception):
    def __init__(self, reason: str, counts: dict, rows: int = 0):
        super().__init__(reason)
        self.reason, self.counts, self.rows = reason, counts, rows


class Cancelled(Exception):
    """The run was cancelled while it ran: its transaction rolls back and changes nothing."""


ACTIVE = (ConnectorRun.Status.QUEUED, ConnectorRun.Status.APPROVED, ConnectorRun.Status.RUNNING)


# --- Creating runs ----------------------------------------------------------------------------------------


def run_create(
    *,
    kind: str,
    source,
    source_name: str,
    actor: Actor,
    user=None,
    application: Application | None = None,
    connector=None,
    send: bool = True,
) -> ConnectorRun:
    """Keep a content-addressed copy of the input and queue a run. ``source``: a path or a binary file object.

    The run and its job commit together, so a run is never queued without something that will execute it;
    the job is sent to a worker after the commit (``send=False``: the caller executes it, see run_job).
    """
    if kind not in ConnectorRun.Kind.values:
        raise ValueError(f"unknown run kind {kind!r}")
    stored, digest, size = _store_input(source, source_name)
    with transaction.atomic():
        run = ConnectorRun.objects.create(
            kind=kind,
            connector=connector,
            application=application,
            source_name=source_name[:255],
            source_path=str(stored),
            input_sha256=digest,
            input_bytes=size,
            started_by=user,
            started_by_name=actor.name,
        )
        event_record(
            actor=actor,
            action="import.run.queued",
            subject=run,
            payload={
                "kind": kind,
                "source": source_name,
                "input_sha256": digest,
                "bytes": size,
                "application": application.name if application else None,
            },
        )
        _enqueue(run, send=send)
    return run


def _enqueue(run: ConnectorRun, *, send: bool = True):
    from entitlements.tasks import run_job

    return jobs.enqueue(run_job, run.pk, origin=run, send=send)


def _store_input(source, source_name: str) -> tuple[Path, str, int]:
    """Copy the input into the import directory under its SHA-256; refuse it past the size limit.

    The hash is taken of the stored copy, not of the source, so it names exactly the bytes the run will read
    even if the source changes meanwhile. A path is copied by the kernel (shutil.copyfile uses sendfile here)
    and then hashed: 0.5 s for 327 MB, where reading, hashing and writing it through Python took 1.2 s.
    """
    directory = Path(settings.SOXGOV_IMPORT_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    limit = settings.SOXGOV_IMPORT_MAX_BYTES
    with tempfile.NamedTemporaryFile(dir=directory, delete=False, prefix=".incoming-") as out:
        incoming = Path(out.name)
        try:
            size = _copy_up_to(source, out, limit)
            if size is None:
                too_large = f"file is larger than the limit of {limit} bytes"
                raise ImportRefused([Problem(source_name, None, None, None, too_large)])
        except BaseException:
            incoming.unlink(missing_ok=True)  # on POSIX an open file can be unlinked; the with closes it
            raise
    with incoming.open("rb") as stored_copy:
        digest = hashlib.file_digest(stored_copy, "sha256").hexdigest()
    suffix = Path(source_name).suffix.lower()[:8]
    stored = directory / f"{digest}{suffix}"
    shutil.move(incoming, stored)
    return stored, digest, size


def _copy_up_to(source, out, limit: int) -> int | None:
    """Copy ``source`` (a path, or an upload's file object, the caller's to close) into ``out``: the bytes
    copied, or None past ``limit``. A stream is stopped just past the limit; a path is measured first and the
    copy again after (the source may have grown meanwhile)."""
    if isinstance(source, str | Path):
        out.close()
        if Path(source).stat().st_size > limit:
            return None
        shutil.copyfile(source, out.name)
        size = Path(out.name).stat().st_size
        return size if size <= limit else None
    size = 0
    while chunk := source.read(1 << 20):
        size += len(chunk)
        if size > limit:
            return None
        out.write(chunk)
    return size


# --- Executing runs ---------------------------------------------------------------------------------------


def run_execute(*, run_id: int) -> ConnectorRun:
    """Execute a queued or approved run. Safe to call twice and after a crash at any point: only the caller that
    holds the run's lease and claims it executes it, and a run left running by a dead worker is taken over."""
    with leases.held(leases.Kind.RUN, run_id) as mine:
        if not mine:  # a live worker is executing it
            return ConnectorRun.objects.get(pk=run_id)
        run, approved = _claim(run_id)
        if run is None:
            return ConnectorRun.objects.get(pk=run_id)
        actor = Actor.system(f"connector-run:{run.pk}")
        log = ProblemLog(run.source_name)
        progress.report(run.pk, phase="reading", percent=1)
        try:
            if run.kind == ConnectorRun.Kind.ACCESS:
                if run.connector_id and run.connector.is_source:
                    _identities_first(run, actor=actor)
                    log = ProblemLog(run.source_name)
                _execute_access(run, log=log, approved=approved, actor=actor)
            else:
                _execute_identities(run, log=log, approved=approved, actor=actor)
        except ImportRefused as refused:
            _finish_refused(run, refused, warnings=log.warnings, actor=actor)
        except Held as held:
            _finish_held(run, held, warnings=log.warnings, actor=actor)
        except Cancelled:
            pass
        except IdentitiesNotApplied as exc:
            _finish_failed(run, None, actor=actor, cause=str(exc), failure=ConnectorRun.Failure.IDENTITIES)
        except SourceError as exc:
            if exc.transient and connection.vendor == "postgresql":
                raise  # the job retries with backoff; giving up fails the run once (run_give_up)
            failure = ConnectorRun.Failure.UNREACHABLE
            if not isinstance(exc, SourceUnreachable):
                failure = ConnectorRun.Failure.SOURCE
            _finish_failed(run, None, actor=actor, cause=str(exc), failure=failure)
        except Exception as exc:
            if _transient(exc):
                # The run stays running with its lease free: the job's next attempt restarts it, and gives the
                # run up with this cause when its attempts are used up (run_give_up).
                raise
            _finish_failed(run, exc, actor=actor)
            raise
        progress.report(run.pk, phase=ConnectorRun.objects.get(pk=run.pk).status, percent=100)
        run.refresh_from_db()
        return run


def _claim(run_id: int) -> tuple[ConnectorRun | None, bool]:
    """Mark the run running (the caller holds its lease). A run found running lost its worker: it is restarted,
    which its evidence says. Returns the run (None when there is nothing to execute) and whether it was approved
    past the safety gate."""
    with transaction.atomic():
        run = (
            ConnectorRun.objects.select_for_update(of=("self",))
            .select_related("application", "connector", "started_by", "decided_by")
            .filter(pk=run_id, status__in=ACTIVE)
            .first()
        )
        if run is None:
            return None, False
        restarted = run.status == ConnectorRun.Status.RUNNING
        # Only an approval sets decided_at on a run that can still execute (a rejection ends it).
        approved = run.decided_at is not None
        previous_start = run.started_at
        run.status, run.started_at, run.error = ConnectorRun.Status.RUNNING, timezone.now(), ""
        run.save(update_fields=["status", "started_at", "error"])
        if restarted:
            last = jobs.of(run).exclude(error="").order_by("-pk").first()
            event_record(
                actor=Actor.system(f"connector-run:{run.pk}"),
                action="import.run.restarted",
                subject=run,
                payload={
                    "previous_start": previous_start.isoformat() if previous_start else None,
                    "cause": last.error[:500] if last else "its worker was lost",
                },
            )
    return run, approved


def _transient(exc: Exception) -> bool:
    """A lost or broken database connection, a deadlock: worth running again, not a fact about the input.
    (On SQLite, the embedded mode, there is no worker to run it again: the run fails with the cause.)"""
    from django.db import InterfaceError, OperationalError

    return connection.vendor == "postgresql" and isinstance(exc, InterfaceError | OperationalError)


def run_give_up(job, cause: str) -> None:
    """The run's job was given up (its attempts used up): the run fails with the cause, once. A source pull that
    never finished reading its source failed at the source (timeouts, resets: "unreachable")."""
    run = ConnectorRun.objects.filter(pk=job.args[0], status__in=ACTIVE).first()
    if run is not None:
        failure = ConnectorRun.Failure.NONE
        if run.connector_id and run.connector.is_source and not run.source_path:
            failure = ConnectorRun.Failure.UNREACHABLE
        _finish_failed(run, None, actor=Actor.system(f"connector-run:{run.pk}"), cause=cause, failure=failure)


class IdentitiesNotApplied(Exception):
    """A source pull's identities run was held or refused: its access is not applied either."""


def _identities_first(run: ConnectorRun, *, actor: Actor) -> None:
    """Read the source if this pull has not yet (entitlements/pulls.py), then apply its identities run, if
    any, before the access. Run again after a lost worker, it reads again or finds the copy and the child run
    where the last attempt left them."""
    from entitlements import pulls

    if pulls.needs_reading(run):
        child = pulls.source_read(run, actor=actor)
    else:
        child = run.children.filter(kind=ConnectorRun.Kind.IDENTITIES).order_by("-pk").first()
    if child is None:
        return
    if child.status == ConnectorRun.Status.RUNNING:
        child_actor = Actor.system(f"connector-run:{child.pk}")
        child_log = ProblemLog(child.source_name)
        try:
            _execute_identities(child, log=child_log, approved=False, actor=child_actor)
        except ImportRefused as refused:
            _finish_refused(child, refused, warnings=child_log.warnings, actor=child_actor)
        except Held as held:
            _finish_held(child, held, warnings=child_log.warnings, actor=child_actor)
        child.refresh_from_db()
    if child.status != ConnectorRun.Status.APPLIED:
        why = child.held_reason or child.error or child.get_status_display().lower()
        raise IdentitiesNotApplied(
            f"its identities run #{child.pk} was {child.get_status_display().lower()} ({why}); "
            "no access was applied"
        )


def _tune_session() -> None:
    """Plan this transaction for bulk work (PostgreSQL; both settings end with it).

    The default 4 MB work_mem spills million-row GROUP BYs to disk, and estimates over freshly staged tables
    are poor enough that the planner picks nested loops that probe an index half a million times; hash joins
    are never far worse here and usually far better. JIT compilation costs about half a second for each
    statement over its cost threshold, more than it saves on these simple scans.
    """
    if connection.vendor == "postgresql":
        sql.execute("SELECT set_config('work_mem', %s, true)", [settings.SOXGOV_IMPORT_WORK_MEM])
        sql.execute("SELECT set_config('enable_nestloop', 'off', true)")
        sql.execute("SELECT set_config('jit', 'off', true)")


def _strictest(connectors) -> tuple[int, int] | None:
    """The lowest percent and the lowest count among ``connectors`` (None for none)."""
    if not connectors:
        return None
    return (
        min(c.deletion_threshold_percent for c in connectors),
        min(c.deletion_threshold_count for c in connectors),
    )


def _default_thresholds() -> tuple[int, int]:
    return settings.SOXGOV_DELETION_THRESHOLD_PERCENT, settings.SOXGOV_DELETION_THRESHOLD_COUNT


def _access_thresholds(run: ConnectorRun, application_ids) -> dict[int, tuple[int, int]]:
    """The (percent, count) gate for each application a run covers: the strictest among the application's
    connectors (and the run's own connector).

    Whatever route a pull takes (a manual upload, the application's connector, a second connector created for
    it, a connector re-pointed at it), the gate in force is the strictest an admin set for that application, so
    a permissive connector cannot be used to get past a stricter one without a second admin (thresholds are only
    raised through entitlements/thresholds.py). The global default applies only to an application without
    connectors. A raised threshold still waiting for a second admin is not on the connector yet, so it is not in
    force here.
    """
    own = run.connector if run.connector_id else None
    theirs: dict[int, list[Connector]] = {}
    for connector in Connector.objects.exclude(kind=Connector.Kind.IDENTITY_FILE).filter(
        application_id__in=list(application_ids)
    ):
        theirs.setdefault(connector.application_id, []).append(connector)
    gates = {}
    for application_id in application_ids:
        candidates = [*theirs.get(application_id, []), *([own] if own is not None else [])]
        gates[application_id] = _strictest(candidates) or _default_thresholds()
    return gates


def _identity_thresholds(run: ConnectorRun) -> tuple[int, int]:
    """The strictest among the connectors that feed identities (identities files, sources configured to yield
    them) and the run's own: one gate for the people, whichever connector or upload brings them."""
    feeding = [c for c in Connector.objects.exclude(kind=Connector.Kind.ACCESS_FILE) if _feeds_identities(c)]
    if run.connector_id:
        feeding.append(run.connector)
    return _strictest(feeding) or _default_thresholds()


def _feeds_identities(connector: Connector) -> bool:
    """An identities file connector, or a source configured to yield identities (its thresholds then guard
    manual identities uploads too)."""
    if connector.kind == Connector.Kind.IDENTITY_FILE:
        return True
    try:
        return source_class(connector.kind)(connector.configuration, {}).feeds_identities
    except Exception:  # a source kind not installed here, a configuration it cannot read: it feeds nothing
        return False


def _change_reason(run: ConnectorRun) -> str:
    return f"connector run {run.pk}"


def _execute_access(run: ConnectorRun, *, log: ProblemLog, approved: bool, actor: Actor) -> None:
    names = {name.lower(): pk for pk, name in Application.objects.values_list("pk", "name")}
    # The run's start: its history rows carry it, which is how the next incremental pull tells them apart
    # from edits made outside pulls (entitlements/imports/incremental.py).
    when = run.started_at
    reason = _change_reason(run)
    with transaction.atomic():
        _tune_session()
        path = Path(run.source_path)
        fast = access.stage_fast(
            path,
            log=log,
            application_names=names,
            default_application=run.application_id,
            lock=_lock_applications,
        )
        if fast is None:
            connector = AccessFileConnector(
                path, log=log, application_names=names, default_application=run.application_id
            )
            rows, plan = access.stage(connector.records(), log=log), None
            log.raise_if_any()
            scope = connector.applications()
        else:
            rows, plan, scope = fast.rows, fast.plan, fast.applications
        # Again after the fast path, whose savepoint may have rolled back with the locks it took.
        _lock_applications(scope)
        progress.report(run.pk, phase="checking", percent=60, rows=rows)
        access.check(log=log, scope=scope)
        log.raise_if_any()
        progress.report(run.pk, phase="diffing", percent=70, rows=rows)
        diff = access.diff(scope=scope, plan=plan)
        if not approved:
            _gate_access(run, diff, rows)
        progress.report(run.pk, phase="applying", percent=80, rows=rows)
        limit = settings.SOXGOV_EVIDENCE_DETAIL_LIMIT
        detailed = diff.total_changes <= limit
        removals = access.removals_for_evidence(limit=limit) if detailed else []
        affected = set(access.identities_losing_access())
        marks = _history_marks((Entitlement, Account, Grant))
        access.apply(
            when=when,
            reason=reason,
            user_id=run.started_by_id,
            plan=plan,
            new_grants=diff.counts["grants"]["added"],
        )
        additions = access.additions_for_evidence(limit=limit, when=when) if detailed else []
        affected |= set(access.changed_identities())
        digest = _changes_digest(reason, marks)
        _finish_applied(
            run,
            actor=actor,
            rows=rows,
            counts=diff.counts,
            digest=digest,
            warnings=log.warnings,
            details=removals + additions,
            detailed=detailed,
            extra={
                "applications": sorted(diff.scope.values()),
                "approved": approved,
                # How much of the file was read row by row (an incremental pull re-reads changed accounts only).
                "rows_reread": plan.dirty_rows if plan is not None else rows,
            },
        )
        # In the run's transaction: the receivers record their follow-up jobs with the run's changes, so a
        # follow-up is never lost between the commit and a message to the broker.
        access_changed.send(
            sender=ConnectorRun, run=run, identity_ids=sorted(affected), application_ids=sorted(scope)
        )


def _lock_applications(application_ids) -> None:
    """Serialise pulls of the same applications (PostgreSQL row locks; SQLite holds the write lock anyway).

    FOR NO KEY UPDATE, not FOR UPDATE: two pulls still exclude each other, but a transaction that only refers to
    the application (a reviewer's revoke creating a remediation task checks its foreign key with FOR KEY SHARE
    at COMMIT, while holding the evidence chain's lock) is not made to wait for a pull that is itself waiting
    for the chain: that was a deadlock.
    """
    list(
        Application.objects.select_for_update(no_key=True)
        .filter(pk__in=application_ids)
        .order_by("pk")
        .values_list("pk")
    )


def _gate_access(run: ConnectorRun, diff, rows: int) -> None:
    """Hold a pull that looks partial or destructive: per application, for grants and for accounts alike
    (accounts without grants would otherwise vanish unnoticed)."""
    gates = _access_thresholds(run, diff.scope)
    reasons = []
    for application_id, name in sorted(diff.scope.items(), key=lambda kv: kv[1]):
        percent, minimum = gates[application_id]
        grants = diff.current_by_application.get(application_id, 0)
        accounts = diff.current_accounts_by_application.get(application_id, 0)
        if (grants or accounts) and not diff.staged_by_application.get(application_id):
            reasons.append(
                f"{name}: the file has no rows for it, but it has {accounts} accounts and {grants} grants"
            )
            continue
        for what, current, removed in (
            ("grants", grants, diff.removed_by_application.get(application_id, 0)),
            ("accounts", accounts, diff.removed_accounts_by_application.get(application_id, 0)),
        ):
            if removed > minimum and removed * 100 > percent * current:
                reasons.append(
                    f"{name}: would remove {removed} of {current} {what} ({100 * removed / current:.1f}%), "
                    f"over the threshold of {percent}% and {minimum} {what}"
                )
    if reasons:
        raise Held("; ".join(reasons), diff.counts, rows)


def _execute_identities(run: ConnectorRun, *, log: ProblemLog, approved: bool, actor: Actor) -> None:
    when = timezone.now()
    reason = _change_reason(run)
    with transaction.atomic():
        _tune_session()
        if connection.vendor == "postgresql":
            sql.execute("SELECT pg_advisory_xact_lock(%s)", [IDENTITY_LOCK_KEY])
        connector = IdentityFileConnector(Path(run.source_path), log=log)
        rows = identities.stage(connector.records(), default_termination=timezone.localdate())
        log.raise_if_any()
        progress.report(run.pk, phase="checking", percent=60, rows=rows)
        scope = _identity_scope(run)
        identities.check(log=log, scope=scope)
        log.raise_if_any()
        progress.report(run.pk, phase="applying", percent=75, rows=rows)
        marks = _history_marks((Identity,))
        try:
            with transaction.atomic():
                diff = identities.diff_and_apply(
                    when=when,
                    today=timezone.localdate(),
                    reason=reason,
                    user_id=run.started_by_id,
                    log=log,
                    scope=scope,
                )
                if not approved:
                    _gate_identities(run, diff, rows, scope)
        except IntegrityError as exc:
            raise ImportRefused(
                [
                    Problem(
                        run.source_name,
                        None,
                        None,
                        None,
                        f"conflicts with existing identities: {str(exc).splitlines()[0][:300]}",
                    )
                ]
            ) from exc
        limit = settings.SOXGOV_EVIDENCE_DETAIL_LIMIT
        detailed = diff.total_changes <= limit
        details = identities.changes_for_evidence(limit=limit, scope=scope) if detailed else []
        digest = _changes_digest(reason, marks)
        _finish_applied(
            run,
            actor=actor,
            rows=rows,
            counts=diff.counts,
            digest=digest,
            warnings=log.warnings,
            details=details,
            detailed=detailed,
            extra={"approved": approved, "scope": _scope_evidence(scope)},
        )
        from soxgov.services import users_link_identities

        users_link_identities(actor=actor)


def _identity_scope(run: ConnectorRun) -> identities.Scope:
    """A source that brings only its own non-human identities (AWS roles, GitHub Apps) is the truth for those;
    any other identities run is the identities feed, the truth for everyone else."""
    connector = run.connector
    source = source_class(connector.kind) if connector is not None else None
    if source is not None and source.identities_scope == "non_human":
        return identities.Scope(connector_id=connector.pk, connector_name=connector.name)
    return identities.FEED


def _scope_evidence(scope: identities.Scope) -> str:
    if scope.non_human:
        return f"non-human identities of connector {scope.connector_name}"
    return "identities feed"


def _gate_identities(run: ConnectorRun, diff, rows: int, scope: identities.Scope) -> None:
    percent, minimum = _identity_thresholds(run)
    if diff.absent > minimum and diff.absent * 100 > percent * max(diff.current, 1):
        whose = (
            f"non-human identities of connector {scope.connector_name}" if scope.non_human else "identities"
        )
        raise Held(
            f"would terminate {diff.absent} of {diff.current} active {whose} absent from the "
            f"{'pull' if scope.non_human else 'file'}, over the threshold of {percent}% and {minimum}",
            diff.counts,
            rows,
        )


def _history_marks(models) -> dict:
    """The highest history id of each model before a run applies: its own history rows come after."""
    return {model: model.history.aggregate(m=Max("history_id"))["m"] or 0 for model in models}


def _changes_digest(reason: str, marks: dict) -> str:
    """SHA-256 over this run's history rows, sealed into its evidence (entitlements/imports/digest.py).

    It lets anyone prove that the history tagged with this run is the change set the run applied, and that
    nothing was added to or removed from it since.
    """
    return digest.changes_digest(reason, marks)


# --- Finishing runs ---------------------------------------------------------------------------------------


def _finish_applied(run, *, actor, rows, counts, digest, warnings, details, detailed, extra) -> None:
    now = timezone.now()
    applied = ConnectorRun.objects.filter(pk=run.pk, status=ConnectorRun.Status.RUNNING).update(
        status=ConnectorRun.Status.APPLIED,
        finished_at=now,
        rows_total=rows,
        rows_done=rows,
        counts=counts,
        warnings=warnings,
        changes_sha256=digest,
        held_reason="",
    )
    if not applied:
        raise Cancelled(f"run {run.pk} was cancelled while it ran")
    run_subject = Subject("entitlements.connectorrun", str(run.pk), str(run)[:255])
    events = [
        Event(
            "import.run.applied",
            run_subject,
            {
                "counts": counts,
                "rows": rows,
                "input_sha256": run.input_sha256,
                "changes_sha256": digest,
                "change_events": "one per change" if detailed else "summary only (over the detail limit)",
                "history_change_reason": _change_reason(run),
                **extra,
            },
        )
    ]
    events += [
        Event(action, Subject(subject_type, subject_id, text[:255]), {**payload, "run": run.pk})
        for action, subject_type, subject_id, text, payload in details
    ]
    events_record(actor=actor, events=events)


def _finish_refused(run, refused: ImportRefused, *, warnings, actor) -> None:
    problems = [p.as_dict() for p in refused.problems]
    with transaction.atomic():
        ended = ConnectorRun.objects.filter(pk=run.pk, status=ConnectorRun.Status.RUNNING).update(
            status=ConnectorRun.Status.FAILED,
            finished_at=timezone.now(),
            problems=problems,
            problem_count=refused.total,
            warnings=warnings,
            error=f"refused: {refused.total} problem(s)",
        )
        if not ended:
            return
        event_record(
            actor=actor,
            action="import.run.refused",
            subject=run,
            payload={
                "problem_count": refused.total,
                "first_problems": [str(p) for p in refused.problems[:10]],
            },
        )


def _finish_held(run, held: Held, *, warnings, actor) -> None:
    with transaction.atomic():
        ended = ConnectorRun.objects.filter(pk=run.pk, status=ConnectorRun.Status.RUNNING).update(
            status=ConnectorRun.Status.HELD,
            finished_at=timezone.now(),
            held_reason=held.reason,
            counts=held.counts,
            warnings=warnings,
            rows_total=held.rows,
        )
        if not ended:
            return
        event_record(
            actor=actor,
            action="import.run.held",
            subject=run,
            payload={"reason": held.reason, "counts": held.counts},
        )


def _finish_failed(run, exc: Exception | None, *, actor, cause: str = "", failure: str = "") -> None:
    """Fail the run (and an identities run of the same pull still running: it cannot finish without it)."""
    error = cause or jobs.describe(exc)
    with transaction.atomic():
        ended = ConnectorRun.objects.filter(pk=run.pk, status__in=ACTIVE).update(
            status=ConnectorRun.Status.FAILED, finished_at=timezone.now(), error=error[:2000], failure=failure
        )
        if ended:
            payload = {"error": error[:500], **({"failure": failure} if failure else {})}
            event_record(actor=actor, action="import.run.failed", subject=run, payload=payload)
        for child in ConnectorRun.objects.filter(parent=run, status=ConnectorRun.Status.RUNNING):
            _finish_failed(child, None, actor=actor, cause=f"its pull (run #{run.pk}) failed: {error}"[:2000])


# --- Approving and rejecting held runs ----------------------------------------------------------------


def _decide(
    *, run_id: int, user, to_status: str, reason: str, action: str, enqueue: bool = False, send: bool = True
) -> ConnectorRun:
    if not acl.can_attempt(user, ConnectorRun, acl.CHANGE):
        raise PermissionDenied("only an admin may approve or reject a held run")
    with transaction.atomic():
        run = ConnectorRun.objects.select_for_update().get(pk=run_id)
        if run.status != ConnectorRun.Status.HELD:
            raise Conflict(f"run {run.pk} is {run.get_status_display().lower()}, not held for approval")
        refusal = four_eyes_refusal(
            run.started_by, user, "the admin who started a run cannot also approve or reject it"
        ) or four_eyes_refusal(
            _last_configured_by(run),
            user,
            "the admin who last changed the connector's configuration cannot also approve or reject its pull",
        )
        if refusal:
            raise PermissionDenied(refusal)
        run.status = to_status
        run.decided_by = user
        run.decided_by_name = Actor.for_user(user).name
        run.decided_at = timezone.now()
        run.decision_reason = reason
        run.save(update_fields=["status", "decided_by", "decided_by_name", "decided_at", "decision_reason"])
        event_record(
            actor=Actor.for_user(user),
            action=action,
            subject=run,
            payload={"reason": reason, "held_reason": run.held_reason, "started_by": run.started_by_name},
        )
        if enqueue:  # with the approval, so an approved run always has its job
            _enqueue(run, send=send)
    return run


def _last_configured_by(run: ConnectorRun):
    """Who last created or changed the run's connector (from its evidence): a scheduled pull has no starter, and
    the admin whose configuration change (a new query, base DN or application) made the pull hold must not be
    the one who lets it through."""
    if not run.connector_id:
        return None
    from evidence.models import EvidenceEvent

    event = (
        EvidenceEvent.objects.filter(
            subject_type=Connector._meta.label_lower,
            subject_id=str(run.connector_id),
            action__in=("config.connector.created", "config.connector.changed"),
        )
        .select_related("actor_user")
        .order_by("-sequence")
        .first()
    )
    return event.actor_user if event is not None else None


def run_approve(
    *, run_id: int, user, reason: str = "", enqueue: bool = True, send: bool = True
) -> ConnectorRun:
    """Approve a held run; it is executed again against current data, past the safety gate (by a worker, or
    with ``send=False`` by the caller through the job)."""
    return _decide(
        run_id=run_id,
        user=user,
        to_status=ConnectorRun.Status.APPROVED,
        reason=reason,
        action="import.run.approved",
        enqueue=enqueue,
        send=send,
    )


def run_reject(*, run_id: int, user, reason: str = "") -> ConnectorRun:
    return _decide(
        run_id=run_id,
        user=user,
        to_status=ConnectorRun.Status.REJECTED,
        reason=reason,
        action="import.run.rejected",
    )


def connector_pull(*, connector: Connector, actor: Actor, user=None, send: bool = True) -> ConnectorRun:
    """Queue a run of the connector: a source connector's pull reads its source when it executes
    (entitlements/pulls.py); a file connector's file is copied now. A path outside the allowed roots (or a
    missing or oversized file) gives a failed run saying why: the schedule's history shows it, and nothing is
    read."""
    if connector.is_source:
        from entitlements.pulls import pull_create

        return pull_create(connector=connector, actor=actor, user=user, send=send)
    kind = (
        ConnectorRun.Kind.ACCESS
        if connector.kind == Connector.Kind.ACCESS_FILE
        else ConnectorRun.Kind.IDENTITIES
    )
    raw = str(connector.configuration.get("path", ""))
    try:
        path = connector_file(raw)
        run = run_create(
            kind=kind,
            source=path,
            source_name=Path(raw).name,
            actor=actor,
            application=connector.application,
            connector=connector,
            user=user,
            send=send,
        )
    except ValidationError as exc:
        return _run_refused_at_source(connector, kind, raw, " ".join(exc.messages), actor=actor)
    except ImportRefused as refused:
        return _run_refused_at_source(connector, kind, raw, refused.problems[0].reason, actor=actor)
    except OSError as exc:
        return _run_refused_at_source(connector, kind, raw, f"cannot be read: {exc.strerror}", actor=actor)
    return run


def _run_refused_at_source(connector, kind, raw: str, reason: str, *, actor: Actor) -> ConnectorRun:
    problem = Problem(raw or "(no path)", None, None, None, reason)
    with transaction.atomic():
        run = ConnectorRun.objects.create(
            kind=kind,
            connector=connector,
            application=connector.application,
            status=ConnectorRun.Status.FAILED,
            source_name=(Path(raw).name or raw)[:255],
            source_path="",
            input_sha256="",
            started_by_name=actor.name,
            finished_at=timezone.now(),
            problems=[problem.as_dict()],
            problem_count=1,
            error=str(problem)[:2000],
        )
        event_record(
            actor=actor,
            action="import.run.refused",
            subject=run,
            payload={"connector": connector.name, "problem_count": 1, "first_problems": [str(problem)]},
        )
    return run


def run_cancel(*, run_id: int, user, reason: str) -> ConnectorRun:
    """Cancel a queued, approved or running run (an admin; evidenced). A run that is running on a live worker
    changes nothing: its transaction finds the run cancelled when it would apply, and rolls back."""
    from evidence.cancel import work_cancel

    run, _ = work_cancel(
        model=ConnectorRun,
        pk=run_id,
        user=user,
        reason=reason,
        open_statuses=ACTIVE,
        open_label="a queued, approved or running run",
        action="import.run.cancelled",
    )
    return run


# --- Connector schedules ------------------------------------------------------------------------------------


def connector_sync_schedule(*, connector, actor: Actor) -> None:
    """Keep the connector's django-celery-beat task in line with its ``cron`` field (evidenced)."""
    import json

    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    with transaction.atomic():
        task = connector.schedule
        if not connector.cron.strip():
            if task is not None:
                connector.schedule = None
                connector.save(update_fields=["schedule"])
                task.delete()
                event_record(actor=actor, action="config.connector.unscheduled", subject=connector)
            return
        parts = connector.cron.split()
        if len(parts) != 5:
            raise ValidationError({"cron": 'Use five fields: "minute hour day month weekday".'})
        minute, hour, day_of_month, month_of_year, day_of_week = parts
        crontab, _ = CrontabSchedule.objects.get_or_create(
            minute=minute,
            hour=hour,
            day_of_month=day_of_month,
            month_of_year=month_of_year,
            day_of_week=day_of_week,
            timezone="UTC",
        )
        if task is None:
            task = PeriodicTask(name=f"pull connector {connector.pk}: {connector.name}"[:200])
        task.task = "entitlements.pull_connector"
        task.crontab = crontab
        task.args = json.dumps([connector.pk])
        task.enabled = connector.enabled
        task.save()
        if connector.schedule_id != task.pk:
            connector.schedule = task
            connector.save(update_fields=["schedule"])
        event_record(
            actor=actor,
            action="config.connector.scheduled",
            subject=connector,
            payload={"cron": connector.cron, "enabled": connector.enabled},
        )
