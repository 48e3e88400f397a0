from django.apps import AppConfig


class EvidenceConfig(AppConfig):
    name = "evidence"
    verbose_name = "Evidence"

    def ready(self):
        from evidence import checks  # noqa: F401 (registers the deploy checks)
