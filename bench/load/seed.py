"""The load test's company, in two steps around the real imports (run by bench/load_bench.py, Django set up
from the environment it passes):

    python bench/load/seed.py applications MANIFEST_JSON
        the generator's applications, SOX in scope (before ``import_access``, as bench/import_bench.py does);
    python bench/load/seed.py reviewers OUT_JSON --users N --password-file PATH
        one reviewer user per manager identity that is not terminated (linked to it, e-mail the identity's),
        an admin, a manager-routed campaign over every SOX application launched through
        ``reviews.services.campaign_launch``; then the N reviewers with the most pending items, written to
        OUT_JSON with the campaign id and the queue sizes.

Every user gets the same password, hashed once with the production hasher (PBKDF2: hashing it per user would
take minutes); each still signs in through the login form, which checks it as usual.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

ADMIN = "load-admin"
PREFIX = "rev-"


def _django() -> None:
    import django

    django.setup()


def applications(manifest: Path) -> None:
    from entitlements.models import Application

    for name in json.loads(manifest.read_text())["application_names"]:
        Application.objects.get_or_create(name=name, defaults={"sox_in_scope": True, "criticality": "high"})


def reviewers(out: Path, *, users: int, password: str) -> None:
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import Group
    from django.db.models import Count, Q
    from django.utils import timezone

    from entitlements.models import Identity
    from reviews import services
    from reviews.models import Campaign, ReviewItem
    from soxgov.models import User

    hashed = make_password(password)
    managers = (
        Identity.objects.filter(reports__isnull=False)
        .exclude(status=Identity.Status.TERMINATED)
        .distinct()
        .order_by("pk")
        .values_list("pk", "employee_id", "email", "display_name")
    )
    people = [
        User(
            username=f"{PREFIX}{employee}",
            email=email,
            last_name=name[:150],
            password=hashed,
            identity_id=pk,
        )
        for pk, employee, email, name in managers
    ]
    User.objects.bulk_create(people, batch_size=2000)
    reviewer_group = Group.objects.get(name="reviewer")
    reviewer_group.user_set.add(*User.objects.filter(username__startswith=PREFIX))
    admin = User.objects.create(username=ADMIN, email="load-admin@bench.example", password=hashed)
    Group.objects.get(name="admin").user_set.add(admin)

    # The top of the tree manages nobody's manager link back to it, so its user takes what has no routed reviewer.
    fallback = User.objects.filter(username__startswith=PREFIX).order_by("identity_id").first()
    today = timezone.localdate()
    campaign = Campaign.objects.create(
        name="Load test quarterly review",
        routing=Campaign.Routing.MANAGER,
        fallback_reviewer=fallback,
        created_by=admin,
        start_on=today,
        due_on=today + dt.timedelta(days=30),
    )
    services.campaign_launch(campaign_id=campaign.pk, user=admin)
    queues = list(
        ReviewItem.objects.filter(campaign=campaign)
        .values("reviewer__username")
        .annotate(pending=Count("id", filter=Q(status=ReviewItem.Status.PENDING)))
        .order_by("-pending", "reviewer__username")[:users]
    )
    if len(queues) < users:
        raise SystemExit(f"only {len(queues)} reviewers have items; {users} asked for (raise --scale)")
    out.write_text(
        json.dumps(
            {
                "campaign": campaign.pk,
                "items": campaign.items.count(),
                "admin": ADMIN,
                "reviewers": [q["reviewer__username"] for q in queues],
                "pending": [q["pending"] for q in queues],
                "users": len(people) + 1,
            }
        )
        + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    apps = commands.add_parser("applications")
    apps.add_argument("manifest", type=Path)
    revs = commands.add_parser("reviewers")
    revs.add_argument("out", type=Path)
    revs.add_argument("--users", type=int, required=True)
    revs.add_argument("--password-file", type=Path, required=True)
    args = parser.parse_args(argv)
    _django()
    if args.command == "applications":
        applications(args.manifest)
    else:
        reviewers(args.out, users=args.users, password=args.password_file.read_text().strip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
