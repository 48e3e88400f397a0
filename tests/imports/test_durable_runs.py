"""Runs that always end: a run cancelled by an admin, a run cancelled while it runs, progress without Redis,
and the run's page showing its work (soxgov/jobs.py has the job life cycle; tests/faults kills real workers)."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test import override_settings
from django.urls import reverse

from entitlements import progress, services
from entitlements.imports import access
from entitlements.models import ConnectorRun, Grant
from evidence.models import EvidenceEvent
from evidence.services import Actor
from soxgov import jobs
from tests.imports.conftest import run_file, snapshot

UNREACHABLE_CACHE = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    }
}


def _queued(company, write_csv, rows) -> ConnectorRun:
    return services.run_create(
        kind="access",
        source=write_csv("erp.csv", rows),
        source_name="erp.csv",
        actor=Actor.system("tests"),
        application=company["applications"]["erp"],
        send=False,
    )


def _actions(run) -> list[str]:
    return list(
        EvidenceEvent.objects.filter(subject_type="entitlements.connectorrun", subject_id=str(run.pk))
        .order_by("sequence")
        .values_list("action", flat=True)
    )


def test_an_admin_cancels_a_queued_run_saying_why_and_it_never_runs(personas, company, write_csv, erp_rows):
    run = _queued(company, write_csv, erp_rows)
    state = snapshot()

    cancelled = services.run_cancel(run_id=run.pk, user=personas["alice"], reason="wrong file")

    assert cancelled.status == "cancelled"
    assert cancelled.error.startswith("cancelled by alice") and cancelled.error.endswith(": wrong file")
    assert _actions(run) == ["import.run.queued", "import.run.cancelled"]
    event = EvidenceEvent.objects.get(action="import.run.cancelled")
    payload = event.payload_data
    assert (event.actor_user_id, payload["reason"], payload["status_before"]) == (
        personas["alice"].pk,
        "wrong file",
        "queued",
    )
    job = jobs.of(run).get()
    assert job.status == "cancelled"
    assert jobs.execute(job.pk) == "cancelled"
    assert services.run_execute(run_id=run.pk).status == "cancelled"
    assert snapshot() == {
        **state,
        "evidence": state["evidence"] + 1,
    }  # the cancellation's event, nothing else


def test_cancelling_needs_an_admin_a_reason_and_a_run_that_has_not_ended(
    personas, company, write_csv, erp_rows
):
    run = _queued(company, write_csv, erp_rows)
    with pytest.raises(PermissionDenied):
        services.run_cancel(run_id=run.pk, user=personas["oscar"], reason="no")
    with pytest.raises(ValidationError, match="Say why"):
        services.run_cancel(run_id=run.pk, user=personas["alice"], reason="  ")
    applied = run_file(write_csv("again.csv", erp_rows), application=company["applications"]["erp"])
    with pytest.raises(ValidationError, match="applied; only a queued, approved or running run"):
        services.run_cancel(run_id=applied.pk, user=personas["alice"], reason="too late")
    assert ConnectorRun.objects.get(pk=run.pk).status == "queued"
    assert not EvidenceEvent.objects.filter(action="import.run.cancelled").exists()


@pytest.mark.postgres
def test_a_run_cancelled_while_it_runs_rolls_back_everything_it_did(
    committed_db, personas, company, write_csv
):
    """The cancel commits from another session (an admin's request) while the worker is in the apply step."""
    if connection.vendor != "postgresql":
        pytest.skip("needs a second session writing while the run's transaction is open")
    import psycopg2

    from tests.imports.test_pipeline import CHANGING_ERP

    run = _queued(company, write_csv, CHANGING_ERP)
    grants_before = set(Grant.objects.values_list("pk", flat=True))
    real_apply = access.apply

    def apply_then_cancel_elsewhere(**kwargs):
        real_apply(**kwargs)
        admin = psycopg2.connect(**connection.get_connection_params())
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(
                "UPDATE entitlements_connectorrun SET status = 'cancelled' WHERE id = %s", [run.pk]
            )
        admin.close()

    access.apply = apply_then_cancel_elsewhere
    try:
        outcome = services.run_execute(run_id=run.pk)
    finally:
        access.apply = real_apply
    assert outcome.status == "cancelled"
    assert set(Grant.objects.values_list("pk", flat=True)) == grants_before
    assert "import.run.applied" not in _actions(run)
    assert not jobs.of(run).exclude(task="entitlements.execute_run").exists()  # no follow-ups either


def test_an_import_commits_and_its_page_answers_when_the_cache_is_unreachable(
    personas, company, write_csv, erp_rows, client
):
    with override_settings(CACHES=UNREACHABLE_CACHE):
        progress.report(1, phase="reading", percent=1)  # does not raise
        assert progress.read(1) is None
        run = _queued(company, write_csv, erp_rows)
        ConnectorRun.objects.filter(pk=run.pk).update(status="queued")
        client.force_login(personas["alice"])
        waiting = client.get(reverse("entitlements:run_detail", args=[run.pk]))
        assert waiting.status_code == 200 and b"queued" in waiting.content
        done = run_file(write_csv("erp2.csv", erp_rows), application=company["applications"]["erp"])
    assert done.status == "applied"


def test_the_run_page_shows_its_work_and_lets_an_admin_cancel_a_queued_run(
    personas, company, write_csv, client
):
    from tests.imports.test_pipeline import CHANGING_ERP

    applied = run_file(write_csv("erp.csv", CHANGING_ERP), application=company["applications"]["erp"])
    client.force_login(personas["alice"])
    page = client.get(reverse("entitlements:run_detail", args=[applied.pk])).content.decode()
    assert "Work for this import" in page
    assert "Execute the import" in page and "SoD re-check of the identities it changed" in page
    assert "Cancel this import" not in page  # it ended

    queued = _queued(company, write_csv, CHANGING_ERP)
    page = client.get(reverse("entitlements:run_detail", args=[queued.pk])).content.decode()
    assert "Cancel this import" in page
    response = client.post(
        reverse("entitlements:run_cancel", args=[queued.pk]), {"reason": "duplicate upload"}
    )
    assert response.status_code == 302
    assert ConnectorRun.objects.get(pk=queued.pk).status == "cancelled"


def test_the_api_shows_a_runs_jobs_and_cancels_it(personas, company, write_csv, erp_rows, client):
    run = _queued(company, write_csv, erp_rows)
    client.force_login(personas["alice"])
    detail = client.get(reverse("connectorrun-detail", args=[run.pk])).json()
    assert [(j["task"], j["status"]) for j in detail["jobs"]] == [("entitlements.execute_run", "pending")]
    missing = client.post(reverse("connectorrun-cancel", args=[run.pk]), {}, content_type="application/json")
    assert missing.status_code == 400 and "reason" in missing.json()
    done = client.post(
        reverse("connectorrun-cancel", args=[run.pk]), {"reason": "stuck"}, content_type="application/json"
    )
    assert (done.status_code, done.json()["status"]) == (200, "cancelled")
    again = client.post(
        reverse("connectorrun-cancel", args=[run.pk]), {"reason": "stuck"}, content_type="application/json"
    )
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]


