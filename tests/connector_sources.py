"""A small ERP database for SQL connector tests: real tables a SQL source reads over its own connection.

On PostgreSQL it is a scratch schema in the test database (created and filled through a second, autocommit
session, so the source's own connection sees the rows); on SQLite it is a database file of its own. Either way
the tables are the same: users, roles and user_roles, as an ERP keeps them.
"""

from __future__ import annotations

import secrets
import sqlite3
from pathlib import Path

from django.db import connection

ACCESS_QUERY = (
    "SELECT u.login AS account_id, u.full_name AS account_name, u.employee_no AS employee_id, "
    "CASE WHEN u.locked = 1 THEN 'disabled' ELSE 'enabled' END AS account_status, "
    "r.code AS entitlement_id, r.label AS entitlement_name, r.admin AS privileged "
    "FROM {s}users u JOIN {s}user_roles ur ON ur.login = u.login JOIN {s}roles r ON r.code = ur.role "
    "ORDER BY u.login, r.code"
)
IDENTITIES_QUERY = (
    "SELECT employee_no AS employee_id, email, full_name AS display_name, dept AS department "
    "FROM {s}users WHERE employee_no IS NOT NULL ORDER BY employee_no"
)
SCHEMA = [
    "CREATE TABLE {s}users (login VARCHAR(40) PRIMARY KEY, full_name VARCHAR(100), employee_no VARCHAR(20), "
    "email VARCHAR(100), dept VARCHAR(50), locked INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE {s}roles (code VARCHAR(40) PRIMARY KEY, label VARCHAR(100), admin BOOLEAN NOT NULL)",
    "CREATE TABLE {s}user_roles (login VARCHAR(40) NOT NULL, role VARCHAR(40) NOT NULL)",
]


class SourceDatabase:
    """The ERP's database: ``url`` for a connector, ``execute`` to change it as the ERP would."""

    def __init__(self, tmp_path: Path, settings):
        self.vendor = connection.vendor
        if self.vendor == "postgresql":
            import psycopg2

            params = connection.get_connection_params()
            self._db = psycopg2.connect(**params)
            self._db.autocommit = True
            self.schema = f"erp_{secrets.token_hex(4)}"
            self._run(f"CREATE SCHEMA {self.schema}")
            self.prefix = f"{self.schema}."
            host = params.get("host") or "127.0.0.1"
            port = params.get("port") or 5432
            self.url = f"postgresql+psycopg2://{params.get('user', 'postgres')}@{host}:{port}/{params.get('dbname') or params['database']}"
            self.password = params.get("password") or ""
        else:
            # Under a directory SQLite sources may be read from (SOXGOV_CONNECTOR_FILE_ROOTS), as in production.
            folder = tmp_path / "sources"
            folder.mkdir(exist_ok=True)
            settings.SOXGOV_CONNECTOR_FILE_ROOTS = [*settings.SOXGOV_CONNECTOR_FILE_ROOTS, folder]
            path = folder / "erp.sqlite3"
            self._db = sqlite3.connect(path, isolation_level=None)
            self.schema = None
            self.prefix = ""
            self.url = f"sqlite:///{path}"
            self.password = ""
        for statement in SCHEMA:
            self.execute(statement)

    def _run(self, statement: str, params=()):
        if self.vendor == "postgresql":
            with self._db.cursor() as cursor:
                cursor.execute(statement, params or None)
        else:
            self._db.execute(statement.replace("%s", "?"), params)

    def execute(self, statement: str, params=()):
        self._run(statement.replace("{s}", self.prefix), params)

    def query(self, template: str) -> str:
        return template.replace("{s}", self.prefix)

    def config(self, *, identities: bool = False, **extra) -> dict:
        config = {"url": self.url, "access_query": self.query(ACCESS_QUERY)}
        if identities:
            config["identities_query"] = self.query(IDENTITIES_QUERY)
        return {**config, **extra}

    def add_user(self, login, *, employee_no=None, email=None, name=None, dept="Finance", locked=0, roles=()):
        self.execute(
            "INSERT INTO {s}users (login, full_name, employee_no, email, dept, locked) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            (login, name or login.title(), employee_no, email, dept, locked),
        )
        for role in roles:
            self.grant(login, role)

    def add_role(self, code, label=None, *, admin=False):
        self.execute(
            "INSERT INTO {s}roles (code, label, admin) VALUES (%s, %s, %s)", (code, label or code, admin)
        )

    def grant(self, login, role):
        self.execute("INSERT INTO {s}user_roles (login, role) VALUES (%s, %s)", (login, role))

    def revoke(self, login, role):
        self.execute("DELETE FROM {s}user_roles WHERE login = %s AND role = %s", (login, role))

    def close(self):
        if self.vendor == "postgresql":
            self._run(f"DROP SCHEMA {self.schema} CASCADE")
        self._db.close()
