"""SqlSource against a real MariaDB server (started by the tests): the failures a pull must tell apart.

A wrong password and a closed port are "unreachable" (connector_pull exits 2), a statement running past its
timeout is transient (retried), a bad query is the database's own message; none of them shows the password.
"""

from __future__ import annotations

import socket

import pytest

from entitlements.connectors.sources import SourceError, SourceTimeout, SourceUnreachable
from entitlements.connectors.sql import SqlSource
from tests.sql import erp

QUERY = erp.documented_queries()["peoplesoft.access_query"]


def read(config: dict, password: str) -> list[dict[str, str]]:
    source = SqlSource(config, {"password": password})
    try:
        return list(source.access())
    finally:
        source.close()


@pytest.fixture
def peoplesoft(mariadb_server):
    erp.load(mariadb_server, "peoplesoft")
    return mariadb_server


def test_the_right_password_reads(peoplesoft):
    rows = read({"url": peoplesoft.url(), "access_query": QUERY}, peoplesoft.password)
    assert len(rows) == len(erp.EXPECTED["peoplesoft.access_query"])


def test_a_wrong_password_is_unreachable_and_never_shown(peoplesoft):
    wrong = "Wr0ng-" + peoplesoft.password[:6]
    with pytest.raises(SourceUnreachable) as refused:
        read({"url": peoplesoft.url(), "access_query": QUERY}, wrong)
    message = str(refused.value)
    assert "Access denied for user 'soxgov_reader'" in message
    assert wrong not in message and peoplesoft.password not in message
    assert message.startswith(
        f"mysql+pymysql://soxgov_reader@127.0.0.1:{peoplesoft.port}/erp: cannot connect"
    )


def test_a_closed_port_is_unreachable(peoplesoft):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"mysql+pymysql://soxgov_reader@127.0.0.1:{port}/erp"
    with pytest.raises(SourceUnreachable, match="cannot connect"):
        read({"url": url, "access_query": QUERY, "connect_timeout_seconds": 2}, peoplesoft.password)


def test_a_statement_past_its_timeout_is_transient(peoplesoft):
    slow = "SELECT CAST(SLEEP(3) AS CHAR) AS account_id"
    with pytest.raises(SourceTimeout, match="ran past the statement timeout") as stopped:
        read(
            {"url": peoplesoft.url(), "access_query": slow, "statement_timeout_seconds": 1},
            peoplesoft.password,
        )
    assert stopped.value.transient


def test_a_bad_query_gives_the_databases_message(peoplesoft):
    bad = QUERY.replace("PSROLEDEFN", "PSROLEDEFN_MISSING")
    with pytest.raises(
        SourceError, match=r"access_query failed: .*Table 'erp.PSROLEDEFN_MISSING' doesn't exist"
    ):
        read({"url": peoplesoft.url(), "access_query": bad}, peoplesoft.password)
