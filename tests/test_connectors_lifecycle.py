"""A source pull's life: a worker lost while reading or after, transient source errors retried with backoff and
given up once, schedules (django-celery-beat) for source connectors."""

import json

import pytest
from cryptography.fernet import Fernet
from django.db import connection
from django.test import override_settings
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from entitlements import services
from entitlements.connector_services import connector_save
from entitlements.models import Account, Application, Connector, ConnectorRun
from entitlements.pulls import pull_create
from evidence.models import EvidenceEvent
from evidence.services import Actor
from soxgov import jobs
from soxgov.models import Job
from tests.connector_sources import SourceDatabase
from tests.imports.conftest import command

ACTOR = Actor.system("tests")


@pytest.fixture(autouse=True)
def store(tmp_path):
    with override_settings(
        SOXGOV_IMPORT_DIR=tmp_path / "store", SOXGOV_SECRET_KEYS=[Fernet.generate_key().decode()]
    ):
        yield


@pytest.fixture
def erp(db, tmp_path, settings):
    source = SourceDatabase(tmp_path, settings)
    source.add_role("GL_POST", "Post journal", admin=True)
    source.add_user("bob", employee_no="E2", email="bob@example.com", roles=["GL_POST"])
    source.add_user("carol", employee_no="E3", email="carol@example.com", roles=["GL_POST"])
    yield source
    source.close()


def make_connector(erp, **config) -> Connector:
    ledger = Application.objects.create(name="Ledger")
    return connector_save(
        connector=None,
        values={
            "name": "ledger-db",
            "kind": "sql",
            "application": ledger,
            "configuration": erp.config(**config),
        },
        actor=ACTOR,
        via="tests",
    ).connector


def actions(run) -> list[str]:
    return list(
        EvidenceEvent.objects.filter(subject_type="entitlements.connectorrun", subject_id=str(run.pk))
        .order_by("sequence")
        .values_list("action", flat=True)
    )


def test_a_worker_lost_while_reading_leaves_a_run_that_is_read_again_and_applied_once(erp):
    run = pull_create(connector=make_connector(erp), actor=ACTOR, send=False)
    # What a worker killed mid-read leaves: the run claimed, nothing stored, its lease gone.
    ConnectorRun.objects.filter(pk=run.pk).update(status="running", started_at=timezone.now())
    again = services.run_execute(run_id=run.pk)
    assert again.status == "applied"
    assert actions(run) == [
        "import.run.queued",
        "import.run.restarted",
        "import.run.pulled",
        "import.run.applied",
    ]
    assert Account.objects.filter(application__name="Ledger").count() == 2
    assert services.run_execute(run_id=run.pk).status == "applied"  # and once only


def test_a_worker_lost_after_reading_goes_on_from_the_stored_copy(erp):
    connector = make_connector(erp, identities=True)
    run = pull_create(connector=connector, actor=ACTOR, send=False)
    claimed = ConnectorRun.objects.get(pk=run.pk)
    from entitlements.pulls import source_read

    child = source_read(claimed, actor=ACTOR)  # read and stored, then the worker died
    ConnectorRun.objects.filter(pk=run.pk).update(status="running", started_at=timezone.now())
    erp.add_user("dave", employee_no="E4", roles=["GL_POST"])  # not read again: the copy is the pull's truth
    again = services.run_execute(run_id=run.pk)
    assert again.status == "applied"
    child.refresh_from_db()
    assert child.status == "applied"
    assert actions(run).count("import.run.pulled") == 1
    assert not Account.objects.filter(account_id="dave").exists()


@pytest.mark.postgres
def test_a_source_that_times_out_is_retried_then_given_up_once(erp):
    if connection.vendor != "postgresql":
        pytest.skip(
            "the statement timeout is PostgreSQL's; on SQLite a transient failure fails the run at once"
        )
    connector = make_connector(
        erp, access_query="SELECT pg_sleep(2)::text AS account_id", statement_timeout_seconds=1
    )
    outcome = command("connector_pull", "ledger-db")
    assert outcome.code == 2
    assert "a worker retries it with backoff" in outcome.err
    run = ConnectorRun.objects.get(connector=connector)
    job = jobs.of(run).get()
    assert (run.status, job.status, job.attempts) == ("running", "pending", 1)
    assert "statement timeout" in job.error and job.not_before is not None
    # The attempts run out: the job is given up and the run fails once, at the source.
    Job.objects.filter(pk=job.pk).update(attempts=job.max_attempts)
    jobs.execute(job.pk)
    run.refresh_from_db()
    assert (run.status, run.failure) == ("failed", "unreachable")
    assert actions(run).count("import.run.failed") == 1


def test_a_source_connector_is_scheduled_and_the_beat_task_pulls_it(erp, django_capture_on_commit_callbacks):
    from entitlements.tasks import pull_connector

    connector = make_connector(erp)
    connector = connector_save(
        connector=connector, values={"cron": "0 2 * * *"}, actor=ACTOR, via="tests"
    ).connector
    task = PeriodicTask.objects.get(pk=connector.schedule_id)
    assert (task.task, json.loads(task.args), task.crontab.hour) == (
        "entitlements.pull_connector",
        [connector.pk],
        "2",
    )
    with django_capture_on_commit_callbacks(execute=True):
        run_id = pull_connector(connector.pk)
    run = ConnectorRun.objects.get(pk=run_id)
    assert (run.status, run.started_by_name) == ("applied", "system:beat")
