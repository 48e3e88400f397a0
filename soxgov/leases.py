"""Leases: proof that the worker doing a piece of work is still alive.

On PostgreSQL a lease is a session-level advisory lock held by the worker's database connection. When the
worker dies (kill -9, a lost machine, a terminated backend) its connection closes and the lock goes with it, at
once and without a clock: whoever can take the lock knows the previous holder is gone. Taking it is also what
makes a redelivered message harmless, because a second worker cannot take a lease that is held.

SQLite has no advisory locks and the embedded mode runs work in-process, so there a lease is held by
definition and counts as lost only when the work started longer than ``SOXGOV_JOB_LEASE_SECONDS`` ago.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum

from django.conf import settings
from django.db import connection
from django.utils import timezone


class Kind(enum.IntEnum):
    """The first key of the two-key advisory lock (which never collides with the one-key locks elsewhere)."""

    JOB = 0x4A4F  # "JO"
    RUN = 0x5255  # "RU"
    PACK = 0x5041  # "PA"
    VERIFICATION = 0x5645  # "VE"


def _postgres() -> bool:
    return connection.vendor == "postgresql"


def take(kind: Kind, pk: int) -> bool:
    """Take the lease on ``(kind, pk)`` for this connection's session; False when someone else holds it."""
    if not _postgres():
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [int(kind), int(pk)])
        return bool(cursor.fetchone()[0])


def give_back(kind: Kind, pk: int) -> None:
    """Release a lease this session holds; nothing when the connection (and so the lease) is already gone."""
    if not _postgres() or connection.connection is None:
        return
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [int(kind), int(pk)])
    except Exception:  # a dead connection released it already
        connection.close()


@contextlib.contextmanager
def held(kind: Kind, pk: int):
    """``with held(kind, pk) as mine:`` mine is False when another live worker holds the lease."""
    mine = take(kind, pk)
    try:
        yield mine
    finally:
        if mine:
            give_back(kind, pk)


@contextlib.contextmanager
def orphaned(kind: Kind, pk: int, *, started_at: dt.datetime | None):
    """``with orphaned(kind, pk, started_at=...) as gone:`` gone is True when the worker that took the lease is
    dead; the lease is then held until the block ends, so nobody else takes the work over meanwhile."""
    if not _postgres():
        lease = dt.timedelta(seconds=settings.SOXGOV_JOB_LEASE_SECONDS)
        yield started_at is None or started_at < timezone.now() - lease
        return
    with held(kind, pk) as mine:
        yield mine
