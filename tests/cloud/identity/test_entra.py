"""The Entra ID source (entitlements/connectors/entra.py) against a Microsoft Graph stand-in on loopback: msal signs
in at the stand-in's token endpoint, Graph answers in pages of 3 so paging is exercised everywhere."""

from __future__ import annotations

import json
import shutil

import pytest

from entitlements.connectors.entra import EntraSource
from entitlements.connectors.sources import source_class
from entitlements.models import Account, ConnectorRun, Grant, Identity
from evidence.models import EvidenceEvent
from tests.cloud.identity.helpers import connector_add, snapshot
from tests.cloud.identity.stand_in import SECRET
from tests.imports.conftest import command

U = "a0000000-0000-4000-8000-00000000000{}".format
G = "b0000000-0000-4000-8000-00000000000{}".format
SP = "c0000000-0000-4000-8000-00000000000{}".format
GLOBAL_ADMIN = "role:f0000000-0000-4000-8000-000000000001"


def add(tmp_path, graph, secret=SECRET, **extra):
    config = graph.entra_config(identities=True, **extra)
    return connector_add(
        tmp_path,
        name="entra",
        kind="entra",
        application="Entra ID",
        config=config,
        secret=("client_secret", secret),
    )


def grants(account_id: str) -> set[str]:
    return set(
        Grant.objects.filter(
            account__application__name="Entra ID", account__account_id=account_id
        ).values_list("entitlement__entitlement_id", flat=True)
    )


def pulled(graph, since: int) -> list[str]:
    return graph.requests[since:]


def test_the_kind_is_registered():
    assert source_class("entra") is EntraSource


def test_validate_names_every_problem(tmp_path):
    problems = EntraSource.validate(
        {
            "tenant_id": "",
            "client_id": "not-a-guid",
            "graph_url": "http://graph.example.com/v1.0",
            "full_pull_days": 400,
            "identities": "yes",
            "privileged_groups": "Admins",
            "tennant": "x",
            "ca_file": str(tmp_path / "missing.pem"),
        },
        {"client_secrt"},
    )
    for expected in (
        "tennant: is not a setting",
        "tenant_id: is required",
        "client_id: is required",
        "graph_url: must be an https:// address",
        "full_pull_days: must be a whole number",
        "identities: must be true or false",
        "privileged_groups: must be a list",
        "ca_file: must be the path of a readable CA bundle",
        "secrets: 'client_secret' is required",
        "secrets: 'client_secrt' is not a secret",
    ):
        assert any(p.startswith(expected) for p in problems), (expected, problems)
    assert (
        EntraSource.validate(
            {"tenant_id": "contoso.onmicrosoft.com", "client_id": "0000cccc-1111-4222-8333-000000000002"},
            {"client_secret"},
        )
        == []
    )


