import os

from django.core.management.base import BaseCommand, CommandError

from soxgov.dbroles import RoleRefused, app_role_grant


class Command(BaseCommand):
    help = (
        "Create (if missing) the PostgreSQL role the application connects as, and grant it what it needs and no "
        "more: no superuser, owns nothing, SELECT and INSERT only on the evidence table. Run as the owner of the "
        "tables (the role that runs migrate), after every migrate; safe to run again."
    )

    def add_arguments(self, parser):
        parser.add_argument("--role", required=True, help="The application's role, e.g. soxgov_app.")
        parser.add_argument(
            "--password-env",
            metavar="VARIABLE",
            help="Set the role's password from this environment variable (never on the command line).",
        )

    def handle(self, *args, role, password_env, **options):
        password = None
        if password_env:
            password = os.environ.get(password_env)
            if not password:
                raise CommandError(f"--password-env {password_env}: the variable is unset or empty")
        try:
            grant = app_role_grant(role=role, password=password)
        except RoleRefused as refused:
            raise CommandError(str(refused)) from refused
        for line in grant.lines():
            self.stdout.write(line)
