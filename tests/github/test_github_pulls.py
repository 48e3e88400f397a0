"""GitHub connectors end to end: connector_add, connector_test and connector_pull against the stand-in API.

The first pull, a change in the organisation (a team membership removed, an outside collaborator removed, a
new member, a new app installation) pulled again, a pull that would remove most grants held, a wrong token
(exit 2, nothing changed, the token nowhere), a listing the token may not read (exit 1) and throttling
mid-pull waited out.
"""

from __future__ import annotations

import pytest

from entitlements.models import Account, ConnectorRun, Grant
from tests.github.conftest import APP, TOKEN_VARIABLE
from tests.github.standin import forbid, throttle_once
from tests.imports.conftest import command
from tests.web_sources import assert_said_nowhere, import_store, snapshot  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("import_store")


def access() -> dict[str, tuple]:
    """login -> (identity's employee id, privileged, sorted entitlement ids) as SOXGov now holds it."""
    held = {}
    for account in Account.objects.filter(application__name=APP).select_related("identity"):
        grants = Grant.objects.filter(account=account).values_list("entitlement__entitlement_id", flat=True)
        held[account.name] = (
            account.identity.employee_id if account.identity else None,
            account.privileged,
            tuple(sorted(grants)),
        )
    return held


FIRST_PULL = {
    "octo-owner": ("E701", True, ("org:owner", "repo:handbook:admin", "repo:ledger-service:admin",
                                  "repo:payments-api:admin", "team:engineering:maintainer")),
    "dev-dana": ("E702", True, ("org:member", "repo:ledger-service:maintain", "repo:payments-api:admin",
                                "team:engineering", "team:payments:maintainer")),
    "dev-eli": ("E704", False, ("org:member", "repo:ledger-service:write", "team:engineering", "team:payments")),
    "dev-fay": ("E703", False, ("org:member", "repo:ledger-service:write", "team:engineering", "team:ledger-core",
                                "team:payments")),
    "contractor-gus": (None, False, ("org:outside-collaborator", "repo:payments-api:write")),
    "release-bot[bot]": ("SVC-REL", False, ("repo:ledger-service:write",)),
    "deploy-conductor": ("SVC-DEPLOY", True, ("app-permission:contents:write", "app-permission:deployments:write",
                                              "app-permission:workflows:write")),
    "lint-helper": (None, False, ("app-permission:checks:write", "app:all-repositories")),
}  # fmt: skip


def test_first_pull_then_a_change_in_the_organisation_pulled_again(org):
    tested = command("connector_test", "gh")
    assert tested.code == 0, tested
    assert "may read app installations (organisation Administration: read)" in tested.out

    first = command("connector_pull", "gh")

    assert first.code == 0, first
    assert access() == FIRST_PULL

    org.org["teams"]["payments"]["members"].remove("dev-eli")
    org.org["outside_collaborators"].remove("contractor-gus")
    del org.org["repositories"]["payments-api"]["collaborators"]["contractor-gus"]
    org.org["users"]["dev-hal"] = {**org.org["users"]["dev-eli"], "login": "dev-hal", "id": 1007}
    org.org["members"].append("dev-hal")
    org.org["teams"]["ledger-core"]["members"].append("dev-hal")
    org.org["installations"].append({**org.org["installations"][1], "id": 3103, "app_id": 88003,
        "app_slug": "audit-exporter", "repository_selection": "selected",
        "permissions": {"members": "write", "administration": "read"}})  # fmt: skip
    second = command("connector_pull", "gh")

    assert second.code == 0, second
    assert access() == {
        **{login: held for login, held in FIRST_PULL.items() if login != "contractor-gus"},
        "dev-eli": ("E704", False, ("org:member", "repo:ledger-service:write")),
        "dev-hal": (None, False, ("org:member", "team:engineering", "team:ledger-core", "team:payments")),
        "audit-exporter": (None, True, ("app-permission:members:write",)),
    }
    assert "  grants: 5 added, 4 removed" in second.out


def test_a_pull_that_would_remove_most_grants_is_held_and_changes_nothing(org):
    assert command("connector_pull", "gh").code == 0
    before = snapshot()
    org.org["teams"] = {}
    for repo in org.org["repositories"].values():
        repo["collaborators"] = {}

    held = command("connector_pull", "gh")

    assert held.code == 3, held
    assert snapshot() == before
    assert access() == FIRST_PULL
    assert ConnectorRun.objects.order_by("-pk").first().status == ConnectorRun.Status.HELD


def test_a_wrong_token_exits_2_changes_nothing_and_is_never_shown(org, monkeypatch):
    assert command("connector_pull", "gh").code == 0
    before = snapshot()
    wrong = "wrong-gh-token-7d2e"
    monkeypatch.setenv(TOKEN_VARIABLE, wrong)
    org.org["members"].remove("dev-fay")

    refused = command("connector_pull", "gh")

    assert refused.code == 2, refused
    assert "GitHub refused the credentials (401" in refused.out + refused.err
    assert snapshot() == before
    assert ConnectorRun.objects.order_by("-pk").first().status == ConnectorRun.Status.FAILED
    assert_said_nowhere(refused, wrong, org.token)


def test_a_listing_the_token_may_not_read_exits_1_and_changes_nothing(org):
    assert command("connector_pull", "gh").code == 0
    before = snapshot()
    org.faults.append(forbid("/orgs/example-org/installations"))

    refused = command("connector_pull", "gh")

    assert refused.code == 1, refused
    assert "Resource not accessible by personal access token" in refused.out + refused.err
    assert snapshot() == before


def test_throttling_mid_pull_is_waited_out(org):
    org.faults.append(throttle_once("/orgs/example-org/outside_collaborators"))
    org.faults.append(throttle_once("/repos/example-org/ledger-service/collaborators", status=403))

    pulled = command("connector_pull", "gh")

    assert pulled.code == 0, pulled
    assert access() == FIRST_PULL
