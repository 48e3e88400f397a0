"""The SCIM source (entitlements/connectors/scim.py) against a real SCIM 2.0 server (scim2-server) on loopback,
seeded through its API, with a proxy in front of it where a test needs a provider's quirk or fault."""

from __future__ import annotations

from urllib.parse import unquote

import pytest

from entitlements.connectors.http import SourcePermissionDenied
from entitlements.connectors.scim import ScimSource
from entitlements.connectors.sources import SourceError, SourceUnreachable, source_class
from tests.scim.servers import forbid, throttle_once

PRIVILEGED = {"privileged_groups": ["Tenant Admins"], "privileged_roles": ["billing-admin"]}


def read(url, token, what="access", **config):
    source = ScimSource({"url": url, **config}, {"bearer_token": token})
    try:
        return list(getattr(source, what)())
    finally:
        source.close()


def held(rows) -> dict[str, tuple]:
    """userName -> (status, employee id, email, sorted (entitlement name, type, privileged))."""
    out = {}
    for row in rows:
        status, employee, email, grants = out.get(
            row["account_name"], (row["account_status"], row["employee_id"], row["email"], [])
        )
        if row["entitlement_id"]:
            grants.append((row["entitlement_name"], row["entitlement_type"], row["privileged"]))
        out[row["account_name"]] = (status, employee, email, grants)
    return {name: (s, e, m, tuple(sorted(g))) for name, (s, e, m, g) in out.items()}


TENANT = {
    "ada.admin": (
        "enabled",
        "E9001",
        "ada.admin@example.com",
        (
            ("Billing administrator", "role", "true"),
            ("Export the ledger", "permission", "false"),
            ("Tenant Admins", "group", "true"),
        ),
    ),
    "bo.clerk": (
        "enabled",
        "E9002",
        "bo.clerk@example.com",
        (
            ("AP Team", "group", "false"),
            ("AP clerk", "role", "false"),
            ("Approvers", "group", "false"),
            ("Tenant Admins", "group", "true"),  # through Approvers, nested in Tenant Admins
        ),
    ),
    "cy.viewer": ("enabled", "E9003", "cy.viewer@example.com", (("Readers", "group", "false"),)),
    "dee.gone": (
        "disabled",
        "E9004",
        "dee.gone@example.com",
        (("AP Team", "group", "false"), ("AP clerk", "role", "false")),
    ),
    "svc-integration": ("enabled", "", "", (("Readers", "group", "false"),)),
}


def test_the_kind_is_registered():
    assert source_class("scim") is ScimSource


def test_reads_users_groups_roles_and_entitlements(scim_server):
    rows = read(scim_server.url, scim_server.token, **PRIVILEGED)
    assert held(rows) == TENANT
    ada = next(r for r in rows if r["account_name"] == "ada.admin")
    assert ada["account_id"] == scim_server.ids["ada.admin"]  # the SCIM id: a rename keeps the account
    ids = {r["entitlement_id"] for r in rows}
    assert f"group:{scim_server.ids['Approvers']}" in ids
    assert {"role:billing-admin", "role:ap-clerk", "entitlement:export-ledger"} <= ids


def test_small_pages_read_everything_once(scim_server, proxy):
    served = proxy()
    rows = read(served.url, scim_server.token, page_size=2, **PRIVILEGED)
    assert held(rows) == TENANT
    users = [r for r in served.requests if r.startswith("/v2/Users")]
    assert len(users) == 3  # 5 users, 2 a page: the third page is short and ends the listing
    assert "startIndex=5" in users[-1] and "count=2" in users[-1]


def test_a_provider_capping_count_is_read_to_totalresults(scim_server, proxy):
    """Asked for 200, it answers 2 at a time: a short page before totalResults is not the end."""
    served = proxy(cap=2)
    assert held(read(served.url, scim_server.token, **PRIVILEGED)) == TENANT
    assert len([r for r in served.requests if r.startswith("/v2/Users")]) == 3


def test_groups_without_members_unless_asked_need_their_profile(scim_server, proxy):
    served = proxy(hide_members=True)
    blind = held(read(served.url, scim_server.token, **PRIVILEGED))
    assert blind["cy.viewer"][3] == ()  # the generic profile reads no memberships from such a provider
    profiled = read(served.url, scim_server.token, profile="members-on-request", **PRIVILEGED)
    assert held(profiled) == TENANT
    groups = [unquote(r) for r in served.requests if r.startswith("/v2/Groups")]
    assert "attributes=displayName,externalId,members" in groups[-1] and "count=100" in groups[-1]


def test_nested_groups_in_a_cycle_share_their_members(scim_server):
    scim_server.add_group("Ring A", ["cy.viewer"])
    scim_server.add_group("Ring B", ["svc-integration", "group:Ring A"])
    scim_server.add_member("Ring A", "group:Ring B")
    rows = held(read(scim_server.url, scim_server.token))
    for user in ("cy.viewer", "svc-integration"):
        assert {"Ring A", "Ring B"} <= {name for name, _, _ in rows[user][3]}


def test_identities_with_managers_from_active_users(scim_server):
    rows = read(scim_server.url, scim_server.token, what="identities", identities=True)
    by_id = {r["employee_id"]: r for r in rows}
    assert set(by_id) == {"E9001", "E9002", "E9003"}  # dee.gone is inactive; the service user has no number
    assert by_id["E9002"]["manager_employee_id"] == "E9001"
    assert by_id["E9002"]["email"] == "bo.clerk@example.com"
    assert by_id["E9001"]["department"] == "Finance" and by_id["E9001"]["title"] == "Finance systems lead"
    assert by_id["E9001"]["manager_employee_id"] == ""


