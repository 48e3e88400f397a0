import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soxgov.settings")

app = Celery("soxgov")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# The heartbeat task lives beside the health checks that read it.
app.autodiscover_tasks(lambda: ["soxgov"], related_name="health")


@worker_process_init.connect
def yield_cpu_to_people(**_):
    """Each pool process runs at SOXGOV_WORKER_NICE (soxgov/settings.py says why)."""
    from django.conf import settings

    lower_priority(settings.SOXGOV_WORKER_NICE)


def lower_priority(by: int) -> int:
    """Raise this process's niceness to ``by`` (never lowers it: that needs privileges); returns it."""
    current = os.nice(0)
    return os.nice(max(0, by - current)) if by > current else current
