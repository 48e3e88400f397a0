"""Keyset ("seek") pagination for pages and htmx fragments, and for the API (``IdCursorPagination``).

OFFSET pagination reads and throws away every row before the page, so deep pages get slower as data grows;
a keyset page seeks to the last row seen through an index on the ordering columns, at the same cost at any
depth. The ordering must end with a unique column (the primary key) so that every row has one position.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db.models import F, Q, QuerySet
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan
from rest_framework import exceptions
from rest_framework.pagination import CursorPagination


class InvalidCursor(ValueError):
    pass


@dataclass(frozen=True)
class KeysetPage:
    items: list
    next_cursor: str | None
    prev_cursor: str | None

    @property
    def has_other_pages(self) -> bool:
        return bool(self.next_cursor or self.prev_cursor)


def _cursor_value(value):
    """Dates and times travel as ISO text; each column's own parser reads them back."""
    return value.isoformat() if hasattr(value, "isoformat") else value


def _encode(direction: str, values: list) -> str:
    raw = json.dumps(
        {"d": direction, "v": [_cursor_value(v) for v in values]}, separators=(",", ":")
    ).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str, width: int) -> tuple[str, list]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        direction, values = data["d"], data["v"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidCursor("the page cursor is not valid") from exc
    if direction not in ("n", "p") or not isinstance(values, list) or len(values) != width:
        raise InvalidCursor("the page cursor is not valid")
    if not all(isinstance(v, str | int) and not isinstance(v, bool) for v in values):
        raise InvalidCursor("the page cursor is not valid")
    return direction, values


def _after(ordering: tuple[str, ...], values: list, *, reverse: bool) -> Q:
    """Rows strictly after ``values`` in lexicographic ``ordering`` (or before, when ``reverse``)."""
    condition = Q()
    for i, term in enumerate(ordering):
        field = term.lstrip("-")
        descending = term.startswith("-") != reverse
        step = Q(**{f"{field}__{'lt' if descending else 'gt'}": values[i]})
        for prior_term, prior_value in zip(ordering[:i], values[:i], strict=True):
            step &= Q(**{prior_term.lstrip("-"): prior_value})
        condition |= step
    return condition


def _row_after(model, ordering: tuple[str, ...], values: list, *, reverse: bool):
    """The same condition as one row comparison, ``(a, b, id) > (x, y, z)``, when every term sorts the same
    way: PostgreSQL then bounds the index scan with it instead of filtering rows it has already read, so a deep
    page costs what the first does. None when directions are mixed (a row comparison cannot express that)."""
    descending = {term.startswith("-") for term in ordering}
    if len(descending) != 1:
        return None
    names = [term.lstrip("-") for term in ordering]
    if any("__" in name for name in names):
        return None
    # Converted now: a row comparison would only meet a bad value when the query runs.
    prepared = [
        model._meta.get_field(name).get_prep_value(model._meta.get_field(name).to_python(value))
        for name, value in zip(names, values, strict=True)
    ]
    columns = Tuple(*(F(name) for name in names))
    backwards = descending.pop() != reverse
    return (TupleLessThan if backwards else TupleGreaterThan)(columns, prepared)


def _seek(queryset: QuerySet, ordering: tuple[str, ...], values: list, *, reverse: bool) -> QuerySet:
    try:
        row = _row_after(queryset.model, ordering, values, reverse=reverse)
        if row is not None:
            return queryset.filter(row)
        return queryset.filter(_after(ordering, values, reverse=reverse))
    except (ValueError, TypeError, ValidationError) as exc:
        # A value of the wrong type for its column (say text for the id) fails here, when Django prepares the
        # lookup; it is a bad cursor like any other, not a server error.
        raise InvalidCursor("the page cursor is not valid") from exc


def _flip(term: str) -> str:
    return term[1:] if term.startswith("-") else f"-{term}"


def keyset_paginate(
    queryset: QuerySet, *, ordering: tuple[str, ...], cursor: str | None, page_size: int
) -> KeysetPage:
    fields = [term.lstrip("-") for term in ordering]
    direction, values = _decode(cursor, len(ordering)) if cursor else ("n", None)
    if direction == "n":
        qs = queryset.order_by(*ordering)
        if values is not None:
            qs = _seek(qs, ordering, values, reverse=False)
        rows = list(qs[: page_size + 1])
        has_more, items = len(rows) > page_size, rows[:page_size]
        has_next, has_prev = has_more, values is not None
    else:
        qs = _seek(queryset.order_by(*[_flip(t) for t in ordering]), ordering, values, reverse=True)
        rows = list(qs[: page_size + 1])
        has_more, items = len(rows) > page_size, list(reversed(rows[:page_size]))
        has_next, has_prev = True, has_more

    def key(obj) -> list:
        return [getattr(obj, f) for f in fields]

    return KeysetPage(
        items=items,
        next_cursor=_encode("n", key(items[-1])) if items and has_next else None,
        prev_cursor=_encode("p", key(items[0])) if items and has_prev else None,
    )


class IdCursorPagination(CursorPagination):
    """The API's pagination: keyset on the primary key, constant cost at any depth, stable under inserts."""

    ordering = "pk"
    page_size_query_param = "page_size"
    max_page_size = 1000

    def get_page_size(self, request):
        # DRF ignores a page_size it cannot read: ``?page_size=all`` would silently give the default size. Refused
        # instead, naming the parameter. One above the maximum is a wish for "as many as allowed": capped.
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not (raw.isascii() and raw.isdigit() and int(raw) >= 1):
            raise exceptions.ValidationError(
                {self.page_size_query_param: [f"A whole number of at least 1 (got {raw[:40]!r})."]}
            )
        return min(int(raw), self.max_page_size)

    def decode_cursor(self, request):
        cursor = super().decode_cursor(request)
        # DRF passes the cursor's position straight into ``pk__gt``; a tampered, non-integer one would raise
        # ValueError there (a 500). Every primary key here is an integer, so refuse it like any bad cursor.
        if cursor is not None and cursor.position is not None:
            try:
                int(cursor.position)
            except ValueError:
                raise exceptions.NotFound(self.invalid_cursor_message) from None
        return cursor
