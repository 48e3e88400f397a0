"""Durable jobs (soxgov/jobs.py): recorded with their work, retried until done or given up once, restarted by
the reaper when their worker is gone, and never run by two workers at once."""

from __future__ import annotations

import pytest
from django.db import InterfaceError, OperationalError, connection

from soxgov import jobs, leases
from soxgov.models import Job
from tests.conftest import other_session_holding

calls: list[tuple] = []
failures_left = {"n": 0}


@jobs.job("tests.flaky", label="A test job that fails a given number of times first")
def flaky(value: int) -> int:
    calls.append(("flaky", value))
    if failures_left["n"] > 0:
        failures_left["n"] -= 1
        raise RuntimeError(f"not yet ({failures_left['n']} more)")
    return value


given_up: list[tuple] = []


@jobs.job(
    "tests.doomed",
    label="A test job that always fails",
    attempts=2,
    give_up=lambda job, cause: given_up.append((job.pk, cause)),
)
def doomed() -> None:
    raise ValueError("the input is wrong")


@pytest.fixture(autouse=True)
def _fresh_counters():
    calls.clear()
    given_up.clear()
    failures_left["n"] = 0


def test_a_job_runs_once_and_ends_done(db):
    row = jobs.enqueue(flaky, 7, send=False)
    assert (row.status, row.max_attempts, row.sent_at) == ("pending", None, None)

    assert jobs.execute(row.pk) == "done"
    assert jobs.execute(row.pk) == "done"  # a second delivery finds nothing to do

    row.refresh_from_db()
    assert (row.status, row.attempts, row.finished_at is not None) == ("done", 1, True)
    assert calls == [("flaky", 7)]


def test_a_job_sent_after_commit_runs_then(django_capture_on_commit_callbacks, db):
    with django_capture_on_commit_callbacks(execute=True):
        row = jobs.enqueue(flaky, 3)
        assert calls == []  # not before the commit
    row.refresh_from_db()
    assert (row.status, row.sends, calls) == ("done", 1, [("flaky", 3)])


def test_a_follow_up_without_an_attempt_limit_is_retried_until_done(db):
    failures_left["n"] = 2
    row = jobs.enqueue(flaky, 1, send=False)
    for attempt in (1, 2):
        with pytest.raises(RuntimeError):  # the embedded mode shows the error to the caller
            jobs.execute(row.pk)
        row.refresh_from_db()
        assert (row.status, row.attempts) == ("pending", attempt)
        assert row.error.startswith("RuntimeError: not yet") and row.not_before is not None
    assert jobs.execute(row.pk) == "done"
    row.refresh_from_db()
    assert (row.status, row.attempts, row.error) == ("done", 3, "")


def test_a_job_is_given_up_once_when_its_attempts_are_used_up(db):
    row = jobs.enqueue(doomed, send=False)
    with pytest.raises(ValueError):
        jobs.execute(row.pk)
    row.refresh_from_db()
    assert (row.status, given_up) == ("pending", [])
    with pytest.raises(ValueError):
        jobs.execute(row.pk)
    row.refresh_from_db()
    assert row.status == "failed"
    assert row.error == "given up after 2 attempt(s); the last error: ValueError: the input is wrong"
    assert given_up == [(row.pk, row.error)]
    assert jobs.execute(row.pk) == "failed" and len(given_up) == 1


def test_the_reaper_restarts_a_job_whose_worker_died_and_gives_up_one_out_of_attempts(db):
    # What a killed worker leaves: a running job whose lease nobody holds.
    lost = jobs.enqueue(flaky, 5, send=False)
    spent = jobs.enqueue(doomed, send=False)
    Job.objects.filter(pk=lost.pk).update(status="running", attempts=1)
    Job.objects.filter(pk=spent.pk).update(status="running", attempts=2)
    if connection.vendor != "postgresql":
        Job.objects.update(started_at=None)  # SQLite: no lease to ask; a job without a start counts as lost

    found = jobs.reap()

    lost.refresh_from_db()
    spent.refresh_from_db()
    # The lost job was sent again, which in the embedded mode runs it at once.
    assert (lost.status, lost.attempts, calls) == ("done", 2, [("flaky", 5)])
    assert spent.status == "failed"
    assert spent.error == "given up after 2 attempt(s); its worker was lost during attempt 2"
    assert given_up == [(spent.pk, spent.error)]
    assert (found["restarted"], found["given_up"], found["sent"]) == (1, 1, 1)
    assert jobs.reap()["restarted"] == 0


@pytest.mark.postgres
def test_a_job_whose_worker_is_alive_is_left_alone(db):
    if connection.vendor != "postgresql":
        pytest.skip("leases are PostgreSQL advisory locks")
    row = jobs.enqueue(flaky, 9, send=False)
    Job.objects.filter(pk=row.pk).update(status="running", attempts=1)
    with other_session_holding(leases.Kind.JOB, row.pk):
        assert jobs.reap()["restarted"] == 0
        assert jobs.execute(row.pk) == "busy"  # a second delivery while the first worker runs it
    row.refresh_from_db()
    assert (row.status, calls) == ("running", [])


def test_a_pending_job_is_sent_again_only_after_the_resend_interval(db, settings):
    settings.SOXGOV_JOB_RESEND_SECONDS = 3600
    row = jobs.enqueue(flaky, 2, send=False)
    assert jobs.reap()["sent"] == 1  # never sent: sent now
    row.refresh_from_db()
    assert (row.status, row.sends) == ("done", 1)

    again = jobs.enqueue(flaky, 4, send=False)
    Job.objects.filter(pk=again.pk).update(sent_at=jobs.timezone.now(), sends=1)
    assert jobs.reap()["sent"] == 0  # sent moments ago: its message may still be queued
    assert jobs.reap(resend_after=0)["sent"] == 1


def test_a_job_of_an_unknown_name_is_given_up_with_the_name(db):
    row = Job.objects.create(task="tests.no_such_job", args=[])
    assert jobs.execute(row.pk) == "failed"
    row.refresh_from_db()
    assert row.error == "no job named 'tests.no_such_job' is registered"


def test_describe_names_the_error_an_error_happened_during():
    try:
        try:
            raise OperationalError("terminating connection due to administrator command\nmore")
        except OperationalError:
            raise InterfaceError("connection already closed") from None
    except InterfaceError as exc:
        plain = jobs.describe(exc)
    assert plain == "InterfaceError: connection already closed"
    try:
        try:
            raise OperationalError("terminating connection due to administrator command\nmore")
        except OperationalError:
            raise InterfaceError("connection already closed")  # noqa: B904 - the context is the point
    except InterfaceError as exc:
        chained = jobs.describe(exc)
    assert chained == (
        "InterfaceError: connection already closed <- during: "
        "OperationalError: terminating connection due to administrator command"
    )