def test_first_pull_change_by_delta_and_the_removal_gate(db, graph, tmp_path):
    assert add(tmp_path, graph).code == 0
    first = command("connector_pull", "entra")
    assert first.code == 0, first
    # 7 users, the service principal holding a role and a group, and the tenant's own two without grants; the
    # third-party app with nothing granted is not an account.
    assert Account.objects.filter(application__name="Entra ID").count() == 10
    assert Grant.objects.filter(account__application__name="Entra ID").count() == 22
    assert not Account.objects.filter(account_id=SP(4)).exists()
    # Nested groups: Eve is in Finance Users through AP Team; the two Ledger groups contain each other.
    assert grants(U(6)) == {G(1), G(3), f"app:{SP(3)}/00000000-0000-0000-0000-000000000000"}
    assert grants(U(4)) == {G(4), G(5), GLOBAL_ADMIN}
    assert grants(U(5)) == {G(4), G(5)}
    # A directory role given to a group reaches its members; PIM eligibility is an entitlement too.
    assert grants(U(7)) == {G(2), "role:f0000000-0000-4000-8000-000000000002"}
    assert "eligible:f0000000-0000-4000-8000-000000000001" in grants(U(3))
    accounts = {a.account_id: a for a in Account.objects.filter(application__name="Entra ID")}
    assert {a for a, acc in accounts.items() if acc.privileged} == {U(3), U(4), U(7), SP(1)}
    assert accounts[U(6)].status == "disabled" and accounts[U(1)].status == "enabled"
    assert accounts[U(1)].last_used_at.isoformat().startswith("2026-11-20T08:15")
    assert accounts[U(5)].identity is None  # a guest: an account without a person here
    # Identities: people by employeeId (two accounts of E1004, one person), managers, and the tenant's own
    # service principal and managed identity with their owners.
    assert accounts[U(7)].identity == accounts[U(4)].identity == Identity.objects.get(employee_id="E1004")
    assert Identity.objects.get(employee_id="E1002").manager.employee_id == "E1001"
    ledger_sync = Identity.objects.get(employee_id="entra-sp:d0000000-0000-4000-8000-000000000001")
    assert (ledger_sync.kind, ledger_sync.owner.employee_id) == ("service", "E1004")
    assert Identity.objects.get(employee_id="entra-sp:d0000000-0000-4000-8000-000000000002").kind == "system"
    assert accounts[SP(1)].identity == ledger_sync
    assert any("$expand=manager(" in r for r in graph.requests)  # a full pull

    # The tenant changes: a membership removed, a user disabled, a new service principal, a new hire.
    tenant = graph.tenant
    tenant.remove_member(G(3), U(2))
    tenant.disable_user(U(3))
    tenant.add_service_principal(
        {
            "id": SP(5),
            "appId": "d0000000-0000-4000-8000-000000000005",
            "displayName": "close-robot",
            "accountEnabled": True,
            "servicePrincipalType": "Application",
            "appOwnerOrganizationId": tenant.tenant_id,
            "appRoles": [],
            "owners": [U(1)],
        }
    )
    tenant.add_user(
        {
            "id": U(8),
            "userPrincipalName": "new.hire@example.com",
            "mail": "new.hire@example.com",
            "displayName": "New Hire",
            "accountEnabled": True,
            "employeeId": "E1008",
            "userType": "Member",
            "department": "Finance",
            "jobTitle": "Analyst",
            "manager": U(1),
        }
    )
    tenant.add_member(G(1), U(8))
    mark = len(graph.requests)
    second = command("connector_pull", "entra")
    assert second.code == 0, second
    requests = pulled(graph, mark)
    assert any(r.startswith("GET /v1.0/users/delta?$deltatoken=") for r in requests), requests
    assert any(r.startswith("GET /v1.0/groups/delta?$deltatoken=") for r in requests)
    assert not any("$expand=manager(" in r for r in requests)  # not a full pull
    assert grants(U(2)) == {G(1), G(6)}  # AP Team and the app access it gave are gone
    assert Account.objects.get(account_id=U(3)).status == "disabled"
    assert Account.objects.filter(account_id=SP(5)).exists()
    assert grants(U(8)) == {G(1)}
    assert Identity.objects.get(employee_id="E1008").manager.employee_id == "E1001"
    assert Account.objects.filter(application__name="Entra ID").count() == 12

    # Most memberships vanish (a botched group clean-up): the pull is held, nothing applied.
    for gid in (G(1), G(3), G(4), G(5), G(6)):
        for member in list(tenant.groups[gid]["members"]):
            tenant.remove_member(gid, member)
    before = snapshot()
    held = command("connector_pull", "entra")
    assert held.code == 3, held
    assert "held for approval" in held.err
    assert snapshot() == before


def test_throttled_mid_pull_waits_and_goes_on(db, graph, tmp_path):
    assert add(tmp_path, graph).code == 0
    graph.throttle("/v1.0/users", 1, contains="$skiptoken")  # the second page of users
    graph.throttle("/v1.0/groups/delta", 1, contains="$skiptoken")
    outcome = command("connector_pull", "entra")
    assert outcome.code == 0, outcome
    assert len([r for r in graph.requests if r.startswith("429 ")]) == 2
    assert Grant.objects.filter(account__application__name="Entra ID").count() == 22


def test_a_missing_permission_is_named_and_changes_nothing(db, graph, tmp_path):
    assert add(tmp_path, graph).code == 0
    graph.tenant.roles.discard("RoleManagement.Read.Directory")
    tested = command("connector_test", "entra")
    assert tested.code == 1, tested
    assert "missing: RoleManagement.Read.Directory" in tested.err
    source = EntraSource(graph.entra_config(), {"client_secret": SECRET}, state_dir=tmp_path / "state")
    try:
        lines = source.permissions()
    finally:
        source.close()
    assert "may read users (User.Read.All)" in lines
    assert any(line.startswith("missing: RoleManagement.Read.Directory") for line in lines)
    assert "last sign-ins: readable" in lines
    before = snapshot()
    outcome = command("connector_pull", "entra")
    assert outcome.code == 1, outcome
    assert "Microsoft Graph denied reading" in outcome.err and "roleManagement/directory" in outcome.err
    assert "Insufficient privileges" in outcome.err
    assert snapshot() == before


