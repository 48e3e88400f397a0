from django.apps import AppConfig


class SodConfig(AppConfig):
    name = "sod"
