from axes.models import AccessAttempt
from django.core.management.base import BaseCommand

from evidence.services import Actor
from soxgov.signin import login_unlock


class Command(BaseCommand):
    help = "Unlock sign-ins: clear the failed attempts of the given usernames (evidenced as access.login.unlocked)."

    def add_arguments(self, parser):
        parser.add_argument("username", nargs="+")

    def handle(self, *args, username, **options):
        removed = login_unlock(
            actor=Actor.system("command:axes_reset_username"),
            attempts=AccessAttempt.objects.filter(username__in=username),
        )
        self.stdout.write(f"{removed} attempts removed." if removed else "No attempts found.")
