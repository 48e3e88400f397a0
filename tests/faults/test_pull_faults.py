"""A source pull whose worker is killed while it reads the source (a real worker, killed -9 at the pause point
"reading source", then the reaper): the run is restarted, reads the source again and applies exactly once."""

from __future__ import annotations

import pytest

from entitlements import services
from entitlements.connector_services import connector_save
from evidence.services import Actor
from tests.connector_sources import SourceDatabase
from tests.faults.harness import wait_sessions_gone
from tests.faults.outcomes import ERP_FILE, NAMES, assert_run_applied_once, reap, restarts

pytestmark = [pytest.mark.postgres, pytest.mark.worker]


@pytest.fixture
def erp_database(company, tmp_path, settings):
    """The ERP's own tables holding what ERP_FILE says, for the company's tagged people."""
    source = SourceDatabase(tmp_path, settings)
    for code in sorted({entitlement for _, _, entitlement in ERP_FILE}):
        source.add_role(code, NAMES[code])
    for login in sorted({account for account, _, _ in ERP_FILE}):
        employee = next(e for a, e, _ in ERP_FILE if a == login)
        source.add_user(login, employee_no=company.employee(employee), name=login)
    for login, _, role in ERP_FILE:
        source.grant(login, role)
    yield source
    source.close()


def test_a_pull_whose_worker_is_killed_while_reading_ends_applied_once(
    company, erp_database, worker, workers, faults
):
    actor = Actor.system("fault-tests")
    connector = connector_save(
        connector=None,
        values={
            "name": f"erp-db-{company.tag}",
            "kind": "sql",
            "application": company.applications["ERP"],
            "configuration": erp_database.config(),
        },
        actor=actor,
        via="tests",
    ).connector
    faults.arm("phase-reading source")
    run = services.connector_pull(connector=connector, actor=actor)
    paused = faults.reached("phase-reading source", worker)

    worker.kill_child(paused["pid"])
    wait_sessions_gone(worker.session_names(paused["pid"]), workers.explain)
    reap()

    assert_run_applied_once(run, company, "ERP", ERP_FILE, workers)
    assert restarts(run) == 1
