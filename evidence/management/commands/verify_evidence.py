from django.core.management.base import BaseCommand

from evidence.selectors import chain_verify


class Command(BaseCommand):
    help = (
        "Recompute every link of the evidence chain. Exit 0 when intact, 1 naming the first broken sequence."
    )

    def handle(self, *args, **options):
        result = chain_verify()
        if result.intact:
            self.stdout.write(result.summary())
            return
        self.stderr.write(result.summary())
        raise SystemExit(1)
