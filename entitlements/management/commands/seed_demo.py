from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import transaction

from entitlements.demo.company import AlreadySeeded, CompanyBuilder
from evidence.services import Actor
from soxgov.models import User
from soxgov.roles import Role
from soxgov.services import user_create

RULESET = Path(settings.BASE_DIR) / "docs" / "examples" / "sod-rules.csv"

# Demo credentials are printed on purpose: this is a demo database on 127.0.0.1, never production.
DEMO_USERS = [
    (
        "alice",
        "Alice",
        "Nakamura",
        "alice.nakamura@northwind.example",
        [Role.ADMIN],
        "Admin: configure everything",
    ),
    (
        "rita",
        "Rita",
        "Okafor",
        "rita.okafor@northwind.example",
        [Role.REVIEWER],
        "Reviewer: Accounting manager, owns Accounts Payable",
    ),
    (
        "oscar",
        "Oscar",
        "Lindqvist",
        "oscar.lindqvist@northwind.example",
        [Role.CONTROL_OWNER],
        "Control owner: internal controls",
    ),
    (
        "audrey",
        "Audrey",
        "Chen",
        "audrey.chen@auditfirm.example",
        [Role.AUDITOR],
        "Auditor: external, read-only",
    ),
]


class Command(BaseCommand):
    help = "Seed a believable demo company (about 500 people, 30 non-human identities, 11 applications) and users."

    def add_arguments(self, parser):
        parser.add_argument(
            "--people", type=int, default=500, help="Approximate number of people (default 500)."
        )
        parser.add_argument("--seed", type=int, default=2026, help="Random seed, for a reproducible company.")
        parser.add_argument(
            "--address",
            default="127.0.0.1:8000",
            help="host:port the demo is served on (make demo passes DEMO_ADDR), for the sign-in address printed.",
        )

    def handle(self, *args, people, seed, **options):
        self.address = options.get("address") or "127.0.0.1:8000"
        try:
            summary = CompanyBuilder(seed=seed, people=people).build()
        except AlreadySeeded:
            self.stdout.write("The demo company is already there (delete var/db.sqlite3 to start over).")
        else:
            for name, count in summary.counts.items():
                self.stdout.write(f"  {name.replace('_', ' ')}: {count}")
            self.stdout.write("Planted problems:")
            for problem in summary.planted:
                self.stdout.write(f"  - {problem}")
            self._seed_sod()
        self._ensure_users()
        self._seed_campaign()
        self._seed_exceptions()

    def _seed_sod(self):
        """The example ruleset (docs/examples/sod-rules.csv), checked for everyone as its import commits."""
        from sod.models import Violation
        from sod.rules import ruleset_import

        changed, _, _ = ruleset_import(RULESET, actor=Actor.system("seed_demo"))
        live = Violation.objects.filter(status__in=Violation.ACTIVE).count()
        self.stdout.write(f"  SoD rules: {len(changed)}; live violations: {live}")

    def _seed_campaign(self):
        """A launched quarterly review of the SOX in-scope applications, routed to managers, so reviewers
        have work waiting in "My reviews"."""
        import datetime as dt

        from django.utils import timezone

        from reviews.models import Campaign
        from reviews.services import campaign_launch

        if Campaign.objects.exists():
            return
        alice, rita = User.objects.get(username="alice"), User.objects.get(username="rita")
        today = timezone.localdate()
        campaign = Campaign.objects.create(
            name=f"SOX access review {today:%Y} Q{(today.month - 1) // 3 + 1}",
            description="Quarterly certification of privileged and sensitive access to the SOX in-scope applications.",
            routing=Campaign.Routing.MANAGER,
            # Both have access of their own in scope: each takes what routing cannot give the other.
            fallback_reviewer=rita,
            created_by=alice,
            start_on=today,
            due_on=today + dt.timedelta(days=21),
            recurrence=Campaign.Recurrence.QUARTERLY,
            privileged_only=True,
        )
        campaign = campaign_launch(campaign_id=campaign.pk, user=alice)
        self.stdout.write(f"  review campaign: {campaign.name}, {campaign.item_count} items")

    def _seed_exceptions(self):
        """The hygiene checks, as the daily task runs them: the planted problems become exceptions."""
        from sod.hygiene import run_hygiene

        opened, _ = run_hygiene()
        if opened:
            self.stdout.write(f"  control exceptions opened: {opened}")

    def _ensure_users(self):
        actor = Actor.system("seed_demo")
        self.stdout.write(self.style.SUCCESS(f"Demo users (log in at http://{self.address}/):"))
        for username, first, last, email, roles, what in DEMO_USERS:
            password = f"{username}-demo-2026"
            with transaction.atomic():
                if not User.objects.filter(username=username).exists():
                    user_create(
                        actor=actor,
                        username=username,
                        email=email,
                        password=password,
                        roles=roles,
                        first_name=first,
                        last_name=last,
                    )
            self.stdout.write(f"  {username:<7} password {password:<18} {what}")
