"""Low-level helpers: loading a staging table, and writing history rows set-based."""

from __future__ import annotations

import contextlib
import io
import itertools
import logging
import time
from collections.abc import Iterable, Iterator

from django.db import DatabaseError, connection, transaction

logger = logging.getLogger(__name__)


def vendor() -> str:
    return connection.vendor


def ts_type() -> str:
    return "TIMESTAMP WITH TIME ZONE" if vendor() == "postgresql" else "TEXT"


def adapt_ts(value):
    return connection.ops.adapt_datetimefield_value(value) if value is not None else None


def adapt_date(value):
    return connection.ops.adapt_datefield_value(value) if value is not None else None


def true() -> str:
    return "TRUE" if vendor() == "postgresql" else "1"


def execute(sql: str, params: Iterable = ()) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return cursor.rowcount


def fetchall(sql: str, params: Iterable = ()) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, list(params))
        return cursor.fetchall()


def scalar(sql: str, params: Iterable = ()):
    rows = fetchall(sql, params)
    return rows[0][0] if rows else None


@contextlib.contextmanager
def planner_setting(name: str, value: str):
    """PostgreSQL: a planner setting for the statements inside, then the transaction's own value again (a
    no-op elsewhere). Set for the transaction only, so an error inside leaves nothing behind either."""
    if vendor() != "postgresql":
        yield
        return
    before = scalar("SELECT current_setting(%s)", [name])
    execute("SELECT set_config(%s, %s, true)", [name, value])
    yield
    execute("SELECT set_config(%s, %s, true)", [name, before])


def estimated_rows(table: str) -> int:
    """The planner's estimate of ``table``'s rows (PostgreSQL; 0 when never analysed, and elsewhere)."""
    if vendor() != "postgresql":
        return 0
    return int(scalar("SELECT GREATEST(reltuples, 0) FROM pg_class WHERE oid = %s::regclass", [table]) or 0)


LOCK_NOT_AVAILABLE = "55P03"


@contextlib.contextmanager
def foreign_keys_checked_once(table: str, *, advisory_lock: int | None = None, attempts: int = 10, pause=0.2):
    """PostgreSQL bulk loads: drop ``table``'s foreign keys for the statements inside, then add them back.

    Django declares foreign keys DEFERRABLE INITIALLY DEFERRED: every row inserted queues one check per key,
    run at COMMIT as its own index probe and row lock (2M new grants: about 19 s there). Adding a key back
    checks every row of the table in one join (0.5 s for 2M grants), as pg_restore does. A row that breaks a
    key still fails, when the key is added back instead of at COMMIT.

    The price is locks held until the transaction ends: dropping a key takes ``table`` and the tables it
    references ACCESS EXCLUSIVE, so everyone else who reads them waits. They are taken at once (NOWAIT), with
    ``advisory_lock`` (the evidence chain, which the caller appends to later) before them, so this never waits
    for a lock while it holds another that someone else may be waiting for: no deadlock. If they are busy for
    ``attempts`` tries ``pause`` seconds apart (each try gives back what it took), or the role may not alter
    the table, or a key is NOT VALID (adding it back would validate it), nothing is dropped and the statements
    inside run with the per-row checks. Everything inside runs in a savepoint, so an error inside puts the keys
    back as they were, whatever the caller does with the error.
    """
    if vendor() != "postgresql":
        yield
        return
    keys = fetchall(
        "SELECT conname, pg_get_constraintdef(oid), confrelid::regclass::text, convalidated FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY conname",
        [table],
    )
    # ALTER TABLE refuses a table with checks still queued in the transaction: run them now, before any lock is
    # taken (COMMIT would run them anyway; one that fails fails the caller here instead). Then deferred again,
    # the state every key here was declared with (Django declares them all INITIALLY DEFERRED).
    execute("SET CONSTRAINTS ALL IMMEDIATE")
    execute("SET CONSTRAINTS ALL DEFERRED")
    with transaction.atomic():
        if not all(valid for *_, valid in keys):
            reason = "a foreign key is NOT VALID"
        elif not _owns(table):
            # The application's role owns no table (README, "Database roles"): only the owner may alter one.
            reason = "the database role does not own the table"
        else:
            reason = _drop_keys(table, keys, advisory_lock, attempts, pause)
        if reason:
            logger.info("%s keeps its foreign keys during this load: %s", table, reason)
            yield
            return
        yield
        quote = connection.ops.quote_name
        for name, definition, *_ in keys:
            execute(f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} {definition}")


def _owns(table: str) -> bool:
    return bool(
        scalar(
            "SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class WHERE oid = %s::regclass",
            [table],
        )
    )


