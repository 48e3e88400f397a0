"""The Okta source (entitlements/connectors/okta.py) against an Okta API stand-in on loopback, paged by
``Link: rel="next"`` at 2 a page so paging is exercised everywhere."""

from __future__ import annotations

from entitlements.connectors.okta import OktaSource
from entitlements.connectors.sources import source_class
from entitlements.models import Account, ConnectorRun, Grant, Identity
from evidence.models import EvidenceEvent
from tests.cloud.identity.helpers import connector_add, snapshot
from tests.cloud.identity.stand_in import OKTA_TOKEN
from tests.imports.conftest import command

U = "00u000fake000000{}".format


def add(tmp_path, okta, token=OKTA_TOKEN, **extra):
    return connector_add(
        tmp_path,
        name="okta",
        kind="okta",
        application="Okta",
        config=okta.okta_config(**extra),
        secret=("api_token", token),
    )


def grants(account_id: str) -> set[str]:
    return set(
        Grant.objects.filter(account__application__name="Okta", account__account_id=account_id).values_list(
            "entitlement__entitlement_id", flat=True
        )
    )


def test_the_kind_is_registered_and_validated():
    assert source_class("okta") is OktaSource
    problems = OktaSource.validate({"org_url": "http://example.okta.com/api", "apps": "yes", "x": 1}, set())
    for expected in (
        "x: is not a setting",
        "org_url: is required",
        "apps: must be true or false",
        "secrets: 'api_token' is required",
    ):
        assert any(p.startswith(expected) for p in problems), (expected, problems)
    assert OktaSource.validate({"org_url": "https://example.okta.com"}, {"api_token"}) == []


def test_first_pull_change_and_the_removal_gate(db, okta, tmp_path):
    assert add(tmp_path, okta, identities=True).code == 0
    first = command("connector_pull", "okta")
    assert first.code == 0, first
    accounts = {a.account_id: a for a in Account.objects.filter(application__name="Okta")}
    assert len(accounts) == 6  # the deprovisioned user too
    assert Grant.objects.filter(account__application__name="Okta").count() == 16
    assert grants(U(1)) == {
        "group:00g000fake0000001",
        "group:00g000fake0000002",
        "app:0oa000fake0000001",
        "role:SUPER_ADMIN",
    }
    assert "role:HELP_DESK_ADMIN" in grants(U(4))
    assert {a for a, acc in accounts.items() if acc.privileged} == {U(1), U(4)}
    assert accounts[U(4)].status == accounts[U(5)].status == "disabled"  # suspended, deprovisioned
    assert accounts[U(3)].status == "enabled"  # locked out is still an account that works
    assert accounts[U(2)].last_used_at.isoformat().startswith("2026-12-01T08:00")
    assert Identity.objects.get(employee_id="E1006").status == "terminated"
    assert Identity.objects.get(employee_id="E1003").manager.employee_id == "E1001"  # by login
    assert Identity.objects.get(employee_id="E1002").manager.employee_id == "E1001"  # by employee number
    assert accounts[U(6)].identity is None
    assert any("after=" in r for r in okta.requests)  # paged

    okta.okta.groups["00g000fake0000002"]["members"].remove(U(2))
    okta.okta.users[U(3)]["status"] = "SUSPENDED"
    assert command("connector_pull", "okta").code == 0
    assert "group:00g000fake0000002" not in grants(U(2))
    assert Account.objects.get(application__name="Okta", account_id=U(3)).status == "disabled"

    for group in okta.okta.groups.values():
        group["members"] = group["members"][:1]
    okta.okta.apps["0oa000fake0000001"]["users"] = []
    before = snapshot()
    held = command("connector_pull", "okta")
    assert held.code == 3, held
    assert snapshot() == before


def test_rate_limited_mid_pull_waits_for_the_reset(db, okta, tmp_path):
    assert add(tmp_path, okta).code == 0
    okta.throttle("/api/v1/groups/", 1)
    outcome = command("connector_pull", "okta")
    assert outcome.code == 0, outcome
    assert len([r for r in okta.requests if r.startswith("429 ")]) == 1
    assert Grant.objects.filter(account__application__name="Okta").count() == 16


def test_a_missing_permission_is_named_and_changes_nothing(db, okta, tmp_path):
    assert add(tmp_path, okta).code == 0
    okta.okta.denied.add("/api/v1/iam/")
    tested = command("connector_test", "okta")
    assert "missing: the token may not read admin role assignments" in tested.out + tested.err
    before = snapshot()
    outcome = command("connector_pull", "okta")
    assert outcome.code == 1, outcome
    assert "Okta denied reading" in outcome.err and "You do not have permission" in outcome.err
    assert snapshot() == before
    # Left out on purpose, the part is not read and the pull goes on.
    okta.okta.denied.clear()


def test_a_wrong_token_exits_2_and_stays_secret(db, okta, tmp_path):
    wrong = "00WrongTokenValueForTheStandIn000000000000"
    assert add(tmp_path, okta, token=wrong).code == 0
    before = snapshot()
    outcome = command("connector_pull", "okta")
    assert outcome.code == 2, outcome
    assert "Okta refused the credentials" in outcome.err
    assert snapshot() == before
    assert wrong not in outcome.out + outcome.err
    assert not any(wrong in e.payload for e in EvidenceEvent.objects.all())
    assert ConnectorRun.objects.get(connector__name="okta").failure == "unreachable"


def test_admin_roles_can_be_left_out(db, okta, tmp_path):
    okta.okta.denied.add("/api/v1/iam/")
    assert add(tmp_path, okta, admin_roles=False).code == 0
    assert command("connector_pull", "okta").code == 0
    assert Grant.objects.filter(account__application__name="Okta").count() == 14
