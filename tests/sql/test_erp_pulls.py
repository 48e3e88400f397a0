"""Pulling the documented ERP queries through the connector framework, from PostgreSQL and from MariaDB.

connector_add with the query from docs/connectors-erp.md, connector_pull: the first pull, a change in the
ERP (a user locked, a role removed, a new hire) pulled again, a pull that would remove most grants held, and a
wrong password (MariaDB: its server checks passwords, where this machine's PostgreSQL trusts loopback)
giving exit 2 with nothing changed and the password nowhere.
"""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from entitlements.models import Account, Application, ConnectorRun, Grant, Identity
from evidence.models import EvidenceEvent
from soxgov.roles import Role
from tests.imports.conftest import command
from tests.imports.conftest import snapshot as tables_snapshot
from tests.sql import erp

QUERIES = erp.documented_queries()
PASSWORD_VARIABLE = "ERP_TEST_READER_PASSWORD"


def snapshot() -> dict:
    """The access tables and their history, and evidence other than the runs' own (a pull that changes nothing
    still records that it was queued and failed or was held)."""
    state = tables_snapshot()
    state["evidence"] = EvidenceEvent.objects.exclude(subject_type="entitlements.connectorrun").count()
    return state


@pytest.fixture(autouse=True)
def _store(tmp_path):
    with override_settings(
        SOXGOV_IMPORT_DIR=tmp_path / "store",
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    ):
        yield


def add_connector(tmp_path, monkeypatch, server, name, application, *args, **queries) -> None:
    """connector_add with the password as a reference to an environment variable (PostgreSQL here has none)."""
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"url": server.url(), **queries}))
    secret = []
    if server.password:
        monkeypatch.setenv(PASSWORD_VARIABLE, server.password)
        secret = ["--secret", f"password=env:{PASSWORD_VARIABLE}"]
    outcome = command(
        "connector_add", "--name", name, "--kind", "sql", "--application", application,
        "--config", str(path), *secret, *args,
    )  # fmt: skip
    assert outcome.code == 0, outcome


def access(application: str) -> dict[str, tuple]:
    """account id -> (status, identity's employee id, sorted entitlement ids) as SOXGov now holds it."""
    held = {}
    for account in Account.objects.filter(application__name=application).select_related("identity"):
        grants = Grant.objects.filter(account=account).values_list("entitlement__entitlement_id", flat=True)
        held[account.account_id] = (
            account.status,
            account.identity.employee_id if account.identity else None,
            tuple(sorted(grants)),
        )
    return held


@pytest.fixture
def peoplesoft(db, erp_server, tmp_path, monkeypatch, make_user):
    """PeopleSoft's tables on ``erp_server``, the people SOXGov knows, and a connector with the documented query.

    The removal gate is lowered to 2 grants (and 10%), so a handful of rows can trip it; lowering a threshold
    applies at once (raising one needs a second admin)."""
    erp.load(erp_server, "peoplesoft")
    Application.objects.create(name="PeopleSoft HCM", sox_in_scope=True)
    for number in ("E501", "E502", "E503", "E506"):
        Identity.objects.create(employee_id=number, display_name=number)
    make_user("alice", Role.ADMIN)
    add_connector(tmp_path, monkeypatch, erp_server, "psft", "PeopleSoft HCM",
                  "--deletion-threshold-count", "2", "--user", "alice", access_query=QUERIES["peoplesoft.access_query"])  # fmt: skip
    return erp_server


FIRST_PULL = {
    "JSMITH": ("enabled", "E501", ("AP Clerk", "Employee", "Vendor Maintenance")),
    "PSADMIN": ("enabled", None, ("PeopleSoft Administrator",)),
    "AJONES": ("disabled", "E502", ("AP Clerk",)),
    "NNEWMAN": ("enabled", "E503", ()),
}


