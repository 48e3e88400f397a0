"""The evidence pack's CSV files, written two ways that give the same bytes.

- In Python (any database; tables built in Python, such as the campaign summary): ``csv.writer`` over
  ``inert(_cell(value))``.
- On PostgreSQL, for tables that are a query: ``COPY (SELECT ...) TO STDOUT WITH (FORMAT csv)`` streamed into the
  file, each column formatted in SQL by ``CsvCell`` as the Python writer formats it. Fetching 1M rows into Python
  alone costs 1.7x COPY, so only the database writing the file meets the pack's 1.5x goal (bench/README.md).

The format both follow: UTF-8, comma separated, a header row, rows ending in LF (the only ending COPY writes),
fields quoted when they hold a comma, a double quote, CR or LF (quotes doubled), an empty cell for NULL and for
the empty string alike, booleans as ``True``/``False``, dates and date-times in ISO 8601 (date-times in UTC as
Python's ``isoformat()``: microseconds only when not zero, ``+00:00``), and text that a spreadsheet would run as a
formula prefixed with ``'``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from django.db import NotSupportedError, connection, transaction
from django.db.models import F, Func, TextField

_INTEGER_TYPES = {
    "AutoField", "BigAutoField", "SmallAutoField", "IntegerField", "BigIntegerField", "SmallIntegerField",
    "PositiveIntegerField", "PositiveBigIntegerField", "PositiveSmallIntegerField",
}  # fmt: skip
_TEXT_TYPES = {"CharField", "TextField", "SlugField"}

# For a column of each type, what COPY should write so that the cell holds what the Python writer puts there:
# NULL where it writes nothing (COPY writes NULL as nothing but quotes an empty string as ""). ``{0}`` is the
# column. Written for speed, as each runs for every row and column (22M cells in a 1M-item pack; what each
# costs: bench/README.md, evidence packs, finding 2):
# - an integer is left to COPY, whose output is str()'s (a cast to text only added a step);
# - a boolean is tested as a condition, not compared with true and then false (two function calls);
# - a date-time in UTC as text ('2026-03-04 05:06:07.123456', DateStyle ISO being set for the COPY) is what
#   isoformat() writes but for the space and the offset when it has six digits of microseconds, as ~90% have;
#   the rest (trailing zeros trimmed, or no microseconds) take one to_char, a third dearer, whose '.000000' is
#   then dropped as isoformat() drops zero microseconds (BC and years beyond 9999, which Python cannot hold,
#   come out neither way);
# - ascii() of the first character, not a substring, finds text starting as binding.FORMULA_START does (= + - @
#   tab CR; PostgreSQL text cannot hold the NUL that list also names): most text (a letter first, above '@')
#   is settled by one comparison, and '' (ascii 0, which no other text has, holding no NUL) by a second,
#   before the list of formula characters is looked at.
# In UTC: a zero offset, as 'UTC' would be but for looking its name up for every value.
_UTC = "(({0}) AT TIME ZONE INTERVAL '0')"
_CELL_SQL = {
    "integer": "{0}",
    "boolean": "CASE WHEN {0} THEN 'True' WHEN NOT {0} THEN 'False' END",
    "date": "to_char({0}, 'YYYY-MM-DD')",
    "datetime": (
        f"CASE WHEN octet_length({_UTC}::text) = 26 THEN replace({_UTC}::text, ' ', 'T') || '+00:00'"
        f" ELSE replace(to_char({_UTC}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"+00:00\"'), '.000000+', '+') END"
    ),
    "text": (
        "CASE WHEN ascii({0}) > 64 THEN {0} WHEN ascii({0}) = 0 THEN NULL"
        " WHEN ascii({0}) IN (9, 13, 43, 45, 61, 64) THEN '''' || ({0}) ELSE {0} END"
    ),
}


def _cell_kind(field) -> str:
    if field.is_relation:
        field = field.target_field
    kind = field.get_internal_type()
    if kind in _INTEGER_TYPES:
        return "integer"
    if kind in _TEXT_TYPES:
        return "text"
    kinds = {"BooleanField": "boolean", "DateField": "date", "DateTimeField": "datetime"}
    if kind not in kinds:
        # A float or decimal would need Python's repr rules; no pack column has one.
        raise NotSupportedError(f"no CSV cell format in SQL for a {kind} column")
    return kinds[kind]


class CsvCell(Func):
    """One column as COPY should write its CSV cell (see the module's docstring): as text, or an integer as it
    is; PostgreSQL only."""

    output_field = TextField()

    def as_sql(self, compiler, connection, **extra_context):
        raise NotSupportedError("CSV cells are formatted in SQL on PostgreSQL only")

    def as_postgresql(self, compiler, connection, **extra_context):
        [source] = self.get_source_expressions()
        template = _CELL_SQL[_cell_kind(source.output_field)]
        sql, params = compiler.compile(source)
        return template.format(sql), tuple(params) * template.count("{0}")


class EventTime(Func):
    """An event's time as evidence.chain.format_time writes it (UTC, always microseconds, ``Z``)."""

    template = "to_char((%(expressions)s) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
    output_field = TextField()

    def as_sql(self, compiler, connection, **extra_context):
        raise NotSupportedError("event times are formatted in SQL on PostgreSQL only")

    def as_postgresql(self, compiler, connection, **extra_context):
        return super().as_sql(compiler, connection, **extra_context)


def csv_cells(queryset, columns: list):
    """``queryset`` as the rows COPY writes as the CSV's cells; a column is a field path or an expression."""
    return queryset.values_list(*(CsvCell(F(c) if isinstance(c, str) else c) for c in columns))


# --- Writers ---------------------------------------------------------------------------------------------------


class _EndRowsWithLF:
    """csv.writer quotes a field holding a CR only if CR is in its line terminator, where COPY always quotes it (as
    RFC 4180 asks): so rows are formatted with CRLF, and the CRLF ending each row becomes LF here. csv.writer
    hands each whole row to one write() call."""

    def __init__(self, handle):
        self.handle = handle

    def write(self, line: str) -> int:
        if not line.endswith("\r\n"):
            raise ValueError("csv.writer did not hand over one whole row")
        return self.handle.write(line[:-2] + "\n")


def csv_writer(handle):
    return csv.writer(_EndRowsWithLF(handle), lineterminator="\r\n")


def csv_line(values) -> str:
    buffer = io.StringIO()
    csv_writer(buffer).writerow(values)
    return buffer.getvalue()


def write_rows(header: list[str], rows, path: Path, cell) -> int:
    """The Python writer: ``cell`` turns each value into what the CSV shows."""
    count = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv_writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow([cell(v) for v in row])
            count += 1
    return count


# The cells' formatting raises the query's estimated cost far above the bare one's, enough for the planner to
# go parallel (a Gather Merge of 1M formatted rows: slower than one process, measured 1.8x against 1.5x serial
# at 1M items) and, from 500k, to have LLVM inline and optimise the JIT-compiled expressions (~0.3 s of
# compiling, not won back). JIT itself is left as the server has it: compiling the expressions and the tuple
# deforming (~25 ms) saves ~0.2-0.3 s at 1M items, and the planner JIT-compiles the bare COPY of the same rows
# too. DateStyle shapes the date-times' text, which _CELL_SQL formats from.
_COPY_SETTINGS = {
    "DateStyle": "ISO",
    "max_parallel_workers_per_gather": "0",
    "jit_inline_above_cost": "-1",
    "jit_optimize_above_cost": "-1",
}


def _set_local(cursor, settings: dict[str, str]) -> None:
    cursor.execute(
        "SELECT " + ", ".join(["set_config(%s, %s, true)"] * len(settings)),
        [part for setting in settings.items() for part in setting],
    )


def copy_rows(header: list[str], cells, path: Path) -> int:
    """The PostgreSQL writer: COPY streams the rows of ``cells`` (from csv_cells) into the file."""
    sql, params = cells.query.sql_with_params()
    with transaction.atomic(), connection.cursor() as cursor, path.open("wb") as handle:
        cursor.execute("SELECT " + ", ".join(f"current_setting('{name}')" for name in _COPY_SETTINGS))
        before = dict(zip(_COPY_SETTINGS, cursor.fetchone(), strict=True))
        _set_local(cursor, _COPY_SETTINGS)
        handle.write(csv_line(header).encode("utf-8"))
        select = cursor.cursor.mogrify(sql, params).decode("utf-8")
        cursor.cursor.copy_expert(f"COPY ({select}) TO STDOUT WITH (FORMAT csv)", handle)
        rows = cursor.cursor.rowcount
        # Inside a caller's transaction, SET LOCAL would outlive this savepoint (an error rolls it back with it).
        _set_local(cursor, before)
    return rows
