"""The GitHub source (entitlements/connectors/github.py) against the stand-in REST API on loopback."""

from __future__ import annotations

import pytest

from entitlements.connectors.github import GitHubSource
from entitlements.connectors.http import SourcePermissionDenied
from entitlements.connectors.sources import SourceUnreachable, source_class
from tests.github.standin import GitHubStandIn, forbid, throttle_once

MAPPINGS = {
    "people": {"dev-eli": "E704"},
    "non_human": {"release-bot[bot]": "SVC-REL", "app:deploy-conductor": "SVC-DEPLOY"},
}


def source(github, **config) -> GitHubSource:
    return GitHubSource(
        {"organization": "example-org", "api_url": github.api_url, **MAPPINGS, **config},
        {"token": github.token},
    )


def read(github, **config) -> list[dict]:
    reading = source(github, **config)
    try:
        return list(reading.access())
    finally:
        reading.close()


def held(rows) -> dict[str, tuple]:
    """login -> (employee id, email, sorted (entitlement id, privileged))."""
    out: dict[str, tuple] = {}
    for row in rows:
        employee, email, grants = out.get(row["account_name"], (row["employee_id"], row["email"], []))
        if row["entitlement_id"]:
            grants.append((row["entitlement_id"], row["privileged"]))
        out[row["account_name"]] = (employee, email, grants)
    return {login: (e, m, tuple(sorted(g))) for login, (e, m, g) in out.items()}


ORGANISATION = {
    "octo-owner": ("", "octo.owner@example.com", (
        ("org:owner", "true"), ("repo:handbook:admin", "true"), ("repo:ledger-service:admin", "true"),
        ("repo:payments-api:admin", "true"), ("team:engineering:maintainer", "false"))),
    "dev-dana": ("", "dana.dev@example.com", (
        ("org:member", "false"), ("repo:ledger-service:maintain", "false"), ("repo:payments-api:admin", "true"),
        ("team:engineering", "false"), ("team:payments:maintainer", "false"))),
    "dev-eli": ("E704", "", (
        ("org:member", "false"), ("repo:ledger-service:write", "false"), ("team:engineering", "false"),
        ("team:payments", "false"))),
    "dev-fay": ("", "fay.dev@example.com", (
        ("org:member", "false"), ("repo:ledger-service:write", "false"), ("team:engineering", "false"),
        ("team:ledger-core", "false"), ("team:payments", "false"))),
    "contractor-gus": ("", "", (("org:outside-collaborator", "false"), ("repo:payments-api:write", "false"))),
    "release-bot[bot]": ("SVC-REL", "", (("repo:ledger-service:write", "false"),)),
    "deploy-conductor": ("SVC-DEPLOY", "", (
        ("app-permission:contents:write", "false"), ("app-permission:deployments:write", "false"),
        ("app-permission:workflows:write", "true"))),
    "lint-helper": ("", "", (("app-permission:checks:write", "false"), ("app:all-repositories", "false"))),
}  # fmt: skip


def test_the_kind_is_registered():
    assert source_class("github") is GitHubSource


def test_reads_members_teams_repositories_and_apps(github):
    rows = read(github)
    assert held(rows) == ORGANISATION
    owner = next(r for r in rows if r["account_name"] == "octo-owner")
    assert owner["account_id"] == "1001"  # GitHub's user id: a renamed login keeps its account
    names = {r["entitlement_id"]: (r["entitlement_name"], r["entitlement_type"]) for r in rows}
    assert names["org:owner"] == ("Organisation owner", "role")
    assert names["team:payments:maintainer"] == ("Payments (maintainer)", "group")
    assert names["repo:payments-api:admin"] == ("payments-api (admin)", "permission")


def test_pages_follow_link_headers_and_only_the_named_repositories_are_read(github):
    github.org["members"] += [f"dev-extra-{n}" for n in range(150)]
    for n in range(150):
        github.org["users"][f"dev-extra-{n}"] = {
            **github.org["users"]["dev-eli"],
            "login": f"dev-extra-{n}",
            "id": 5000 + n,
        }
    rows = held(read(github, repositories=["Ledger-Service"]))
    assert len([login for login in rows if login.startswith("dev-extra-")]) == 150
    assert not any("payments-api" in e for _, _, grants in rows.values() for e, _ in grants)
    members = [r for r in github.requests if "/members?" in r and "role=all" in r]
    assert len(members) == 2 and "page=2" in members[1]  # 154 members, 100 a page
    assert not any("/repos/example-org/payments-api/" in r for r in github.requests)


