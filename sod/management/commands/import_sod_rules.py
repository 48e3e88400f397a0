from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from entitlements.connectors.problems import ImportRefused
from evidence.services import Actor
from sod.rules import ruleset_import

EXIT_REFUSED = 1


class Command(BaseCommand):
    help = (
        "Import an SoD ruleset (CSV or XLSX, one row per rule side member: rule_id, rule_name, risk, process, "
        "side, application, entitlement_id). Rules in the file are created or replaced; others are left alone. "
        "Exit 0 applied; 1 refused, with every problem listed and nothing changed."
    )

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--user", help="The admin importing the rules (default: a system actor).")

    def handle(self, *args, path, user=None, **options):
        source = Path(path)
        if not source.is_file():
            raise CommandError(f"{path}: no such file")
        actor = Actor.system("command:import_sod_rules")
        if user:
            from soxgov.models import User

            found = User.objects.filter(username=user).first()
            if found is None:
                raise CommandError(f"no user named {user!r}")
            actor = Actor.for_user(found)
        try:
            changed, read, warnings = ruleset_import(source, actor=actor)
        except ImportRefused as refused:
            self.stderr.write(f"{source.name} refused, nothing changed: {refused.total} problem(s)")
            for problem in refused.problems:
                self.stderr.write(str(problem))
            if refused.total > len(refused.problems):
                self.stderr.write(f"... and {refused.total - len(refused.problems)} more")
            raise SystemExit(EXIT_REFUSED) from None
        for warning in warnings:
            self.stderr.write(f"warning: {warning}")
        self.stdout.write(
            f"{read} rules read: {len(changed)} created or changed, {read - len(changed)} unchanged"
        )
        for rule in changed:
            self.stdout.write(f"  {rule.code}: {rule.name} ({rule.side_count} sides)")
