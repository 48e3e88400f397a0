"""Thin Celery entry points and durable jobs (soxgov/jobs.py): take ids, call one service, safe to run twice."""

from celery import shared_task

from entitlements import services
from entitlements.models import Connector
from evidence.services import Actor
from soxgov import jobs


@jobs.job("entitlements.execute_run", label="Execute the import", attempts=3, give_up=services.run_give_up)
def run_job(run_id: int) -> str:
    return services.run_execute(run_id=run_id).status


@shared_task(name="entitlements.execute_run")
def execute_run(run_id: int) -> str:
    """A run's message from before durable jobs (still delivered after an upgrade); new runs go through run_job."""
    return run_job(run_id)


@shared_task(name="entitlements.pull_connector")
def pull_connector(connector_id: int) -> int | None:
    """Scheduled pull (django-celery-beat): read the connector's configured file and queue a run."""
    connector = Connector.objects.select_related("application").get(pk=connector_id)
    if not connector.enabled:
        return None
    return services.connector_pull(connector=connector, actor=Actor.system("beat")).pk
