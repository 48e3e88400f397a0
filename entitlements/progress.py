"""Run progress, shared through the cache (Redis in production) because the run's own transaction is not
visible to the web process until it commits."""

from django.core.cache import cache

TTL = 24 * 3600


def _key(run_id: int) -> str:
    return f"soxgov:run-progress:{run_id}"


def report(run_id: int, *, phase: str, percent: int, rows: int | None = None) -> None:
    cache.set(_key(run_id), {"phase": phase, "percent": max(0, min(100, percent)), "rows": rows}, TTL)


def read(run_id: int) -> dict | None:
    return cache.get(_key(run_id))
