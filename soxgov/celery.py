import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soxgov.settings")

app = Celery("soxgov")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# The heartbeat task lives beside the health checks that read it.
app.autodiscover_tasks(lambda: ["soxgov"], related_name="health")