def test_child_team_members_count_for_the_parents_even_when_the_api_lists_them_only_below(github):
    original = github.team_members
    github.team_members = lambda slug, role: [m for m in original(slug, role) if m in github.org["teams"][slug]["maintainers"] + github.org["teams"][slug]["members"]]  # fmt: skip
    assert held(read(github)) == ORGANISATION


def test_throttling_is_waited_out_by_retry_after_and_by_the_rate_limit_reset(github):
    github.faults.append(throttle_once("/orgs/example-org/teams"))
    github.faults.append(throttle_once("/orgs/example-org/repos", status=403))
    reading = source(github)
    try:
        assert held(reading.access()) == ORGANISATION
        assert 1.0 <= reading.api.waited <= 3.0
    finally:
        reading.close()
    assert len([r for r in github.requests if r.startswith("/api/v3/orgs/example-org/teams?")]) == 2


def test_a_forbidden_listing_names_what_to_grant(github):
    github.faults.append(forbid("/orgs/example-org/installations"))
    with pytest.raises(SourcePermissionDenied) as caught:
        read(github)
    assert "/orgs/example-org/installations (403): Resource not accessible by personal access token" in str(
        caught.value
    )


def test_a_wrong_token_is_refused_and_never_shown(github):
    reading = GitHubSource(
        {"organization": "example-org", "api_url": github.api_url}, {"token": "ghx-wrong-123"}
    )
    with pytest.raises(SourceUnreachable) as caught:
        list(reading.access())
    reading.close()
    assert "GitHub refused the credentials (401" in str(caught.value)
    assert "ghx-wrong-123" not in str(caught.value)


def test_permissions_say_what_the_token_may_read(github):
    reading = source(github)
    try:
        assert reading.permissions() == [
            "may read members (organisation Members: read)",
            "may read outside collaborators (organisation Members: read)",
            "may read teams (organisation Members: read)",
            "may read repositories (repository Metadata: read)",
            "may read app installations (organisation Administration: read)",
        ]
        github.faults.append(forbid("/orgs/example-org/installations"))
        assert reading.permissions()[-1] == "missing: app installations (organisation Administration: read)"
    finally:
        reading.close()


def test_validate_names_every_problem():
    assert GitHubSource.validate(
        {"organisation": "x", "api_url": "ftp://ghe", "repositories": "all", "people": {"a": 1}}, {"tok"}
    ) == [
        "organisation: is not a setting of a GitHub connector",
        "organization: is required, the organisation's login, e.g. example-org",
        "api_url: must be an http(s) URL, e.g. https://api.github.com or https://ghe.example.com/api/v3",
        "repositories: must be a list of repository names (empty: every repository)",
        "people: must map logins (or app:slug) to employee ids",
        "secrets: 'tok' is not a secret of a GitHub connector",
        "secrets: 'token' is required (a fine-grained personal access token), or a GitHub App's private_key",
    ]
    assert GitHubSource.validate({"organization": "example-org"}, {"token"}) == []
    assert GitHubSource.validate({"organization": "example-org", "app_id": "12"}, {"token"}) == [
        "app_id: must be the GitHub App's number (a whole number)",
        "secrets: give token, or app_id, installation_id and private_key, not both",
    ]
    assert GitHubSource.validate({"organization": "example-org", "app_id": 12}, set()) == [
        "secrets: a GitHub App also needs installation_id, secret private_key"
    ]
    app = {"organization": "example-org", "app_id": 12, "installation_id": 34}
    assert GitHubSource.validate(app, {"private_key"}) == []


def test_a_github_app_reads_with_an_installation_token():
    private, public = rsa_key()
    served = GitHubStandIn(token="unused-" + "x" * 8, app=(424242, 777, public))
    config = {
        "organization": "example-org",
        "api_url": served.api_url,
        "app_id": 424242,
        "installation_id": 777,
    }
    try:
        reading = GitHubSource({**config, **MAPPINGS}, {"private_key": private})
        try:
            assert held(reading.access()) == ORGANISATION
        finally:
            reading.close()
        assert served.installation_tokens == ["test-installation-1"]  # one exchange for the whole pull
        assert served.requests[0] == "POST /api/v3/app/installations/777/access_tokens"

        wrong = GitHubSource(config, {"private_key": rsa_key()[0]})
        with pytest.raises(
            SourceUnreachable, match=r"GitHub refused the credentials \(401 at .*/access_tokens"
        ):
            list(wrong.access())
        wrong.close()
        with pytest.raises(SourceUnreachable, match="is not the GitHub App's private key"):
            list(GitHubSource(config, {"private_key": "not a key"}).access())
    finally:
        served.close()


def rsa_key() -> tuple[str, bytes]:
    """A GitHub App's key pair made for the test: (private key PEM, public key PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return private, key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
