import datetime as dt
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from evidence.pack_services import pack_write
from evidence.services import Actor


class Command(BaseCommand):
    help = (
        "Write a self-verifying evidence pack (BagIt ZIP: XLSX, CSV and JSON, manifests, the chain segment, a signed "
        "checkpoint and an offline verifier) for one campaign, or for a period and a set of applications."
    )

    def add_arguments(self, parser):
        parser.add_argument("--campaign", type=int, help="Campaign id.")
        parser.add_argument(
            "--since", type=dt.date.fromisoformat, help="Period start (YYYY-MM-DD), with --until."
        )
        parser.add_argument("--until", type=dt.date.fromisoformat, help="Period end (inclusive).")
        parser.add_argument(
            "--application", action="append", default=[], help="Application name (repeatable)."
        )
        parser.add_argument("--out", required=True, help="Where to write the .zip.")

    def handle(self, *args, campaign, since, until, application, out, **options):
        from entitlements.models import Application
        from reviews.models import Campaign

        path = Path(out)
        if path.exists():
            raise CommandError(f"{out} exists; choose a new file name")
        actor = Actor.system("command:export_evidence_pack")
        if campaign is not None:
            found = Campaign.objects.filter(pk=campaign).first()
            if found is None:
                raise CommandError(f"no campaign with id {campaign}")
            sha256 = pack_write(campaign=found, out=path, actor=actor)
        else:
            if since is None or until is None or not application or until < since:
                raise CommandError(
                    "give --campaign, or --since and --until (in order) with at least one --application"
                )
            apps = {a.name.lower(): a.pk for a in Application.objects.all()}
            unknown = [name for name in application if name.lower() not in apps]
            if unknown:
                raise CommandError(f"no application named {', '.join(unknown)}")
            ids = sorted({apps[name.lower()] for name in application})
            sha256 = pack_write(period=(since, until, ids), out=path, actor=actor)
        self.stdout.write(f"wrote {path} ({path.stat().st_size} bytes), SHA-256 {sha256}")
        self.stdout.write(f"verify offline: unzip it, then: python <bag>/verify_pack.py {path.name}")
