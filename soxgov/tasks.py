"""Celery entry points of the foundation: the one task that runs every durable job, and the reaper."""

from celery import shared_task

from soxgov import jobs


@shared_task(name="soxgov.job")
def run_job(job_id: int) -> str:
    return jobs.execute(job_id)


@shared_task(name="soxgov.reap")
def reap() -> dict[str, int]:
    return jobs.reap()
