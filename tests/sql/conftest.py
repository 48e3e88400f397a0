"""ERP databases to pull from: a private MariaDB server per test session and a scratch PostgreSQL database.

``erp_server`` runs a test once per database engine. MariaDB is started here (skipped, with the reason, only
where the server is not installed); PostgreSQL needs the suite to run on PostgreSQL (DATABASE_URL), whose
server it borrows for a scratch database.
"""

from __future__ import annotations

import shutil

import pytest

from tests.sql.servers import MariaDbServer, PostgresDatabase, mariadb_missing


@pytest.fixture(scope="session")
def mariadb_server(tmp_path_factory):
    missing = mariadb_missing()
    if missing:
        pytest.skip(missing)
    server = MariaDbServer(tmp_path_factory.mktemp("mariadb")).start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.datadir, ignore_errors=True)  # ~25 MB; the error log stays for a post-mortem


@pytest.fixture(scope="session")
def postgres_erp():
    from django.conf import settings

    database = settings.DATABASES["default"]
    if "postgresql" not in database["ENGINE"]:
        pytest.skip(
            "a PostgreSQL source needs a PostgreSQL server: run the suite with DATABASE_URL=postgres://..."
        )
    params = {"host": database.get("HOST") or "127.0.0.1", "port": database.get("PORT") or 5432,
              "user": database.get("USER") or "postgres", "password": database.get("PASSWORD") or None}  # fmt: skip
    server = PostgresDatabase({k: v for k, v in params.items() if v is not None}).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["postgresql", "mariadb"])
def erp_server(request):
    """The ERP's database server, once per engine."""
    return request.getfixturevalue("postgres_erp" if request.param == "postgresql" else "mariadb_server")
