"""Thin Celery entry points: take ids, call one service, safe to run twice."""

from pathlib import Path

from celery import shared_task

from entitlements import services
from entitlements.models import Connector, ConnectorRun
from evidence.services import Actor


@shared_task(name="entitlements.execute_run")
def execute_run(run_id: int) -> str:
    return services.run_execute(run_id=run_id).status


@shared_task(name="entitlements.pull_connector")
def pull_connector(connector_id: int) -> int | None:
    """Scheduled pull (django-celery-beat): read the connector's configured file and queue a run."""
    connector = Connector.objects.select_related("application").get(pk=connector_id)
    if not connector.enabled:
        return None
    path = Path(connector.configuration.get("path", ""))
    kind = (
        ConnectorRun.Kind.ACCESS
        if connector.kind == Connector.Kind.ACCESS_FILE
        else ConnectorRun.Kind.IDENTITIES
    )
    run = services.run_create(
        kind=kind,
        source=path,
        source_name=path.name,
        actor=Actor.system("beat"),
        application=connector.application,
        connector=connector,
    )
    services.run_enqueue(run)
    return run.pk