def test_external_id_may_be_the_employee_id(scim_server):
    scim_server.patch("Users", "cy.viewer", {"op": "add", "path": "externalId", "value": "HR-77"})
    rows = held(read(scim_server.url, scim_server.token, employee_id_attribute="externalId"))
    assert rows["cy.viewer"][1] == "HR-77" and rows["ada.admin"][1] == ""


def test_a_wrong_token_is_refused_credentials_never_shown(scim_server):
    with pytest.raises(SourceUnreachable) as caught:
        read(scim_server.url, "not-the-token-0123456789")
    assert "refused the credentials (401" in str(caught.value)
    assert "not-the-token" not in str(caught.value)


def test_a_forbidden_listing_names_what_to_grant(scim_server, proxy):
    served = proxy()
    served.faults.append(forbid("/Groups"))
    with pytest.raises(SourcePermissionDenied) as caught:
        read(served.url, scim_server.token)
    assert "/v2/Groups (403): The token lacks the scope to read groups" in str(caught.value)


def test_throttling_is_waited_out(scim_server, proxy):
    served = proxy()
    served.faults.append(throttle_once("/Users", start_index="3"))
    source = ScimSource(
        {"url": served.url, "page_size": 2, **PRIVILEGED}, {"bearer_token": scim_server.token}
    )
    try:
        assert held(source.access()) == TENANT
        assert source.api.waited == 1.0
    finally:
        source.close()


def test_a_provider_ignoring_startindex_is_an_error_not_a_loop(scim_server, proxy):
    served = proxy()

    def first_page_always(path, query):
        if path == "/Users" and query.get("startIndex") != "1":
            import httpx

            again = httpx.get(
                f"{scim_server.url}/Users?startIndex=1&count=2",
                headers={"Authorization": f"Bearer {scim_server.token}"},
            ).json()
            served.faults.append(first_page_always)
            return 200, {}, again
        return None

    served.faults.append(first_page_always)
    with pytest.raises(SourceError, match="does not page by startIndex"):
        read(served.url, scim_server.token, page_size=2)


def test_permissions_reads_the_provider_config_and_schemas(scim_server, proxy):
    source = ScimSource({"url": scim_server.url}, {"bearer_token": scim_server.token})
    try:
        lines = source.permissions()
    finally:
        source.close()
    assert lines[0].startswith("service provider: authentication")
    assert "may read /Users (5 resources)" in lines
    assert "may read /Groups (4 resources)" in lines
    assert not any(line.startswith("missing") for line in lines), lines

    served = proxy()
    served.faults.append(forbid("/Groups"))
    source = ScimSource({"url": served.url}, {"bearer_token": scim_server.token})
    try:
        lines = source.permissions()
    finally:
        source.close()
    assert "missing: permission to list /Groups, so group memberships are not read" in lines


def test_validate_names_every_problem():
    problems = ScimSource.validate(
        {
            "url": "https://svc:pw@app.example.com/scim/v2?x=1",
            "profil": "generic",
            "profile": "okta-ish",
            "page_size": 5000,
            "employee_id_attribute": "badge",
            "privileged_groups": "Admins",
            "identities": "yes",
        },
        {"bearer_token", "username", "api_key"},
    )
    assert problems == [
        "profil: is not a setting of a SCIM connector",
        "url: must not contain credentials; give them as secrets",
        "url: must not have a query or a fragment (the base URL only)",
        "profile: 'okta-ish' is not a profile (use one of generic, page-cap-100, members-on-request)",
        "page_size: must be a whole number from 1 to 1000",
        "employee_id_attribute: use employeeNumber or externalId",
        "privileged_groups: must be a list of names",
        "identities: must be true or false",
        "secrets: 'api_key' is not a secret of a SCIM connector",
        "secrets: give bearer_token or username and password, not both",
    ]
    assert ScimSource.validate({"url": "ftp://x"}, set()) == [
        "url: 'ftp://x' is not an http(s) URL with a host",
        "secrets: give bearer_token (or username and password for basic authentication)",
    ]
    assert ScimSource.validate({"url": "https://app.example.com/scim/v2"}, {"username"}) == [
        "secrets: basic authentication needs both username and password"
    ]
    assert ScimSource.validate({"url": "https://app.example.com/scim/v2"}, {"bearer_token"}) == []


def test_no_request_url_reaches_the_log(scim_server, caplog):
    """httpx would log each URL with its query (a provider's paging token) at INFO: settings keep it quiet."""
    import logging

    caplog.set_level(logging.INFO)
    read(scim_server.url, scim_server.token, page_size=2)
    assert not [r.getMessage() for r in caplog.records if "startIndex" in r.getMessage()]


def test_basic_authentication_is_sent_when_configured(scim_server, proxy):
    """A provider taking HTTP basic authentication (scim2-server takes bearer tokens only: it refuses it)."""
    served = proxy()
    seen = []
    served.faults.append(lambda path, query: seen.append(path) or None)
    source = ScimSource({"url": served.url}, {"username": "reader", "password": "pa55-not-shown"})
    try:
        assert source._authorize(False)["Authorization"] == "Basic cmVhZGVyOnBhNTUtbm90LXNob3du"
        with pytest.raises(SourceUnreachable) as caught:
            list(source.access())
    finally:
        source.close()
    assert "pa55-not-shown" not in str(caught.value)
    assert seen == [
        "/Groups",
        "/Groups",
    ]  # refused (401), asked once more in case of a renewal, refused again
