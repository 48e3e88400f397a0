from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from entitlements import services
from entitlements.management.commands._runs import print_outcome
from entitlements.models import ConnectorRun
from soxgov import jobs
from soxgov.models import User


class Command(BaseCommand):
    help = "Approve a held run (an admin other than the one who started it) and apply it now."
    decision = "approve"

    def add_arguments(self, parser):
        parser.add_argument("run_id", type=int)
        parser.add_argument("--user", required=True, help="The approving admin's username.")
        parser.add_argument("--reason", default="", help="Why (recorded in the evidence).")

    def handle(self, *args, run_id, user, reason, **options):
        approver = User.objects.filter(username=user).first()
        if approver is None:
            raise CommandError(f"no user named {user!r}")
        if not ConnectorRun.objects.filter(pk=run_id).exists():
            raise CommandError(f"no run {run_id}")
        try:
            if self.decision == "approve":
                run = services.run_approve(run_id=run_id, user=approver, reason=reason, send=False)
            else:
                services.run_reject(run_id=run_id, user=approver, reason=reason)
        except (PermissionDenied, ValidationError) as exc:
            raise CommandError(exc.messages[0] if hasattr(exc, "messages") else str(exc)) from None
        if self.decision == "approve":
            jobs.execute(jobs.of(run).filter(status="pending").latest("pk").pk)
            print_outcome(self, ConnectorRun.objects.get(pk=run_id))
        else:
            self.stdout.write(f"run {run_id} rejected by {user}")
