"""Connectors against an insider: an admin cannot use a connector to read SOXGov's own secrets or database, to get
past a stricter safety gate, or to approve the pull their own configuration change made hold."""

import pytest
from django.core.exceptions import PermissionDenied
from django.db import connections

from entitlements import services
from entitlements.connector_services import connector_save
from entitlements.connectors import secrets as secret_store
from entitlements.connectors.sources import SourceUnreachable
from entitlements.connectors.sql import SqlSource
from entitlements.models import Application, Connector, ConnectorRun, ConnectorSecret
from entitlements.thresholds import thresholds_change
from evidence.services import Actor
from soxgov.roles import Role
from tests.imports.conftest import command
from tests.test_connectors_pull import add, erp, snapshot, store  # noqa: F401 (fixtures)


@pytest.mark.parametrize(
    "variable", ["SOXGOV_SECRET_KEYS", "SOXGOV_SIGNING_KEY", "DATABASE_URL", "pgpassword"]
)
def test_a_secret_cannot_be_soxgovs_own_configuration(erp, tmp_path, variable):  # noqa: F811
    outcome = add(tmp_path, erp, "--secret", f"password=env:{variable}")
    assert outcome.code == 1, outcome
    assert f"env:{variable} is SOXGov's own configuration, not a connector's secret" in outcome.err
    assert not Connector.objects.exists()


def test_secret_files_are_read_only_under_the_secret_roots(db, settings, tmp_path):
    roots = tmp_path / "secrets"
    roots.mkdir()
    (roots / "erp").write_text("s3cret\n")
    settings.SOXGOV_SECRET_FILE_ROOTS = [roots]
    assert secret_store.reference_problem(f"file:{roots / 'erp'}") is None
    assert (
        secret_store.reveal(ConnectorSecret(name="password", reference=f"file:{roots / 'erp'}")) == "s3cret"
    )

    for outside in ("/proc/self/environ", f"{roots}/../elsewhere", str(roots)):
        problem = secret_store.reference_problem(f"file:{outside}")
        assert problem and "outside the directories secrets may be read from" in problem
    # Stored while the roots were wider: refused when used, naming why, never reading the file.
    settings.SOXGOV_SECRET_FILE_ROOTS = [tmp_path / "other"]
    with pytest.raises(SourceUnreachable, match="outside the directories secrets may be read from"):
        secret_store.reveal(ConnectorSecret(name="password", reference=f"file:{roots / 'erp'}"))


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("postgresql+psycopg2://reader@erp-db/erp?password=hunter2", "password"),
        ("postgresql+psycopg2://reader@erp-db/erp?sslpassword=hunter2", "sslpassword"),
        ("mysql+pymysql://reader@erp-db/erp?passwd=hunter2", "passwd"),
        ("mssql+pyodbc://reader@erp-db/erp?odbc_connect=DRIVER%3Dx%3BPWD%3Dhunter2", "odbc_connect"),
    ],
)
def test_a_password_in_the_urls_query_is_refused_without_repeating_it(url, key):
    problems = SqlSource.validate({"url": url, "access_query": "SELECT 1"}, {"password"})
    assert (
        f"url: the query parameter {key!r} carries a credential; give it as the secret 'password'" in problems
    )
    assert not any("hunter2" in problem for problem in problems)


def test_a_sqlite_source_lies_under_the_connector_roots_and_is_never_soxgovs_own_database(
    db, settings, tmp_path
):
    settings.SOXGOV_CONNECTOR_FILE_ROOTS = [tmp_path]
    (tmp_path / "erp.sqlite3").touch()
    assert (
        SqlSource.validate({"url": f"sqlite:///{tmp_path}/erp.sqlite3", "access_query": "SELECT 1"}, set())
        == []
    )
    problems = SqlSource.validate({"url": "sqlite:////etc/erp.sqlite3", "access_query": "SELECT 1"}, set())
    assert problems and "is outside the allowed directories" in problems[0]

    own = connections["default"].settings_dict
    if not own["ENGINE"].endswith("sqlite3"):
        pytest.skip("SOXGov's own database is not a SQLite file in this run")
    from pathlib import Path

    settings.SOXGOV_CONNECTOR_FILE_ROOTS = [Path(own["NAME"]).resolve().parent]
    problems = SqlSource.validate({"url": f"sqlite:///{own['NAME']}", "access_query": "SELECT 1"}, set())
    assert "url: is SOXGov's own database, not a source" in problems


def test_a_second_permissive_connector_cannot_get_past_a_stricter_one(erp, tmp_path, make_user):  # noqa: F811
    alice = make_user("alice", Role.ADMIN)
    assert add(tmp_path, erp).code == 0
    assert command("connector_pull", "ledger-db").code == 0
    strict = Connector.objects.get(name="ledger-db")
    # Lowering applies at once: the application's gate is now 1% and 1 grant.
    assert thresholds_change(connector_id=strict.pk, user=alice, percent=1, count=1).status == "applied"

    # Another connector for the same application, at the default thresholds (10% and 20 grants).
    assert add(tmp_path, erp, name="ledger-db-2").code == 0
    erp.revoke("user01", "GL_POST")
    erp.revoke("user02", "GL_POST")
    erp.revoke("user03", "GL_POST")
    before = snapshot()
    held = command("connector_pull", "ledger-db-2")
    assert held.code == 3, held  # 3 of 35 grants: past 1% and 1, though under the new connector's own gate
    assert "held for approval" in held.err
    assert snapshot() == before


def test_the_admin_who_changed_a_connector_cannot_approve_the_pull_it_made_hold(erp, tmp_path, make_user):  # noqa: F811
    alice = make_user("alice", Role.ADMIN)
    bob = make_user("bob", Role.ADMIN)
    assert add(tmp_path, erp).code == 0
    assert command("connector_pull", "ledger-db").code == 0
    connector = Connector.objects.get(name="ledger-db")

    # Alice narrows the query to one user: the scheduled pull (no starter) would remove most grants and holds.
    narrowed = connector.configuration["access_query"].replace(
        "ORDER BY", "WHERE u.login = 'user01' ORDER BY"
    )
    connector_save(
        connector=connector,
        values={"configuration": {**connector.configuration, "access_query": narrowed}},
        actor=Actor.for_user(alice),
        user=alice,
        via="test",
    )
    run = services.connector_pull(
        connector=Connector.objects.get(pk=connector.pk), actor=Actor.system("beat"), send=False
    )
    run = services.run_execute(run_id=run.pk)
    assert run.status == ConnectorRun.Status.HELD and run.started_by is None

    with pytest.raises(PermissionDenied, match="last changed the connector's configuration"):
        services.run_approve(run_id=run.pk, user=alice, send=False)
    assert ConnectorRun.objects.get(pk=run.pk).status == ConnectorRun.Status.HELD
    approved = services.run_approve(run_id=run.pk, user=bob, send=False)
    assert approved.status == ConnectorRun.Status.APPROVED
    assert Application.objects.filter(name="Ledger").exists()
