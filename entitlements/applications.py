"""Creating and changing applications outside Django admin (the API): evidenced with old and new values, as
Django admin's saves are (soxgov/admin.py)."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from entitlements.models import Application
from evidence.services import Actor, event_record

FIELDS = ("name", "description", "sox_in_scope", "criticality", "owner", "financial_processes")


def _snapshot(application: Application) -> dict:
    return {
        "name": application.name,
        "description": application.description,
        "sox_in_scope": application.sox_in_scope,
        "criticality": application.criticality,
        "owner": application.owner_id,
        "financial_processes": sorted(application.financial_processes.values_list("code", flat=True)),
    }


def application_save(*, application: Application | None, values: dict, actor: Actor, via: str) -> Application:
    """Create (``application`` None) or update; ValidationError naming the field, nothing saved. The name is
    how files and connectors' rows name the application: unique, whatever the case."""
    creating = application is None
    target = Application() if creating else Application.objects.get(pk=application.pk)
    before = None if creating else _snapshot(target)
    processes = values.get("financial_processes")
    for field in FIELDS:
        if field in values and field != "financial_processes":
            setattr(target, field, values[field])
    name = (target.name or "").strip()
    if Application.objects.filter(name__iexact=name).exclude(pk=target.pk).exists():
        raise ValidationError({"name": [f"an application named {name!r} exists already"]})
    target.name = name
    with transaction.atomic():
        target.full_clean(exclude=["financial_processes"])
        target.save()
        if processes is not None:
            target.financial_processes.set(processes)
        after = _snapshot(target)
        if creating or after != before:
            changed = {
                k: {"old": (before or {}).get(k), "new": v}
                for k, v in after.items()
                if creating or before[k] != v
            }
            event_record(
                actor=actor,
                action="config.application.created" if creating else "config.application.changed",
                subject=target,
                payload={"changed": changed, "via": via},
            )
    return target
