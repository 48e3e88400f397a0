"""The SQL source (entitlements/connectors/sql.py) against a real database: PostgreSQL when the suite runs on it
(a scratch schema read over the source's own connection), a SQLite file otherwise."""

import pytest
from django.db import connection

from entitlements.connectors.sources import SourceError, SourceTimeout, SourceUnreachable, source_class
from entitlements.connectors.sql import SqlSource
from tests.connector_sources import SourceDatabase


def postgres_only(test):
    skip = pytest.mark.skipif(
        connection.vendor != "postgresql", reason="timeouts, roles and ports of a PostgreSQL server"
    )
    return pytest.mark.postgres(skip(test))


@pytest.fixture
def erp(db, tmp_path, settings):
    source = SourceDatabase(tmp_path, settings)
    source.add_role("GL_POST", "Post journal", admin=True)
    source.add_role("AP_VIEW", "View payables")
    source.add_user("bob", employee_no="E2", email="Bob@Example.com", roles=["GL_POST", "AP_VIEW"])
    source.add_user("ghost", locked=1, roles=["AP_VIEW"])
    yield source
    source.close()


def read(config, secrets=None, what="access"):
    source = SqlSource(config, secrets or {})
    try:
        return list(getattr(source, what)())
    finally:
        source.close()


def test_the_kind_is_registered():
    assert source_class("sql") is SqlSource
    assert source_class("access_file") is None


def test_reads_access_rows_in_the_file_formats_columns(erp):
    rows = read(erp.config())
    # SQLite has no boolean type: 1/0, which the access format reads as true/false as well.
    for row in rows:
        row["privileged"] = {"1": "true", "0": "false"}.get(row["privileged"], row["privileged"])
    assert rows == [
        {
            "account_id": "bob",
            "account_name": "Bob",
            "employee_id": "E2",
            "account_status": "enabled",
            "entitlement_id": "AP_VIEW",
            "entitlement_name": "View payables",
            "privileged": "false",
        },
        {
            "account_id": "bob",
            "account_name": "Bob",
            "employee_id": "E2",
            "account_status": "enabled",
            "entitlement_id": "GL_POST",
            "entitlement_name": "Post journal",
            "privileged": "true",
        },
        {
            "account_id": "ghost",
            "account_name": "Ghost",
            "employee_id": "",
            "account_status": "disabled",
            "entitlement_id": "AP_VIEW",
            "entitlement_name": "View payables",
            "privileged": "false",
        },
    ]


def test_reads_identities_when_configured(erp):
    source = SqlSource(erp.config(identities=True), {})
    try:
        assert source.feeds_identities
        assert list(source.identities()) == [
            {"employee_id": "E2", "email": "Bob@Example.com", "display_name": "Bob", "department": "Finance"}
        ]
        assert len(list(source.access())) == 3  # same transaction, same snapshot
    finally:
        source.close()
    assert not SqlSource(erp.config(), {}).feeds_identities


def test_progress_is_reported_with_rows_read(erp):
    seen = []
    source = SqlSource(erp.config(), {}, progress=lambda **kw: seen.append(kw))
    list(source.access())
    source.close()
    assert seen[-1] == {"read": 3}


def test_unknown_and_missing_columns_are_named(erp):
    config = erp.config(access_query=erp.query("SELECT login AS login_name, dept FROM {s}users"))
    with pytest.raises(SourceError) as caught:
        read(config)
    message = str(caught.value)
    assert "access_query" in message
    assert "unknown column(s) login_name, dept" in message
    assert "missing column(s) account_id" in message
    assert not caught.value.transient

    config = erp.config(
        identities=True, identities_query=erp.query("SELECT dept AS department FROM {s}users")
    )
    with pytest.raises(SourceError, match=r"identities_query: missing column\(s\) employee_id \(or email\)"):
        read(config, what="identities")


def test_a_query_error_carries_the_databases_message(erp):
    with pytest.raises(SourceError) as caught:
        read(erp.config(access_query="SELECT account_id FROM no_such_table"))
    assert type(caught.value) is SourceError
    assert "access_query failed" in str(caught.value)
    assert "no_such_table" in str(caught.value)


