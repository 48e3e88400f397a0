"""Set going again the work whose worker is gone and the work that was never delivered (the beat task's job,
run by hand: after an outage, or where no beat runs)."""

from django.core.management.base import BaseCommand

from soxgov import jobs


class Command(BaseCommand):
    help = "Restart or give up jobs whose worker is gone; send jobs that were never delivered."

    def add_arguments(self, parser):
        parser.add_argument(
            "--resend-after",
            type=float,
            default=None,
            help="Re-send a pending job sent this many seconds ago (default SOXGOV_JOB_RESEND_SECONDS).",
        )

    def handle(self, *args, resend_after=None, **options):
        found = jobs.reap(resend_after=resend_after)
        self.stdout.write(", ".join(f"{what}: {count}" for what, count in found.items()))
