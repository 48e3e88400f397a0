"""Run progress, shared through the cache (Redis in production) because the run's own transaction is not
visible to the web process until it commits.

Progress is a courtesy, never a requirement: with the cache unreachable a run goes on (and commits) without
reporting, and a page shows the run's status without a percentage.
"""

import logging

from django.core.cache import cache

log = logging.getLogger(__name__)

TTL = 24 * 3600


def _key(run_id: int) -> str:
    return f"soxgov:run-progress:{run_id}"


def report(run_id: int, *, phase: str, percent: int, rows: int | None = None) -> None:
    try:
        cache.set(_key(run_id), {"phase": phase, "percent": max(0, min(100, percent)), "rows": rows}, TTL)
    except Exception as exc:  # redis-py raises its own ConnectionError/TimeoutError, not an OSError
        log.info("run %s progress not reported (%s: %s)", run_id, type(exc).__name__, exc)


def read(run_id: int) -> dict | None:
    try:
        return cache.get(_key(run_id))
    except Exception as exc:
        log.info("run %s progress unavailable (%s: %s)", run_id, type(exc).__name__, exc)
        return None
