"""The database role the application connects as (PostgreSQL), and the checks that it is not the owner.

Migrations run as the owner of the tables; the web, the workers and beat connect as a role that owns nothing and is
not a superuser. Only an owner or a superuser may disable a table's triggers (``ALTER TABLE ... DISABLE TRIGGER``)
or set ``session_replication_role`` (which skips them), so the application's own connection cannot switch off the
append-only triggers on the evidence table, and it holds no UPDATE, DELETE or TRUNCATE privilege there either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from django.db import connection, transaction

ROLE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# The attributes the application's role must have: none of them lets it past a trigger or a privilege.
ROLE_ATTRIBUTES = {
    "rolsuper": "NOSUPERUSER",
    "rolcreatedb": "NOCREATEDB",
    "rolcreaterole": "NOCREATEROLE",
    "rolreplication": "NOREPLICATION",
    "rolbypassrls": "NOBYPASSRLS",
}
TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
APPEND_ONLY_PRIVILEGES = "SELECT, INSERT"


class RoleRefused(Exception):
    """The role cannot serve as the application's role (it is the owner, or owns something)."""


@dataclass
class RoleGrant:
    role: str
    database: str
    schema: str
    created: bool
    password_set: bool
    altered: list[str] = field(default_factory=list)
    tables: int = 0
    append_only: list[str] = field(default_factory=list)
    sequences: int = 0

    def lines(self) -> list[str]:
        return [
            f"role {self.role}: {'created' if self.created else 'exists'}; LOGIN "
            + " ".join(ROLE_ATTRIBUTES.values())
            + (f" (changed: {', '.join(self.altered)})" if self.altered else "")
            + ("; password set" if self.password_set else ""),
            f"database {self.database}: CONNECT, TEMPORARY",
            f"schema {self.schema}: USAGE",
            f"{self.tables} tables: {TABLE_PRIVILEGES}",
            *(f"{table} (append-only): {APPEND_ONLY_PRIVILEGES} only" for table in self.append_only),
            f"{self.sequences} sequences: USAGE, SELECT",
            f"tables and sequences the owner creates later in {self.schema}: the same by default "
            "(run this again after every migrate, which keeps the append-only tables restricted)",
        ]

    def payload(self) -> dict:
        return {
            "role": self.role,
            "database": self.database,
            "schema": self.schema,
            "created": self.created,
            "password_set": self.password_set,
            "altered": self.altered,
            "tables": self.tables,
            "table_privileges": TABLE_PRIVILEGES,
            "append_only": self.append_only,
            "append_only_privileges": APPEND_ONLY_PRIVILEGES,
            "sequences": self.sequences,
        }


