"""Running the engine: compare what it finds with the live violations and write the difference.

New conflicts open violations; live violations whose conflict is gone are resolved, proven by the data (the
check, and the connector run that triggered it, are recorded on the violation and in the evidence); untouched
ones stay untouched. One check at a time (an advisory lock on PostgreSQL; SQLite serialises writers anyway),
so two checks finishing together cannot open the same violation twice.
"""

from __future__ import annotations

from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from entitlements.models import Account, Identity
from evidence.services import Actor, Event, Subject, events_record
from sod.engine import Key, Scope, conflict_grants, detect
from sod.models import Check, Mitigation, RiskAcceptance, Rule, Violation
from soxgov.db import advisory_xact_lock

# "SODC" in ASCII: the advisory lock that serialises checks.
CHECK_LOCK_KEY = 0x534F4443


def _lock() -> None:
    advisory_xact_lock(CHECK_LOCK_KEY)


def _live_in_scope(scope: Scope) -> dict[Key, Violation]:
    live = Violation.objects.filter(status__in=Violation.ACTIVE)
    if scope.rule_ids is not None:
        live = live.filter(rule_id__in=scope.rule_ids)
    if not scope.is_full:
        holders = _account_gone()
        if scope.identity_ids:
            holders |= Q(identity_id__in=scope.identity_ids)
        if scope.account_ids:
            holders |= Q(account_id__in=scope.account_ids)
        live = live.filter(holders)
    # Locked: a mitigation or expiry committing meanwhile must not be overwritten by a stale resolution.
    live = live.select_for_update(of=("self",)).only(*_LIVE_FIELDS)
    return {(v.rule_id, v.identity_id, v.account_id): v for v in live}


def _account_gone() -> Q:
    """An orphan account's violation whose account a pull has deleted."""
    exists = Account.objects.filter(pk=OuterRef("account_id"))
    return Q(identity__isnull=True) & (Q(account__isnull=True) | ~Q(Exists(exists)))


_LIVE_FIELDS = ("id", "rule_id", "identity_id", "account_id", "status", "holder", "opened_at")


def _holder_labels(keys: set[Key]) -> dict[Key, str]:
    identities = {
        pk: f"{name} ({employee_id})" if employee_id else name
        for pk, name, employee_id in Identity.objects.filter(
            pk__in={k[1] for k in keys if k[1] is not None}
        ).values_list("pk", "display_name", "employee_id")
    }
    accounts = {
        pk: f"orphan account {account_id} @ {app}"
        for pk, account_id, app in Account.objects.filter(
            pk__in={k[2] for k in keys if k[2] is not None}
        ).values_list("pk", "account_id", "application__name")
    }
    return {key: identities.get(key[1]) or accounts.get(key[2]) or "?" for key in keys}


def run_check(
    scope: Scope,
    *,
    trigger: str,
    actor: Actor,
    connector_run=None,
    rule: Rule | None = None,
) -> Check:
    """Check ``scope`` and write what changed, with evidence, in one transaction."""
    now = timezone.now()
    with transaction.atomic():
        _lock()
        check = Check.objects.create(
            trigger=trigger,
            full=scope.is_full,
            connector_run=connector_run,
            rule=rule,
            actor_name=actor.name,
            started_at=now,
            identities_checked=len(scope.identity_ids or ()),
            accounts_checked=len(scope.account_ids or ()),
        )
        found = detect(scope)
        live = _live_in_scope(scope)
        to_open = found - live.keys()
        to_resolve = [violation for key, violation in live.items() if key not in found]
        rules = Rule.objects.in_bulk({k[0] for k in to_open} | {v.rule_id for v in to_resolve})
        events = _open(check, to_open, rules, now) + _resolve(check, to_resolve, rules, now, connector_run)
        check.opened, check.resolved = len(to_open), len(to_resolve)
        check.unchanged = len(live) - len(to_resolve)
        check.finished_at = timezone.now()
        check.save()
        events.append(
            Event(
                "sod.check.completed",
                Subject.of(check),
                {
                    "trigger": trigger,
                    "full": scope.is_full,
                    "rule": rule.code if rule else None,
                    "connector_run": connector_run.pk if connector_run else None,
                    "identities_checked": check.identities_checked,
                    "accounts_checked": check.accounts_checked,
                    "opened": check.opened,
                    "resolved": check.resolved,
                    "unchanged": check.unchanged,
                },
            )
        )
        events_record(actor=actor, events=events)
    return check


