from django.apps import AppConfig


class SodConfig(AppConfig):
    name = "sod"
    verbose_name = "Segregation of duties"

    def ready(self):
        from sod import receivers  # noqa: F401  (connects the import hook)
