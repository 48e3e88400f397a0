"""Real Chromium against the live server and the seeded demo company: what each role sees and can do.

Every test logs in through the real login form, so the session, CSRF and redirects are exercised as a user
meets them. Selectors go by role, label and visible text, never by CSS paths.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from entitlements.models import Identity
from evidence.models import ChainVerification, EvidenceEvent
from tests.browser.pages import nav

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path("/usr/bin/chromium").exists(),
        reason="/usr/bin/chromium is missing: these tests drive Debian's Chromium (apt-get install chromium)",
    ),
]

PLANTED_ORPHANS = {"temp.contractor7", "jdoe_old", "test.admin"}


def identity(name: str) -> Identity:
    return Identity.objects.get(display_name=name)


def result_links(page):
    """The links in the rows of the results table (on the lists used here: one per row, its detail page)."""
    return page.locator("#results").get_by_role("table").get_by_role("row").get_by_role("link")


def hrefs(page) -> list[str]:
    return result_links(page).evaluate_all("links => links.map(link => link.getAttribute('href'))")


def test_wrong_password_shows_the_error_and_stays_on_the_login_page(page):
    page.goto("/login/")
    page.get_by_label("Username").fill("rita")
    page.get_by_label("Password").fill("not-her-password")
    page.get_by_role("button", name="Log in").click()

    expect(page.get_by_role("alert")).to_contain_text("username and password didn't match")
    expect(page).to_have_url(re.compile(r"/login/$"))
    expect(page.get_by_role("heading", name="Log in to SOXGov")).to_be_visible()
    expect(nav(page).get_by_role("link", name="Identities")).to_have_count(0)


def test_reviewer_sees_her_role_and_no_evidence_or_admin_links_and_logout_returns_to_login(page, login):
    login(page, "rita")

    header = page.get_by_role("banner")
    expect(header).to_contain_text("Rita Okafor")
    expect(header).to_contain_text("Reviewer")
    expect(nav(page).get_by_role("link", name="Identities")).to_be_visible()
    expect(nav(page).get_by_role("link", name="Evidence", exact=True)).to_have_count(0)
    expect(nav(page).get_by_role("link", name="Integrity")).to_have_count(0)
    expect(nav(page).get_by_role("link", name="Admin")).to_have_count(0)

    nav(page).close()
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/login/$"))
    expect(page.get_by_role("heading", name="Log in to SOXGov")).to_be_visible()
    # The session is really gone: a page now sends her back to the login form.
    page.goto("/identities/")
    expect(page).to_have_url(re.compile(r"/login/\?next=/identities/$"))


def test_reviewer_identity_list_shows_only_her_scope_and_search_filters_in_place_via_htmx(page, login):
    rita, gregory = identity("Rita Okafor"), identity("Gregory Hale")
    in_scope = Identity.objects.filter(manager=rita).count() + Identity.objects.filter(owner=rita).count() + 1
    assert gregory.manager_id == rita.pk and in_scope < 50  # one page, so the count below is the whole scope

    login(page, "rita")
    nav(page).get_by_role("link", name="Identities").click()
    expect(page.get_by_role("heading", name="Identities")).to_be_visible()
    table = page.locator("#results").get_by_role("table")
    expect(table.get_by_role("link", name="Gregory Hale")).to_be_visible()
    expect(table.get_by_role("link", name="Rita Okafor")).to_be_visible()
    expect(table.get_by_role("row", name=re.compile("Gregory Hale"))).to_contain_text("terminated")
    expect(table.get_by_role("link", name="Alice Nakamura")).to_have_count(0)
    expect(table.get_by_role("link", name="Oscar Lindqvist")).to_have_count(0)
    expect(result_links(page)).to_have_count(in_scope)

    # A marker on window survives only if the page is not reloaded.
    page.evaluate("window.__soxgovNoReload = 'still here'")
    page.get_by_role("searchbox", name="Search").press_sequentially("Gregory")
    expect(page).to_have_url(re.compile(r"/identities/\?(.*&)?q=Gregory(&|$)"))
    expect(result_links(page)).to_have_count(1)
    expect(result_links(page)).to_have_text("Gregory Hale")
    assert page.evaluate("window.__soxgovNoReload") == "still here"
    # The full page is still there around the swapped fragment (not a bare fragment after a navigation).
    expect(page.get_by_role("heading", name="Identities")).to_be_visible()

    alice = identity("Alice Nakamura")
    response = page.goto(f"/identities/{alice.pk}/")
    assert response.status == 404
    response = page.goto(f"/identities/{alice.pk}/access-on/")
    assert response.status == 404
    assert page.js_errors == []


def test_auditor_follows_the_evidence_chain_and_cannot_verify_or_administer(page, login):
    login(page, "audrey")
    expect(nav(page).get_by_role("link", name="Admin")).to_have_count(0)
    nav(page).get_by_role("link", name="Evidence", exact=True).click()
    expect(page.get_by_role("heading", name="Evidence trail")).to_be_visible()

    newest = result_links(page).first
    sequence = int(newest.inner_text())
    assert sequence == EvidenceEvent.objects.order_by("-sequence").values_list("sequence", flat=True)[0]
    newest.click()
    expect(page.get_by_role("heading", name=f"Evidence event #{sequence}")).to_be_visible()

    event = EvidenceEvent.objects.get(sequence=sequence)
    previous = EvidenceEvent.objects.get(sequence=sequence - 1)
    assert event.prev_hash == previous.hash
    page.get_by_role("link", name=event.prev_hash).click()
    expect(page.get_by_role("heading", name=f"Evidence event #{sequence - 1}")).to_be_visible()
    expect(page).to_have_url(re.compile(rf"/evidence/{sequence - 1}/$"))
    expect(page.get_by_text(previous.hash, exact=True)).to_be_visible()

    nav(page).get_by_role("link", name="Integrity").click()
    expect(page.get_by_role("heading", name="Evidence integrity")).to_be_visible()
    expect(page.get_by_text(f"Chain head: #{event.sequence}")).to_be_visible()
    expect(page.get_by_role("button", name="Verify the chain now")).to_have_count(0)
    expect(nav(page).get_by_role("link", name="Admin")).to_have_count(0)


def test_auditor_finds_the_signing_key_fingerprint_and_public_key_on_the_integrity_page(page, login):
    from evidence.checkpoints import checkpoint_create
    from evidence.services import Actor
    from evidence.signing import current_public_key

    checkpoint_create(reason="manual", actor=Actor.system("tests"))
    key = current_public_key()
    login(page, "audrey")
    nav(page).get_by_role("link", name="Integrity").click()

    expect(page.get_by_role("heading", name="Signing key")).to_be_visible()
    expect(page.get_by_text(key.fingerprint, exact=True)).to_be_visible()
    expect(page.get_by_text("-----BEGIN PUBLIC KEY-----")).to_contain_text(key.pem.splitlines()[1])
    page.get_by_role("link", name="/api/evidence/signing-keys/").click()
    expect(page.get_by_text(key.public_key_hex).first).to_be_visible()


def test_admin_verifies_the_chain_and_sees_it_intact_and_can_open_django_admin(page, login):
    login(page, "alice")
    nav(page).get_by_role("link", name="Integrity").click()
    expect(page.get_by_text("No verification has run yet.")).to_be_visible()

    page.get_by_role("button", name="Verify the chain now").click()
    expect(page).to_have_url(re.compile(r"/evidence/integrity/$"))
    expect(page.get_by_role("status")).to_contain_text(re.compile(r"Verification #\d+"))
    latest = page.get_by_role("article").filter(has_text="Latest verification")
    expect(latest).to_contain_text("intact")
    expect(latest).to_contain_text("Alice Nakamura")
    verification = ChainVerification.objects.get()
    assert verification.status == ChainVerification.Status.INTACT

    nav(page).get_by_role("link", name="Admin").click()
    expect(page).to_have_url(re.compile(r"/admin/$"))
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible()


def test_identity_list_pages_forward_and_back_to_the_same_rows_and_no_row_repeats(page, login):
    login(page, "oscar")
    nav(page).get_by_role("link", name="Identities").click()
    expect(result_links(page)).to_have_count(50)  # SOXGOV_PAGE_SIZE; the demo has about 150 identities
    expect(page.get_by_role("link", name="Previous")).to_have_count(0)
    pages = [hrefs(page)]

    while page.get_by_role("link", name="Next").count():
        page.get_by_role("link", name="Next").click()
        expect(result_links(page).first).not_to_have_attribute("href", pages[-1][0])
        expect(page).to_have_url(re.compile(r"[?&]cursor="))
        pages.append(hrefs(page))
        assert len(pages) < 10, "the pager never ends"
    seen = [href for rows in pages for href in rows]
    assert len(pages) >= 3
    assert len(seen) == len(set(seen)) == Identity.objects.count()

    # Back to the start, page by page: each Previous shows exactly the rows that page showed going forward.
    for rows in reversed(pages[:-1]):
        page.get_by_role("link", name="Previous").click()
        expect(result_links(page).first).to_have_attribute("href", rows[0])
        assert hrefs(page) == rows
    expect(page.get_by_role("link", name="Previous")).to_have_count(0)
    expect(page.get_by_role("link", name="Next")).to_be_visible()


def test_access_on_date_form_renders_what_was_held_and_rejects_a_future_date(page, login):
    today = timezone.localdate()
    past = today - dt.timedelta(days=10)  # after Gregory Hale left (45 days ago): the planted problem
    future = today + dt.timedelta(days=30)

    login(page, "rita")
    nav(page).get_by_role("link", name="Identities").click()
    page.get_by_role("link", name="Gregory Hale").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Gregory Hale")

    form = page.get_by_role("group", name="What did Gregory Hale hold on a date?")
    form.get_by_label("On date").fill(past.isoformat())
    form.get_by_role("button", name="Show access").click()

    expect(page.get_by_role("heading", name=f"What Gregory Hale held on {past:%Y-%m-%d}")).to_be_visible()
    expect(page).to_have_url(re.compile(rf"[?&]date={past:%Y-%m-%d}"))
    held = page.get_by_role("table")
    expect(held.get_by_role("row", name=re.compile("ERP General Ledger"))).not_to_have_count(0)
    expect(held.get_by_role("row", name=re.compile("Bank Portal"))).not_to_have_count(0)

    # The browser will not submit a date past the input's max; the server refuses one sent anyway.
    expect(page.get_by_label("On date")).to_have_attribute("max", today.isoformat())
    page.goto(re.sub(r"date=[0-9-]+", f"date={future:%Y-%m-%d}", page.url))
    expect(page.get_by_role("alert")).to_have_text("Choose today or a past date.")
    expect(page.get_by_role("table")).to_have_count(0)


def test_orphan_filter_shows_exactly_the_planted_orphan_accounts(page, login):
    login(page, "oscar")
    nav(page).get_by_role("link", name="Accounts").click()
    expect(page.get_by_role("heading", name="Accounts")).to_be_visible()
    expect(result_links(page).first).to_be_visible()

    page.get_by_label("Orphan").select_option(label="Yes")
    expect(page).to_have_url(re.compile(r"[?&]orphan=true"))
    # Orphan rows link only to the account (there is no identity to link to), so one link per row.
    expect(result_links(page)).to_have_count(len(PLANTED_ORPHANS))
    assert set(result_links(page).all_inner_texts()) == PLANTED_ORPHANS
    rows = page.locator("#results").get_by_role("table").get_by_role("row")
    expect(rows.filter(has_text="orphan")).to_have_count(len(PLANTED_ORPHANS))


def test_a_second_admin_approves_raised_connector_thresholds_on_the_imports_page(page, login):
    from entitlements.models import Application, Connector
    from entitlements.thresholds import thresholds_change
    from evidence.services import Actor
    from soxgov.models import User
    from soxgov.roles import Role
    from soxgov.services import user_create

    alice = User.objects.get(username="alice")
    user_create(
        actor=Actor.for_user(alice),
        username="bert",
        email="bert@northwind.example",
        password="bert-demo-2026",
        roles=[Role.ADMIN],
    )
    connector = Connector.objects.create(
        name="Ledger nightly",
        kind="access_file",
        application=Application.objects.order_by("pk").first(),
        configuration={"path": "/srv/ledger.csv"},
    )
    change = thresholds_change(connector_id=connector.pk, user=alice, percent=40, count=20, reason="clean-up")

    login(page, "alice")
    page.goto("/imports/")
    pending = page.locator("#threshold-changes")
    expect(pending.get_by_role("row", name=re.compile("Ledger nightly"))).to_contain_text("40% and 20")
    expect(pending.get_by_role("button", name="Approve")).to_have_count(0)  # not by the proposer
    expect(pending.get_by_role("button", name="Withdraw")).to_have_count(1)

    page.get_by_role("button", name="Log out").click()
    login(page, "bert")
    page.goto("/imports/")
    pending = page.locator("#threshold-changes")
    pending.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status")).to_have_text(f"Threshold change #{change.pk} approved.")
    expect(page.locator("#threshold-changes")).to_have_count(0)
    connector.refresh_from_db()
    assert connector.deletion_threshold_percent == 40
    assert page.js_errors == []
