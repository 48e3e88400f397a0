"""Hooks into the import pipeline: a connector run that changed access re-checks the identities it changed."""

from django.dispatch import receiver

from entitlements.signals import access_changed
from soxgov import jobs


@receiver(access_changed, dispatch_uid="sod.check_after_import")
def check_after_import(sender, run, identity_ids, application_ids=(), **kwargs):
    from sod.tasks import check_after_import as follow_up

    # Sent inside the run's transaction: the job commits with the run's changes and runs after them.
    jobs.enqueue(follow_up, run.pk, list(identity_ids), list(application_ids), origin=run)
