"""Small database helpers shared by the apps."""

from django.db import connection


def advisory_xact_lock(key: int) -> None:
    """Serialise writers on ``key`` until the current transaction ends (PostgreSQL). SQLite needs nothing: its
    write transactions are IMMEDIATE, so writers are serialised already."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])
