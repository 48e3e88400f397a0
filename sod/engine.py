"""The SoD engine: which holders combine every side of which rule, found set-based in one SQL statement.

A holder is an identity (through all of its accounts) or an orphan account on its own. A rule is hit when the
number of distinct sides a holder holds an entitlement of equals the rule's side count. The same statement
serves a full scan, a batch of changed identities and one rule; only the WHERE clause differs. Disabled and
enabled accounts count alike: a disabled account can be re-enabled without a new grant.

Runs unchanged on PostgreSQL and SQLite; on PostgreSQL the id lists travel as one array parameter.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from django.db import connection

from entitlements.models import Account, Application, Entitlement, Grant
from sod.models import Rule, RuleMember, RuleSide

# A violation's key: (rule id, identity id or None, orphan account id or None).
Key = tuple[int, int | None, int | None]

# SQLite's default limit on bound parameters is 32766; stay well below it.
_SQLITE_CHUNK = 10_000


@dataclass(frozen=True)
class Scope:
    """What to check. ``None`` means every one; an empty tuple means none."""

    identity_ids: Sequence[int] | None = None
    account_ids: Sequence[int] | None = None
    rule_ids: Sequence[int] | None = None

    @classmethod
    def everything(cls, rule_ids: Sequence[int] | None = None) -> Scope:
        return cls(None, None, rule_ids)

    @property
    def is_full(self) -> bool:
        return self.identity_ids is None and self.account_ids is None


def _tables() -> dict[str, str]:
    return {
        "account": Account._meta.db_table,
        "grant": Grant._meta.db_table,
        "member": RuleMember._meta.db_table,
        "rule": Rule._meta.db_table,
        "side": RuleSide._meta.db_table,
        "entitlement": Entitlement._meta.db_table,
        "application": Application._meta.db_table,
    }


def _any(column: str, ids: Sequence[int]) -> tuple[str, list]:
    """``column IN ids`` as SQL and parameters, for one statement (PostgreSQL) or one chunk (SQLite)."""
    if connection.vendor == "postgresql":
        return f"{column} = ANY(%s)", [list(ids)]
    return f"{column} IN ({', '.join(['%s'] * len(ids))})", list(ids)


def _chunks(ids: Sequence[int] | None) -> Iterable[Sequence[int] | None]:
    if ids is None or connection.vendor == "postgresql":
        yield ids
        return
    ids = list(ids)
    for start in range(0, len(ids), _SQLITE_CHUNK):
        yield ids[start : start + _SQLITE_CHUNK]


def _hits_sql(holder: str, holder_filter: str, rule_filter: str) -> str:
    """The whole engine: group a holder's grants on rule entitlements by rule, keep full coverage."""
    t = _tables()
    holder_column = "a.identity_id" if holder == "identity" else "a.id"
    orphan = "a.identity_id IS NOT NULL" if holder == "identity" else "a.identity_id IS NULL"
    return f"""
        SELECT m.rule_id, {holder_column}
        FROM {t["account"]} a
        JOIN {t["grant"]} g ON g.account_id = a.id
        JOIN {t["member"]} m ON m.entitlement_id = g.entitlement_id
        JOIN {t["rule"]} r ON r.id = m.rule_id
        WHERE {orphan} AND r.enabled {holder_filter} {rule_filter}
        GROUP BY m.rule_id, {holder_column}, r.side_count
        HAVING COUNT(DISTINCT m.side_id) = r.side_count
    """


def detect(scope: Scope) -> set[Key]:
    """Every (rule, holder) in ``scope`` that currently combines all sides of an enabled rule."""
    found: set[Key] = set()
    rule_sql, rule_params = ("", [])
    if scope.rule_ids is not None:
        if not scope.rule_ids:
            return found
        rule_sql, rule_params = _any("m.rule_id", scope.rule_ids)
        rule_sql = "AND " + rule_sql
    with connection.cursor() as cursor:
        for holder, ids in (("identity", scope.identity_ids), ("account", scope.account_ids)):
            if scope.is_full:
                ids = None
            elif ids is None or not ids:
                continue
            column = "a.identity_id" if holder == "identity" else "a.id"
            for chunk in _chunks(ids):
                holder_sql, holder_params = ("", [])
                if chunk is not None:
                    holder_sql, holder_params = _any(column, chunk)
                    holder_sql = "AND " + holder_sql
                cursor.execute(_hits_sql(holder, holder_sql, rule_sql), holder_params + rule_params)
                if holder == "identity":
                    found.update((rule_id, holder_id, None) for rule_id, holder_id in cursor.fetchall())
                else:
                    found.update((rule_id, None, holder_id) for rule_id, holder_id in cursor.fetchall())
    return found


@dataclass(frozen=True)
class ConflictGrant:
    """One grant that puts a holder on one side of a rule."""

    rule_id: int
    identity_id: int | None
    account_pk: int
    side: str
    application: str
    account_id: str
    entitlement_pk: int
    entitlement_id: str
    entitlement_name: str

    @property
    def label(self) -> str:
        return f"{self.application}/{self.entitlement_id} via {self.account_id}"


def conflict_grants(keys: Iterable[Key]) -> dict[Key, list[ConflictGrant]]:
    """The grants behind each violation key, grouped by key (sides in rule order)."""
    keys = set(keys)
    result: dict[Key, list[ConflictGrant]] = {key: [] for key in keys}
    if not keys:
        return result
    t = _tables()
    identity_ids = sorted({k[1] for k in keys if k[1] is not None})
    account_ids = sorted({k[2] for k in keys if k[2] is not None})
    rule_ids = sorted({k[0] for k in keys})
    base = f"""
        SELECT m.rule_id, a.identity_id, a.id, s.name, app.name, a.account_id, e.id, e.entitlement_id, e.name
        FROM {t["account"]} a
        JOIN {t["grant"]} g ON g.account_id = a.id
        JOIN {t["member"]} m ON m.entitlement_id = g.entitlement_id
        JOIN {t["side"]} s ON s.id = m.side_id
        JOIN {t["entitlement"]} e ON e.id = g.entitlement_id
        JOIN {t["application"]} app ON app.id = a.application_id
        WHERE {{holder}} AND {{rules}}
        ORDER BY m.rule_id, s.position, s.id, app.name, e.entitlement_id, a.account_id
    """
    with connection.cursor() as cursor:
        for column, ids in (("a.identity_id", identity_ids), ("a.id", account_ids)):
            for chunk in _chunks(ids) if ids else ():
                holder_sql, holder_params = _any(column, chunk)
                rules_sql, rules_params = _any("m.rule_id", rule_ids)
                cursor.execute(base.format(holder=holder_sql, rules=rules_sql), holder_params + rules_params)
                for row in cursor.fetchall():
                    grant = ConflictGrant(*row)
                    key = (
                        (grant.rule_id, grant.identity_id, None)
                        if column == "a.identity_id"
                        else (grant.rule_id, None, grant.account_pk)
                    )
                    if key in result:
                        result[key].append(grant)
    return result
