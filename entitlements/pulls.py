"""Reading a source connector's system into the import directory, so a pull enters the one pipeline as a file.

A source pull is an access run whose input is not read yet (``source_path`` empty). Executing it first reads the
source (entitlements/connectors/sources.py) into CSV copies in the file formats' columns, stored under their
SHA-256 like an uploaded file, so the auditor can open the exact rows the pull read. Then the run goes on as any
file run: stage, diff, safety gate, apply, evidence.

A source that also yields identities gets a second run: a child identities run (``parent`` = the access run),
created with the copy and executed first, inside the access run's execution, so accounts match the people
the same read produced. Both are visible on the Imports page and evidenced. When the identities run is held or
refused, the access run fails (failure ``identities``) and nothing of its access is applied: approving the held
identities run applies the people, and the next pull brings the access.
"""

from __future__ import annotations

import csv
import hashlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from entitlements import progress
from entitlements.connectors import secrets as secret_store
from entitlements.connectors.files import ACCESS_COLUMNS, IDENTITY_COLUMNS
from entitlements.connectors.problems import ImportRefused, Problem
from entitlements.connectors.sources import source_class
from entitlements.models import Connector, ConnectorRun
from evidence.services import Actor, event_record


def needs_reading(run: ConnectorRun) -> bool:
    return bool(run.connector_id and not run.source_path and run.connector.is_source)


def source_read(run: ConnectorRun, *, actor: Actor) -> ConnectorRun | None:
    """Read the run's source, store the copies, record them on the run (and create its identities run).
    Returns the identities run to execute first, if any. Raises SourceError when the source cannot be read."""
    access, identities = read_copies(run.connector, run_id=run.pk)
    return record_copies(run, access, identities, actor=actor)


def read_copies(connector: Connector, *, run_id: int | None = None) -> tuple[_Copy, _Copy | None]:
    """Read the connector's source into stored CSV copies (access, and identities when it yields them), holding
    no database lock or transaction meanwhile: a read may take minutes."""
    source_cls = source_class(connector.kind)

    def report(**kw):
        if run_id is not None:
            progress.report(run_id, phase="reading source", **kw)

    report(percent=1, rows=0)
    source = source_cls(
        connector.configuration,
        secret_store.secrets_for(connector),
        progress=lambda read=0, **_: report(percent=2, rows=read),
    )
    name = f"{connector.name}"
    try:
        identities = (
            _write(source.identities(), IDENTITY_COLUMNS, f"{name}-identities.csv")
            if source.feeds_identities
            else None
        )
        access = _write(source.access(), ACCESS_COLUMNS, f"{name}-access.csv")
    finally:
        source.close()
    return access, identities


def record_copies(
    run: ConnectorRun, access: _Copy, identities: _Copy | None, *, actor: Actor
) -> ConnectorRun | None:
    """Put the copies read on the run (and create its identities run), evidenced as ``import.run.pulled``."""
    connector = run.connector
    with transaction.atomic():
        ConnectorRun.objects.filter(pk=run.pk).update(
            source_name=access.name[:255],
            source_path=str(access.path),
            input_sha256=access.sha256,
            input_bytes=access.size,
        )
        run.source_name, run.source_path = access.name[:255], str(access.path)
        run.input_sha256, run.input_bytes = access.sha256, access.size
        child = None
        if identities is not None:
            child = ConnectorRun.objects.create(
                kind=ConnectorRun.Kind.IDENTITIES,
                connector=connector,
                parent=run,
                status=ConnectorRun.Status.RUNNING,
                source_name=identities.name[:255],
                source_path=str(identities.path),
                input_sha256=identities.sha256,
                input_bytes=identities.size,
                started_by=run.started_by,
                started_by_name=run.started_by_name,
                started_at=timezone.now(),
            )
        event_record(
            actor=actor,
            action="import.run.pulled",
            subject=run,
            payload={
                "connector": connector.name,
                "kind": connector.kind,
                "access": access.evidence(),
                "identities": identities.evidence() if identities else None,
                "identities_run": child.pk if child else None,
            },
        )
    return child


class _Copy:
    def __init__(self, name: str, path: Path, sha256: str, size: int, rows: int):
        self.name, self.path, self.sha256, self.size, self.rows = name, path, sha256, size, rows

    def evidence(self) -> dict:
        return {"rows": self.rows, "input_sha256": self.sha256, "bytes": self.size, "source": self.name}


