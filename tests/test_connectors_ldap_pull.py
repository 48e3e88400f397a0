"""LDAP connectors end to end: connector_add, connector_pull through the one pipeline, against the real slapd
and Samba AD DC of tests/conftest.py (a changed directory pulled again, the removal gate, a wrong password)."""

from __future__ import annotations

import json
import logging

import ldap
import pytest
from cryptography.fernet import Fernet
from django.test import override_settings

from entitlements.models import Account, Application, ConnectorRun, Entitlement, Grant, Identity
from evidence.models import EvidenceEvent
from tests import ldap_servers
from tests.imports.conftest import command
from tests.imports.conftest import snapshot as tables_snapshot

READER = "cn=reader,ou=system,dc=example,dc=com"
READER_PASSWORD = "reader-secret-2026"
PEOPLE = "ou=people,dc=example,dc=com"
GROUPS = "ou=groups,dc=example,dc=com"
PASSWORD_VARIABLE = "SOXGOV_TEST_LDAP_BIND_PASSWORD"


def snapshot() -> dict:
    """Identities, accounts, entitlements, grants, their history, and evidence other than the runs' own (a pull
    that changes nothing still records that it was queued, failed or was held)."""
    state = tables_snapshot()
    state["evidence"] = EvidenceEvent.objects.exclude(subject_type="entitlements.connectorrun").count()
    return state


@pytest.fixture(autouse=True)
def store(tmp_path, monkeypatch):
    monkeypatch.setenv(PASSWORD_VARIABLE, READER_PASSWORD)
    with override_settings(
        SOXGOV_IMPORT_DIR=tmp_path / "store", SOXGOV_SECRET_KEYS=[Fernet.generate_key().decode()]
    ):
        yield


@pytest.fixture
def directory_app(db):
    return Application.objects.create(name="Directory", sox_in_scope=True)


def add(tmp_path, url, base_dn, *, name="corp-ldap", flavour="openldap", **extra):
    config = tmp_path / f"{name}.json"
    config.write_text(
        json.dumps({"url": url, "flavour": flavour, "base_dn": base_dn, "timeout": 20, **extra})
    )
    outcome = command(
        "connector_add",
        "--name",
        name,
        "--kind",
        "ldap",
        "--application",
        "Directory",
        "--config",
        str(config),
        "--secret",
        f"bind_password=env:{PASSWORD_VARIABLE}",
    )
    assert outcome.code == 0, outcome
    return outcome


def add_openldap(tmp_path, slapd):
    return add(
        tmp_path,
        slapd.url,
        slapd.base_dn,
        bind_dn=READER,
        identities=True,
        service_filter="(employeeType=service)",
        privileged_groups=["ledger-admins"],
    )


def grants() -> set[tuple[str, str]]:
    return set(
        Grant.objects.filter(account__application__name="Directory").values_list(
            "account__name", "entitlement__name"
        )
    )


