"""Read-side questions about SoD: what changed since the last check, what a grant would do (what-if), and the
grants behind a violation."""

from __future__ import annotations

from dataclasses import dataclass, field

from entitlements.models import Account, Entitlement, Grant, Identity
from sod.engine import ConflictGrant, conflict_grants
from sod.models import RISK_ORDER, Check, Rule, RuleMember, Violation


def changed_since_last_check() -> tuple[list[int], list[int]] | None:
    """Identities and orphan accounts whose grants or account links changed since the last check of every
    rule began (from the history the import pipeline writes), and every orphan account with a grant or a live
    violation. None when no such check ever ran: then only a full scan will do."""
    last = (
        Check.objects.filter(rule__isnull=True)
        .order_by("-started_at")
        .values_list("started_at", flat=True)
        .first()
    )
    if last is None:
        return None
    grant_history = Grant.history.model.objects.filter(history_date__gte=last)
    account_history = Account.history.model.objects.filter(history_date__gte=last)
    touched_accounts = set(grant_history.values_list("account_id", flat=True))
    identities = set(account_history.exclude(identity_id=None).values_list("identity_id", flat=True))
    identities |= set(
        Account.objects.filter(pk__in=touched_accounts)
        .exclude(identity_id=None)
        .values_list("identity_id", flat=True)
    )
    orphans = set(
        Account.objects.filter(identity__isnull=True, grants__isnull=False).values_list("pk", flat=True)
    )
    orphans |= set(
        Violation.objects.filter(status__in=Violation.ACTIVE, account__isnull=False).values_list(
            "account_id", flat=True
        )
    )
    return sorted(identities), sorted(orphans)


def violation_conflict(violation: Violation) -> dict[str, list[ConflictGrant]]:
    """The grants that put the holder on each side of the rule now (empty once resolved), by side."""
    key = (violation.rule_id, violation.identity_id, violation.account_id)
    by_side: dict[str, list[ConflictGrant]] = {side.name: [] for side in violation.rule.sides.all()}
    if violation.identity_id is None and violation.account_id is None:
        return by_side
    for grant in conflict_grants([key])[key]:
        by_side.setdefault(grant.side, []).append(grant)
    return by_side


@dataclass
class WhatIfHit:
    """A rule the proposed grants would complete (or that the identity already violates)."""

    rule: Rule
    already_violated: bool
    # side name -> what covers it: existing grants ("App/ENT via account") and proposed entitlements.
    existing: dict[str, list[str]] = field(default_factory=dict)
    proposed: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "rule": {
                "id": self.rule.pk,
                "code": self.rule.code,
                "name": self.rule.name,
                "risk": self.rule.risk,
            },
            "already_violated": self.already_violated,
            "existing_grants": self.existing,
            "proposed_entitlements": self.proposed,
        }


def what_if(identity: Identity, entitlements: list[Entitlement]) -> list[WhatIfHit]:
    """Would granting ``entitlements`` to ``identity`` create a conflict? The rules hit, with the existing
    grants that collide. Only rules that contain a proposed entitlement are considered."""
    proposed_ids = {e.pk for e in entitlements}
    members = list(
        RuleMember.objects.filter(rule__enabled=True, rule__members__entitlement_id__in=proposed_ids)
        .select_related("side", "entitlement__application", "rule")
        .distinct()
    )
    if not members:
        return []
    rule_entitlements = {m.entitlement_id for m in members}
    held = (
        Grant.objects.filter(account__identity=identity, entitlement_id__in=rule_entitlements)
        .select_related("account", "entitlement__application")
        .order_by("entitlement__application__name", "entitlement__entitlement_id", "account__account_id")
    )
    held_by_entitlement: dict[int, list[str]] = {}
    for grant in held:
        label = f"{grant.entitlement.application.name}/{grant.entitlement.entitlement_id} via {grant.account.account_id}"
        held_by_entitlement.setdefault(grant.entitlement_id, []).append(label)
    hits: dict[int, WhatIfHit] = {}
    sides_of: dict[int, set[int]] = {}
    covered_before: dict[int, set[int]] = {}
    covered_after: dict[int, set[int]] = {}
    for member in sorted(members, key=lambda m: (m.rule.code, m.side.position, m.side_id)):
        rule = member.rule
        hit = hits.setdefault(rule.pk, WhatIfHit(rule=rule, already_violated=False))
        hit.existing.setdefault(member.side.name, [])
        hit.proposed.setdefault(member.side.name, [])
        sides_of.setdefault(rule.pk, set()).add(member.side_id)
        if member.entitlement_id in held_by_entitlement:
            hit.existing[member.side.name].extend(held_by_entitlement[member.entitlement_id])
            covered_before.setdefault(rule.pk, set()).add(member.side_id)
            covered_after.setdefault(rule.pk, set()).add(member.side_id)
        if member.entitlement_id in proposed_ids:
            entitlement = member.entitlement
            hit.proposed[member.side.name].append(
                f"{entitlement.application.name}/{entitlement.entitlement_id}"
            )
            covered_after.setdefault(rule.pk, set()).add(member.side_id)
    result = []
    for rule_id, hit in hits.items():
        if covered_after.get(rule_id, set()) >= sides_of[rule_id]:
            hit.already_violated = covered_before.get(rule_id, set()) >= sides_of[rule_id]
            result.append(hit)
    return sorted(result, key=lambda h: (h.already_violated, RISK_ORDER[h.rule.risk], h.rule.code))
