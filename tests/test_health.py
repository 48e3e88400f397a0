"""Health endpoints: liveness touches nothing; readiness names each of database, broker, worker and beat."""

import datetime as dt
import socket
import time

import pytest
from django.db import connection, connections
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from soxgov import health
from soxgov.models import Heartbeat

REDIS = "redis://127.0.0.1:6379/5"


@pytest.fixture
def broker(settings):
    settings.REDIS_URL = REDIS
    return settings


def stamp(*, worker_seconds_ago: float | None, beat_seconds_ago: float | None) -> None:
    now = timezone.now()
    if worker_seconds_ago is not None:
        Heartbeat.objects.update_or_create(
            source=health.WORKER, defaults={"at": now - dt.timedelta(seconds=worker_seconds_ago)}
        )
    if beat_seconds_ago is not None:
        PeriodicTask.objects.update_or_create(
            name=health.HEARTBEAT_ENTRY,
            defaults={
                "task": "soxgov.heartbeat",
                "interval": IntervalSchedule.objects.get_or_create(every=30, period=IntervalSchedule.SECONDS)[
                    0
                ],
                "last_run_at": now - dt.timedelta(seconds=beat_seconds_ago),
            },
        )


def closed_port() -> int:
    """A local port nothing listens on: bound, then released."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_liveness_answers_without_a_session_and_without_touching_the_database_or_redis(client, settings):
    # No db fixture: pytest-django refuses any database access in this test. And a broker that is not there.
    settings.REDIS_URL = f"redis://127.0.0.1:{closed_port()}/0"

    response = client.get(reverse("health_live"))

    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert "no-store" in response["Cache-Control"]
    assert "Set-Cookie" not in response


def test_readiness_embedded_passes_with_broker_worker_and_beat_embedded(db, client, settings):
    settings.REDIS_URL = None

    response = client.get(reverse("health_ready"))

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "failed": [],
        "checks": {
            "database": {"status": "ok"},
            "broker": {"status": "embedded"},
            "worker": {"status": "embedded"},
            "beat": {"status": "embedded"},
        },
    }


def test_readiness_with_a_fresh_heartbeat_and_a_reachable_broker_is_200(db, client, broker):
    stamp(worker_seconds_ago=5, beat_seconds_ago=3)

    response = client.get(reverse("health_ready"))

    assert response.status_code == 200, response.content
    checks = response.json()["checks"]
    assert {name: check["status"] for name, check in checks.items()} == dict.fromkeys(checks, "ok")
    assert 5 <= checks["worker"]["age_seconds"] <= 7 and 3 <= checks["beat"]["age_seconds"] <= 5


def test_readiness_names_the_worker_when_its_heartbeat_is_stale(db, client, broker):
    broker.SOXGOV_HEALTH_WORKER_MAX_AGE = 120
    stamp(worker_seconds_ago=300, beat_seconds_ago=3)

    response = client.get(reverse("health_ready"))

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "failed" and body["failed"] == ["worker"]
    assert body["checks"]["worker"]["status"] == "failed"
    assert body["checks"]["worker"]["reason"].startswith("a worker ran the heartbeat 30")
    assert body["checks"]["worker"]["reason"].endswith("s ago, more than 120 s")
    assert body["checks"]["beat"]["status"] == "ok"


def test_readiness_names_the_worker_and_beat_when_neither_ever_ran(db, client, broker):
    response = client.get(reverse("health_ready"))

    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["worker", "beat"]
    assert body["checks"]["worker"] == {"status": "failed", "reason": "a worker ran the heartbeat never"}
    assert body["checks"]["beat"] == {"status": "failed", "reason": "beat sent the heartbeat never"}


def test_readiness_names_beat_when_its_last_send_is_stale(db, client, broker):
    broker.SOXGOV_HEALTH_BEAT_MAX_AGE = 60
    stamp(worker_seconds_ago=5, beat_seconds_ago=90)

    body = client.get(reverse("health_ready")).json()

    assert body["failed"] == ["beat"] and body["checks"]["beat"]["age_seconds"] >= 90


def test_readiness_names_the_broker_when_redis_does_not_answer_and_answers_fast(db, client, settings):
    port = closed_port()
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"
    stamp(worker_seconds_ago=5, beat_seconds_ago=3)

    started = time.monotonic()
    response = client.get(reverse("health_ready"))
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["broker"]
    assert body["checks"]["broker"] == {"status": "failed", "reason": "no answer (ConnectionError)"}
    assert elapsed < 3
    assert str(port) not in response.content.decode() and "127.0.0.1" not in response.content.decode()


def test_the_database_check_fails_for_a_database_that_is_not_there_and_the_rest_follow(db, broker):
    name = connection.settings_dict["NAME"]
    missing = f"{name}_missing" if connection.vendor == "postgresql" else "/nonexistent/dir/soxgov.sqlite3"
    wrapper = type(connections["default"])  # a real database connection of the same backend, elsewhere
    elsewhere = wrapper({**connection.settings_dict, "NAME": missing}, alias="health_missing")
    try:
        checks = health.readiness(db=elsewhere)
    finally:
        elsewhere.close()

    assert checks["database"] == health.Check("failed", "no answer (OperationalError)")
    assert checks["worker"] == checks["beat"] == health.Check("failed", "database unavailable")
    assert checks["broker"].status == "ok"
    assert health.check_database() == health.Check("ok")  # the application's own connection is fine


def test_the_heartbeat_task_stamps_the_worker_row(db):
    before = timezone.now()

    health.heartbeat.apply()
    health.heartbeat.apply()

    assert Heartbeat.objects.get(source=health.WORKER).at >= before
    assert Heartbeat.objects.count() == 1


def test_beat_sends_the_heartbeat_on_schedule_and_writes_back_after_every_task(settings):
    from django.conf import settings as live

    entry = live.CELERY_BEAT_SCHEDULE[health.HEARTBEAT_ENTRY]
    assert entry["task"] == "soxgov.heartbeat" == health.heartbeat.name
    assert entry["schedule"] == dt.timedelta(seconds=live.SOXGOV_HEARTBEAT_SECONDS)
    assert entry["options"] == {"expires": live.SOXGOV_HEARTBEAT_SECONDS}
    assert live.CELERY_BEAT_SYNC_EVERY == 1
