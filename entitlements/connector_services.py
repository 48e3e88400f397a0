"""Configuring connectors: create or update one with its secrets (evidenced, secrets never in the evidence),
test one against its source, rotate the secrets' encryption key.

The same functions serve ``connector_add``, the API and the admin pages, so a configuration is checked the same
way everywhere (entitlements/connectors/configuration.py) and thresholds always go through
entitlements/thresholds.py: raising one waits for a second admin, whatever the route.
"""

from __future__ import annotations

import dataclasses

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from entitlements import thresholds as threshold_rules
from entitlements.connectors import secrets as secret_store
from entitlements.connectors.configuration import connector_problems
from entitlements.connectors.sources import source_class
from entitlements.models import Application, Connector, ConnectorSecret, ConnectorThresholdChange
from entitlements.models.connectors import THRESHOLD_FIELDS
from evidence.services import Actor, Subject, event_record
from soxgov import access as acl
from soxgov.exceptions import Conflict

SETTINGS = ("name", "kind", "application", "configuration", "cron", "enabled", "owner")


@dataclasses.dataclass(frozen=True)
class SecretInput:
    """A secret as given: a ``value`` (encrypted at rest), a ``reference`` (env:VAR, file:/path), or neither
    (remove the secret)."""

    value: str | None = None
    reference: str | None = None

    @classmethod
    def parse_reference(cls, text: str) -> SecretInput:
        return cls(reference=text)


@dataclasses.dataclass
class Saved:
    connector: Connector
    created: bool
    changed: bool
    thresholds: ConnectorThresholdChange | None  # pending: waits for a second admin


def _snapshot(connector: Connector) -> dict:
    return {
        "name": connector.name,
        "kind": connector.kind,
        "application": connector.application.name if connector.application_id else None,
        "configuration": connector.configuration,
        "cron": connector.cron,
        "enabled": connector.enabled,
        "owner": connector.owner_id,
    }


def connector_save(
    *,
    connector: Connector | None,
    values: dict,
    secrets: dict[str, SecretInput] | None = None,
    actor: Actor,
    user=None,
    via: str,
) -> Saved:
    """Create (``connector`` None) or update a connector. ``values``: any of SETTINGS (``application`` an
    Application or None) and the threshold fields. ValidationError with every problem by field, nothing saved.

    ``user``: the admin making the change (required for the API and pages; the shell may leave it out, but then
    cannot change thresholds, which are recorded with the admin who changed them).
    """
    if user is not None and not acl.can_attempt(user, Connector, acl.CHANGE if connector else acl.ADD):
        raise PermissionDenied("only an admin may configure connectors")
    secrets = {name: given or SecretInput() for name, given in (secrets or {}).items()}  # None: remove
    unknown = set(values) - set(SETTINGS) - set(THRESHOLD_FIELDS)
    if unknown:
        raise ValidationError({name: ["is not a connector setting"] for name in sorted(unknown)})
    creating = connector is None
    target = Connector() if creating else Connector.objects.get(pk=connector.pk)
    before = None if creating else _snapshot(target)
    current = threshold_rules.default_thresholds() if creating else target.thresholds
    for name in SETTINGS:
        if name in values:
            setattr(target, name, values[name])
    target.configuration = target.configuration if target.configuration is not None else {}
    target.cron = (target.cron or "").strip()
    existing = set() if creating else set(target.secrets.values_list("name", flat=True))
    names = (existing | {n for n, s in secrets.items() if s.value is not None or s.reference is not None}) - {
        n for n, s in secrets.items() if s.value is None and s.reference is None
    }
    errors = _problems(target, names, secrets)
    wanted = {field: values.get(field, current[field]) for field in THRESHOLD_FIELDS}
    if wanted != current:
        try:
            threshold_rules._validated(
                wanted["deletion_threshold_percent"], wanted["deletion_threshold_count"]
            )
        except ValidationError as exc:
            errors.update(exc.message_dict)
        if user is None:
            errors.setdefault("deletion_threshold_percent", []).append(
                "changing thresholds needs the admin who changes them (connector_add --user)"
            )
    if errors:
        raise ValidationError(errors)
    for field, value in current.items():  # thresholds change only through the rules below
        setattr(target, field, value)
    with transaction.atomic():
        target.save()
        changed_secrets = _secrets_apply(target, secrets)
        after = _snapshot(target)
        changed = creating or after != before or bool(changed_secrets)
        if changed:
            event_record(
                actor=actor,
                action="config.connector.created" if creating else "config.connector.changed",
                subject=target,
                payload={
                    "old": before,
                    "new": after,
                    "secrets_changed": changed_secrets,
                    "secrets": sorted(target.secrets.values_list("name", flat=True)),
                    "via": via,
                },
            )
        from entitlements.services import connector_sync_schedule

        if creating or before["cron"] != after["cron"] or before["enabled"] != after["enabled"]:
            connector_sync_schedule(connector=target, actor=actor)
        change = None
        if wanted != current:
            change = threshold_rules.thresholds_change(
                connector_id=target.pk,
                user=user,
                percent=wanted["deletion_threshold_percent"],
                count=wanted["deletion_threshold_count"],
                reason=f"connector settings ({via})",
            )
    target.refresh_from_db()
    return Saved(target, creating, changed or change is not None, change)


