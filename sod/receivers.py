"""Hooks into the import pipeline: after a connector run commits, re-check the identities it changed."""

from django.dispatch import receiver

from entitlements.signals import access_changed


@receiver(access_changed, dispatch_uid="sod.check_after_import")
def check_after_import(sender, run, identity_ids, application_ids=(), **kwargs):
    from sod.tasks import check_after_import as task

    # The signal is sent after the run's transaction committed, so the worker sees the new grants.
    task.delay(run.pk, list(identity_ids), list(application_ids))