def test_the_source_is_never_written(erp):
    """The read-only transaction refuses a query that writes (PostgreSQL, MariaDB), SQLite's query_only too."""
    if erp.vendor == "postgresql":
        erp.execute("CREATE SEQUENCE {s}ids")
    writing = (
        erp.query("SELECT nextval('{s}ids')::text AS account_id")
        if erp.vendor == "postgresql"
        else erp.query("DELETE FROM {s}user_roles RETURNING login AS account_id")
    )
    with pytest.raises(SourceError, match=r"read-only|readonly"):
        read(erp.config(access_query=writing))
    assert len(read(erp.config())) == 3


def test_validate_names_every_problem():
    problems = SqlSource.validate(
        {
            "url": "postgresql+psycopg2://reader:hunter2@db/erp",
            "acess_query": "SELECT 1",
            "statement_timeout_seconds": "300",
            "identities_query": "",
        },
        {"pasword"},
    )
    assert problems == [
        "acess_query: is not a setting of a SQL connector",
        "url: must not contain a password; give it as the secret 'password'",
        "access_query: is required (a SELECT whose columns are the file format's)",
        "identities_query: is required (a SELECT whose columns are the file format's)",
        "statement_timeout_seconds: must be a whole number of seconds from 1 to 86400",
        "secrets: 'pasword' is not a secret of a SQL connector",
    ]
    assert SqlSource.validate([], set()) == ["configuration: must be a JSON object with url and access_query"]
    assert SqlSource.validate({"url": "ftp://x/y", "access_query": "SELECT 1"}, set()) == [
        "url: 'ftp' is not supported (use one of mariadb, mssql, mysql, oracle, postgresql, sqlite)"
    ]
    assert SqlSource.validate({"url": "not a url", "access_query": "q"}, set()) == [
        "url: is not a database URL (dialect+driver://user@host:port/database)"
    ]
    good = {"url": "mysql+pymysql://reader@erp-db:3306/erp", "access_query": "SELECT 1"}
    assert SqlSource.validate(good, {"password"}) == []


def test_a_missing_optional_driver_names_the_extra():
    try:
        import pyodbc  # noqa: F401

        pytest.skip("pyodbc is installed here")
    except ImportError:
        pass
    problems = SqlSource.validate({"url": "mssql+pyodbc://reader@erp-db/erp", "access_query": "q"}, set())
    assert problems == ["url: the driver for 'mssql+pyodbc' is not installed (pip install 'soxgov[mssql]')"]


@postgres_only
def test_statement_timeout_is_transient(erp):
    config = erp.config(access_query="SELECT pg_sleep(3)::text AS account_id", statement_timeout_seconds=1)
    with pytest.raises(SourceTimeout, match="ran past the statement timeout") as caught:
        read(config)
    assert caught.value.transient


@postgres_only
def test_a_reset_connection_is_transient(erp):
    """The server ends the session mid-query (a failover, an idle killer): retried, not a fact about the query."""
    config = erp.config(
        access_query="SELECT pg_terminate_backend(pg_backend_pid())::text AS account_id",
    )
    with pytest.raises(SourceTimeout, match="connection was lost") as caught:
        read(config)
    assert caught.value.transient


@postgres_only
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"username": "soxgov_nobody"}, 'role "soxgov_nobody" does not exist'),
        ({"database": "soxgov_no_such_db"}, 'database "soxgov_no_such_db" does not exist'),
        ({"port": 1}, "Connection refused"),
    ],
)
def test_unreachable_or_refused_credentials(erp, change, expected):
    from sqlalchemy.engine import make_url

    url = make_url(erp.url).set(**change).render_as_string(hide_password=False)
    secret = "s3cret-Never-Shown"
    with pytest.raises(SourceUnreachable) as caught:
        read(erp.config(url=url), {"password": secret})
    assert expected in str(caught.value)
    assert not caught.value.transient
    assert secret not in str(caught.value)
    assert caught.value.__suppress_context__  # the driver's exception (and its URL) is not chained on


@postgres_only
def test_memory_stays_flat_on_a_large_result(erp):
    """A server-side cursor: 300k generated rows go through without the result held in memory."""
    import tracemalloc

    config = erp.config(
        access_query="SELECT 'user' || g AS account_id, 'ROLE_' || (g % 50) AS entitlement_id "
        "FROM generate_series(1, 300000) g"
    )
    source = SqlSource(config, {})
    tracemalloc.start()
    count = 0
    try:
        for _ in source.access():
            count += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        source.close()
    assert count == 300_000
    assert peak < 20 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
