"""Hooks into the import pipeline: newly added privileged or sensitive grants become micro-review items,
remediation tasks whose access a pull no longer contains are closed, and the pending items of the people whose
access changed get their recommendations again. Each is a follow-up job of the run,
recorded in the run's transaction (soxgov/jobs.py)."""

from django.dispatch import receiver

from entitlements.signals import access_changed
from soxgov import jobs


@receiver(access_changed, dispatch_uid="reviews.micro_review_run")
def micro_review_run(sender, run, identity_ids, **kwargs):
    from reviews.models import Campaign
    from reviews.tasks import micro_review_run as follow_up

    if (
        identity_ids
        and Campaign.objects.filter(kind=Campaign.Kind.MICRO, status=Campaign.Status.ACTIVE).exists()
    ):
        jobs.enqueue(follow_up, run.pk, origin=run)


@receiver(access_changed, dispatch_uid="reviews.verify_remediation")
def verify_remediation(sender, run, application_ids=(), **kwargs):
    from reviews.tasks import verify_remediation as follow_up

    if application_ids:
        jobs.enqueue(follow_up, run.pk, list(application_ids), origin=run)


@receiver(access_changed, dispatch_uid="reviews.recommendations_refresh")
def recommendations_refresh(sender, run, identity_ids, **kwargs):
    from reviews.models import Campaign
    from reviews.tasks import recommendations_refresh as follow_up

    if identity_ids and Campaign.objects.filter(status=Campaign.Status.ACTIVE).exists():
        jobs.enqueue(follow_up, list(identity_ids), origin=run)