def _one(sql: str, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _run(sql: str, params=None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def app_role_grant(*, role: str, password: str | None) -> RoleGrant:
    """Create ``role`` if missing and give it exactly what the application needs; run by the owner after every
    ``migrate``. Idempotent: every privilege is revoked and granted again in one transaction, so a table a later
    migration created, or a privilege someone added by hand, ends as this says. Evidenced as
    ``db.app_role.granted``."""
    from evidence.services import Actor, Subject, event_record
    from evidence.triggers import APPEND_ONLY_TABLES

    if connection.vendor != "postgresql":
        raise RoleRefused("database roles apply to PostgreSQL only; SQLite has no roles")
    if not ROLE_NAME.fullmatch(role):
        raise RoleRefused(
            f"role name {role!r}: use lower-case letters, digits and _ (at most 63, not a digit first)"
        )
    q = connection.ops.quote_name
    with transaction.atomic():
        owner, database, schema = _one("SELECT current_user, current_database(), current_schema()")
        if role == owner:
            raise RoleRefused(f"{role} is the role running this command (the owner); name another role")
        row = _one(f"SELECT oid, {', '.join(ROLE_ATTRIBUTES)} FROM pg_roles WHERE rolname = %s", [role])
        created = row is None
        if created:
            _run(f"CREATE ROLE {q(role)} LOGIN")
            row = _one(f"SELECT oid, {', '.join(ROLE_ATTRIBUTES)} FROM pg_roles WHERE rolname = %s", [role])
        owned = _owned_by(row[0])
        if owned:
            raise RoleRefused(
                f"{role} owns {', '.join(owned[:5])}{' ...' if len(owned) > 5 else ''}: the application's role must "
                f"own nothing (as the owner: REASSIGN OWNED BY {role} TO {owner})"
            )
        # Only the attributes that are wrong are changed: a CREATEROLE owner that is not a superuser may not
        # touch SUPERUSER or BYPASSRLS at all, and has no need to when they are already off.
        altered = [clause for clause, value in zip(ROLE_ATTRIBUTES.values(), row[1:], strict=True) if value]
        for clause in ["LOGIN", *altered]:
            _run(f"ALTER ROLE {q(role)} {clause}")
        if password:
            # psycopg2 binds the parameter client-side, as a quoted literal: PASSWORD takes no placeholder.
            _run(f"ALTER ROLE {q(role)} PASSWORD %s", [password])
        _run(f"GRANT CONNECT, TEMPORARY ON DATABASE {q(database)} TO {q(role)}")
        _run(f"GRANT USAGE ON SCHEMA {q(schema)} TO {q(role)}")
        _run(f"REVOKE ALL ON ALL TABLES IN SCHEMA {q(schema)} FROM {q(role)}")
        _run(f"GRANT {TABLE_PRIVILEGES} ON ALL TABLES IN SCHEMA {q(schema)} TO {q(role)}")
        append_only = [table for table in APPEND_ONLY_TABLES if _table_exists(schema, table)]
        for table in append_only:
            _run(f"REVOKE ALL ON {q(schema)}.{q(table)} FROM {q(role)}")
            _run(f"GRANT {APPEND_ONLY_PRIVILEGES} ON {q(schema)}.{q(table)} TO {q(role)}")
        _run(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {q(schema)} FROM {q(role)}")
        _run(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {q(schema)} TO {q(role)}")
        _run(
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {q(owner)} IN SCHEMA {q(schema)} "
            f"GRANT {TABLE_PRIVILEGES} ON TABLES TO {q(role)}"
        )
        _run(
            f"ALTER DEFAULT PRIVILEGES FOR ROLE {q(owner)} IN SCHEMA {q(schema)} "
            f"GRANT USAGE, SELECT ON SEQUENCES TO {q(role)}"
        )
        tables = _one(
            "SELECT count(*) FROM pg_class WHERE relnamespace = %s::regnamespace AND relkind IN ('r', 'p')",
            [schema],
        )[0]
        sequences = _one(
            "SELECT count(*) FROM pg_class WHERE relnamespace = %s::regnamespace AND relkind = 'S'", [schema]
        )[0]
        grant = RoleGrant(
            role=role,
            database=database,
            schema=schema,
            created=created,
            password_set=bool(password),
            altered=altered,
            tables=tables,
            append_only=append_only,
            sequences=sequences,
        )
        event_record(
            actor=Actor.system("db_app_role"),
            action="db.app_role.granted",
            subject=Subject(type="postgresql.role", id=role, repr=f"database role {role}"),
            payload={**grant.payload(), "granted_by": owner},
        )
    return grant


def _owned_by(role_oid: int) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT 'database ' || datname FROM pg_database WHERE datdba = %s AND datname = current_database() "
            "UNION ALL SELECT 'schema ' || nspname FROM pg_namespace WHERE nspowner = %s "
            "UNION ALL SELECT relname FROM pg_class WHERE relowner = %s AND relpersistence <> 't' "
            "ORDER BY 1",
            [role_oid, role_oid, role_oid],
        )
        return [name for (name,) in cursor.fetchall()]


def _table_exists(schema: str, table: str) -> bool:
    return _one("SELECT to_regclass(%s) IS NOT NULL", [f"{schema}.{table}"])[0]


def connection_privilege_problems() -> list[str]:
    """What lets the application's own connection past the append-only triggers: being a superuser, or (being a
    member of) the evidence table's owner. [] on SQLite and when all is well."""
    from evidence.triggers import TABLE

    if connection.vendor != "postgresql":
        return []
    user, superuser, owner = _one(
        "SELECT current_user, rolsuper, pg_has_role(current_user, c.relowner, 'USAGE') FROM pg_roles r "
        "LEFT JOIN pg_class c ON c.oid = to_regclass(%s) WHERE r.rolname = current_user",
        [TABLE],
    )
    problems = []
    if superuser:
        problems.append(f"the database role {user} is a superuser")
    if owner:
        problems.append(f"the database role {user} owns (or is a member of the owner of) {TABLE}")
    return problems
