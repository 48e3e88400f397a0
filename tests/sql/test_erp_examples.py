"""The worked ERP queries of docs/connectors-erp.md, run as documented through SqlSource on PostgreSQL and MariaDB.

Each query reads small copies of SAP's, Oracle E-Business Suite's and PeopleSoft's tables and must return
exactly the rows in tests/sql/erp.py: locked and end-dated users disabled but listed, ended assignments and
inactive roles not listed, users without roles present once, system users claimable, privileged roles marked.
"""

from __future__ import annotations

import pytest

from entitlements.connectors.files import ACCESS_COLUMNS, IDENTITY_COLUMNS
from entitlements.connectors.sources import SourceError
from entitlements.connectors.sql import SqlSource
from tests.sql import erp

QUERIES = erp.documented_queries()


def read(server, query_key: str, sql: str) -> list[dict[str, str]]:
    config = {"url": server.url(), query_key: sql}
    if query_key == "identities_query":
        config["access_query"] = "SELECT 'unused' AS account_id"
    assert SqlSource.validate(config, {"password"}) == []
    source = SqlSource(config, {"password": server.password})
    try:
        return list(source.identities() if query_key == "identities_query" else source.access())
    finally:
        source.close()


def test_the_docs_give_every_worked_query():
    assert sorted(QUERIES) == sorted(erp.EXPECTED)


@pytest.mark.parametrize("name", sorted(erp.EXPECTED))
def test_documented_query_returns_the_expected_rows(erp_server, name):
    system, query_key = name.split(".")
    erp.load(erp_server, system)

    rows = read(erp_server, query_key, QUERIES[name])

    columns = IDENTITY_COLUMNS if query_key == "identities_query" else ACCESS_COLUMNS
    assert rows and all(set(row) <= set(columns) for row in rows)
    fields = erp.IDENTITY_FIELDS if query_key == "identities_query" else erp.ACCESS_FIELDS
    got = sorted(tuple(row.get(field, "") for field in fields) for row in rows)
    assert got == sorted(erp.EXPECTED[name])


def test_a_change_in_the_source_shows_in_the_next_read(erp_server):
    """Lock a user, end-date an assignment, hire someone: the same query reads the new truth."""
    erp.load(erp_server, "peoplesoft")
    erp.execute(erp_server, "UPDATE PSOPRDEFN SET ACCTLOCK = 1 WHERE OPRID = %s", ("JSMITH",))
    erp.execute(
        erp_server, "DELETE FROM PSROLEUSER WHERE ROLEUSER = %s AND ROLENAME = %s", ("JSMITH", "AP Clerk")
    )
    erp.execute(
        erp_server,
        "INSERT INTO PSOPRDEFN VALUES (%s, %s, %s, %s, %s, %s)",
        ("BNEW", "Ben New", "E506", "ben.new@example.com", 0, None),
    )

    rows = read(erp_server, "access_query", QUERIES["peoplesoft.access_query"])

    jsmith = {row["entitlement_id"]: row["account_status"] for row in rows if row["account_id"] == "JSMITH"}
    assert jsmith == {"Employee": "disabled", "Vendor Maintenance": "disabled"}
    assert [(r["employee_id"], r["entitlement_id"]) for r in rows if r["account_id"] == "BNEW"] == [
        ("E506", "")
    ]


def test_a_query_that_writes_is_refused_and_changes_nothing(erp_server):
    """SqlSource reads in a read-only transaction: a query that would change the ERP fails with the database's
    message, and the rows are still there (the reading user's SELECT-only grant is the database's own guard)."""
    erp.load(erp_server, "peoplesoft")
    if erp_server.dialect == "postgresql":
        erp.execute(
            erp_server,
            "CREATE FUNCTION purge_roles() RETURNS integer LANGUAGE sql AS "
            "'DELETE FROM PSROLEUSER; SELECT 1'",
        )
        sql = "SELECT CAST(purge_roles() AS text) AS account_id"
    else:  # MariaDB: a locking read is a write as far as a read-only transaction goes
        sql = "SELECT ROLEUSER AS account_id FROM PSROLEUSER FOR UPDATE"
    with pytest.raises(SourceError, match=r"(?i)access_query failed: .*read.only transaction"):
        read(erp_server, "access_query", sql)
    assert erp.execute(erp_server, "SELECT * FROM PSROLEUSER") == 6
