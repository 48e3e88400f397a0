from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from entitlements.connector_services import connector_test
from entitlements.connectors.sources import SourceError, SourceUnreachable
from entitlements.management.commands._runs import EXIT_REFUSED, EXIT_UNREACHABLE, find_connector


class Command(BaseCommand):
    help = (
        "Connect to a connector's source, read it and print what it holds (counts and a few rows); changes "
        "nothing. Exit 0 read, 1 the source answered with an error, 2 unreachable or credentials refused."
    )

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--samples", type=int, default=3)

    def handle(self, *args, name, samples, **options):
        connector = find_connector(name)
        try:
            report = connector_test(connector=connector, samples=samples)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        except SourceError as exc:
            self.stderr.write(f"{connector.name}: {exc}")
            raise SystemExit(
                EXIT_UNREACHABLE if isinstance(exc, SourceUnreachable) else EXIT_REFUSED
            ) from None
        self.stdout.write(
            f"{connector.name}: {report.accounts} accounts, {report.entitlements} entitlements, "
            f"{report.grants} grants, {report.identities} identities"
        )
        for what, rows in report.samples.items():
            for row in rows:
                cells = ", ".join(f"{key}={value}" for key, value in row.items() if value != "")
                self.stdout.write(f"  {what}: {cells}")
