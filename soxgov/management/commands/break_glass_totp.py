from django.core.management.base import BaseCommand, CommandError

from evidence.services import Actor
from soxgov.breakglass import is_break_glass, totp_enrol
from soxgov.models import User


class Command(BaseCommand):
    help = (
        "Enrol a new TOTP device for a break-glass account (replacing its old one) and print the otpauth:// URI "
        "once, for an authenticator app. Evidenced as access.mfa.enrolled."
    )

    def add_arguments(self, parser):
        parser.add_argument("username")

    def handle(self, *args, username, **options):
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        if not is_break_glass(username):
            raise CommandError(
                f"{username!r} is not in SOXGOV_BREAK_GLASS_USERS: only break-glass accounts use TOTP"
            )
        device = totp_enrol(actor=Actor.system("command:break_glass_totp"), user=user)
        self.stdout.write(device.config_url)
        self.stderr.write(f"TOTP device enrolled for {username}; any earlier one no longer works")
