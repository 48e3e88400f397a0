import json
import sys
from pathlib import Path

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management.base import BaseCommand

from entitlements.connector_services import SecretInput, connector_save
from entitlements.management.commands._runs import EXIT_REFUSED, find_user
from entitlements.models import Application, Connector, ConnectorThresholdChange
from evidence.services import Actor


class Command(BaseCommand):
    help = (
        "Create or update a connector. Secrets: --secret KEY=env:VARIABLE, KEY=file:/path, or KEY=- to read the "
        "value from standard input (stored encrypted; needs SOXGOV_SECRET_KEYS). Exit 0 saved, 1 refused "
        "(every problem named, nothing saved). Raising a threshold is proposed for a second admin."
    )

    def add_arguments(self, parser):
        parser.add_argument("--name", required=True)
        parser.add_argument("--kind", choices=Connector.Kind.values, help="Required when creating.")
        parser.add_argument("--application", help="The application it feeds (by name).")
        parser.add_argument("--config", help="A JSON file with the kind's configuration (see README).")
        parser.add_argument(
            "--secret", action="append", default=[], metavar="KEY=env:VAR|KEY=file:PATH|KEY=-"
        )
        parser.add_argument("--remove-secret", action="append", default=[], metavar="KEY")
        parser.add_argument(
            "--cron", help='When to pull ("minute hour day month weekday", UTC); "" for never.'
        )
        parser.add_argument("--disable", action="store_true")
        parser.add_argument("--enable", action="store_true")
        parser.add_argument("--deletion-threshold-percent", type=int)
        parser.add_argument("--deletion-threshold-count", type=int)
        parser.add_argument("--user", help="The admin making the change (needed to change thresholds).")

    def handle(self, *args, **options):
        user = find_user(options["user"])
        actor = Actor.for_user(user) if user else Actor.system("command:connector_add")
        existing = Connector.objects.filter(name=options["name"]).first()
        problems: list[str] = []
        values: dict = {"name": options["name"]}
        if options["kind"]:
            values["kind"] = options["kind"]
        elif existing is None:
            problems.append("--kind: is required for a new connector")
        if options["application"] is not None:
            app = Application.objects.filter(name__iexact=options["application"]).first()
            if app is None and options["application"]:
                problems.append(f"--application: no application named {options['application']!r}")
            values["application"] = app
        if options["config"]:
            try:
                values["configuration"] = json.loads(Path(options["config"]).read_text())
            except OSError as exc:
                problems.append(f"--config: {options['config']}: {exc.strerror}")
            except json.JSONDecodeError as exc:
                problems.append(f"--config: {options['config']}: not JSON ({exc.msg}, line {exc.lineno})")
        elif existing is None:
            problems.append("--config: is required for a new connector")
        if options["cron"] is not None:
            values["cron"] = options["cron"]
        if options["disable"] or options["enable"]:
            values["enabled"] = bool(options["enable"])
        for flag, field in (
            ("deletion_threshold_percent", "deletion_threshold_percent"),
            ("deletion_threshold_count", "deletion_threshold_count"),
        ):
            if options[flag] is not None:
                values[field] = options[flag]
        secrets = {name: SecretInput() for name in options["remove_secret"]}
        for given in options["secret"]:
            name, sep, spec = given.partition("=")
            if not sep or not name:
                problems.append(f"--secret {name or given}: use KEY=env:VAR, KEY=file:/path or KEY=-")
            elif spec == "-":
                secrets[name] = SecretInput(value=sys.stdin.readline().rstrip("\r\n"))
            else:
                secrets[name] = SecretInput(reference=spec)
        if problems:
            self._refuse(problems)
        try:
            saved = connector_save(
                connector=existing,
                values=values,
                secrets=secrets,
                actor=actor,
                user=user,
                via="connector_add",
            )
        except ValidationError as exc:
            self._refuse(
                [
                    f"{field}: {message}"
                    for field, messages in exc.message_dict.items()
                    for message in messages
                ]
            )
        except PermissionDenied as exc:
            self._refuse([str(exc)])
        connector = saved.connector
        verb = "created" if saved.created else ("updated" if saved.changed else "unchanged")
        self.stdout.write(f"connector {connector.name} ({connector.kind}) {verb}")
        change = saved.thresholds
        if change is not None and change.status == ConnectorThresholdChange.Status.PENDING:
            self.stdout.write(
                f"thresholds {change.proposed_percent}% / {change.proposed_count} proposed as change #{change.pk}: "
                f"a second admin approves it; until then pulls keep {change.old_percent}% / {change.old_count}"
            )

    def _refuse(self, problems):
        self.stderr.write("connector not saved, nothing changed:")
        for problem in problems:
            self.stderr.write(f"  {problem}")
        raise SystemExit(EXIT_REFUSED)
