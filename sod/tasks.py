"""Thin Celery entry points and durable jobs (soxgov/jobs.py) for the SoD engine: take ids, call one service;
running one twice changes nothing the second time (a check writes only the difference between the data and the
live violations)."""

from celery import shared_task
from django.conf import settings

from entitlements.models import Account, ConnectorRun
from evidence.services import Actor
from sod.checks import run_check
from sod.engine import Scope
from sod.hygiene import run_hygiene
from sod.models import Check, Rule, Violation
from sod.services import expire_due
from soxgov import jobs


@jobs.job("sod.check_after_import", label="SoD re-check of the identities it changed, then hygiene")
def check_after_import(run_id: int, identity_ids: list[int], application_ids: list[int]) -> int:
    """Re-check just the identities whose grants a connector run changed, and the orphan accounts of its
    applications (plus violations of orphan accounts the run removed)."""
    run = ConnectorRun.objects.filter(pk=run_id).first()
    actor = Actor.system("sod.check_after_import")
    if len(identity_ids) > settings.SOXGOV_SOD_FULL_CHECK_OVER:
        scope = Scope.everything()  # a first load or a reorganisation: one scan beats a huge id list
    else:
        orphans = list(
            Account.objects.filter(application_id__in=application_ids, identity__isnull=True).values_list(
                "pk", flat=True
            )
        )
        # Orphan violations of these applications, including accounts that have since been linked to someone.
        orphans += list(
            Account.objects.filter(
                application_id__in=application_ids, sod_violations__status__in=Violation.ACTIVE
            )
            .values_list("pk", flat=True)
            .distinct()
        )
        scope = Scope(identity_ids=sorted(set(identity_ids)), account_ids=sorted(set(orphans)))
    check = run_check(scope, trigger=Check.Trigger.IMPORT, actor=actor, connector_run=run)
    # Then the hygiene checks, which also mirror the violations this check opened or resolved.
    run_hygiene()
    return check.pk


@jobs.job("sod.check_rules", label="SoD check of changed rules for everyone")
def check_rules(rule_ids: list[int], actor_name: str) -> list[int]:
    """Re-check changed rules for everyone."""
    actor = Actor.system(f"sod.check_rules for {actor_name}")
    checks = []
    for rule in Rule.objects.filter(pk__in=rule_ids).order_by("pk"):
        scope = Scope.everything(rule_ids=[rule.pk])
        checks.append(run_check(scope, trigger=Check.Trigger.RULE_CHANGE, actor=actor, rule=rule).pk)
    return checks


@shared_task(name="sod.daily")
def daily() -> int:
    """Reopen violations whose mitigation or acceptance expired, then scan everything as a safety net."""
    actor = Actor.system("sod.daily")
    expire_due(actor=actor)
    check = run_check(Scope.everything(), trigger=Check.Trigger.SCHEDULE, actor=actor)
    run_hygiene()
    return check.pk


@shared_task(name="sod.hygiene")
def hygiene() -> list[int]:
    return list(run_hygiene())
