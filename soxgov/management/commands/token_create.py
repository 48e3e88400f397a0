from django.core.management.base import BaseCommand, CommandError

from evidence.services import Actor
from soxgov.models import User
from soxgov.tokens import token_create


class Command(BaseCommand):
    help = "Create an API token for a user and print it once (only its digest is kept)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument(
            "--expiry-hours",
            type=int,
            default=None,
            help="Hours until it expires (default SOXGOV_API_TOKEN_TTL_HOURS).",
        )

    def handle(self, *args, username, expiry_hours, **options):
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        if not user.is_active:
            raise CommandError(f"user {username!r} is deactivated")
        if expiry_hours is not None and expiry_hours < 1:
            raise CommandError(f"--expiry-hours must be at least 1, not {expiry_hours}")
        token, key = token_create(
            actor=Actor.system("command:token_create"),
            user=user,
            reason="token_create command",
            expiry_hours=expiry_hours,
        )
        self.stdout.write(key)
        self.stderr.write(f"token {token.prefix}… for {username}, expires {token.expiry:%Y-%m-%d %H:%M %Z}")