def _open(check: Check, keys: set[Key], rules: dict[int, Rule], now) -> list[Event]:
    if not keys:
        return []
    labels = _holder_labels(keys)
    ordered = sorted(keys, key=lambda k: (k[0], k[1] or 0, k[2] or 0))
    violations = [
        Violation(
            rule_id=rule_id,
            identity_id=identity_id,
            account_id=account_id,
            holder=labels[(rule_id, identity_id, account_id)][:300],
            status=Violation.Status.OPEN,
            opened_at=now,
            status_changed_at=now,
            opened_by_check=check,
        )
        for rule_id, identity_id, account_id in ordered
    ]
    created = bulk_create_with_history(
        violations, Violation, default_change_reason=f"SoD check #{check.pk}", default_date=now
    )
    if any(v.pk is None for v in created):  # SQLite before 3.35 returns no ids from bulk inserts
        created = list(Violation.objects.filter(opened_by_check=check))
    grants = conflict_grants(keys)
    events = []
    for violation in created:
        key = (violation.rule_id, violation.identity_id, violation.account_id)
        rule = rules[violation.rule_id]
        conflict: dict[str, list[str]] = {}
        for grant in grants.get(key, ()):
            conflict.setdefault(grant.side, []).append(grant.label)
        events.append(
            Event(
                "sod.violation.opened",
                Subject("sod.violation", str(violation.pk), str(f"{rule.code} · {violation.holder}")[:255]),
                {
                    "rule": rule.code,
                    "risk": rule.risk,
                    "holder": violation.holder,
                    "identity_id": violation.identity_id,
                    "account_id": violation.account_id,
                    "conflict": conflict,
                    "check": check.pk,
                },
            )
        )
    return events


def _resolve(
    check: Check, violations: list[Violation], rules: dict[int, Rule], now, connector_run
) -> list[Event]:
    if not violations:
        return []
    previous = {v.pk: v.status for v in violations}
    accounts = {v.account_id for v in violations if v.account_id is not None}
    existing = (
        set(Account.objects.filter(pk__in=accounts).values_list("pk", flat=True)) if accounts else set()
    )
    for violation in violations:
        rule = rules[violation.rule_id]
        if not rule.enabled:
            violation.resolution = "rule disabled"
        elif violation.identity_id is None and violation.account_id not in existing:
            violation.resolution = "orphan account removed"
        elif connector_run is not None:
            violation.resolution = f"conflict no longer held after import #{connector_run.pk}"
        else:
            violation.resolution = "conflict no longer held"
        violation.status = Violation.Status.RESOLVED
        violation.resolved_at = now
        violation.status_changed_at = now
        violation.resolved_by_check = check
    bulk_update_with_history(
        violations,
        Violation,
        ["status", "resolved_at", "status_changed_at", "resolution", "resolved_by_check"],
        default_change_reason=f"SoD check #{check.pk}",
        default_date=now,
    )
    ids = [v.pk for v in violations]
    # What answered the violation ends with it.
    Mitigation.objects.filter(violation_id__in=ids, ended_at__isnull=True).update(
        ended_at=now, end_reason="violation resolved"
    )
    RiskAcceptance.objects.filter(
        violation_id__in=ids, status__in=[RiskAcceptance.Status.REQUESTED, RiskAcceptance.Status.APPROVED]
    ).update(status=RiskAcceptance.Status.ENDED, ended_at=now)
    return [
        Event(
            "sod.violation.resolved",
            Subject("sod.violation", str(v.pk), f"{rules[v.rule_id].code} · {v.holder}"[:255]),
            {
                "rule": rules[v.rule_id].code,
                "holder": v.holder,
                "resolution": v.resolution,
                "previous_status": previous[v.pk],
                "check": check.pk,
                "connector_run": connector_run.pk if connector_run else None,
            },
        )
        for v in violations
    ]