@pytest.mark.postgres
def test_a_pull_holding_its_applications_lets_others_refer_to_them_but_not_pull_them(committed_db, company):
    """A revoke's foreign-key check at COMMIT (FOR KEY SHARE) must not wait for a pull holding the application:
    under load that wait closed a cycle with the evidence chain's lock (deadlock detected, a reviewer's 500)."""
    if connection.vendor != "postgresql":
        pytest.skip("row lock modes are PostgreSQL's")
    import psycopg2
    from django.db import transaction

    erp = company["applications"]["erp"]
    other = psycopg2.connect(**connection.get_connection_params())
    try:
        with transaction.atomic():
            services._lock_applications([erp.pk])
            with other.cursor() as cursor:
                cursor.execute("SET lock_timeout = '2s'")
                cursor.execute("SELECT 1 FROM entitlements_application WHERE id = %s FOR KEY SHARE", [erp.pk])
                assert cursor.fetchone() == (1,)
                other.rollback()
                cursor.execute("SET lock_timeout = '200ms'")
                with pytest.raises(psycopg2.errors.LockNotAvailable):
                    cursor.execute(
                        "SELECT 1 FROM entitlements_application WHERE id = %s FOR NO KEY UPDATE", [erp.pk]
                    )
                other.rollback()
    finally:
        other.close()
