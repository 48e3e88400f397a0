from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count

from evidence.services import Actor
from sod.checks import run_check
from sod.engine import Scope
from sod.models import Check, Rule, Violation
from sod.selectors import changed_since_last_check
from sod.services import expire_due


class Command(BaseCommand):
    help = (
        "Run the SoD engine on demand and print what it found. Default: re-check the identities and orphan "
        "accounts whose access changed since the last check; --all scans everyone; --identity and --rule "
        "narrow it. Expired mitigations and risk acceptances are reopened first."
    )

    def add_arguments(self, parser):
        parser.add_argument("--all", action="store_true", help="Check every identity and orphan account.")
        parser.add_argument(
            "--identity", type=int, action="append", default=[], help="Identity id (repeatable)."
        )
        parser.add_argument(
            "--rule", action="append", default=[], help="Rule id, i.e. its code (repeatable)."
        )

    def handle(self, *args, all=False, identity=(), rule=(), **options):
        actor = Actor.system("command:sod_check")
        rule_ids = None
        if rule:
            found = dict(Rule.objects.filter(code__in=rule).values_list("code", "pk"))
            missing = sorted(set(rule) - found.keys())
            if missing:
                raise CommandError(f"no rule with id {', '.join(missing)}")
            rule_ids = sorted(found.values())
        reopened = expire_due(actor=actor)
        if all or (rule_ids and not identity):
            scope = Scope.everything(rule_ids=rule_ids)
        elif identity:
            from entitlements.models import Identity

            unknown = sorted(
                set(identity) - set(Identity.objects.filter(pk__in=identity).values_list("pk", flat=True))
            )
            if unknown:
                raise CommandError(f"no identity with id {', '.join(map(str, unknown))}")
            scope = Scope(identity_ids=sorted(set(identity)), account_ids=(), rule_ids=rule_ids)
        else:
            changed = changed_since_last_check()
            if changed is None:
                scope = Scope.everything(rule_ids=rule_ids)  # never checked: scan everyone
            else:
                scope = Scope(identity_ids=changed[0], account_ids=changed[1], rule_ids=rule_ids)
        check = run_check(scope, trigger=Check.Trigger.MANUAL, actor=actor)
        checked = (
            "all identities and orphan accounts"
            if check.full
            else f"{check.identities_checked} identities and {check.accounts_checked} orphan accounts"
        )
        self.stdout.write(
            f"check {check.pk}: {checked} checked; {check.opened} opened, {check.resolved} resolved, "
            f"{check.unchanged} unchanged; {reopened} reopened because a mitigation or acceptance expired"
        )
        live = dict(
            Violation.objects.filter(status__in=Violation.ACTIVE)
            .values_list("status")
            .annotate(n=Count("id"))
            .order_by()
        )
        self.stdout.write("live violations: " + ", ".join(f"{live.get(s, 0)} {s}" for s in Violation.ACTIVE))