def test_without_sign_in_activity_last_used_stays_empty(db, graph, tmp_path):
    graph.tenant.licensed = False
    assert add(tmp_path, graph).code == 0
    tested = command("connector_test", "entra")
    assert "last sign-ins: not readable" in tested.out + tested.err
    assert command("connector_pull", "entra").code == 0
    assert Account.objects.filter(application__name="Entra ID").count() == 10
    assert not Account.objects.filter(application__name="Entra ID", last_used_at__isnull=False).exists()


def test_a_wrong_secret_exits_2_and_stays_secret(db, graph, tmp_path):
    wrong = "Wr0ng-client-secret-value"
    assert add(tmp_path, graph, secret=wrong).code == 0
    before = snapshot()
    outcome = command("connector_pull", "entra")
    assert outcome.code == 2, outcome
    assert "refused the credentials" in outcome.err and "invalid_client" in outcome.err
    assert snapshot() == before
    assert wrong not in outcome.out + outcome.err
    assert not any(wrong in e.payload for e in EvidenceEvent.objects.all())
    run = ConnectorRun.objects.get(connector__name="entra")
    assert (run.status, run.failure) == ("failed", "unreachable") and wrong not in run.error


def test_an_expired_delta_link_or_a_lost_mirror_means_a_full_pull(db, graph, tmp_path, store):
    assert add(tmp_path, graph).code == 0
    assert command("connector_pull", "entra").code == 0
    graph.tenant.expire_delta_links()
    graph.tenant.disable_user(U(2))
    mark = len(graph.requests)
    assert command("connector_pull", "entra").code == 0
    assert any(r.startswith("GET /v1.0/users/delta?$deltatoken=") for r in pulled(graph, mark))
    assert any("$expand=manager(" in r for r in pulled(graph, mark))  # started again in full
    assert Account.objects.get(account_id=U(2)).status == "disabled"

    shutil.rmtree(store / "state")  # a new worker host: no mirror
    graph.tenant.remove_member(G(6), SP(1))
    mark = len(graph.requests)
    assert command("connector_pull", "entra").code == 0
    assert any("$expand=manager(" in r for r in pulled(graph, mark))
    assert grants(SP(1)) == {"role:f0000000-0000-4000-8000-000000000003"}


def test_a_failed_read_leaves_the_mirror_and_its_delta_links_as_they_were(db, graph, tmp_path):
    assert add(tmp_path, graph).code == 0
    assert command("connector_pull", "entra").code == 0
    graph.tenant.remove_member(G(3), U(2))
    graph.tenant.roles.discard("RoleManagement.Read.Directory")  # fails after the deltas were read
    assert command("connector_pull", "entra").code == 1
    assert G(3) in grants(U(2))
    graph.tenant.roles.add("RoleManagement.Read.Directory")
    mark = len(graph.requests)
    assert command("connector_pull", "entra").code == 0
    assert not any("$expand=manager(" in r for r in pulled(graph, mark))  # a delta pull ...
    assert G(3) not in grants(U(2))  # ... that still brings the change the failed one had read


def test_full_pull_days_zero_always_reads_everything(db, graph, tmp_path):
    assert add(tmp_path, graph, full_pull_days=0).code == 0
    assert command("connector_pull", "entra").code == 0
    mark = len(graph.requests)
    assert command("connector_pull", "entra").code == 0
    assert any("$expand=manager(" in r for r in pulled(graph, mark))
    assert not any("$deltatoken=ey" in r for r in pulled(graph, mark))


def test_the_pull_is_evidenced_without_the_secret(db, graph, tmp_path):
    assert add(tmp_path, graph).code == 0
    assert command("connector_pull", "entra").code == 0
    events = EvidenceEvent.objects.filter(
        action__startswith="config.connector"
    ) | EvidenceEvent.objects.filter(action="import.run.pulled")
    assert events.count() >= 2
    for event in EvidenceEvent.objects.all():
        assert SECRET not in event.payload
    pulled_event = EvidenceEvent.objects.get(action="import.run.pulled")
    assert json.loads(pulled_event.payload)["access"]["rows"] == 24


@pytest.mark.parametrize("part", ["role_eligibilities", "app_role_assignments"])
def test_optional_parts_can_be_left_out(db, graph, tmp_path, part):
    assert add(tmp_path, graph, **{part: False}).code == 0
    assert command("connector_pull", "entra").code == 0
    assert Grant.objects.filter(account__application__name="Entra ID").count() == (
        21 if part == "role_eligibilities" else 19
    )
