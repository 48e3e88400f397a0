"""Fixtures for the real-browser tests: one Chromium per module, a fresh context per test, the demo company.

Playwright's sync API keeps an asyncio event loop "running" in this thread (in another greenlet) for as long
as the browser is open. Two consequences for Django, handled here:

- Django refuses ORM calls from a thread with a running loop unless DJANGO_ALLOW_ASYNC_UNSAFE is set. It is
  safe here (the loop only drives the browser; every ORM call is ordinary synchronous code), so the browser
  fixture sets it, and only for as long as the loop runs.
- While a loop runs, Django keeps this thread's database connections in a separate (context-local) slot, so
  the connection the tests use is not the one pytest-django set up the database with. Nothing may depend on
  per-connection state from before the browser started: in particular serialized rollback (the copy of
  migration-created rows kept on the connection) does not reach these tests, so ``demo_company`` restores
  the one such row set it needs itself.

The browser is module-scoped rather than session-scoped for the same reason: when the module is done the loop
stops, and the rest of the suite runs with Django's normal thread-local connections and async-safety checks.
"""

from __future__ import annotations

import importlib
from io import StringIO
from pathlib import Path

import pytest
from django.apps import apps as django_apps
from django.core.management import call_command

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
# Generous for a loaded CI machine, short enough that a missing element fails fast.
TIMEOUT_MS = 10_000
DEMO_PEOPLE = 120


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: these tests drive Debian's Chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with pytest.MonkeyPatch.context() as patch:
        # Set before the loop starts and restored after it stops: every database fixture and flush of the
        # browser tests runs in between.
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            yield browser
            browser.close()


@pytest.fixture
def demo_company(browser, committed_db):
    """The seeded demo company (about 120 people) and its four demo users, committed for the live server.

    ``committed_db`` (tests/conftest.py) rather than ``transactional_db``: the evidence table refuses the
    DELETE that empties it between tests, and committed_db purges it the way a DBA would. The flush after
    each such test also empties the financial processes that a data migration creates and the demo
    applications refer to, so they are put back first (the migration's own, idempotent function).
    """
    data_migration = importlib.import_module("entitlements.migrations.0003_financial_processes")
    data_migration.add_processes(django_apps, None)
    call_command("seed_demo", people=DEMO_PEOPLE, stdout=StringIO())


# What Chromium logs when the Content-Security-Policy blocks something, or a Permissions-Policy is malformed.
POLICY_ERRORS = ("Content Security Policy", "Content-Security-Policy", "Permissions-Policy")


@pytest.fixture
def page(browser, live_server, demo_company):
    """A page in a fresh browser context (no cookies from other tests), pointed at the live server.

    Every test also proves the security headers cost nothing: a CSP violation or a Permissions-Policy error on
    any page it visits fails the test (a blocked script would otherwise only show as a feature quietly missing).
    """
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(f"{page.url}: {message.text}")
            if any(words in message.text for words in POLICY_ERRORS)
            else None
        ),
    )
    page.policy_violations = violations
    yield page
    context.close()
    assert violations == [], "\n".join(violations)


@pytest.fixture
def login():
    """Log in through the real login form; returns the page on the home page."""
    from playwright.sync_api import expect

    def do_login(page, username: str, password: str | None = None):
        page.goto("/login/")
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password or f"{username}-demo-2026")
        page.get_by_role("button", name="Log in").click()
        expect(page.get_by_role("heading", level=1)).to_contain_text("Hello")
        return page

    return do_login
