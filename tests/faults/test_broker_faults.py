"""The broker (Redis) gone at the worst moments: while a run is requested, during a run, right after a run
committed, and restarted empty (no persistence) while a run is queued.

Redis here is the tests' own (on another port); stopping it is kill -9, so whatever it held is lost, as it
would be on a production Redis without persistence. Requests must still succeed, a run in progress must
still apply, and the reaper must re-send whatever never reached a worker.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from entitlements.models import ConnectorRun
from tests.faults.harness import wait_until
from tests.faults.outcomes import (
    CRM_FILE,
    ERP_FILE,
    assert_run_applied_once,
    describe,
    jobs_of,
    reap,
    request_run,
    wait_terminal,
)

pytestmark = [pytest.mark.postgres, pytest.mark.worker]


def unsent_follow_ups(run) -> list[str]:
    """The run's follow-up jobs that exist (they commit with the run) but never reached the broker."""
    return sorted(j.task for j in jobs_of(run)[1:] if j.status == "pending" and j.sent_at is None)


FOLLOW_UPS = ["reviews.verify_remediation", "sod.check_after_import"]


def test_a_run_requested_while_the_broker_is_down_is_accepted_and_applied_once_it_is_back(
    company, worker, workers, redis, tmp_path
):
    client = APIClient()
    client.force_authenticate(company.admin())
    redis.stop()

    with company.file(tmp_path, "ERP", ERP_FILE).open("rb") as upload:
        response = client.post("/api/runs/", {"kind": "access", "file": upload}, format="multipart")

    assert response.status_code == 202, response.content
    run = ConnectorRun.objects.get(pk=response.json()["id"])
    assert run.status == "queued"
    [job] = jobs_of(run)
    assert (job.status, job.sent_at) == ("pending", None), describe(run, workers)

    redis.start()
    reap()

    assert_run_applied_once(run, company, "ERP", ERP_FILE, workers)


def test_a_run_during_which_the_broker_goes_down_still_applies_and_its_follow_ups_are_done_later(
    company, worker, workers, faults, redis, tmp_path
):
    faults.arm("phase-diffing")
    run = request_run(company.file(tmp_path, "ERP", ERP_FILE))
    faults.reached("phase-diffing", worker)
    attempts = len(faults.ended())

    redis.stop()
    faults.release("phase-diffing")

    # Applied without the broker (its progress cache is Redis too); the follow-ups could not be sent.
    assert wait_terminal(run, workers).status == "applied", describe(run, workers)
    wait_until(lambda: len(faults.ended()) > attempts, "the run's attempt ending", explain=workers.explain)
    assert unsent_follow_ups(run) == FOLLOW_UPS, describe(run, workers)
    redis.start()
    reap()

    assert_run_applied_once(run, company, "ERP", ERP_FILE, workers)


def test_the_broker_going_down_right_after_a_run_commits_loses_none_of_its_follow_ups(
    company, worker, workers, faults, redis, tmp_path
):
    faults.arm("applied-commit")
    run = request_run(company.file(tmp_path, "ERP", ERP_FILE))
    faults.reached("applied-commit", worker)
    attempts = len(faults.ended())
    # Committed with its follow-up jobs, none of them sent yet.
    assert ConnectorRun.objects.get(pk=run.pk).status == "applied"
    assert unsent_follow_ups(run) == FOLLOW_UPS, describe(run, workers)

    redis.stop()
    faults.release("applied-commit")
    wait_until(lambda: len(faults.ended()) > attempts, "the run's attempt ending", explain=workers.explain)
    assert unsent_follow_ups(run) == FOLLOW_UPS, describe(run, workers)
    redis.start()
    reap()

    assert_run_applied_once(run, company, "ERP", ERP_FILE, workers)


def test_a_run_queued_when_redis_restarts_empty_is_sent_again_by_the_reaper(
    company, worker, workers, faults, redis, tmp_path
):
    # The worker (one process) is busy with the ERP run, so the CRM run's message waits in Redis...
    faults.arm("phase-reading")
    busy = request_run(company.file(tmp_path, "ERP", ERP_FILE))
    faults.reached("phase-reading", worker)
    queued = request_run(company.file(tmp_path, "CRM", CRM_FILE))

    # ...and is lost with everything else when Redis restarts without persistence.
    redis.restart()
    faults.release("phase-reading")
    assert wait_terminal(busy, workers).status == "applied", describe(busy, workers)
    assert ConnectorRun.objects.get(pk=queued.pk).status == "queued", describe(queued, workers)
    reap()

    assert_run_applied_once(busy, company, "ERP", ERP_FILE, workers)
    assert_run_applied_once(queued, company, "CRM", CRM_FILE, workers)
