"""The change-set digest sealed into a run's evidence: SHA-256 over the run's history rows.

One line per history row, in model order then history order::

    <model label>|<history type>|<tracked field values, in field order, separated by |>\\n

Values: integers and text as they are, booleans as 1/0, dates as YYYY-MM-DD, date-times as integer microseconds
since the Unix epoch, NULL as nothing. Anyone can recompute it from the history tables. PostgreSQL formats the
lines in the database; elsewhere Python formats them. Both stream into one hash.
Both must agree byte for byte (tests/imports/test_digest.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib

from django.db import connection, models

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MICROSECOND = dt.timedelta(microseconds=1)


def changes_digest(reason: str, marks: dict) -> str:
    """``marks``: {model: highest history id before the run}; the run's rows come after it."""
    if connection.vendor == "postgresql":
        return _digest_sql(reason, marks)
    return digest_python(reason, marks)


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dt.datetime):
        return str((value - EPOCH) // MICROSECOND)
    return str(value)


def digest_python(reason: str, marks: dict) -> str:
    hasher = hashlib.sha256()
    for model, mark in marks.items():
        historical = model.history.model
        fields = ["history_type", *[f.attname for f in historical.tracked_fields]]
        rows = (
            historical.objects.filter(history_id__gt=mark, history_change_reason=reason)
            .order_by("history_id")
            .values_list(*fields)
        )
        label = model._meta.label_lower
        for values in rows.iterator(chunk_size=20000):
            hasher.update(f"{label}|{'|'.join(map(_text, values))}\n".encode())
    return hasher.hexdigest()


def _sql_text(field: models.Field) -> str:
    column = f"h.{field.column}"
    if isinstance(field, models.BooleanField):
        return f"CASE WHEN {column} THEN '1' WHEN NOT {column} THEN '0' ELSE '' END"
    if isinstance(field, models.DateTimeField):
        return f"COALESCE((EXTRACT(EPOCH FROM {column}) * 1000000)::bigint::text, '')"
    return f"COALESCE({column}::text, '')"


def _digest_sql(reason: str, marks: dict) -> str:
    """Lines are formatted by PostgreSQL and streamed through a server-side cursor into one hash: the bytes are
    those of digest_python, memory stays flat, and no single value approaches PostgreSQL's 1 GB limit."""
    parts, params = [], []
    for order, (model, mark) in enumerate(marks.items()):
        historical = model.history.model
        line = " || '|' || ".join(
            [
                f"'{model._meta.label_lower}'",
                "h.history_type",
                *(_sql_text(f) for f in historical.tracked_fields),
            ]
        )
        parts.append(
            f"SELECT {order} AS k, h.history_id AS hid, {line} || E'\\n' AS line "
            f"FROM {historical._meta.db_table} h WHERE h.history_id > %s AND h.history_change_reason = %s"
        )
        params += [mark, reason]
    hasher = hashlib.sha256()
    with connection.chunked_cursor() as cursor:
        cursor.execute(f"SELECT line FROM ({' UNION ALL '.join(parts)}) x ORDER BY k, hid", params)
        while rows := cursor.fetchmany(20000):
            hasher.update("".join(row[0] for row in rows).encode())
    return hasher.hexdigest()
