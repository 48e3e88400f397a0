from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand, CommandError

from entitlements import services
from entitlements.management.commands._runs import print_outcome
from entitlements.models import ConnectorRun
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
                services.run_approve(run_id=run_id, user=approver, reason=reason, enqueue=False)
            else:
                services.run_reject(run_id=run_id, user=approver, reason=reason)
        except (PermissionDenied, ValidationError) as exc:
            raise CommandError(exc.messages[0] if hasattr(exc, "messages") else str(exc)) from None
        if self.decision == "approve":
            print_outcome(self, services.run_execute(run_id=run_id))
        else:
            self.stdout.write(f"run {run_id} rejected by {user}")