def _drop_keys(table: str, keys, advisory_lock, attempts: int, pause) -> str:
    """Take the locks at once and drop the keys; '' when done, else why not (nothing is then held)."""
    quote = connection.ops.quote_name
    tables = ", ".join(
        quote(t) for t in dict.fromkeys([table, *(referenced for _, _, referenced, _ in keys)])
    )
    for attempt in range(attempts):
        if attempt:
            time.sleep(pause)
        try:
            with transaction.atomic():
                if advisory_lock is not None and not scalar(
                    "SELECT pg_try_advisory_xact_lock(%s)", [advisory_lock]
                ):
                    continue  # nothing taken: the savepoint just ends
                execute(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE NOWAIT")
                for name, *_ in keys:
                    execute(f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(name)}")
            return ""
        except DatabaseError as exc:
            if getattr(exc.__cause__, "pgcode", None) != LOCK_NOT_AVAILABLE:
                return str(exc).strip()
    return f"{tables} or the lock {advisory_lock} stayed busy for {attempts} tries"


def create_temp(name: str, columns_sql: str) -> None:
    execute(f"DROP TABLE IF EXISTS {name}")
    suffix = " ON COMMIT DROP" if vendor() == "postgresql" else ""
    execute(f"CREATE TEMP TABLE {name} ({columns_sql}){suffix}")


class _CopySource(io.TextIOBase):
    """A file-like object that renders rows as CSV on demand, so COPY streams without holding the file."""

    def __init__(self, rows: Iterator[tuple]):
        self._rows = rows
        self._buffer = io.StringIO()
        self._pending = ""
        self.error: Exception | None = None

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> str:
        want = size if size and size > 0 else 1 << 16
        try:
            while len(self._pending) < want:
                self._buffer.writelines(_copy_line(row) for row in itertools.islice(self._rows, 2000))
                chunk = self._buffer.getvalue()
                self._buffer.seek(0)
                self._buffer.truncate()
                if not chunk:
                    break
                self._pending += chunk
        except Exception as exc:
            # psycopg2 reports an error raised here as QueryCanceled; load() raises the original instead.
            self.error = exc
            raise
        out, self._pending = self._pending[:want], self._pending[want:]
        return out

    readline = read


def _copy_line(row: tuple) -> str:
    """One line of COPY csv. COPY reads an unquoted empty field as NULL and a quoted one as the empty string;
    csv.writer writes both None and "" unquoted, so every value is quoted here and only None is left empty."""
    return ",".join(map(_copy_field, row)) + "\n"


def _copy_field(value) -> str:
    if value is None:
        return ""
    if value is True or value is False:
        return "t" if value else "f"
    return '"' + str(value).replace('"', '""') + '"'


def load(table: str, columns: tuple[str, ...], rows: Iterable[tuple], *, batch_size: int = 5000) -> int:
    """Load rows into a staging table: COPY on PostgreSQL, batched executemany elsewhere. Returns the count."""
    count = 0

    def counted():
        nonlocal count
        for row in rows:
            count += 1
            yield row

    if vendor() == "postgresql":
        source = _CopySource(counted())
        with connection.cursor() as cursor:
            try:
                cursor.cursor.copy_expert(
                    f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)", source
                )
            except Exception:
                if source.error is not None:  # the rows failed (e.g. ImportRefused), not the database
                    raise source.error from None
                raise
        return count
    placeholders = ", ".join(["%s"] * len(columns))
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"
    batch: list[tuple] = []
    with connection.cursor() as cursor:
        for row in counted():
            batch.append(row)
            if len(batch) >= batch_size:
                cursor.executemany(sql, batch)
                batch = []
        if batch:
            cursor.executemany(sql, batch)
    return count


def history_insert(
    model, *, history_type: str, where: str, params: Iterable, when, reason: str, user_id
) -> int:
    """Write one simple-history row per object of ``model`` matching ``where`` (alias ``m``), as it is now.

    Call before a DELETE (type '-') and after an INSERT ('+') or UPDATE ('~'). This is what simple-history's
    signals would write one object at a time; here it is one INSERT ... SELECT.
    """
    historical = model.history.model
    tracked = [field.column for field in historical.tracked_fields]
    columns = [*tracked, "history_date", "history_change_reason", "history_type", "history_user_id"]
    select = ", ".join(f"m.{c}" for c in tracked)
    sql = (
        f"INSERT INTO {historical._meta.db_table} ({', '.join(columns)}) "
        f"SELECT {select}, %s, %s, %s, %s FROM {model._meta.db_table} m WHERE {where}"
    )
    return execute(sql, [adapt_ts(when), reason, history_type, user_id, *params])
