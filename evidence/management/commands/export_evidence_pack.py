from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from evidence.pack_services import pack_write
from evidence.services import Actor


class Command(BaseCommand):
    help = (
        "Write a self-verifying evidence pack (BagIt ZIP: XLSX, CSV and JSON, manifests, the chain segment, a signed "
        "checkpoint and an offline verifier) for one campaign."
    )

    def add_arguments(self, parser):
        parser.add_argument("--campaign", type=int, required=True, help="Campaign id.")
        parser.add_argument("--out", required=True, help="Where to write the .zip.")

    def handle(self, *args, campaign, out, **options):
        from reviews.models import Campaign

        found = Campaign.objects.filter(pk=campaign).first()
        if found is None:
            raise CommandError(f"no campaign with id {campaign}")
        path = Path(out)
        if path.exists():
            raise CommandError(f"{out} exists; choose a new file name")
        sha256 = pack_write(campaign=found, out=path, actor=Actor.system("command:export_evidence_pack"))
        self.stdout.write(f"wrote {path} ({path.stat().st_size} bytes), SHA-256 {sha256}")
        self.stdout.write(f"verify offline: unzip it, then: python <bag>/verify_pack.py {path.name}")