def test_first_pull_then_a_change_in_the_erp_pulled_again(peoplesoft):
    first = command("connector_pull", "psft")

    assert first.code == 0, first
    assert access("PeopleSoft HCM") == FIRST_PULL
    admin = Account.objects.get(account_id="PSADMIN")
    assert admin.privileged and admin.identity is None  # an orphan: no employee id in PeopleSoft
    assert Account.objects.get(account_id="JSMITH").last_used_at.isoformat() == "2026-11-20T08:15:00+00:00"

    erp.execute(peoplesoft, "UPDATE PSOPRDEFN SET ACCTLOCK = 1 WHERE OPRID = %s", ("JSMITH",))
    erp.execute(
        peoplesoft, "DELETE FROM PSROLEUSER WHERE ROLEUSER = %s AND ROLENAME = %s", ("JSMITH", "AP Clerk")
    )
    erp.execute(peoplesoft, "UPDATE PSROLEDEFN SET ROLESTATUS = 'I' WHERE ROLENAME = %s", ("Employee",))
    erp.execute(peoplesoft, "INSERT INTO PSOPRDEFN VALUES (%s, %s, %s, %s, %s, %s)",
                ("BNEW", "Ben New", "E506", "ben.new@example.com", 0, None))  # fmt: skip
    erp.execute(peoplesoft, "INSERT INTO PSROLEUSER VALUES (%s, %s, %s)", ("BNEW", "AP Clerk", "N"))
    second = command("connector_pull", "psft")

    assert second.code == 0, second
    assert access("PeopleSoft HCM") == {
        **FIRST_PULL,
        "JSMITH": ("disabled", "E501", ("Vendor Maintenance",)),
        "BNEW": ("enabled", "E506", ("AP Clerk",)),
    }
    assert "  grants: 1 added, 2 removed" in second.out


def test_a_pull_that_would_remove_most_grants_is_held_and_changes_nothing(peoplesoft):
    assert command("connector_pull", "psft").code == 0
    before = snapshot()
    erp.execute(peoplesoft, "DELETE FROM PSROLEUSER WHERE ROLEUSER <> %s", ("PSADMIN",))

    held = command("connector_pull", "psft")

    assert held.code == 3, held
    assert snapshot() == before
    assert access("PeopleSoft HCM") == FIRST_PULL
    assert ConnectorRun.objects.order_by("-pk").first().status == ConnectorRun.Status.HELD


@pytest.mark.parametrize("erp_server", ["mariadb"], indirect=True)
def test_a_wrong_password_exits_2_changes_nothing_and_is_never_shown(peoplesoft, monkeypatch):
    assert command("connector_pull", "psft").code == 0
    before = snapshot()
    wrong = "not-the-" + peoplesoft.password
    monkeypatch.setenv(PASSWORD_VARIABLE, wrong)
    erp.execute(peoplesoft, "DELETE FROM PSROLEUSER WHERE ROLEUSER = %s", ("AJONES",))

    refused = command("connector_pull", "psft")

    assert refused.code == 2, refused
    assert "Access denied for user 'soxgov_reader'" in refused.out + refused.err
    assert snapshot() == before
    run = ConnectorRun.objects.order_by("-pk").first()
    assert run.status == ConnectorRun.Status.FAILED
    said = [refused.out, refused.err, run.error or ""]
    said += [json.dumps(e.payload) for e in EvidenceEvent.objects.all()]
    for secret in (wrong, peoplesoft.password):
        assert not any(secret in text for text in said)


def test_ebs_pull_brings_the_people_first_then_their_responsibilities(db, erp_server, tmp_path, monkeypatch):
    """The EBS connector also feeds identities (HR's people): they apply before the access that links to them."""
    erp.load(erp_server, "ebs")
    Application.objects.create(name="Oracle EBS", sox_in_scope=True)
    add_connector(tmp_path, monkeypatch, erp_server, "ebs", "Oracle EBS",
                  access_query=QUERIES["ebs.access_query"], identities_query=QUERIES["ebs.identities_query"])  # fmt: skip

    pulled = command("connector_pull", "ebs")

    assert pulled.code == 0, pulled
    people = {
        i.employee_id: (i.status, i.manager.employee_id if i.manager else None)
        for i in Identity.objects.all()
    }
    assert people == {
        "E501": ("active", "E504"),
        "E502": ("terminated", None),
        "E503": ("active", "E504"),
        "E504": ("active", None),
    }
    assert access("Oracle EBS") == {
        "SYSADMIN": ("enabled", None, ("SYSTEM_ADMINISTRATOR",)),
        "JSMITH": ("enabled", "E501", ("GL_SUPERUSER",)),
        "AJONES": ("disabled", "E502", ("AP_MANAGER",)),
        "NNEWMAN": ("enabled", "E503", ()),
        "NOTYET": ("disabled", None, ()),
    }
