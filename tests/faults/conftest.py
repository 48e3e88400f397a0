"""Fixtures for the fault tests: per module a Redis and a worker of their own; per test a small company.

The test process and its worker both use the private Redis (broker and cache), on a queue of their own, so a
test may stop it, kill it or restart it empty without touching anything else on the machine. PostgreSQL
only: the faults are PostgreSQL's (sessions terminated, advisory locks released by a dead worker).
"""

from __future__ import annotations

import itertools
import os
import shutil
import uuid
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import override_settings

from evidence import triggers
from tests.faults.harness import APP_NAME, Faults, FaultWorker, PrivateRedis, sessions_of, wait_until
from tests.faults.outcomes import Company


@pytest.fixture(scope="module")
def fault_root(tmp_path_factory):
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="module")
def postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip(
            "fault tests need PostgreSQL: they terminate database sessions and rely on the advisory locks "
            "a dead worker's session gives up (set DATABASE_URL)"
        )
    if shutil.which("redis-server") is None:
        pytest.skip("fault tests start a Redis of their own: redis-server is not installed")


@pytest.fixture(scope="module")
def module_db(postgres_only, django_db_setup, django_db_blocker):
    """The database, committed, for the whole module; emptied once at its end, as transactional tests leave it.

    Not pytest-django's transactional_db, which empties every table after each test: seconds per scenario.
    The scenarios tag their names (outcomes.Company) so that they can share it.
    """
    with django_db_blocker.unblock():
        yield
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {triggers.TABLE} DISABLE TRIGGER USER")
            cursor.execute(f"DELETE FROM {triggers.TABLE}")
            cursor.execute(f"ALTER TABLE {triggers.TABLE} ENABLE TRIGGER USER")
        call_command("flush", interactive=False, verbosity=0)


@pytest.fixture
def transactional_db(module_db):
    """pytest-django's name, overridden: the module's committed database, not emptied after each test. The name
    is what tells pytest-django that these tests need the test database created."""


@pytest.fixture(scope="module")
def redis(postgres_only, fault_root):
    server = PrivateRedis(fault_root / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def broker(redis):
    """Point this process's Celery app and cache at the private Redis, on a queue of its own."""
    from soxgov.celery import app

    queue = f"soxgov-faults-{uuid.uuid4().hex[:12]}"
    overrides = override_settings(
        REDIS_URL=redis.url,
        CELERY_BROKER_URL=redis.url,
        CACHES={"default": {"BACKEND": CACHE, "LOCATION": redis.url, "OPTIONS": CACHE_OPTIONS}},
    )
    # Read before the settings are overridden: Celery's configuration reads through to Django's settings.
    previous = {
        key: app.conf[key]
        for key in ("broker_url", "task_default_queue", "task_always_eager", "broker_write_url")
    }
    overrides.enable()
    app.conf.update(
        broker_url=redis.url, broker_write_url=None, task_default_queue=queue, task_always_eager=False
    )
    _reset_producers(app)
    yield queue
    app.conf.update(previous)
    _reset_producers(app)
    overrides.disable()


CACHE = "django.core.cache.backends.redis.RedisCache"
CACHE_OPTIONS = {
    "socket_connect_timeout": 1,
    "socket_timeout": 1,
}  # as soxgov/settings.py has them with Redis


def _reset_producers(app) -> None:
    """Forget pooled broker connections: the next send connects to whatever app.conf says now. kombu keeps
    its pools per connection URL, so they are emptied too (a later module's Redis may reuse the port)."""
    from kombu import pools

    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


def _worker_env(redis, queue: str, fault_dir: Path, signing_key: bytes, root: Path) -> dict[str, str]:
    url = urlsplit(settings.DATABASE_URL)
    query = urlencode({"application_name": APP_NAME})
    database_url = url._replace(path="/" + quote(connection.settings_dict["NAME"]), query=query).geturl()
    env = {
        k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "SOXGOV_SQLITE_PATH", "REDIS_URL"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="soxgov.settings",
        DATABASE_URL=database_url,
        REDIS_URL=redis.url,
        SOXGOV_CELERY_QUEUE=queue,
        SOXGOV_SIGNING_KEY=signing_key.decode(),
        SOXGOV_PACK_DIR=str(root / "packs"),
        SOXGOV_CHECKPOINT_DIR=str(root / "checkpoints"),
        FAULT_DIR=str(fault_dir),
        PYTHONUNBUFFERED="1",
    )
    return env


class Workers:
    """The module's worker: one reused while it lives; a test that killed it gets a fresh one."""

    def __init__(self, env: dict[str, str], queue: str, directory: Path):
        self.env, self.queue, self.directory = env, queue, directory
        self.current: FaultWorker | None = None
        self.all: list[FaultWorker] = []

    def live(self) -> FaultWorker:
        if self.current is None or not self.current.running():
            self.current = FaultWorker(env=self.env, queue=self.queue, directory=self.directory)
            self.all.append(self.current)
        return self.current

    def fresh(self) -> FaultWorker:
        """A new worker (after the last one was killed)."""
        if self.current is not None and self.current.running():
            self.current.stop()
        self.current = None
        return self.live()

    def explain(self) -> str:
        return "\n".join(w.explain() for w in self.all[-2:]) or "(no worker started)"

    def stop(self) -> None:
        for worker in self.all:
            worker.stop()


@pytest.fixture(scope="module")
def faults(fault_root) -> Faults:
    return Faults(fault_root / "points")


@pytest.fixture(scope="module")
def workers(module_db, broker, redis, faults, fault_root, session_signing_key):
    env = _worker_env(redis, broker, faults.directory, session_signing_key, fault_root)
    pool = Workers(env, broker, fault_root / "workers")
    (fault_root / "workers").mkdir(exist_ok=True)
    yield pool
    faults.reset()
    pool.stop()


@pytest.fixture
def worker(transactional_db, workers, faults, redis):
    """The live worker for this test. Afterwards nothing of this test may reach the next one: nothing paused,
    the worker idle (or killed, for a fresh one), Redis up and empty."""
    live = workers.live()
    yield live
    faults.reset()
    if redis.process is None:
        redis.start()
    redis.flush()
    if workers.current is not None and workers.current.running():
        try:
            wait_until(lambda: not faults.busy(), "the worker idle", timeout=10)
        except pytest.fail.Exception:
            workers.current.kill_main()
            wait_until(lambda: sessions_of(workers.current) == 0, "the killed worker's sessions gone")
    redis.flush()


@pytest.fixture
def company(worker, settings, tmp_path) -> Company:
    """This test's company (its names tagged) and input store."""
    settings.SOXGOV_IMPORT_DIR = tmp_path / "store"
    return Company(f"t{next(_tags)}")


_tags = itertools.count(1)
