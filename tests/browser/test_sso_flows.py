"""Real Chromium signs in with single sign-on from the login page, against a real OpenID provider
(oidc-provider-mock on its own loopback port), and signs out at SOXGov and at the provider."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from soxgov.models import User
from soxgov.roles import Role, user_roles
from tests.browser.conftest import POLICY_ERRORS, TIMEOUT_MS
from tests.oidc_servers import mock_provider, mock_user_set

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path("/usr/bin/chromium").exists(),
        reason="/usr/bin/chromium is missing: these tests drive Debian's Chromium (apt-get install chromium)",
    ),
]

# The mock provider's pages link a stylesheet on a CDN: nothing but loopback is fetched.
NOT_LOOPBACK = re.compile(r"^https?://(?!(localhost|127\.0\.0\.1)[:/])")


@pytest.fixture
def idp(settings):
    with mock_provider() as issuer:
        settings.SOXGOV_OIDC_ISSUER = issuer
        settings.SOXGOV_OIDC_CLIENT_ID = "soxgov-browser"
        settings.SOXGOV_OIDC_CLIENT_SECRET = "browser-secret"
        settings.SOXGOV_OIDC_ROLE_MAP = {"SOX-Auditors": frozenset({"auditor"})}
        settings.SOXGOV_OIDC_NAME = "Example IdP"
        yield issuer


@pytest.fixture
def sso_page(browser, live_server, committed_db, idp):
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(TIMEOUT_MS)
    context.route(NOT_LOOPBACK, lambda route: route.abort())
    page = context.new_page()
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(f"{page.url}: {message.text}")
            if page.url.startswith(live_server.url) and any(w in message.text for w in POLICY_ERRORS)
            else None
        ),
    )
    yield page
    context.close()
    assert violations == [], "\n".join(violations)


def test_sign_in_with_the_identity_provider_from_the_login_page_and_sign_out(sso_page, idp, live_server):
    page = sso_page
    mock_user_set(
        idp, "ada-sub", {"email": "ada@example.com", "preferred_username": "ada", "groups": ["SOX-Auditors"]}
    )
    page.goto("/evidence/")  # a page that needs sign-in: the login page, then back here
    expect(page).to_have_url(re.compile(r"/login/\?next=/evidence/"))
    sso_button = page.get_by_role("button", name="Sign in with Example IdP")
    expect(sso_button).to_be_visible()
    sso_button.click()

    expect(page).to_have_url(re.compile(re.escape(idp) + r"/oauth2/authorize\?"))
    page.get_by_placeholder("sub").fill("ada-sub")
    page.get_by_role("button", name="Authorize").click()

    expect(page).to_have_url(live_server.url + "/evidence/")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Evidence")
    ada = User.objects.get(username="ada")
    assert user_roles(ada) == {Role.AUDITOR}

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(re.escape(idp) + r"/oauth2/end_session\?"))
    page.get_by_role("button", name="End session").click()
    expect(page).to_have_url(live_server.url + "/login/")
    page.goto("/evidence/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/evidence/"))