def _problems(target: Connector, names: set[str], secrets: dict[str, SecretInput]) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}
    name = (target.name or "").strip()
    if not name:
        errors["name"] = ["is required"]
    elif len(name) > 120:
        errors["name"] = ["is longer than 120 characters"]
    elif Connector.objects.filter(name=name).exclude(pk=target.pk).exists():
        errors["name"] = [f"a connector named {name!r} exists already"]
    if target.application_id is not None and not isinstance(target.application, Application):
        errors["application"] = ["no such application"]
    errors.update(
        {
            field: [*errors.get(field, []), *problems]
            for field, problems in connector_problems(
                kind=target.kind,
                application=target.application_id,
                configuration=target.configuration,
                cron=target.cron,
                secret_names=names,
            ).items()
        }
    )
    secret_problems = []
    for secret_name, given in sorted(secrets.items()):
        if given.value is not None and given.reference is not None:
            secret_problems.append(f"{secret_name}: give a value or a reference, not both")
        elif given.value is not None:
            if given.value == "":
                secret_problems.append(f"{secret_name}: is empty")
            elif not [key for key in _keys() if key]:
                secret_problems.append(f"{secret_name}: {secret_store.NO_KEYS}")
        elif given.reference is not None:
            problem = secret_store.reference_problem(given.reference)
            if problem:
                secret_problems.append(f"{secret_name}: {problem}")
    if secret_problems:
        errors["secrets"] = [*errors.get("secrets", []), *secret_problems]
    return errors


def _keys() -> list[str]:
    from django.conf import settings

    return settings.SOXGOV_SECRET_KEYS


def _secrets_apply(connector: Connector, secrets: dict[str, SecretInput]) -> list[str]:
    """Store, replace or remove secrets; the names whose value (or reference) changed. A literal value given
    again counts as changed: its old value cannot be compared without decrypting, and need not be."""
    changed = []
    for name, given in sorted(secrets.items()):
        row = ConnectorSecret.objects.filter(connector=connector, name=name).first()
        if given.value is None and given.reference is None:
            if row is not None:
                row.delete()
                changed.append(name)
            continue
        if given.reference is not None and row is not None and row.reference == given.reference:
            continue
        row = row or ConnectorSecret(connector=connector, name=name)
        row.ciphertext = secret_store.encrypt(given.value) if given.value is not None else ""
        row.reference = given.reference or ""
        row.save()
        changed.append(name)
    return changed


# --- Testing a connector ---------------------------------------------------------------------------------------


@dataclasses.dataclass
class TestReport:
    accounts: int
    entitlements: int
    grants: int
    identities: int
    samples: dict[str, list[dict[str, str]]]
    permissions: list[str] = dataclasses.field(default_factory=list)


def connector_test(*, connector: Connector, samples: int = 3) -> TestReport:
    """Connect, read everything the source yields, count it; nothing is written anywhere. SourceError (or
    SourceUnreachable) when the source cannot be read."""
    source_cls = source_class(connector.kind)
    if source_cls is None:
        raise Conflict(f"{connector}: a file connector has no source to test; its file is read at pulls")
    source = source_cls(connector.configuration, secret_store.secrets_for(connector))
    accounts, entitlements, grants, identities = set(), set(), set(), 0
    shown: dict[str, list[dict[str, str]]] = {"identities": [], "access": []}
    try:
        permissions = source.permissions()
        if source.feeds_identities:
            for row in source.identities():
                identities += 1
                if len(shown["identities"]) < samples:
                    shown["identities"].append(row)
        for row in source.access():
            application = row.get("application", "")
            account = (application, row.get("account_id", ""))
            accounts.add(account)
            if row.get("entitlement_id"):
                entitlements.add((application, row["entitlement_id"]))
                grants.add((*account, row["entitlement_id"]))
            if len(shown["access"]) < samples:
                shown["access"].append(row)
    finally:
        source.close()
    return TestReport(len(accounts), len(entitlements), len(grants), identities, shown, permissions)


# --- Rotating the secrets' key --------------------------------------------------------------------------------


def connector_secrets_rotate(*, actor: Actor) -> int:
    """Re-encrypt every stored secret with the first of SOXGOV_SECRET_KEYS (evidenced with the count and the
    connectors touched, never a value)."""
    with transaction.atomic():
        connectors = sorted(
            set(ConnectorSecret.objects.exclude(ciphertext="").values_list("connector__name", flat=True))
        )
        rotated = secret_store.rotate()
        event_record(
            actor=actor,
            action="config.connector.secrets.rotated",
            subject=Subject("entitlements.connectorsecret", "*", "every encrypted connector secret"),
            payload={"secrets": rotated, "connectors": connectors},
        )
    return rotated
