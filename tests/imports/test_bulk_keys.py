"""Bulk loads on PostgreSQL: the grants' foreign keys are dropped for the load and added back, which checks every
row in one pass; a row that breaks one still fails, and a load that cannot take the locks at once keeps its keys."""

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
from entitlements.models import Account, Entitlement, Grant
from evidence.services import CHAIN_LOCK_KEY, Actor
from tests.imports.conftest import run_file

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="foreign keys are checked row by row on SQLite"
)

GRANT_TABLE = Grant._meta.db_table
LOGGER = "entitlements.imports.sql"


def grant_keys() -> list[tuple[str, str]]:
    return sql.fetchall(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass "
        "AND contype = 'f' ORDER BY conname",
        [GRANT_TABLE],
    )


def statements(queries, verb: str) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if verb in q["sql"]]


def insert_grant(account_id: int, entitlement_id: int) -> None:
    sql.execute(
        f"INSERT INTO {GRANT_TABLE} (account_id, entitlement_id, first_seen) VALUES (%s, %s, now())",
        [account_id, entitlement_id],
    )


@pytest.fixture
def erp_file(company, write_csv, erp_rows):
    """The company's ERP file plus three new accounts with two new grants each; the grant table analysed, so
    that its size estimate (which decides, with the count, whether a load is bulk) is the real one."""
    for n in range(3):
        for entitlement in ("AP_PAY", "AR_POST"):
            erp_rows.append(
                ["ERP", f"new{n}", "", "", "", "enabled", "", entitlement, entitlement, "role", "false"]
            )
    sql.execute(f"ANALYZE {GRANT_TABLE}")
    return write_csv("erp.csv", erp_rows)


@pytest.fixture
def other_session():
    """A second connection to the test database, as another request or worker would hold one."""
    settings_dict = connection.settings_dict
    other = psycopg2.connect(
        dbname=settings_dict["NAME"],
        user=settings_dict["USER"],
        password=settings_dict["PASSWORD"] or None,
        host=settings_dict["HOST"] or None,
        port=settings_dict["PORT"] or None,
    )
    yield other
    other.rollback()
    other.close()


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
    # The evidence chain is taken before the tables, and without waiting for either.
    order = [q["sql"] for q in queries.captured_queries]
    chain = next(i for i, q in enumerate(order) if f"pg_try_advisory_xact_lock({CHAIN_LOCK_KEY})" in q)
    tables = next(i for i, q in enumerate(order) if q.startswith("LOCK TABLE"))
    assert chain < tables < next(i for i, q in enumerate(order) if "DROP CONSTRAINT" in q)
    assert "entitlements_account" in order[tables] and "NOWAIT" in order[tables]


def test_a_smaller_load_keeps_the_keys(erp_file):
    with override_settings(SOXGOV_IMPORT_BULK_GRANTS=7), CaptureQueriesContext(connection) as queries:
        run = run_file(erp_file)

    assert run.counts["grants"]["added"] == 6
    assert statements(queries, "CONSTRAINT") == []


def test_a_load_small_against_the_table_keeps_the_keys(erp_file, monkeypatch):
    """Adding a key back reads the whole table: not worth it for a tenth of it or less."""
    monkeypatch.setattr(sql, "estimated_rows", lambda table: 61)
    with override_settings(SOXGOV_IMPORT_BULK_GRANTS=6), CaptureQueriesContext(connection) as queries:
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
        insert_grant(account.pk, 10**9)
    assert grant_keys() == keys


def test_an_error_inside_puts_the_keys_back_even_if_the_caller_goes_on(company):
    keys = grant_keys()
    with pytest.raises(ZeroDivisionError), sql.foreign_keys_checked_once(GRANT_TABLE):
        assert grant_keys() == []  # dropped inside
        1 / 0  # noqa: B018
    assert grant_keys() == keys  # and the caller's transaction is still usable
    assert Account.objects.filter(account_id="bob").exists()


def test_the_keys_are_deferred_again_afterwards(company):
    account = Account.objects.get(account_id="bob")
    with pytest.raises(IntegrityError, match="entitlement_id"), transaction.atomic():
        with sql.foreign_keys_checked_once(GRANT_TABLE):
            pass
        try:
            insert_grant(account.pk, 10**9)
        except IntegrityError:
            pytest.fail("checked at once: the keys were left IMMEDIATE")
        sql.execute("SET CONSTRAINTS ALL IMMEDIATE")  # what COMMIT does


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


def test_a_queued_check_that_fails_fails_before_anything_is_dropped(company):
    keys = grant_keys()
    account = Account.objects.get(account_id="bob")
    with pytest.raises(IntegrityError, match="application_id"), transaction.atomic():
        sql.execute(
            f"UPDATE {Account._meta.db_table} SET application_id = %s WHERE id = %s", [10**9, account.pk]
        )
        with sql.foreign_keys_checked_once(GRANT_TABLE):
            raise AssertionError("not reached: the queued check fails first")
    assert grant_keys() == keys


@pytest.mark.parametrize("held", [GRANT_TABLE, Account._meta.db_table, Entitlement._meta.db_table])
def test_a_reader_holding_a_table_makes_the_load_keep_its_keys(erp_file, other_session, caplog, held):
    """Another session reads the grant table or a table it references: the pull does not queue every other
    reader behind it, and after its tries goes on with per-row checks."""
    with other_session.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {held} IN ACCESS SHARE MODE")
    with (
        override_settings(SOXGOV_IMPORT_BULK_GRANTS=1),
        caplog.at_level(logging.INFO, logger=LOGGER),
        CaptureQueriesContext(connection) as queries,
    ):
        run = run_file(erp_file)

    assert run.status == "applied", run.error
    assert run.counts["grants"]["added"] == 6
    assert "stayed busy" in caplog.text
    assert len(statements(queries, "LOCK TABLE")) == 10  # ten tries
    assert statements(queries, "ADD CONSTRAINT") == []
    assert len(grant_keys()) == 2


def test_a_session_holding_the_advisory_lock_makes_the_load_keep_its_keys(company, other_session, caplog):
    """The pull passes the evidence chain's key; any key works the same (this test's own, as the company fixture
    may have taken the chain in this session already)."""
    key = 0x7E57
    with other_session.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])
    keys = grant_keys()
    with (
        caplog.at_level(logging.INFO, logger=LOGGER),
        sql.foreign_keys_checked_once(GRANT_TABLE, advisory_lock=key, attempts=3, pause=0.01),
    ):
        assert grant_keys() == keys
    assert "stayed busy for 3 tries" in caplog.text
    # Nothing taken by the failed tries is still held by this session.
    held = sql.scalar(
        "SELECT COUNT(*) FROM pg_locks WHERE pid = pg_backend_pid() AND (locktype = 'advisory' AND objid = %s "
        "OR relation = %s::regclass AND mode = 'AccessExclusiveLock')",
        [key, GRANT_TABLE],
    )
    assert held == 0


@pytest.mark.django_db(transaction=True)
def test_a_committed_bulk_load_keeps_its_keys(committed_db, erp_file):
    keys = grant_keys()
    with override_settings(SOXGOV_IMPORT_BULK_GRANTS=1):
        run = run_file(erp_file)

    assert run.status == "applied", run.error
    assert grant_keys() == keys
    assert Grant.objects.filter(account__account_id__startswith="new").count() == 6
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_grant(Account.objects.get(account_id="new0").pk, 10**9)
