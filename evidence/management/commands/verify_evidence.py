from django.core.management.base import BaseCommand

from evidence.checkpoints import chain_matches, latest_external
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
        checkpoint, problems = latest_external()
        for problem in problems:
            self.stderr.write(f"checkpoint problem: {problem}")
        if checkpoint is not None:
            mismatch = chain_matches(checkpoint)
            if mismatch:
                self.stderr.write(f"broken against the external checkpoint: {mismatch}")
                raise SystemExit(1)
        self.stdout.write(result.summary())
        if checkpoint is not None:
            self.stdout.write(
                f"matches external checkpoint {checkpoint['path']} (sequence {checkpoint['sequence']}, "
                f"signed {checkpoint['signed_at']})"
            )
        if problems:
            raise SystemExit(1)