def test_pull_a_directory_then_its_changes_and_hold_a_pull_that_removes_most(slapd, directory_app, tmp_path):
    add_openldap(tmp_path, slapd)
    tested = command("connector_test", "corp-ldap")
    assert tested.code == 0, tested
    assert "28 accounts, 9 entitlements, 36 grants, 26 identities" in tested.out
    assert not Account.objects.exists()  # a test reads, and changes nothing
    first = command("connector_pull", "corp-ldap")
    assert first.code == 0, first
    assert Account.objects.filter(application=directory_app).count() == 28
    assert len(grants()) == 36 and ("bokoro", "reporting") in grants()  # reporting through two nested groups
    # The identities the same read produced came first, and the accounts found them.
    ben = Identity.objects.get(employee_id="E1002")
    assert ben.manager.employee_id == "E1001"
    assert Account.objects.get(application=directory_app, name="bokoro").identity == ben
    assert Account.objects.get(application=directory_app, name="adm-alee").identity.employee_id == "E1003"
    service = Identity.objects.get(employee_id="svc-gl")
    assert (service.kind, service.owner.employee_id) == ("service", "E1001")
    assert Account.objects.get(application=directory_app, name="gone").status == "disabled"
    assert Account.objects.get(application=directory_app, name="svc-orphan").identity is None
    assert Entitlement.objects.get(application=directory_app, name="ledger-admins").privileged
    run = ConnectorRun.objects.get(connector__name="corp-ldap", kind="access")
    assert run.status == "applied" and run.children.get().status == "applied"

    before = grants()
    with slapd.changed(*ldap_servers.OPENLDAP_CHANGE):
        second = command("connector_pull", "corp-ldap")
    assert second.code == 0, second
    assert before - grants() == ldap_servers.OPENLDAP_CHANGE_REMOVES
    assert grants() - before == ldap_servers.OPENLDAP_CHANGE_ADDS
    assert Account.objects.get(application=directory_app, name="dpatel").status == "disabled"
    assert Account.objects.get(application=directory_app, name="enew").identity.manager.employee_id == "E1004"
    removed = EvidenceEvent.objects.filter(action="access.grant.removed").count()
    assert removed == 5

    # The directory put back, pulled: then most memberships vanish at once (a wrong filter, a broken sync):
    # held for approval, nothing applied.
    assert command("connector_pull", "corp-ldap").code == 0
    everyone = [f"uid=staff{n:02d},{PEOPLE}".encode() for n in range(2, 21)]  # groupOfNames keeps one member
    state = snapshot()
    with slapd.changed(
        (f"cn=everyone,{GROUPS}", "modify", [(ldap.MOD_DELETE, "member", everyone)]),
        (f"cn=gl-posters,{GROUPS}", "modify", [(ldap.MOD_DELETE, "member", [f"uid=alee,{PEOPLE}".encode()])]),
        (f"cn=cycle-a,{GROUPS}", "modify", [(ldap.MOD_DELETE, "member", [f"uid=dpatel,{PEOPLE}".encode()])]),
    ):
        held = command("connector_pull", "corp-ldap")
    assert held.code == 3, held
    assert "held for approval" in held.err
    assert snapshot() == state


def test_a_wrong_password_exits_2_changes_nothing_and_is_never_shown(
    slapd, directory_app, tmp_path, monkeypatch, caplog
):
    add_openldap(tmp_path, slapd)
    assert command("connector_pull", "corp-ldap").code == 0
    wrong = "Wr0ng-but-close-2026!"
    monkeypatch.setenv(PASSWORD_VARIABLE, wrong)
    caplog.set_level(logging.DEBUG)
    state = snapshot()
    outcomes = [command("connector_pull", "corp-ldap"), command("connector_test", "corp-ldap")]
    assert [o.code for o in outcomes] == [2, 2], outcomes
    assert f"authentication failed for {READER}" in outcomes[0].err
    assert snapshot() == state
    run = ConnectorRun.objects.filter(connector__name="corp-ldap").order_by("-pk").first()
    assert (run.status, run.failure) == ("failed", "unreachable")
    for secret in (wrong, READER_PASSWORD):
        for outcome in outcomes:
            assert secret not in outcome.out + outcome.err
        assert not EvidenceEvent.objects.filter(payload__contains=secret).exists()
        for each in ConnectorRun.objects.all():
            assert secret not in each.error + json.dumps(each.problems)
        assert secret not in caplog.text


def test_an_active_directory_pull(samba, directory_app, tmp_path, monkeypatch):
    monkeypatch.setenv(PASSWORD_VARIABLE, ldap_servers.AD_ADMIN_PASSWORD)
    add(
        tmp_path,
        samba.url,
        samba.base_dn,
        name="corp-ad",
        flavour="active_directory",
        bind_dn="Administrator@soxtest.local",
        identities=True,
        service_filter="(employeeType=service)",
    )
    outcome = command("connector_pull", "corp-ad")
    assert outcome.code == 0, outcome
    admins = Entitlement.objects.get(application=directory_app, name="Domain Admins")
    assert admins.privileged
    assert ("adm-alee", "Domain Admins") in grants() and ("bokoro", "Finance All") in grants()
    assert Account.objects.get(application=directory_app, name="fgone").status == "disabled"
    computer = Identity.objects.get(employee_id="WS01$")
    assert (computer.kind, computer.owner.employee_id) == ("system", "E1001")
    assert Account.objects.get(application=directory_app, name="bokoro").last_used_at is not None
