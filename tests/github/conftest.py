"""The GitHub stand-in (tests/github/standin.py) per test, with its token; and ``org``, the people SOXGov knows
and a connector reading the stand-in."""

from __future__ import annotations

import json
import secrets

import pytest

from entitlements.models import Application, Identity
from soxgov.roles import Role
from tests.github.standin import GitHubStandIn
from tests.imports.conftest import command

TOKEN_VARIABLE = "GITHUB_TEST_TOKEN"
APP = "GitHub example-org"


@pytest.fixture
def github():
    served = GitHubStandIn(token="test-gh-" + secrets.token_hex(12))
    try:
        yield served
    finally:
        served.close()


@pytest.fixture
def org(db, github, tmp_path, monkeypatch, make_user):
    """The people and non-human identities SOXGov knows, and a GitHub connector reading the stand-in. The removal
    gate is lowered to 5 grants (and 10%): the change below removes 4, the destructive pull 17 of 27."""
    Application.objects.create(name=APP, sox_in_scope=True)
    owner = Identity.objects.create(
        employee_id="E701", email="octo.owner@example.com", display_name="Octo Owner"
    )
    Identity.objects.create(employee_id="E702", email="dana.dev@example.com", display_name="Dana Dev")
    Identity.objects.create(employee_id="E703", email="fay.dev@example.com", display_name="Fay Dev")
    Identity.objects.create(employee_id="E704", display_name="Eli Dev")
    Identity.objects.create(employee_id="SVC-REL", display_name="Release bot", kind="bot", owner=owner)
    Identity.objects.create(employee_id="SVC-DEPLOY", display_name="Deploy app", kind="service", owner=owner)
    make_user("alice", Role.ADMIN)
    monkeypatch.setenv(TOKEN_VARIABLE, github.token)
    path = tmp_path / "github.json"
    path.write_text(json.dumps({
        "organization": "example-org", "api_url": github.api_url, "people": {"dev-eli": "E704"},
        "non_human": {"release-bot[bot]": "SVC-REL", "app:deploy-conductor": "SVC-DEPLOY"},
    }))  # fmt: skip
    outcome = command(
        "connector_add", "--name", "gh", "--kind", "github", "--application", APP, "--config", str(path),
        "--secret", f"token=env:{TOKEN_VARIABLE}", "--deletion-threshold-count", "5", "--user", "alice",
    )  # fmt: skip
    assert outcome.code == 0, outcome
    return github
