"""Import problems: every one names the file, row, column and value, and why it was refused."""

from __future__ import annotations

from dataclasses import asdict, dataclass

MAX_LISTED = 200


@dataclass(frozen=True)
class Problem:
    file: str
    row: int | None
    column: str | None
    value: str | None
    reason: str

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.column:
            where += f", column {self.column}"
        value = f" (value {self.value!r})" if self.value not in (None, "") else ""
        return f"{where}: {self.reason}{value}"

    def as_dict(self) -> dict:
        return asdict(self)


class ImportRefused(Exception):
    """The input was refused; nothing was changed. ``problems`` lists up to MAX_LISTED of ``total``."""

    def __init__(self, problems: list[Problem], total: int | None = None):
        self.problems = problems[:MAX_LISTED]
        self.total = total if total is not None else len(problems)
        super().__init__(f"{self.total} problem(s); first: {self.problems[0] if self.problems else '-'}")


class ProblemLog:
    """Collects problems up to a limit, keeps counting beyond it, and raises them all at the end."""

    def __init__(self, file: str, limit: int = MAX_LISTED):
        self.file = file
        self.limit = limit
        self.items: list[Problem] = []
        self.total = 0
        self.warnings: list[str] = []

    def add(self, row: int | None, column: str | None, value, reason: str) -> None:
        self.total += 1
        if len(self.items) < self.limit:
            shown = None if value is None else str(value)[:200]
            self.items.append(Problem(self.file, row, column, shown, reason))

    def warn(self, message: str) -> None:
        if len(self.warnings) < self.limit:
            self.warnings.append(message)

    def raise_if_any(self) -> None:
        if self.total:
            raise ImportRefused(self.items, self.total)

    def refuse(self, row: int | None, column: str | None, value, reason: str):
        """Record one problem and stop at once (for problems after which nothing more can be read)."""
        self.add(row, column, value, reason)
        raise ImportRefused(self.items, self.total)
