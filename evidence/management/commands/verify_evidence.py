from django.core.management.base import BaseCommand

from evidence.checkpoints import chain_against_checkpoint
from evidence.selectors import chain_verify


class Command(BaseCommand):
    help = (
        "Recompute every link of the evidence chain and check it against the latest external signed checkpoint. "
        "Exit 0 when intact, 1 naming the first broken sequence or the checkpoint it contradicts."
    )

    def handle(self, *args, **options):
        result = chain_verify()
        if not result.intact:
            self.stderr.write(result.summary())
            raise SystemExit(1)
        check = chain_against_checkpoint()
        for problem in check.problems:
            self.stderr.write(f"checkpoint problem: {problem}")
        if check.mismatch:
            self.stderr.write(f"broken against the external checkpoint: {check.mismatch}")
            raise SystemExit(1)
        self.stdout.write(result.summary())
        if check.checkpoint is not None:
            self.stdout.write(
                f"matches external checkpoint {check.checkpoint['path']} (sequence {check.checkpoint['sequence']}, "
                f"signed {check.checkpoint['signed_at']})"
            )
        if check.problems:
            raise SystemExit(1)
