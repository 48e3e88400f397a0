from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from entitlements.connector_services import connector_secrets_rotate
from evidence.services import Actor


class Command(BaseCommand):
    help = (
        "Re-encrypt every connector secret with the first key of SOXGOV_SECRET_KEYS (evidenced). Rotate a key: "
        "put the new key first, keep the old one after it, run this, then remove the old key."
    )

    def handle(self, *args, **options):
        try:
            rotated = connector_secrets_rotate(actor=Actor.system("command:connector_secrets_rotate"))
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"{rotated} secret(s) re-encrypted with the first key")
