"""Shared behaviour of the import commands: the exit-code contract (0 applied, 1 refused, 3 held, and for a
source connector 2: the source is unreachable or refused the credentials)."""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from entitlements import services
from entitlements.connectors.problems import ImportRefused
from entitlements.models import ConnectorRun
from evidence.services import Actor
from soxgov import jobs

EXIT_REFUSED, EXIT_UNREACHABLE, EXIT_HELD = 1, 2, 3


def print_outcome(command: BaseCommand, run: ConnectorRun) -> None:
    for warning in run.warnings:
        command.stderr.write(f"warning: {warning}")
    if run.status == ConnectorRun.Status.APPLIED:
        command.stdout.write(f"run {run.pk} applied ({run.rows_total} rows)")
        for obj in sorted(run.counts):
            counts = run.counts[obj]
            order = [
                k for k in ("added", "removed", "terminated_absent", "changed", "unchanged") if k in counts
            ]
            summary = ", ".join(f"{counts[what]} {what.replace('_', ' ')}" for what in order)
            command.stdout.write(f"  {obj}: {summary}")
        return
    if run.status == ConnectorRun.Status.HELD:
        command.stderr.write(f"run {run.pk} held for approval, nothing applied: {run.held_reason}")
        command.stderr.write(f"approve with: python manage.py approve_run {run.pk} --user <another admin>")
        raise SystemExit(EXIT_HELD)
    if run.problems:
        command.stderr.write(f"run {run.pk} refused, nothing changed: {run.problem_count} problem(s)")
        _problems_write(command, run)
        raise SystemExit(EXIT_REFUSED)
    command.stderr.write(f"run {run.pk} {run.status}: {run.error}")
    if run.failure == ConnectorRun.Failure.UNREACHABLE:
        raise SystemExit(EXIT_UNREACHABLE)
    if run.failure == ConnectorRun.Failure.IDENTITIES:
        child = run.children.order_by("-pk").first()
        if child is not None and child.status == ConnectorRun.Status.HELD:
            command.stderr.write(
                f"approve the identities run with: python manage.py approve_run {child.pk} --user <another admin>"
            )
            raise SystemExit(EXIT_HELD)
        if child is not None and child.problems:
            _problems_write(command, child)
    raise SystemExit(EXIT_REFUSED)


def _problems_write(command: BaseCommand, run: ConnectorRun) -> None:
    for problem in run.problems:
        command.stderr.write(_problem_line(problem))
    if run.problem_count > len(run.problems):
        command.stderr.write(f"... and {run.problem_count - len(run.problems)} more")


def find_connector(name: str):
    from entitlements.models import Connector

    connector = Connector.objects.select_related("application").filter(name=name).first()
    if connector is None:
        raise CommandError(f"no connector named {name!r}")
    return connector


def find_user(username: str | None):
    """The admin a command acts as (None: a system actor), and the actor to evidence."""
    if not username:
        return None
    from soxgov.models import User

    user = User.objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"no user named {username!r}")
    return user


def _problem_line(problem: dict) -> str:
    where = problem["file"]
    if problem.get("row") is not None:
        where += f", row {problem['row']}"
    if problem.get("column"):
        where += f", column {problem['column']}"
    value = f" (value {problem['value']!r})" if problem.get("value") not in (None, "") else ""
    return f"{where}: {problem['reason']}{value}"


def run_file(command: BaseCommand, *, kind: str, path: str, application=None, username=None) -> None:
    source = Path(path)
    if not source.is_file():
        raise CommandError(f"{path}: no such file")
    user = None
    actor = Actor.system(f"command:import_{kind}")
    if username:
        from soxgov.models import User

        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        actor = Actor.for_user(user)
    try:
        # Executed here rather than by a worker, through its job all the same: if this process dies, the
        # reaper finds the job and a worker finishes the run.
        run = services.run_create(
            kind=kind,
            source=source,
            source_name=source.name,
            actor=actor,
            user=user,
            application=application,
            send=False,
        )
    except ImportRefused as refused:
        for problem in refused.problems:
            command.stderr.write(str(problem))
        raise SystemExit(EXIT_REFUSED) from None
    jobs.execute(jobs.of(run).get().pk)
    print_outcome(command, ConnectorRun.objects.get(pk=run.pk))
