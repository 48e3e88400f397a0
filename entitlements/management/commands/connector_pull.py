import contextlib

from django.core.management.base import BaseCommand

from entitlements import services
from entitlements.connectors.sources import SourceError, SourceUnreachable
from entitlements.management.commands._runs import (
    EXIT_HELD,
    EXIT_REFUSED,
    EXIT_UNREACHABLE,
    find_connector,
    find_user,
    print_outcome,
)
from entitlements.models import ConnectorRun
from entitlements.pulls import pull_dry_run
from evidence.services import Actor
from soxgov import jobs


class Command(BaseCommand):
    help = (
        "Pull a connector now, through the import pipeline. Exit 0 applied, 1 refused (every problem named, "
        "nothing changed), 2 source unreachable or credentials refused (nothing changed), 3 held for approval. "
        "--dry-run prints what the pull would change and changes nothing."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--dry-run", action="store_true")
        parser.add_argument("--user", help="The admin starting the pull (default: a system actor).")

    def handle(self, *args, name, dry_run, user=None, **options):
        connector = find_connector(name)
        admin = find_user(user)
        actor = Actor.for_user(admin) if admin else Actor.system("command:connector_pull")
        if dry_run:
            return self._dry_run(connector, actor)
        run = services.connector_pull(connector=connector, actor=actor, user=admin, send=False)
        job = jobs.of(run).first()
        if job is not None:
            # Executed here rather than by a worker, through its job all the same: if this process dies, the
            # reaper finds the job and a worker finishes the run.
            # A transient source error (which the embedded mode raises) leaves the job to retry.
            with contextlib.suppress(SourceError):
                jobs.execute(job.pk)
        run = ConnectorRun.objects.get(pk=run.pk)
        for child in run.children.order_by("pk"):
            self.stdout.write(f"identities run {child.pk}: {child.get_status_display().lower()}")
        if run.status in (ConnectorRun.Status.RUNNING, ConnectorRun.Status.QUEUED):
            job = jobs.of(run).first()
            self.stderr.write(
                f"run {run.pk}: the source did not answer in time ({job.error if job else 'no job'}); "
                "a worker retries it with backoff"
            )
            raise SystemExit(EXIT_UNREACHABLE)
        print_outcome(self, run)

    def _dry_run(self, connector, actor):
        try:
            outcome = pull_dry_run(connector=connector, actor=actor)
        except SourceError as exc:
            self.stderr.write(f"{connector.name}: {exc}")
            raise SystemExit(
                EXIT_UNREACHABLE if isinstance(exc, SourceUnreachable) else EXIT_REFUSED
            ) from None
        self.stdout.write(f"dry run of {connector.name}: nothing was changed")
        code = 0
        for run in reversed(outcome["runs"]):  # identities first, as they would apply
            self.stdout.write(f"{run['kind']}: would be {run['status']} ({run['rows']} rows)")
            for obj in sorted(run["counts"]):
                counts = ", ".join(f"{n} {what.replace('_', ' ')}" for what, n in run["counts"][obj].items())
                self.stdout.write(f"  {obj}: {counts}")
            if run["held_reason"]:
                self.stdout.write(f"  held: {run['held_reason']}")
                code = code or EXIT_HELD
            for problem in run["problems"]:
                self.stdout.write(f"  problem: {problem}")
            if run["status"] == ConnectorRun.Status.FAILED and not run["held_reason"]:
                self.stdout.write(f"  {run['error']}")
                code = (
                    EXIT_UNREACHABLE if run["failure"] == ConnectorRun.Failure.UNREACHABLE else EXIT_REFUSED
                )
        for change in outcome["changes"]:
            self.stdout.write(f"  {change}")
        if code:
            raise SystemExit(code)
