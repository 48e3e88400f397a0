"""The Celery entry points: execute_run takes a run id, is idempotent, and reports the run's status."""

from __future__ import annotations

import pytest

from entitlements import services, tasks
from entitlements.imports import access
from entitlements.models import Connector, ConnectorRun, Grant
from evidence.models import EvidenceEvent
from evidence.services import Actor
from tests.imports.conftest import ACCESS_HEADER, snapshot


def queue(path, application=None):
    return services.run_create(
        kind="access",
        source=path,
        source_name=path.name,
        actor=Actor.system("tests"),
        application=application,
    )


def test_execute_run_called_directly_applies_the_run(company, write_csv, erp_rows):
    erp_rows.append(
        ["ERP", "newbie", "", "E1", "", "enabled", "", "GL_POST", "Post journal", "role", "false"]
    )
    run = queue(write_csv("erp.csv", erp_rows))

    assert tasks.execute_run(run.pk) == "applied"

    assert ConnectorRun.objects.get(pk=run.pk).counts["grants"]["added"] == 1
    assert Grant.objects.filter(account__account_id="newbie").exists()


def test_execute_run_twice_applies_once(company, write_csv, erp_rows):
    erp_rows.append(
        ["ERP", "newbie", "", "E1", "", "enabled", "", "GL_POST", "Post journal", "role", "false"]
    )
    run = queue(write_csv("erp.csv", erp_rows))
    assert tasks.execute_run(run.pk) == "applied"
    state, events = snapshot(), EvidenceEvent.objects.count()
    finished = ConnectorRun.objects.get(pk=run.pk).finished_at

    assert tasks.execute_run(run.pk) == "applied"
    assert tasks.execute_run.apply(args=[run.pk]).get() == "applied"

    assert snapshot() == state
    assert EvidenceEvent.objects.count() == events
    assert ConnectorRun.objects.get(pk=run.pk).finished_at == finished
    assert EvidenceEvent.objects.filter(action="import.run.applied", subject_id=str(run.pk)).count() == 1


def test_execute_run_reports_held_and_failed(company, write_csv):
    held = queue(write_csv("erp.csv", [ACCESS_HEADER]), application=company["applications"]["erp"])
    refused = queue(
        write_csv("bad.csv", [["account_id", "last_used_at"], ["x", "noon"]]),
        application=company["applications"]["erp"],
    )
    assert tasks.execute_run(held.pk) == "held"
    assert tasks.execute_run(refused.pk) == "failed"
    assert tasks.execute_run(held.pk) == "held"  # and again: still held, nothing more happens
    assert EvidenceEvent.objects.filter(action="import.run.held").count() == 1


def test_an_unexpected_error_fails_the_run_with_evidence_and_rolls_back_its_changes(
    company, write_csv, erp_rows, monkeypatch
):
    erp_rows.append(
        ["ERP", "newbie", "", "E1", "", "enabled", "", "GL_POST", "Post journal", "role", "false"]
    )
    run = queue(write_csv("erp.csv", erp_rows[:2] + erp_rows[3:]))  # carol removed, newbie added
    state = snapshot()
    original = access.apply

    def apply_then_break(**kwargs):
        original(**kwargs)
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(access, "apply", apply_then_break)

    with pytest.raises(RuntimeError, match="disk on fire"):
        tasks.execute_run(run.pk)

    failed = ConnectorRun.objects.get(pk=run.pk)
    assert failed.status == "failed"
    assert "disk on fire" in failed.error
    after = snapshot()
    assert after.pop("evidence") == state.pop("evidence") + 1  # import.run.failed
    assert after == state
    assert EvidenceEvent.objects.filter(action="import.run.failed", subject_id=str(run.pk)).exists()


def test_pull_connector_queues_a_run_that_applies_after_commit(
    company, write_csv, erp_rows, django_capture_on_commit_callbacks, settings
):
    path = write_csv("feed.csv", erp_rows)
    settings.SOXGOV_CONNECTOR_FILE_ROOTS = [path.parent]
    connector = Connector.objects.create(
        name="erp feed",
        kind="access_file",
        configuration={"path": str(path)},
        application=company["applications"]["erp"],
    )
    with django_capture_on_commit_callbacks(execute=True):
        run_id = tasks.pull_connector(connector.pk)
    run = ConnectorRun.objects.get(pk=run_id)
    assert (run.status, run.connector, run.started_by_name) == ("applied", connector, "system:beat")


def test_pull_connector_of_a_disabled_connector_does_nothing(company, write_csv, erp_rows):
    connector = Connector.objects.create(
        name="off",
        kind="access_file",
        enabled=False,
        configuration={"path": str(write_csv("feed.csv", erp_rows))},
    )
    assert tasks.pull_connector(connector.pk) is None
    assert not ConnectorRun.objects.exists()
