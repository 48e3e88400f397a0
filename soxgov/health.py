"""Health endpoints for operators and load balancers, and the worker heartbeat they read.

``/health/live``: the process answers (touches neither the database nor Redis). ``/health/ready``: the database
answers, the broker answers, a worker ran the heartbeat recently and beat sent it recently; 503 naming what
failed otherwise. Neither needs a session or a token, so both say nothing an outsider could use: no host names,
versions or error texts, only which check failed, a short reason and ages in seconds.

Worker: beat sends ``soxgov.heartbeat`` every SOXGOV_HEARTBEAT_SECONDS; a worker that runs it stamps the
``worker`` Heartbeat row. Beat: django-celery-beat's ``last_run_at`` of that schedule entry, which beat writes
back after every task it sends (CELERY_BEAT_SYNC_EVERY = 1). Embedded (no REDIS_URL: tasks run in the web
process) there is no broker, worker or beat to check: they report "embedded" and pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from celery import shared_task
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

HEARTBEAT_ENTRY = "soxgov-heartbeat"  # its key in CELERY_BEAT_SCHEDULE, and django-celery-beat's task name
WORKER = "worker"
# A readiness probe must answer within the balancer's timeout even when Redis is gone.
BROKER_TIMEOUT_SECONDS = 1.0

OK, FAILED, EMBEDDED = "ok", "failed", "embedded"


@dataclass(frozen=True)
class Check:
    status: str
    reason: str = ""
    age_seconds: int | None = None

    @property
    def passed(self) -> bool:
        return self.status != FAILED

    def as_json(self) -> dict:
        out = {"status": self.status}
        if self.reason:
            out["reason"] = self.reason
        if self.age_seconds is not None:
            out["age_seconds"] = self.age_seconds
        return out


@shared_task(name="soxgov.heartbeat", ignore_result=True)
def heartbeat() -> None:
    from soxgov.models import Heartbeat

    Heartbeat.objects.update_or_create(source=WORKER, defaults={"at": timezone.now()})


def embedded() -> bool:
    return not settings.REDIS_URL


def check_database(db=connection) -> Check:
    try:
        with db.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        # A connection that failed is not reused by the next request.
        db.close_if_unusable_or_obsolete()
        return Check(FAILED, f"no answer ({type(exc).__name__})")
    return Check(OK)


def check_broker() -> Check:
    if embedded():
        return Check(EMBEDDED)
    import redis

    client = redis.Redis.from_url(
        settings.REDIS_URL,
        socket_timeout=BROKER_TIMEOUT_SECONDS,
        socket_connect_timeout=BROKER_TIMEOUT_SECONDS,
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        return Check(FAILED, f"no answer ({type(exc).__name__})")
    finally:
        client.close()
    return Check(OK)


def _age_check(moment, max_age: int, what: str) -> Check:
    if moment is None:
        return Check(FAILED, f"{what} never")
    age = max(0, int((timezone.now() - moment).total_seconds()))
    if age > max_age:
        return Check(FAILED, f"{what} {age} s ago, more than {max_age} s", age)
    return Check(OK, age_seconds=age)


def check_worker(database: Check) -> Check:
    if embedded():
        return Check(EMBEDDED)
    if not database.passed:
        return Check(FAILED, "database unavailable")
    from soxgov.models import Heartbeat

    at = Heartbeat.objects.filter(source=WORKER).values_list("at", flat=True).first()
    return _age_check(at, settings.SOXGOV_HEALTH_WORKER_MAX_AGE, "a worker ran the heartbeat")


def check_beat(database: Check) -> Check:
    if embedded():
        return Check(EMBEDDED)
    if not database.passed:
        return Check(FAILED, "database unavailable")
    from django_celery_beat.models import PeriodicTask

    at = PeriodicTask.objects.filter(name=HEARTBEAT_ENTRY).values_list("last_run_at", flat=True).first()
    return _age_check(at, settings.SOXGOV_HEALTH_BEAT_MAX_AGE, "beat sent the heartbeat")


def readiness(db=connection) -> dict[str, Check]:
    database = check_database(db)
    return {
        "database": database,
        "broker": check_broker(),
        "worker": check_worker(database),
        "beat": check_beat(database),
    }


@login_not_required
@never_cache
@require_http_methods(["GET", "HEAD"])
def live(request):
    return JsonResponse({"status": OK})


@login_not_required
@never_cache
@require_http_methods(["GET", "HEAD"])
def ready(request):
    checks = readiness()
    passed = all(check.passed for check in checks.values())
    body = {
        "status": OK if passed else FAILED,
        "failed": [name for name, check in checks.items() if not check.passed],
        "checks": {name: check.as_json() for name, check in checks.items()},
    }
    return JsonResponse(body, status=200 if passed else 503)
