"""Connector runs that always end: a worker killed (-9, its pool child or its main process) at each phase of
an import, and the worker's database session terminated during staging, diffing and apply.

Each scenario pauses a real worker at an exact point (fault_worker.py), does the damage there, lets the
job machinery recover (a fresh worker where the old one is gone, then the reaper), and then checks the
outcome every scenario shares: the run applied exactly once, the application's access equal to the file,
the run's follow-up jobs done, the evidence chain intact.
"""

from __future__ import annotations

import pytest
from django.db import connection

from tests.faults.harness import wait_sessions_gone, wait_until
from tests.faults.outcomes import ERP_FILE, assert_run_applied_once, reap, request_run, restarts

pytestmark = [pytest.mark.postgres, pytest.mark.worker]

# Where a run can be when its worker dies: before its transaction (reading), inside it after the input is
# staged, checked, diffed, while applying, and after it committed but before its follow-ups were sent.
IMPORT_POINTS = [
    "phase-reading",
    "staged",
    "phase-checking",
    "phase-diffing",
    "phase-applying",
    "applied-commit",
]
COMMITTED = "applied-commit"  # past this point the run has applied: there is nothing left to take over


def test_without_a_fault_a_run_applies_once_and_its_follow_ups_are_done(company, worker, workers, tmp_path):
    """The control: what every scenario below must still end with, here with nothing going wrong."""
    run = request_run(company.file(tmp_path, "ERP", ERP_FILE))

    assert_run_applied_once(run, company, "ERP", ERP_FILE, workers)
    assert restarts(run) == 0


@pytest.mark.parametrize("point", IMPORT_POINTS)
def test_a_run_whose_pool_child_is_killed_ends_applied_once(
    point, company, worker, workers, faults, tmp_path
):
    faults.arm(point)
    run = request_run(company.file(tmp_path, "ERP", ERP_FILE))
    paused = faults.reached(point, worker)

    worker.kill_child(paused["pid"])
    wait_sessions_gone(worker.session_names(paused["pid"]), workers.explain)
    reap()

    assert_run_applied_once(run, company, "ERP", ERP_FILE, workers)
    assert restarts(run) == (0 if point == COMMITTED else 1)


@pytest.mark.parametrize("point", IMPORT_POINTS)
def test_a_run_whose_worker_main_process_is_killed_ends_applied_once(
    point, company, worker, workers, faults, tmp_path
):
    faults.arm(point)
    run = request_run(company.file(tmp_path, "ERP", ERP_FILE))
    faults.reached(point, worker)

    worker.kill_main()
    wait_sessions_gone(worker.session_names(), workers.explain)
    workers.fresh()
    reap()

    assert_run_applied_once(run, company, "ERP", ERP_FILE, workers)
    assert restarts(run) == (0 if point == COMMITTED else 1)


@pytest.mark.parametrize("point", ["staged", "phase-diffing", "phase-applying"])
def test_a_run_whose_database_session_is_terminated_ends_applied_once(
    point, company, worker, workers, faults, tmp_path
):
    faults.arm(point)
    run = request_run(company.file(tmp_path, "ERP", ERP_FILE))
    paused = faults.reached(point, worker)
    attempts = len(faults.ended())

    names = worker.session_names(paused["pid"])
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE %s", [names]
        )
        assert any(ok for (ok,) in cursor.fetchall()), f"no session {names} to terminate"
    wait_sessions_gone(names, workers.explain)
    faults.release(point)
    # The attempt whose connection died is over (whatever it made of the error) before the reaper looks.
    wait_until(
        lambda: len(faults.ended()) > attempts, "the interrupted attempt ending", explain=workers.explain
    )
    reap()

    assert_run_applied_once(run, company, "ERP", ERP_FILE, workers)
    assert restarts(run) == 1
