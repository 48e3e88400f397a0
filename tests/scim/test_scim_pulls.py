"""SCIM connectors end to end: connector_add, connector_test and connector_pull against a real SCIM 2.0 server.

The first pull, a change at the provider (a membership removed, a user deactivated, a new user) pulled again,
a pull that would remove most grants held, a wrong token (exit 2, nothing changed, the token nowhere), a
listing the token may not read (exit 1, nothing changed) and throttling mid-pull waited out.
"""

from __future__ import annotations

import json

import pytest

from entitlements.models import Account, Application, ConnectorRun, Grant, Identity
from soxgov.roles import Role
from tests.imports.conftest import command
from tests.scim.servers import forbid, throttle_once
from tests.web_sources import assert_said_nowhere, import_store, snapshot  # noqa: F401 (a fixture)

TOKEN_VARIABLE = "SCIM_TEST_BEARER_TOKEN"
APP = "Billing SaaS"


pytestmark = pytest.mark.usefixtures("import_store")


def access() -> dict[str, tuple]:
    """userName -> (status, identity's employee id, sorted entitlement names) as SOXGov now holds it."""
    held = {}
    for account in Account.objects.filter(application__name=APP).select_related("identity"):
        grants = Grant.objects.filter(account=account).values_list("entitlement__name", flat=True)
        held[account.name] = (
            account.status,
            account.identity.employee_id if account.identity else None,
            tuple(sorted(grants)),
        )
    return held


@pytest.fixture
def billing(db, scim_server, tmp_path, monkeypatch, make_user):
    """The people SOXGov knows, the application, and a SCIM connector reading ``scim_server`` (or a proxy in
    front of it: ``connect(url)``). The removal gate is lowered to 2 grants (and 10%)."""
    Application.objects.create(name=APP, sox_in_scope=True)
    for number in ("E9001", "E9002", "E9003", "E9004", "E9005"):
        Identity.objects.create(employee_id=number, display_name=number)
    make_user("alice", Role.ADMIN)
    monkeypatch.setenv(TOKEN_VARIABLE, scim_server.token)

    def connect(url: str) -> None:
        path = tmp_path / "scim.json"
        path.write_text(json.dumps({"url": url, "page_size": 2, "privileged_groups": ["Tenant Admins"],
                                    "privileged_roles": ["billing-admin"]}))  # fmt: skip
        outcome = command(
            "connector_add", "--name", "billing", "--kind", "scim", "--application", APP, "--config", str(path),
            "--secret", f"bearer_token=env:{TOKEN_VARIABLE}", "--deletion-threshold-count", "2", "--user", "alice",
        )  # fmt: skip
        assert outcome.code == 0, outcome

    connect(scim_server.url)
    scim_server.connect = connect
    return scim_server


FIRST_PULL = {
    "ada.admin": ("enabled", "E9001", ("Billing administrator", "Export the ledger", "Tenant Admins")),
    "bo.clerk": ("enabled", "E9002", ("AP Team", "AP clerk", "Approvers", "Tenant Admins")),
    "cy.viewer": ("enabled", "E9003", ("Readers",)),
    "dee.gone": ("disabled", "E9004", ("AP Team", "AP clerk")),
    "svc-integration": ("enabled", None, ("Readers",)),
}


def test_first_pull_then_a_change_at_the_provider_pulled_again(billing):
    tested = command("connector_test", "billing")
    assert tested.code == 0, tested
    assert "may read /Users (5 resources)" in tested.out

    first = command("connector_pull", "billing")

    assert first.code == 0, first
    assert access() == FIRST_PULL
    assert Account.objects.get(name="bo.clerk").privileged  # Tenant Admins, through Approvers
    assert not Account.objects.get(name="cy.viewer").privileged

    billing.remove_member("Approvers", "bo.clerk")
    billing.deactivate("cy.viewer")
    billing.add_user({"userName": "eve.new", "employeeNumber": "E9005", "active": True,
                      "emails": [{"value": "eve.new@example.com", "primary": True}]})  # fmt: skip
    billing.add_member("AP Team", "eve.new")
    second = command("connector_pull", "billing")

    assert second.code == 0, second
    assert access() == {
        **FIRST_PULL,
        "bo.clerk": ("enabled", "E9002", ("AP Team", "AP clerk")),
        "cy.viewer": ("disabled", "E9003", ("Readers",)),
        "eve.new": ("enabled", "E9005", ("AP Team",)),
    }
    assert "  grants: 1 added, 2 removed" in second.out
    assert not Account.objects.get(name="bo.clerk").privileged


def test_a_pull_that_would_remove_most_grants_is_held_and_changes_nothing(billing):
    assert command("connector_pull", "billing").code == 0
    before = snapshot()
    for group in ("Tenant Admins", "AP Team", "Readers"):
        billing.delete("Groups", group)

    held = command("connector_pull", "billing")

    assert held.code == 3, held
    assert snapshot() == before
    assert access() == FIRST_PULL
    assert ConnectorRun.objects.order_by("-pk").first().status == ConnectorRun.Status.HELD


def test_a_wrong_token_exits_2_changes_nothing_and_is_never_shown(billing, monkeypatch):
    assert command("connector_pull", "billing").code == 0
    before = snapshot()
    wrong = "wrong-scim-token-4f1c9a"
    monkeypatch.setenv(TOKEN_VARIABLE, wrong)
    billing.remove_member("Readers", "cy.viewer")

    refused = command("connector_pull", "billing")

    assert refused.code == 2, refused
    assert "refused the credentials (401" in refused.out + refused.err
    assert snapshot() == before
    run = ConnectorRun.objects.order_by("-pk").first()
    assert run.status == ConnectorRun.Status.FAILED
    assert_said_nowhere(refused, wrong, billing.token)


def test_a_listing_the_token_may_not_read_exits_1_and_changes_nothing(billing, proxy):
    assert command("connector_pull", "billing").code == 0
    served = proxy()
    served.faults.append(forbid("/Groups"))
    billing.connect(served.url)  # evidenced as a configuration change, before the pull
    before = snapshot()

    refused = command("connector_pull", "billing")

    assert refused.code == 1, refused
    assert "denied reading" in refused.out + refused.err and "/v2/Groups (403)" in refused.out + refused.err
    assert snapshot() == before
    assert ConnectorRun.objects.order_by("-pk").first().failure == ConnectorRun.Failure.SOURCE


def test_throttling_mid_pull_is_waited_out(billing, proxy):
    served = proxy()
    served.faults.append(throttle_once("/Users", start_index="3"))
    billing.connect(served.url)

    pulled = command("connector_pull", "billing")

    assert pulled.code == 0, pulled
    assert access() == FIRST_PULL
    throttled = [r for r in served.requests if r.startswith("/v2/Users") and "startIndex=3" in r]
    assert len(throttled) == 2  # answered 429, then asked again after the second Retry-After asked for
