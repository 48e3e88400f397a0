from django.core.management.base import BaseCommand, CommandError

from entitlements.management.commands._runs import run_file
from entitlements.models import Application, ConnectorRun


class Command(BaseCommand):
    help = (
        "Import an access file (CSV or XLSX), one row per grant; the file is the full truth for its application(s). "
        "Exit 0 applied, 1 refused (every problem listed, nothing changed), 3 held for approval."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument(
            "--application", help="Application name, for files without an application column."
        )
        parser.add_argument("--user", help="The admin starting the run (default: a system actor).")

    def handle(self, *args, path, application=None, user=None, **options):
        app = None
        if application:
            app = Application.objects.filter(name__iexact=application).first()
            if app is None:
                raise CommandError(f"no application named {application!r}")
        run_file(self, kind=ConnectorRun.Kind.ACCESS, path=path, application=app, username=user)
