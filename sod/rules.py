"""Creating, changing and importing SoD rules. Every change is evidenced with the rule's full before/after, and
re-checks that rule for everyone once the change commits."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction

from entitlements.connectors.files import map_header
from entitlements.connectors.problems import ProblemLog
from entitlements.connectors.tables import open_table
from entitlements.models import Entitlement
from evidence.services import Actor, Event, Subject, events_record
from sod.models import Risk, Rule, RuleMember, RuleSide, Violation
from soxgov.exceptions import Conflict

RULE_COLUMNS = (
    "rule_id",
    "rule_name",
    "risk",
    "process",
    "side",
    "application",
    "entitlement_id",
    "description",
)
RULE_REQUIRED = ("rule_id", "rule_name", "risk", "side", "application", "entitlement_id")


@dataclass
class RuleSpec:
    """A rule as a user or a file states it: fields, and sides as (name, entitlement primary keys)."""

    code: str
    name: str
    risk: str
    process: str = ""
    description: str = ""
    enabled: bool = True
    sides: list[tuple[str, list[int]]] = field(default_factory=list)

    def validate(self) -> None:
        errors: dict[str, list[str]] = {}
        if not self.code.strip():
            errors.setdefault("code", []).append("A rule needs a rule id.")
        if not self.name.strip():
            errors.setdefault("name", []).append("A rule needs a name.")
        if self.risk not in Risk.values:
            errors.setdefault("risk", []).append(f"Risk must be one of {', '.join(Risk.values)}.")
        named = [(name.strip(), ids) for name, ids in self.sides if name.strip() or ids]
        if len([1 for _, ids in named if ids]) < 2:
            errors.setdefault("sides", []).append(
                "A rule needs at least two sides, each with an entitlement."
            )
        seen: dict[int, str] = {}
        for name, ids in named:
            if not name:
                errors.setdefault("sides", []).append("Every side needs a name.")
            if not ids:
                errors.setdefault("sides", []).append(f"Side {name!r} has no entitlement.")
            for pk in ids:
                if pk in seen and seen[pk] != name:
                    errors.setdefault("sides", []).append(
                        f"Entitlement #{pk} is on sides {seen[pk]!r} and {name!r}; it may be on only one."
                    )
                seen[pk] = name
        if len({name for name, _ in named}) != len(named):
            errors.setdefault("sides", []).append("Side names must be unique within a rule.")
        if errors:
            raise ValidationError(errors)


def rule_snapshot(rule: Rule) -> dict:
    """The rule as the evidence records it: every field, and each side's entitlements by application key."""
    sides: dict[str, list[str]] = {}
    for side in rule.sides.all():
        sides[side.name] = []
    for member in RuleMember.objects.filter(rule=rule).select_related("side", "entitlement__application"):
        sides[member.side.name].append(
            f"{member.entitlement.application.name}/{member.entitlement.entitlement_id}"
        )
    return {
        "code": rule.code,
        "name": rule.name,
        "description": rule.description,
        "risk": rule.risk,
        "process": rule.process,
        "enabled": rule.enabled,
        "sides": {name: sorted(keys) for name, keys in sides.items()},
    }


def _write(spec: RuleSpec, rule: Rule | None) -> tuple[Rule, dict | None]:
    before = rule_snapshot(rule) if rule is not None else None
    rule = rule or Rule(code=spec.code.strip())
    rule.code = spec.code.strip()
    rule.name = spec.name.strip()
    rule.description = spec.description
    rule.risk = spec.risk
    rule.process = spec.process.strip()
    rule.enabled = spec.enabled
    rule.side_count = len([1 for _, ids in spec.sides if ids])
    rule.save()
    # Sides are replaced wholesale: a rule's meaning is its sides, and the snapshot records the change.
    RuleMember.objects.filter(rule=rule).delete()
    rule.sides.all().delete()
    position = 0
    for name, ids in spec.sides:
        if not ids:
            continue
        side = RuleSide.objects.create(rule=rule, name=name.strip(), position=position)
        RuleMember.objects.bulk_create(
            RuleMember(rule=rule, side=side, entitlement_id=pk) for pk in dict.fromkeys(ids)
        )
        position += 1
    return rule, before


def rules_save(specs: list[tuple[RuleSpec, Rule | None]], *, actor: Actor, source: str = "") -> list[Rule]:
    """Create or change rules in one transaction; re-check each changed rule once it commits."""
    for spec, _ in specs:
        spec.validate()
    changed: list[Rule] = []
    events: list[Event] = []
    with transaction.atomic():
        for spec, rule in specs:
            rule, before = _write(spec, rule)
            after = rule_snapshot(rule)
            if before == after:
                continue
            changed.append(rule)
            action = "sod.rule.created" if before is None else "sod.rule.changed"
            payload = (
                {"after": after, "source": source}
                if before is None
                else {"before": before, "after": after, "source": source}
            )
            events.append(Event(action, Subject.of(rule), payload))
        if events:
            events_record(actor=actor, events=events)
        if changed:
            rule_ids = [rule.pk for rule in changed]
            _enqueue_recheck(rule_ids, actor)
    return changed


def rule_save(spec: RuleSpec, *, actor: Actor, rule: Rule | None = None) -> Rule:
    changed = rules_save([(spec, rule)], actor=actor, source="ui")
    return changed[0] if changed else rule


