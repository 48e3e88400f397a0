"""The PostgreSQL fast path for CSV access files: COPY the file as text, then validate and normalise in SQL.

Parsing two million rows in Python costs tens of seconds; PostgreSQL's COPY parser reads them in a few. The
fast path only ever *accepts* a file: if COPY fails (bytes that are not UTF-8, a NUL, a ragged row) or any
value does not validate, it steps aside and the row-by-row path (entitlements/connectors/files.py) reads the
file again and names every problem. So both paths accept exactly the same files, and the row-by-row path
alone decides what a refusal says. The normalisation here mirrors files.AccessFileConnector; the tests compare
the two stages row for row.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, replace
from pathlib import Path

import psycopg2
from django.conf import settings
from django.db import DatabaseError, connection, transaction

from entitlements.connectors.files import ACCESS_COLUMNS, map_header
from entitlements.connectors.problems import ProblemLog
from entitlements.connectors.tables import ZIP_MAGIC
from entitlements.imports import incremental, sql
from entitlements.models import Account, Entitlement

RAW = "soxgov_raw_access"
TIMES = "soxgov_raw_times"
DIRTY_RAW = "soxgov_raw_dirty"
APP_NAMES = "soxgov_raw_app_names"
# What Python's str.strip() removes, less the non-ASCII spaces (those step aside): the ASCII file, group, record
# and unit separators (0x1c-0x1f) are spaces to it too. The vertical tab is \x0b: PostgreSQL's E'' strings have no
# \v escape and read it as the letter v, which cut a "v" from the ends of cells until 2026-11-30.
WS = r"E' \t\n\r\f\x0b\x1c\x1d\x1e\x1f'"
# The one character that Python's lower() and PostgreSQL's lower() map differently (U+0130, I with a dot above:
# 'i' and a combining dot, against 'i'); a cell to be lowered that holds it steps aside.
DOTTED_I = "chr(304)"
HAS_ZONE = r"'(Z|[+-]\d{2}(:?\d{2})?)$'"
# Hours 0-23, minutes and seconds 0-59: PostgreSQL also reads 24:00 (the next midnight) and second 60 (a leap
# second), which Python refuses.
TIMESTAMP = r"'^\d{4}-\d{2}-\d{2}([T ]([01]?\d|2[0-3]):[0-5]?\d(:[0-5]?\d(\.\d{1,6})?)?\s*(Z|[+-]\d{2}(:?\d{2})?)?)?$'"


def _header(path: Path) -> tuple[list[str], int] | None:
    """The header cells and the byte offset of the first data row; None when only Python can read it."""
    with path.open("rb") as stream:
        if stream.read(4) == ZIP_MAGIC:
            return None
        stream.seek(0)
        line = stream.readline(1 << 16)
    if not line.endswith(b"\n"):
        return None
    offset = len(line)
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return None
    text = text.removeprefix("\ufeff")
    if '"' in text and text.count('"') % 2:  # a quoted header cell spanning lines
        return None
    try:
        cells = next(csv.reader(io.StringIO(text)), None)
    except csv.Error:  # e.g. a bare CR inside the header line: the row-by-row reader explains it
        return None
    return (cells, offset) if cells else None


@dataclass(frozen=True)
class FastStage:
    """A file the fast path accepted: its data rows, the applications it names, and what was staged."""

    rows: int
    applications: set[int]
    plan: incremental.Plan


def stage_access(
    path: Path,
    *,
    log: ProblemLog,
    stage_table: str,
    stage_columns: tuple[str, ...],
    application_names: dict[str, int],
    default_application: int | None,
    lock=None,
) -> FastStage | None:
    """Fill ``stage_table`` from ``path`` (only the accounts that can have changed, when the pull is
    incremental), or return None to use the row-by-row path.

    ``lock(applications)`` is called once the file's applications are known and before any current data is
    read, so the caller can serialise pulls of the same applications.
    """
    if connection.vendor != "postgresql" or path.stat().st_size > settings.SOXGOV_IMPORT_MAX_BYTES:
        return None
    if not _utf8_database():
        return None
    found = _header(path)
    if found is None:
        return None
    header, offset = found
    index, duplicates, unknown = map_header(header, ACCESS_COLUMNS)
    if duplicates:
        return None
    if "account_id" not in index or ("application" not in index and default_application is None):
        return None
    try:
        with transaction.atomic():
            staged = _copy_and_normalise(
                path,
                offset,
                len(header),
                index,
                stage_table,
                stage_columns,
                application_names,
                default_application,
                lock,
            )
    except (DatabaseError, psycopg2.Error, _StepAside):
        # COPY goes through the raw psycopg2 cursor, whose errors Django does not wrap.
        return None
    for raw in unknown:
        log.warn(f"column {raw!r} is not used and was ignored")
    return staged


class _StepAside(Exception):
    pass


def _utf8_database() -> bool:
    """The SQL below reads characters as UTF-8 does (a non-ASCII character is more than one byte, lower() as
    PostgreSQL's UTF-8 locales do it); in a database of another encoding the row-by-row path reads the file."""
    return sql.scalar("SELECT current_setting('server_encoding')") == "UTF8"


def _copy_and_normalise(path, offset, width, index, stage_table, stage_columns, names, default, lock):
    raw_columns = [f"c{i}" for i in range(width)]
    # Rows are numbered as COPY reads them. A sequence hands out one value at a time unless it caches: with
    # a million cached, numbering 2M rows costs 0.25 s less of the COPY's 2.8 s (the numbers are the same,
    # 1, 2, 3, ...: the table and its sequence are new, and only this session draws from it).
    sql.create_temp(
        RAW,
        ", ".join(f"{c} TEXT" for c in raw_columns)
        + ", row_no BIGINT GENERATED BY DEFAULT AS IDENTITY (CACHE 1000000)",
    )
    # FORCE_NOT_NULL: an empty cell is '' whether quoted or not, so no expression below needs COALESCE.
    columns = ", ".join(raw_columns)
    with path.open("rb") as stream, connection.cursor() as cursor:
        stream.seek(offset)
        cursor.cursor.copy_expert(
            f"COPY {RAW} ({columns}) FROM STDIN WITH (FORMAT csv, ENCODING 'UTF8', FORCE_NOT_NULL ({columns}))",
            stream,
        )
    sql.create_temp(APP_NAMES, "name TEXT PRIMARY KEY, id BIGINT NOT NULL")
    for name, pk in names.items():
        sql.execute(f"INSERT INTO {APP_NAMES} (name, id) VALUES (%s, %s)", [name, pk])

    def cell(name: str, table: str = "") -> str:
        return f"{table}c{index[name]}" if name in index else "''::text"

    totals = incremental.summarise(
        raw=RAW, app_names=APP_NAMES, cell=cell, default=default, trim=_trimmed, dotted_i=DOTTED_I
    )
    applications = totals.applications | ({default} if default is not None else set())
    if lock is not None:
        lock(applications)
    plan = incremental.plan(scope=applications, totals=totals, valid=_valid_timestamp, cast=_timestamp)
    if plan.incremental:
        # The dirty accounts' rows, copied out once: both passes of _normalise read them.
        sql.execute(f"DROP TABLE IF EXISTS {DIRTY_RAW}")
        sql.execute(
            f"""CREATE TEMP TABLE {DIRTY_RAW} ON COMMIT DROP AS SELECT r0.* FROM {RAW} r0
            JOIN {incremental.DIRTY} d ON d.raw_app = {cell("application", "r0.")} AND d.raw_key = {cell("account_id", "r0.")}"""
        )
        inserted = _normalise(index, stage_table, stage_columns, default, DIRTY_RAW)
        if inserted != plan.dirty_rows:
            raise _StepAside
        if incremental.entitlements_agree(stage_table):
            return FastStage(rows=plan.rows, applications=applications, plan=plan)
        # The changed rows rename or re-flag an entitlement that clean accounts hold too: read everything.
        sql.execute(f"DELETE FROM {stage_table}")
        plan = replace(plan, incremental=False, dirty_rows=plan.rows, clean_accounts=0)
    if _normalise(index, stage_table, stage_columns, default, RAW) != plan.rows:
        raise _StepAside
    return FastStage(rows=plan.rows, applications=applications, plan=plan)


def _trimmed(text: str) -> str:
    """SQL: a cell with what Python's str.strip() removes (WS) cut from both ends. Every character of WS is at
    most a space, so a cell that starts and ends above it is left as it is without calling btrim(), which in
    a UTF-8 database costs about twice that test: almost every cell is such a cell (the stage of 250k rows:
    1.39 s -> 1.2 s)."""
    return f"CASE WHEN ascii({text}) > 32 AND ascii(right({text}, 1)) > 32 THEN {text} ELSE btrim({text}, {WS}) END"


def _timestamp(text: str) -> str:
    """SQL casting a validated, trimmed, non-empty timestamp cell: UTC unless it names its offset."""
    return f"CASE WHEN {text} ~ {HAS_ZONE} THEN {text}::timestamptz ELSE ({text}::timestamp AT TIME ZONE 'UTC') END"


def _non_ascii_at_an_end(text: str) -> str:
    """SQL: whether a trimmed cell starts or ends with a non-ASCII character, which might be a space only Python
    strips. Only a value with a non-ASCII character at all (more bytes than characters) is looked at closer:
    right() counts and copies characters, which over every cell cost 1 us a row (250k rows: 0.26 s against
    0.14 s)."""
    return f"(octet_length({text}) <> char_length({text}) AND (ascii({text}) > 127 OR ascii(right({text}, 1)) > 127))"


def _valid_timestamp(text: str) -> str:
    """SQL: whether a trimmed timestamp cell is one the fast path accepts ('' included). The first and last
    years may fall outside 1..9999 once moved to UTC; Python decides those."""
    return (
        f"({text} = '' OR {text} ~ {TIMESTAMP}) AND left({text}, 4) NOT IN ('0000', '0001', '9999') "
        f"AND NOT {_non_ascii_at_an_end(text)}"
    )


def _listed(words: tuple[str, ...]) -> str:
    return ", ".join(f"'{word}'" for word in words)


def _lowered(column: str, allowed: tuple[str, ...]) -> str:
    """``lower(column)`` for a cell that must be one of ``allowed`` (lower-case words): lower() is skipped for a
    value already one of them, what almost every row holds (lower() costs a third of a microsecond a cell),
    and a value holding DOTTED_I is left as it is, so it matches no word and the fast path steps aside."""
    return (
        f"(CASE WHEN {column} IN ({_listed(allowed)}) THEN {column} "
        f"WHEN strpos({column}, {DOTTED_I}) > 0 THEN {column} ELSE lower({column}) END)"
    )


# The cells the set-based path accepts: empty (the default) or one of the models' choices (as files.py).
STATUSES = ("", *Account.Status.values)
ENTITLEMENT_TYPES = ("", *Entitlement.Kind.values)
FLAGS = ("", "true", "yes", "1", "false", "no", "0")


def _times(index, source: str) -> None:
    """TIMES: each distinct trimmed ``last_used_at`` of the rows to normalise, validated and cast once.

    A regular expression costs PostgreSQL 1-2 us a value; a file repeats an account's last_used_at on each of
    its rows, so checking the distinct values saves seconds over millions of rows.
    """
    cell = _trimmed(f"r0.c{index['last_used_at']}") if "last_used_at" in index else "''::text"
    sql.create_temp(TIMES, f"text TEXT NOT NULL, valid BOOLEAN NOT NULL, value {sql.ts_type()}")
    sql.execute(
        f"""INSERT INTO {TIMES} (text, valid, value)
        SELECT u, ok, CASE WHEN ok AND u <> '' THEN {_timestamp("u")} END
        FROM (SELECT u, {_valid_timestamp("u")} AS ok FROM (SELECT DISTINCT {cell} AS u FROM {source} r0) d) v"""
    )
    sql.execute(f"ANALYZE {TIMES}")


def _normalise(index, stage_table, stage_columns, default, source: str) -> int:
    """Validate and normalise the raw rows of ``source`` (RAW, or the dirty accounts' DIRTY_RAW) into the stage."""
    _times(index, source)
    # Trim every cell once (OFFSET 0 keeps PostgreSQL from inlining the subquery and trimming again per use).
    trimmed = ", ".join(
        f"{_trimmed(f'r0.c{index[name]}')} AS {name}" if name in index else f"''::text AS {name}"
        for name in ACCESS_COLUMNS
    )
    application_id = f"COALESCE(n.id, {int(default)})" if default is not None else "n.id"
    status, kind, flag = (
        _lowered("r.account_status", STATUSES),
        _lowered("r.entitlement_type", ENTITLEMENT_TYPES),
        _lowered("r.privileged", FLAGS),
    )
    invalid = [
        "r.application <> '' AND n.id IS NULL",
        f"{application_id} IS NULL",
        "r.account_id = ''",
        *(
            f"length(r.{c}) > 255"
            for c in ("account_id", "account_name", "entitlement_id", "entitlement_name")
        ),
        "length(r.employee_id) > 64",
        "r.email <> '' AND (r.email NOT LIKE '%%@%%' OR r.email LIKE '%% %%' OR length(r.email) > 254)",
        f"{status} NOT IN ({_listed(STATUSES)})",
        f"{kind} NOT IN ({_listed(ENTITLEMENT_TYPES)})",
        f"{flag} NOT IN ({_listed(FLAGS)})",
        "NOT t.valid",
        # The other lowered cells (status, type, privileged) leave DOTTED_I in place, see _lowered().
        f"strpos(r.application, {DOTTED_I}) > 0 OR strpos(r.email, {DOTTED_I}) > 0",
    ]
    # Every cell but last_used_at, which TIMES checks (_valid_timestamp).
    invalid += [
        _non_ascii_at_an_end(f"r.{name}")
        for name in ACCESS_COLUMNS
        if name in index and name != "last_used_at"
    ]
    values = [
        "r.row_no + 1",
        application_id,
        "r.account_id",
        "NULLIF(r.account_name, '')",
        "NULLIF(r.employee_id, '')",
        "NULLIF(lower(r.email), '')",
        f"COALESCE(NULLIF({status}, ''), 'enabled')",
        "t.value",
        "NULLIF(r.entitlement_id, '')",
        "NULLIF(r.entitlement_name, '')",
        f"COALESCE(NULLIF({kind}, ''), 'role')",
        f"{flag} IN ('true', 'yes', '1')",
    ]
    # One pass: only valid rows go in, so a short count means some row needs the row-by-row path to explain it.
    # Casting an impossible date (2026-02-30) raises instead; the caller's savepoint rolls back and steps aside.
    # The join to TIMES must be a hash join: the raw table has no statistics, and a nested loop over it was
    # measured at 95 s against 10 s for 2M rows. The import session turns nested loops off already; this holds
    # for any caller, and gives the caller's setting back.
    with sql.planner_setting("enable_nestloop", "off"):
        return sql.execute(
            f"""INSERT INTO {stage_table} ({", ".join(stage_columns)}) SELECT {", ".join(values)}
            FROM (SELECT r0.row_no, {trimmed} FROM {source} r0 OFFSET 0) r
            LEFT JOIN {APP_NAMES} n ON n.name = lower(r.application)
            JOIN {TIMES} t ON t.text = r.last_used_at
            WHERE NOT ({" OR ".join(f"({c})" for c in invalid)})"""
        )