def _write(rows: Iterator[dict[str, str]], columns: tuple[str, ...], name: str) -> _Copy:
    """Stream rows into a CSV in the import directory, kept under its SHA-256 (as an uploaded file is). The
    header has the columns the source gave: a column it leaves out stays out, as in a file without it."""
    directory = Path(settings.SOXGOV_IMPORT_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    limit = settings.SOXGOV_IMPORT_MAX_BYTES
    count = 0
    with tempfile.NamedTemporaryFile(
        "w", dir=directory, delete=False, prefix=".pulling-", newline="", encoding="utf-8"
    ) as out:
        incoming = Path(out.name)
        try:
            writer = csv.writer(out)
            header = None
            for row in rows:
                if header is None:
                    header = [column for column in columns if column in row]
                    writer.writerow(header)
                writer.writerow([row.get(column, "") for column in header])
                count += 1
                if count % 10_000 == 0 and out.tell() > limit:
                    too_large = f"the source yields more than the limit of {limit} bytes"
                    raise ImportRefused([Problem(name, None, None, None, too_large)])
            if header is None:  # no rows: a header alone, which the safety gate sees as an empty pull
                writer.writerow(["account_id" if columns is ACCESS_COLUMNS else "employee_id"])
        except BaseException:
            out.close()
            incoming.unlink(missing_ok=True)
            raise
    with incoming.open("rb") as written:
        sha256 = hashlib.file_digest(written, "sha256").hexdigest()
    size = incoming.stat().st_size
    stored = directory / f"{sha256}.csv"
    shutil.move(incoming, stored)
    return _Copy(name, stored, sha256, size, count)


def pull_create(*, connector: Connector, actor: Actor, user=None, send: bool = True) -> ConnectorRun:
    """Queue a pull of a source connector: an access run with nothing read yet, and its job."""
    from entitlements.services import _enqueue

    with transaction.atomic():
        run = ConnectorRun.objects.create(
            kind=ConnectorRun.Kind.ACCESS,
            connector=connector,
            application=connector.application,
            source_name=f"{connector.name} (pull)"[:255],
            source_path="",
            input_sha256="",
            started_by=user,
            started_by_name=actor.name,
        )
        event_record(
            actor=actor,
            action="import.run.queued",
            subject=run,
            payload={
                "kind": run.kind,
                "source": f"connector {connector.name} ({connector.kind})",
                "connector": connector.name,
                "application": connector.application.name if connector.application_id else None,
            },
        )
        _enqueue(run, send=send)
    return run


def pull_dry_run(*, connector: Connector, actor: Actor) -> dict:
    """Pull as usual (any kind of connector), then roll everything back: what the pull would do (its status, counts, held reason or
    problems, and the changes as their evidence events would record them). Nothing stays but the content-
    addressed copies of what was read. SourceError propagates as from a pull."""
    from entitlements.services import connector_pull, run_execute
    from evidence.models import EvidenceEvent

    # A source is read before the transaction: the run's evidence takes the chain's lock, which must not be held
    # while a directory or a database is read for minutes (every other evidence write would wait).
    copies = read_copies(connector) if connector.is_source else None
    with transaction.atomic():
        mark = EvidenceEvent.objects.order_by("-sequence").values_list("sequence", flat=True).first() or 0
        run = connector_pull(connector=connector, actor=actor, send=False)  # a file connector's too
        if copies is not None:
            record_copies(run, *copies, actor=actor)
        if run.status != ConnectorRun.Status.FAILED:  # refused at once: a file outside the roots, missing
            run = run_execute(run_id=run.pk)
        runs = [run, *ConnectorRun.objects.filter(parent=run).order_by("pk")]
        outcome = {
            "runs": [
                {
                    "kind": r.kind,
                    "status": r.status,
                    "failure": r.failure,
                    "counts": r.counts,
                    "held_reason": r.held_reason,
                    "error": r.error,
                    "problems": r.problems,
                    "problem_count": r.problem_count,
                    "rows": r.rows_total,
                }
                for r in runs
            ],
            "changes": [
                f"{action} {subject}"
                for action, subject in EvidenceEvent.objects.filter(sequence__gt=mark)
                .filter(action__regex=r"^(access|identity)\.")
                .order_by("sequence")
                .values_list("action", "subject_repr")
            ],
        }
        transaction.set_rollback(True)
    return outcome