def rule_delete(rule: Rule, *, actor: Actor) -> None:
    """Only a rule that never found a violation may be deleted; others are disabled, keeping their history."""
    if Violation.objects.filter(rule=rule).exists():
        raise Conflict("This rule has violations on record; disable it instead of deleting it.")
    with transaction.atomic():
        snapshot = rule_snapshot(rule)
        subject = Subject.of(rule)
        rule.delete()
        events_record(actor=actor, events=[Event("sod.rule.deleted", subject, {"before": snapshot})])


def _enqueue_recheck(rule_ids: list[int], actor: Actor) -> None:
    from sod.tasks import check_rules
    from soxgov import jobs

    jobs.enqueue(check_rules, rule_ids, actor.name)


# --- The ruleset file ----------------------------------------------------------------------------------


def ruleset_read(path: Path, *, log: ProblemLog) -> list[tuple[RuleSpec, Rule | None]]:
    """Parse a ruleset file (one row per rule side member) into specs; every problem goes to ``log``."""
    table = open_table(path, log=log)
    index, duplicates, unknown = map_header(table.header, RULE_COLUMNS)
    for raw in duplicates:
        log.add(1, raw, None, "this column appears twice")
    for raw in unknown:
        log.warn(f"column {raw!r} is not used and was ignored")
    for name in RULE_REQUIRED:
        if name not in index:
            log.add(1, name, None, "required column is missing")
    log.raise_if_any()
    entitlements = {
        (app.lower(), key): pk
        for pk, app, key in Entitlement.objects.values_list("pk", "application__name", "entitlement_id")
    }
    applications = {app for app, _ in entitlements}
    specs: dict[str, RuleSpec] = {}
    first_row: dict[str, int] = {}
    sides: dict[str, dict[str, list[int]]] = {}
    members: dict[tuple[str, int], str] = {}
    faulty: set[str] = set()  # rules with a bad row: their side count would only repeat that problem
    for row, cells in table.rows:
        value = {name: (cells[i].strip() if i < len(cells) else "") for name, i in index.items()}
        if not any(value.values()):
            continue
        problems_before = log.total
        missing = [name for name in RULE_REQUIRED if not value.get(name)]
        for name in missing:
            log.add(row, name, None, "is required")
        code = value["rule_id"]
        risk = value["risk"].lower()
        if value["risk"] and risk not in Risk.values:
            log.add(row, "risk", value["risk"], f"must be one of {', '.join(Risk.values)}")
        for name, limit in (("rule_id", 64), ("rule_name", 200), ("process", 100), ("side", 100)):
            if len(value.get(name, "")) > limit:
                log.add(row, name, value[name][:40] + "...", f"is longer than {limit} characters")
        app, key = value["application"], value["entitlement_id"]
        pk = entitlements.get((app.lower(), key))
        if app and key and pk is None:
            if app.lower() not in applications:
                log.add(row, "application", app, "no such application (or it has no entitlements yet)")
            else:
                log.add(row, "entitlement_id", key, f"application {app} has no entitlement with this id")
        if missing or not code:
            if code:
                faulty.add(code)
            continue
        spec = specs.get(code)
        if spec is None:
            specs[code] = RuleSpec(
                code=code,
                name=value["rule_name"],
                risk=risk,
                process=value.get("process", ""),
                description=value.get("description", ""),
            )
            first_row[code] = row
        else:
            for column, attribute in (("rule_name", "name"), ("process", "process")):
                if value.get(column, "") != getattr(spec, attribute):
                    log.add(
                        row,
                        column,
                        value.get(column, ""),
                        f"differs from row {first_row[code]} of rule {code} ({getattr(spec, attribute)!r})",
                    )
            if risk != spec.risk:
                log.add(
                    row,
                    "risk",
                    value["risk"],
                    f"differs from row {first_row[code]} of rule {code} ({spec.risk!r})",
                )
        if pk is not None:
            side = value["side"]
            other = members.get((code, pk))
            if other is not None and other != side:
                log.add(row, "side", side, f"{app}/{key} is already on side {other!r} of rule {code}")
            members[(code, pk)] = side
            sides.setdefault(code, {}).setdefault(side, []).append(pk)
        if log.total > problems_before:
            faulty.add(code)
    if not specs and not log.total:
        log.add(None, None, None, "the file holds no rules")
    for code, spec in specs.items():
        spec.sides = list(sides.get(code, {}).items())
        if len(spec.sides) < 2 and code not in faulty:
            log.add(
                first_row[code],
                "side",
                None,
                f"rule {code} has {len(spec.sides)} side(s); a rule needs at least two",
            )
    log.raise_if_any()
    existing = Rule.objects.in_bulk(list(specs), field_name="code")
    for code, rule in existing.items():
        specs[code].enabled = rule.enabled  # the file has no enabled column: a disabled rule stays disabled
    return [(spec, existing.get(code)) for code, spec in specs.items()]


def ruleset_import(
    path: Path, *, actor: Actor, source_name: str | None = None
) -> tuple[list[Rule], int, list[str]]:
    """Read and apply a ruleset file: rules in it are created or changed; rules not in it are left as they are.
    Raises ImportRefused with every problem, changing nothing. Returns (changed rules, rules read, warnings)."""
    log = ProblemLog(source_name or Path(path).name)
    specs = ruleset_read(Path(path), log=log)
    changed = rules_save(specs, actor=actor, source=f"file:{log.file}")
    return changed, len(specs), log.warnings
