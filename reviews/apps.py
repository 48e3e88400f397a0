from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    name = "reviews"
    verbose_name = "Review campaigns"

    def ready(self):
        from reviews import receivers  # noqa: F401  (connects the micro-review hook)
