from django.core.management.base import BaseCommand

from entitlements.management.commands._runs import run_file
from entitlements.models import ConnectorRun


class Command(BaseCommand):
    help = (
        "Import an identities file (CSV or XLSX); the file is the full truth for people. "
        "Exit 0 applied, 1 refused (every problem listed, nothing changed), 3 held for approval."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--user", help="The admin starting the run (default: a system actor).")

    def handle(self, *args, path, user=None, **options):
        run_file(self, kind=ConnectorRun.Kind.IDENTITIES, path=path, username=user)
