"""End to end through a real Celery worker and Redis: request a chain verification, let a worker run it.

Everything else in the suite runs Celery eagerly; this is the one place that proves the production path
(commit -> broker -> separate worker process -> same database) works. Needs REDIS_URL; runs on SQLite and
PostgreSQL alike, because the worker is pointed at whichever test database this process is using.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from io import StringIO
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction

from evidence.models import ChainVerification, EvidenceEvent
from evidence.services import Actor, verification_request
from soxgov import jobs
from soxgov.celery import app as celery_app

pytestmark = [
    pytest.mark.worker,
    pytest.mark.skipif(
        not settings.REDIS_URL,
        reason="REDIS_URL is not set: the end-to-end test needs Redis and a real worker",
    ),
]

REPO_ROOT = Path(__file__).resolve().parent.parent
WORKER_TIMEOUT = 60


def _database_env() -> dict[str, str]:
    """Environment that points a separate process at the database this test process is using."""
    name = connection.settings_dict["NAME"]
    if connection.vendor == "postgresql":
        # pytest-django renamed the database (test_<name>, plus a suffix under xdist); keep everything
        # else in the URL (credentials, host, sslmode ...) as configured.
        url = urlsplit(settings.DATABASE_URL)._replace(path="/" + quote(name))
        return {"DATABASE_URL": url.geturl()}
    if connection.vendor == "sqlite":
        if str(name) == ":memory:" or "mode=memory" in str(name):
            pytest.skip("the SQLite test database is in memory, so a worker process cannot see it")
        return {"SOXGOV_SQLITE_PATH": str(name)}
    pytest.skip(f"no end-to-end worker support for the {connection.vendor} backend")


@pytest.fixture
def worker_queue():
    """A queue no other worker listens on, so a stray worker (or another test run) can never take our task.

    Derived from the configured queue, which CI already makes unique per run; the suffix also separates
    concurrent runs on a developer machine that share one Redis database.
    """
    queue = f"{settings.CELERY_TASK_DEFAULT_QUEUE}.e2e.{uuid.uuid4().hex[:12]}"
    previous = celery_app.conf.task_default_queue, celery_app.conf.task_always_eager
    celery_app.conf.task_default_queue = queue
    # REDIS_URL already turns eager mode off; say so explicitly in case a suite-wide fixture turns it on.
    celery_app.conf.task_always_eager = False
    yield queue
    celery_app.conf.task_default_queue, celery_app.conf.task_always_eager = previous
    try:
        # Drops the queue's list and its binding so repeated runs leave nothing behind in Redis.
        # A fresh connection knows no bindings, so declare the queue on it before deleting it.
        with celery_app.connection_for_write() as conn:
            bound = celery_app.amqp.queues[queue](conn.default_channel)
            bound.declare()
            bound.delete()
    except Exception:  # cleanup only; the test's outcome is already decided
        pass


@pytest.fixture
def celery_worker_process(committed_db, worker_queue, tmp_path):
    """A real `celery worker` subprocess consuming worker_queue against the test database."""
    log_path = tmp_path / "worker.log"
    env = {
        key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "SOXGOV_SQLITE_PATH"}
    }
    env.update(_database_env())
    env.update(
        DJANGO_SETTINGS_MODULE="soxgov.settings",
        REDIS_URL=settings.REDIS_URL,
        SOXGOV_CELERY_QUEUE=worker_queue,
        # This test's checkpoints (none unless it signs one), not whatever the checkout's var/ holds.
        SOXGOV_CHECKPOINT_DIR=str(settings.SOXGOV_CHECKPOINT_DIR),
        PYTHONUNBUFFERED="1",
    )
    command = [
        # The interpreter running the tests, so the worker sees exactly the same installed packages.
        sys.executable,
        "-m",
        "celery",
        "-A",
        "soxgov",
        "worker",
        "--pool=solo",
        "--concurrency=1",
        "-Q",
        worker_queue,
        "-n",
        f"{worker_queue}@%h",
        "-l",
        "info",
        "--without-heartbeat",
        "--without-gossip",
        "--without-mingle",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    process.log_path = log_path
    try:
        yield process
    finally:
        # Must be gone before committed_db empties the tables and before pytest-django drops the test
        # database, which PostgreSQL refuses while the worker is still connected.
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=15)


def _worker_log(process) -> str:
    text = process.log_path.read_text(errors="replace")
    return text[-6000:] or "(the worker wrote nothing)"


def _wait_for_verification(pk: int, process) -> ChainVerification:
    deadline = time.monotonic() + WORKER_TIMEOUT
    while True:
        verification = ChainVerification.objects.get(pk=pk)
        if verification.status not in {ChainVerification.Status.QUEUED, ChainVerification.Status.RUNNING}:
            return verification
        if process.poll() is not None:
            pytest.fail(f"the Celery worker exited with {process.returncode}:\n{_worker_log(process)}")
        if time.monotonic() > deadline:
            log = _worker_log(process)
            pytest.fail(f"verification {pk} still {verification.status!r} after {WORKER_TIMEOUT}s:\n{log}")
        time.sleep(0.25)


def test_verification_runs_on_a_real_worker(celery_worker_process):
    events_before = EvidenceEvent.objects.count()

    with transaction.atomic():
        verification = verification_request(actor=Actor.system("test"))
        # Nothing may reach the broker before the request commits, or the worker could look for a row
        # it cannot see yet.
        assert ChainVerification.objects.get(pk=verification.pk).status == ChainVerification.Status.QUEUED

    verification = _wait_for_verification(verification.pk, celery_worker_process)

    assert verification.status == ChainVerification.Status.INTACT, verification.detail
    # The chain the worker saw: everything before, plus the "verification requested" event.
    requested = EvidenceEvent.objects.get(
        action="evidence.verification.requested", subject_id=str(verification.pk)
    )
    assert requested.sequence == events_before + 1
    assert verification.event_count == events_before + 1
    assert verification.head_sequence == requested.sequence
    assert verification.head_hash == requested.hash
    assert verification.broken_sequence is None
    assert verification.started_at is not None
    assert verification.finished_at >= verification.started_at

    verified = EvidenceEvent.objects.get(
        action="evidence.chain.verified",
        subject_type=ChainVerification._meta.label_lower,
        subject_id=str(verification.pk),
    )
    assert verified.actor_name == "system:evidence.verify_chain"
    assert verified.payload_data == {
        "intact": True,
        "event_count": verification.event_count,
        "head_sequence": verification.head_sequence,
        "head_hash": verification.head_hash,
        "broken_sequence": None,
        "checkpoint": None,
        "detail": verification.detail,
    }
    assert verified.prev_hash == requested.hash

    # The worker's own write kept the chain intact too.
    out = StringIO()
    call_command("verify_evidence", stdout=out)
    assert out.getvalue().startswith(f"intact: {events_before + 2} events"), out.getvalue()


def _wait_for(query, what: str, process):
    deadline = time.monotonic() + WORKER_TIMEOUT
    while not query():
        if process.poll() is not None:
            pytest.fail(f"the Celery worker exited with {process.returncode}:\n{_worker_log(process)}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {WORKER_TIMEOUT}s:\n{_worker_log(process)}")
        time.sleep(0.25)


def test_an_import_on_a_real_worker_is_followed_by_the_sod_check_of_the_identity_it_changed(
    celery_worker_process, tmp_path, settings
):
    """Upload -> worker applies the run -> on commit, the SoD check is queued -> worker opens the violation."""
    from django.utils import timezone

    from entitlements import services
    from entitlements.models import Account, Application, ConnectorRun, Entitlement, Grant, Identity
    from sod.models import Check, Violation
    from sod.rules import RuleSpec, rules_save

    settings.SOXGOV_IMPORT_DIR = tmp_path / "store"
    now = timezone.now()
    erp = Application.objects.create(name="ERP")
    bank = Application.objects.create(name="Bank")
    create = Entitlement.objects.create(application=erp, entitlement_id="VENDOR_CREATE", name="Create vendor")
    approve = Entitlement.objects.create(
        application=bank, entitlement_id="PAY_APPROVE", name="Approve payment"
    )
    vera = Identity.objects.create(employee_id="E1", email="vera@example.com", display_name="Vera")
    account = Account.objects.create(application=erp, account_id="vera", identity=vera, first_seen=now)
    Grant.objects.create(account=account, entitlement=create, first_seen=now)
    spec = RuleSpec(code="P2P-01", name="Vendors and payments", risk="critical")
    spec.sides = [("create", [create.pk]), ("approve", [approve.pk])]
    rules_save([(spec, None)], actor=Actor.system("test"))
    _wait_for(
        lambda: Check.objects.filter(trigger="rule_change").exists(),
        "the rule's first check",
        celery_worker_process,
    )
    assert not Violation.objects.exists()

    source = tmp_path / "bank.csv"
    source.write_text("application,account_id,employee_id,entitlement_id\nBank,v.era,E1,PAY_APPROVE\n")
    run = services.run_create(
        kind="access", source=source, source_name=source.name, actor=Actor.system("test"), user=None
    )

    _wait_for(lambda: Violation.objects.exists(), "the violation", celery_worker_process)
    assert ConnectorRun.objects.get(pk=run.pk).status == ConnectorRun.Status.APPLIED
    # The run and its follow-ups are durable jobs, all done once the worker is through.
    _wait_for(
        lambda: not jobs.of(run).exclude(status="done").exists(),
        "the run's follow-ups",
        celery_worker_process,
    )
    assert set(jobs.of(run).values_list("task", flat=True)) == {
        "entitlements.execute_run",
        "sod.check_after_import",
        "reviews.verify_remediation",
    }
    violation = Violation.objects.get()
    assert violation.identity == vera
    check = violation.opened_by_check
    assert (check.trigger, check.connector_run_id, check.identities_checked) == ("import", run.pk, 1)
