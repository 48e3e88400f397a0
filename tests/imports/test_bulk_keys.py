"""Bulk loads on PostgreSQL: the grants' foreign keys are dropped for the load and added back, which checks every
row in one pass; a row that breaks one still fails, and a load that cannot take the locks keeps its keys."""

from __future__ import annotations

import logging

import psycopg2
import pytest
from django.db import IntegrityError, connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils.timezone import now

from entitlements import services
from entitlements.imports import sql
from entitlements.models import Account, Grant
from evidence.services import CHAIN_LOCK_KEY, Actor
from tests.imports.conftest import run_file

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="foreign keys are checked row by row on SQLite"
)

GRANT_TABLE = Grant._meta.db_table


def grant_keys() -> list[tuple[str, str]]:
    return sql.fetchall(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass "
        "AND contype = 'f' ORDER BY conname",
        [GRANT_TABLE],
    )


def statements(queries, verb: str) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if verb in q["sql"]]


@pytest.fixture
def erp_file(company, write_csv, erp_rows):
    """The company's ERP file plus three new accounts with two new grants each."""
    for n in range(3):
        for entitlement in ("AP_PAY", "AR_POST"):
            erp_rows.append(
                ["ERP", f"new{n}", "", "", "", "enabled", "", entitlement, entitlement, "role", "false"]
            )
    return write_csv("erp.csv", erp_rows)


def test_a_bulk_load_drops_the_grant_keys_and_adds_them_back(erp_file):
    keys = grant_keys()
    assert len(keys) == 2  # account and entitlement

    run = services.run_create(
        kind="access", source=erp_file, source_name=erp_file.name, actor=Actor.system("t")
    )
    with override_settings(SOXGOV_IMPORT_BULK_GRANTS=6), CaptureQueriesContext(connection) as queries:
        run = services.run_execute(run_id=run.pk)

    assert run.status == "applied", run.error
    assert run.counts["grants"]["added"] == 6
    assert Grant.objects.filter(account__account_id__startswith="new").count() == 6
    assert len(statements(queries, "DROP CONSTRAINT")) == 2
    assert len(statements(queries, "ADD CONSTRAINT")) == 2
    assert grant_keys() == keys  # same names, same definitions (DEFERRABLE INITIALLY DEFERRED)
    # The evidence chain is taken before the grant table, the order every evidence writer keeps.
    order = [q["sql"] for q in queries.captured_queries]
    chain = next(i for i, q in enumerate(order) if "pg_advisory_xact_lock" in q and str(CHAIN_LOCK_KEY) in q)
    assert chain < next(i for i, q in enumerate(order) if "DROP CONSTRAINT" in q)


def test_a_smaller_load_keeps_the_keys(erp_file):
    with override_settings(SOXGOV_IMPORT_BULK_GRANTS=7), CaptureQueriesContext(connection) as queries:
        run = run_file(erp_file)

    assert run.counts["grants"]["added"] == 6
    assert statements(queries, "CONSTRAINT") == []


def test_bulk_loads_can_be_turned_off(erp_file):
    with override_settings(SOXGOV_IMPORT_BULK_GRANTS=0), CaptureQueriesContext(connection) as queries:
        run_file(erp_file)

    assert statements(queries, "CONSTRAINT") == []


def test_a_row_breaking_a_key_still_fails_when_the_keys_come_back(company):
    keys = grant_keys()
    account = Account.objects.get(account_id="bob")
    with (
        pytest.raises(IntegrityError, match="entitlement_id"),
        transaction.atomic(),
        sql.foreign_keys_checked_once(GRANT_TABLE),
    ):
        sql.execute(
            f"INSERT INTO {GRANT_TABLE} (account_id, entitlement_id, first_seen) VALUES (%s, %s, now())",
            [account.pk, 10**9],
        )
    assert grant_keys() == keys


def test_an_error_inside_leaves_the_keys_to_the_rollback(company):
    keys = grant_keys()
    with pytest.raises(ZeroDivisionError), transaction.atomic(), sql.foreign_keys_checked_once(GRANT_TABLE):
        assert grant_keys() == []  # dropped inside
        1 / 0  # noqa: B018
    assert grant_keys() == keys


def test_checks_queued_earlier_in_the_transaction_run_first(company):
    """ALTER TABLE refuses a table with checks still queued in the transaction: they are run, then the keys go."""
    keys = grant_keys()
    account = Account.objects.get(account_id="bob")
    with transaction.atomic():
        Account.objects.create(
            application=account.application, account_id="queued", name="", first_seen=now()
        )
        with sql.foreign_keys_checked_once(GRANT_TABLE):
            assert grant_keys() == []
    assert grant_keys() == keys


def test_a_queued_check_that_fails_is_queued_again_and_the_keys_stay(company, caplog):
    keys = grant_keys()
    account = Account.objects.get(account_id="bob")
    with pytest.raises(IntegrityError, match="application_id"), transaction.atomic():
        sql.execute(
            f"UPDATE {Account._meta.db_table} SET application_id = %s WHERE id = %s", [10**9, account.pk]
        )
        with (
            caplog.at_level(logging.INFO, logger="entitlements.imports.sql"),
            sql.foreign_keys_checked_once(GRANT_TABLE),
        ):
            assert grant_keys() == keys
        assert "keeps its foreign keys" in caplog.text
        sql.execute("SET CONSTRAINTS ALL IMMEDIATE")  # what COMMIT would do: the broken row still fails
    assert grant_keys() == keys


def test_a_reader_holding_the_grants_makes_the_load_keep_its_keys(erp_file, caplog):
    """A long reader (another connection) holds the grant table: after the lock timeout the pull goes on with
    per-row checks instead of queueing every other reader behind it."""
    settings_dict = connection.settings_dict
    reader = psycopg2.connect(
        dbname=settings_dict["NAME"],
        user=settings_dict["USER"],
        password=settings_dict["PASSWORD"] or None,
        host=settings_dict["HOST"] or None,
        port=settings_dict["PORT"] or None,
    )
    try:
        with reader.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {GRANT_TABLE} IN ACCESS SHARE MODE")
        with (
            override_settings(SOXGOV_IMPORT_BULK_GRANTS=1),
            caplog.at_level(logging.INFO, logger="entitlements.imports.sql"),
            CaptureQueriesContext(connection) as queries,
        ):
            run = run_file(erp_file)
    finally:
        reader.rollback()
        reader.close()

    assert run.status == "applied", run.error
    assert run.counts["grants"]["added"] == 6
    assert "lock timeout" in caplog.text
    assert statements(queries, "ADD CONSTRAINT") == []
    assert len(grant_keys()) == 2
