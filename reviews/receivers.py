"""Hooks into the import pipeline: newly added privileged or sensitive grants become micro-review items."""

from django.dispatch import receiver

from entitlements.signals import access_changed


@receiver(access_changed, dispatch_uid="reviews.micro_review_run")
def micro_review_run(sender, run, identity_ids, **kwargs):
    from reviews.models import Campaign
    from reviews.tasks import micro_review_run as task

    if (
        identity_ids
        and Campaign.objects.filter(kind=Campaign.Kind.MICRO, status=Campaign.Status.ACTIVE).exists()
    ):
        task.delay(run.pk)


@receiver(access_changed, dispatch_uid="reviews.verify_remediation")
def verify_remediation(sender, run, application_ids=(), **kwargs):
    from reviews.tasks import verify_remediation as task

    if application_ids:
        task.delay(run.pk, list(application_ids))
