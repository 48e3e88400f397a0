"""Real Chromium against the live server and the seeded demo company: the access-review campaign pages.

The demo seed launches a quarterly campaign ("SOX access review <year> Q<n>", privileged and sensitive SOX
access routed to managers, fallback Rita), so Rita has a queue waiting in "My reviews". Every test logs in
through the real login form; selectors go by role, label and visible text. What a test expects is worked out
from the database with the ORM, not copied from the page under test.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone
from playwright.sync_api import expect

from entitlements.models import Grant
from reviews import services
from reviews.models import Campaign, Decision, ReviewItem, SignOff
from soxgov.models import User
from tests.browser.pages import nav

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path("/usr/bin/chromium").exists(),
        reason="/usr/bin/chromium is missing: these tests drive Debian's Chromium (apt-get install chromium)",
    ),
]

ITEM_HREF = re.compile(r"^/reviews/items/(\d+)/$")
PAGE_SIZE = settings.SOXGOV_PAGE_SIZE
PENDING = ReviewItem.Status.PENDING


def user(username: str) -> User:
    return User.objects.get(username=username)


def demo_campaign() -> Campaign:
    return Campaign.objects.get(name__startswith="SOX access review ")


def pending_of(username: str, campaign: Campaign | None = None):
    items = ReviewItem.objects.filter(reviewer=user(username), status=PENDING)
    return items.filter(campaign=campaign) if campaign else items


def queue(page):
    """The table of "My reviews" (inside the htmx-swapped results)."""
    return page.locator("#results").get_by_role("table")


def queue_rows(page):
    """The item rows of the queue (each links to its item; the group and "No items match." rows do not)."""
    return queue(page).get_by_role("row").filter(has=page.get_by_role("link"))


def shown_item_ids(page) -> list[int]:
    hrefs = queue(page).get_by_role("link").evaluate_all("links => links.map(l => l.getAttribute('href'))")
    return [int(match[1]) for href in hrefs if (match := ITEM_HREF.match(href))]


def tick(page, item: ReviewItem):
    """The row checkbox of a pending item (its accessible name is "Select <item>")."""
    return queue(page).get_by_role("checkbox", name=f"Select {item}", exact=True)


def filter_select(page, label: str):
    """A select of the filter form (its accessible name is the label followed by the chosen option)."""
    return page.get_by_role("search").get_by_label(re.compile(rf"^{label}\b"))


def flag_select(page):
    """The flag filter, found by its options."""
    search = page.get_by_role("search")
    return search.get_by_role("combobox").filter(has=page.get_by_role("option", name="privileged"))


def progress_text(page):
    return page.locator("#results").get_by_text(re.compile(r"^\d+ of \d+ decided"))


def expect_progress(page, decided: int, total: int):
    percent = round(100 * decided / total) if total else 0
    expect(progress_text(page)).to_have_text(f"{decided} of {total} decided ({percent}%)")
    expect(page.get_by_role("progressbar", name="My progress")).to_have_attribute("value", str(percent))


def bulk_button(page, name: str):
    return page.locator("#results").get_by_role("button", name=name, exact=True)


def sign_off_card(page, campaign: Campaign):
    return page.get_by_role("article").filter(has=page.get_by_role("link", name=campaign.name, exact=True))


def stat(page, label: str):
    """One count above a campaign's progress tables, e.g. the "pending" box."""
    return page.get_by_role("region", name="Campaign counts").get_by_role("article").filter(has_text=label)


def expect_stat(page, label: str, n: int):
    expect(stat(page, label)).to_have_text(re.compile(rf"^\s*{n}\s*{re.escape(label)}\s*$"))


def table_after(page, heading: str):
    """The table that follows a heading ("By reviewer", "By application"): the first with that column (the
    "How each reviewer reviewed" table below has a Reviewer column too)."""
    return (
        page.get_by_role("table")
        .filter(
            has=page.get_by_role("columnheader", name=heading.removeprefix("By ").capitalize(), exact=True)
        )
        .first
    )


def csrf(page) -> dict[str, str]:
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    return {"X-CSRFToken": token}


def open_my_reviews(page):
    """Follow the nav link and wait for the load event: htmx and reviews.js (deferred) are then listening."""
    nav(page).get_by_role("link", name="My reviews").click()
    expect(page).to_have_url(re.compile(r"/reviews/$"))
    expect(page.get_by_role("heading", name="My reviews", level=1)).to_be_visible()
    page.wait_for_load_state("load")


def delegate_to(page, username: str, reason: str) -> None:
    """Open "Delegate the selected items" under the queue, name the person, give the reason, submit."""
    page.wait_for_load_state("load")  # a previous submission's page must have settled first
    delegate = page.get_by_role("group").filter(has_text="Delegate the selected items")
    delegate.get_by_text("Delegate the selected items").click()
    delegate.get_by_label(re.compile(r"^Delegate to")).fill(username)
    delegate.get_by_label("Reason").fill(reason)
    with page.expect_navigation():
        delegate.get_by_role("button", name="Delegate", exact=True).click()


# --- 1. The reviewer's queue ------------------------------------------------------------------------------


def test_reviewer_filters_her_queue_and_certifies_revokes_and_delegates_rows(page, login):
    rita = user("rita")
    campaign = demo_campaign()
    mine = ReviewItem.objects.filter(reviewer=rita)
    total = mine.count()
    privileged = pending_of("rita").filter(privileged=True)
    assert PAGE_SIZE < total <= 2 * PAGE_SIZE and 0 < privileged.count() < PAGE_SIZE, (
        "the demo queue should span two pages"
    )
    # A search term: the entitlement with the most pending items that certify without a comment.
    alice = user("alice")
    own = pending_of("rita").filter(identity_id=alice.identity_id).order_by("pk").first()
    assert own is not None, "the demo queue should hold an item about Alice's own access"
    clean = [i for i in pending_of("rita").exclude(pk=own.pk).order_by("pk") if not i.needs_comment]
    term = Counter(i.entitlement_name for i in clean).most_common(1)[0][0]
    matching = pending_of("rita").filter(
        Q(identity_name__icontains=term)
        | Q(account_key__icontains=term)
        | Q(entitlement_name__icontains=term)
        | Q(entitlement_key__icontains=term)
    )
    to_certify = [i for i in clean if i.entitlement_name == term][:3]
    n_matching = matching.count()
    assert len(to_certify) == 3 and n_matching > 4

    login(page, "rita")
    open_my_reviews(page)
    expect(sign_off_card(page, campaign)).to_contain_text(f"{total} items, {total} pending")
    expect(sign_off_card(page, campaign).get_by_role("button")).to_have_count(0)  # nothing decided yet
    expect(queue_rows(page)).to_have_count(PAGE_SIZE)
    expect_progress(page, 0, total)
    # Two pages of pending work, neither repeating nor losing a row.
    first_page = shown_item_ids(page)
    page.get_by_role("link", name="Next").click()
    expect(queue_rows(page)).to_have_count(total - PAGE_SIZE)
    assert set(first_page).isdisjoint(shown_item_ids(page))
    assert sorted(first_page + shown_item_ids(page)) == sorted(
        pending_of("rita").values_list("pk", flat=True)
    )
    expect(page.get_by_role("link", name="Next")).to_have_count(0)
    page.get_by_role("link", name="Previous").click()
    expect(queue_rows(page).first.get_by_role("link")).to_have_attribute(
        "href", f"/reviews/items/{first_page[0]}/"
    )
    assert shown_item_ids(page) == first_page

    # Filters swap the rows in place (htmx): a marker on window survives only if the page is not reloaded.
    page.evaluate("window.__soxgovNoReload = 'still here'")
    flag_select(page).select_option(label="privileged")
    expect(page).to_have_url(re.compile(r"/reviews/\?(.*&)?flag=privileged(&|$)"))
    expect(queue_rows(page)).to_have_count(privileged.count())
    assert all("privileged" in text for text in queue_rows(page).all_inner_texts())
    assert sorted(shown_item_ids(page)) == sorted(privileged.values_list("pk", flat=True))

    flag_select(page).select_option(label="Any")
    page.get_by_role("searchbox", name="Search").press_sequentially(term)
    expect(page).to_have_url(re.compile(r"[?&]q=[^&]+"))
    expect(queue_rows(page)).to_have_count(n_matching)
    assert sorted(shown_item_ids(page)) == sorted(matching.values_list("pk", flat=True))
    assert page.evaluate("window.__soxgovNoReload") == "still here"
    expect(page.get_by_role("heading", name="My reviews", level=1)).to_be_visible()

    # Certify three unflagged rows.
    for item in to_certify:
        tick(page, item).check()
    bulk_button(page, "Certify selected").click()
    expect(page.get_by_role("status")).to_have_text("3 items certified.")
    for item in to_certify:
        item.refresh_from_db()
        assert (item.status, item.decided_by) == (ReviewItem.Status.CERTIFIED, rita)
        expect(tick(page, item)).to_have_count(0)  # the queue shows pending items: they left it
    expect_progress(page, 3, total)
    expect(page.get_by_role("searchbox", name="Search")).to_have_value(term)  # back to the same filter
    expect(queue_rows(page)).to_have_count(n_matching - 3)

    # Revoke without a justification: refused, nothing changes.
    victim = matching.exclude(pk__in=[own.pk, *(i.pk for i in to_certify)]).order_by("pk").first()
    tick(page, victim).check()
    bulk_button(page, "Revoke selected").click()
    expect(page.get_by_role("alert")).to_contain_text("A revocation needs a justification.")
    victim.refresh_from_db()
    assert victim.status == PENDING and not victim.decisions.exists()
    expect_progress(page, 3, total)

    # With one: revoked.
    tick(page, victim).check()
    page.locator("#results").get_by_label("Comment / justification").fill("Moved to treasury in May.")
    bulk_button(page, "Revoke selected").click()
    expect(page.get_by_role("status")).to_have_text("1 item revoked.")
    victim.refresh_from_db()
    assert victim.status == ReviewItem.Status.REVOKED and victim.comment == "Moved to treasury in May."
    expect(tick(page, victim)).to_have_count(0)
    expect_progress(page, 4, total)

    # Delegate, with a reason. Never to the person whose access it is: Alice may not review her own grant.
    handed = (
        pending_of("rita")
        .filter(entitlement_name=own.entitlement_name)
        .exclude(identity_id=alice.identity_id)
        .order_by("pk")
        .first()
    )
    search = page.get_by_role("searchbox", name="Search")
    # Wait for the filtered table itself: the delegate form lives in it, and a late swap would detach it.
    with page.expect_response(lambda response: "/reviews/" in response.url and "q=" in response.url):
        search.fill(own.entitlement_name)
    # A locator, not wait_for_function: that evaluates a string, which the page's CSP (no 'unsafe-eval') refuses.
    expect(page.locator(".htmx-request, .htmx-swapping, .htmx-settling")).to_have_count(0)
    expect(tick(page, own)).to_be_visible()
    for item, outcome in [
        (own, "Not delegated: Alice Nakamura is the subject of 1 of these items and may not review them."),
        (handed, "1 item delegated to Alice Nakamura."),
    ]:
        tick(page, item).check()
        delegate_to(page, "alice", "Alice owns the directory groups now.")
        expect(page.get_by_role("alert" if item is own else "status")).to_have_text(outcome)
        expect(search).to_have_value(own.entitlement_name)  # back to the same filter
    own.refresh_from_db()
    assert own.reviewer == rita and not own.decisions.exists()
    expect(tick(page, own)).to_be_visible()
    expect(tick(page, handed)).to_have_count(0)  # it left her queue
    handed.refresh_from_db()
    assert handed.reviewer == alice and handed.status == PENDING
    decision = Decision.objects.get(item=handed, action=Decision.Action.DELEGATE)
    assert (decision.actor, decision.delegated_to, decision.comment) == (
        rita,
        alice,
        "Alice owns the directory groups now.",
    )
    # Her progress counts her own items: one fewer now.
    expect_progress(page, 4, total - 1)

    # Select-all ticks every row on the page, and unticks them.
    open_my_reviews(page)
    boxes = queue(page).get_by_role("checkbox", name=re.compile(r"^Select (?!all)"))
    expect(boxes).to_have_count(PAGE_SIZE)
    select_all = queue(page).get_by_role("checkbox", name="Select all rows on this page")
    select_all.check()
    expect(boxes.last).to_be_checked()
    assert boxes.evaluate_all("boxes => boxes.map(box => box.checked)") == [True] * PAGE_SIZE
    select_all.uncheck()
    expect(boxes.last).not_to_be_checked()
    assert boxes.evaluate_all("boxes => boxes.map(box => box.checked)") == [False] * PAGE_SIZE

    # Keyboard: j/k move, x ticks the focused row, c certifies the focused row (only that one).
    page.reload()
    page.wait_for_load_state("load")
    ids = shown_item_ids(page)
    by_pk = ReviewItem.objects.in_bulk(ids)
    target = next(n for n, pk in enumerate(ids) if n >= 1 and not by_pk[pk].needs_comment)
    rows = queue_rows(page)
    page.keyboard.press("j")
    expect(rows.nth(0)).to_be_focused()
    page.keyboard.press("j")
    expect(rows.nth(1)).to_be_focused()
    page.keyboard.press("k")
    expect(rows.nth(0)).to_be_focused()
    page.keyboard.press("x")
    expect(tick(page, by_pk[ids[0]])).to_be_checked()
    for _ in range(target):
        page.keyboard.press("j")
    expect(rows.nth(target)).to_be_focused()
    page.keyboard.press("c")
    expect(page.get_by_role("status")).to_have_text("1 item certified.")
    certified, first = by_pk[ids[target]], by_pk[ids[0]]
    certified.refresh_from_db()
    first.refresh_from_db()
    assert certified.status == ReviewItem.Status.CERTIFIED and certified.decided_by == rita
    assert first.status == PENDING  # ticked with x, but c decides the focused row alone
    expect_progress(page, 5, total - 1)

    # Decided in place: no reload, and the row that followed the certified one has the focus.
    expect(queue_rows(page).nth(target)).to_be_focused()
    expect(queue_rows(page).nth(target)).to_have_attribute("data-item", str(ids[target + 1]))
    # r asks why; cancelling the prompt revokes nothing, answering it revokes the focused row.
    prompts: list[str] = []
    for _ in range(target):
        page.keyboard.press("k")
    expect(queue_rows(page).nth(0)).to_be_focused()
    page.once("dialog", lambda dialog: (prompts.append(dialog.message), dialog.dismiss()))
    page.keyboard.press("r")
    page.once(
        "dialog", lambda dialog: (prompts.append(dialog.message), dialog.accept("Not needed since May."))
    )
    page.keyboard.press("r")
    expect(page.get_by_role("status")).to_have_text("1 item revoked.")
    assert prompts == ["Why revoke this access? (required)"] * 2
    first.refresh_from_db()
    assert (first.status, first.comment) == (ReviewItem.Status.REVOKED, "Not needed since May.")
    expect_progress(page, 6, total - 1)
    assert ReviewItem.objects.filter(reviewer=rita).exclude(status=PENDING).count() == 6
    assert page.js_errors == []


def test_my_reviews_flag_filter_is_labelled_flag(page, login):
    login(page, "rita")
    open_my_reviews(page)
    expect(flag_select(page)).to_have_count(1)
    # The page is loaded: look without waiting.
    assert "[invalid name]" not in page.get_by_role("search").inner_text()
    assert filter_select(page, "Flag").count() == 1


# --- 2. Sign-off ----------------------------------------------------------------------------------------


def test_reviewer_signs_off_once_everything_is_decided_and_is_then_locked(page, login):
    rita = user("rita")
    campaign = demo_campaign()
    total = ReviewItem.objects.filter(reviewer=rita, campaign=campaign).count()

    login(page, "rita")
    open_my_reviews(page)
    card = sign_off_card(page, campaign)
    expect(card).to_contain_text(f"{total} items, {total} pending")
    expect(card.get_by_role("button")).to_have_count(0)

    # The rest of the queue is decided through the service (176 clicks would prove nothing more).
    pending = list(pending_of("rita", campaign).order_by("pk").values_list("pk", flat=True))
    revoked, certified = pending[:2], pending[2:]
    services.decide(item_ids=revoked, user=rita, certify=False, comment="No longer in the team.")
    services.decide(item_ids=certified, user=rita, certify=True, comment="Checked with the team lead.")
    assert not pending_of("rita", campaign).exists()

    page.reload()
    expect(card).to_contain_text(f"{total} items, 0 pending")
    expect_progress(page, total, total)
    expect(queue(page)).to_contain_text("Everything is decided: sign off in the bar below.")
    expect(card).to_contain_text("ready to sign off")
    bar = page.get_by_role("region", name="Decide and sign off")
    # The attestation must be confirmed: the browser refuses the form until it is ticked.
    bar.get_by_role("button", name=f"Sign off {campaign.name}").click()
    assert not SignOff.objects.filter(campaign=campaign, reviewer=rita).exists()
    bar.get_by_role("checkbox", name=re.compile(r"^I reviewed each access")).check()
    bar.get_by_role("button", name=f"Sign off {campaign.name}").click()

    expect(page.get_by_role("status")).to_have_text(
        f"Signed off your part of {campaign.name}. Your decisions are locked."
    )
    expect(page).to_have_url(re.compile(rf"/reviews/\?campaign={campaign.pk}&status=$"))
    expect(card.get_by_text("signed off", exact=True)).to_be_visible()
    expect(card.get_by_role("button")).to_have_count(0)
    expect(queue_rows(page)).to_have_count(min(total, PAGE_SIZE))  # status "Any": the decided items
    expect(queue(page).get_by_role("checkbox", name=re.compile(r"^Select (?!all)"))).to_have_count(0)
    record = SignOff.objects.get(campaign=campaign, reviewer=rita)
    assert record.items == total
    assert not ReviewItem.objects.filter(campaign=campaign, reviewer=rita, signed_off=False).exists()

    # Later decisions are refused, from the browser and through the service; the item page offers none.
    item = ReviewItem.objects.get(pk=revoked[0])
    response = page.request.post(
        "/reviews/decide/",
        form={"item": str(item.pk), "action": "certify", "comment": "Changed my mind."},
        headers=csrf(page),
    )
    assert response.ok
    assert "You signed off these decisions; they are locked." in response.text()
    with pytest.raises(ValidationError, match="locked"):
        services.decide(item_ids=[item.pk], user=rita, certify=True, comment="Changed my mind.")
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.REVOKED and item.comment == "No longer in the team."
    page.goto(item.get_absolute_url())
    expect(page.get_by_role("heading", level=1)).to_contain_text(item.identity_name)
    expect(page.get_by_role("main").get_by_role("button", name="Certify")).to_have_count(0)
    expect(page.get_by_role("main").get_by_role("button", name="Revoke")).to_have_count(0)
    assert page.js_errors == []


# --- 3. Admin: new campaign, preview, launch, monitor ----------------------------------------------------------


def test_admin_creates_previews_and_launches_a_campaign_and_watches_progress(page, login):
    today = timezone.localdate()
    grants = Grant.objects.filter(account__application__name="Accounts Payable").count()
    assert grants > 3

    login(page, "alice")
    nav(page).get_by_role("link", name="Campaigns").click()
    expect(page.get_by_role("heading", name="Review campaigns")).to_be_visible()
    expect(page.locator("#results").get_by_role("link", name=demo_campaign().name)).to_be_visible()
    page.get_by_role("button", name="New campaign").click()
    expect(page.get_by_role("heading", name="New review campaign")).to_be_visible()

    page.get_by_label("Name", exact=True).fill("AP access review (QA)")
    page.get_by_label(re.compile(r"^Description")).fill("Every grant in Accounts Payable.")
    page.get_by_label(re.compile(r"^Applications")).select_option(label="Accounts Payable")
    page.get_by_label(re.compile(r"^Routing")).select_option(value=Campaign.Routing.MANAGER)
    page.get_by_label(re.compile(r"^Fallback reviewer")).select_option(label="Rita Okafor (rita)")
    page.get_by_label(re.compile(r"^Start on")).fill(today.isoformat())
    # A due date before the start is refused, and nothing is saved.
    page.get_by_label(re.compile(r"^Due on")).fill((today - dt.timedelta(days=1)).isoformat())
    page.get_by_role("button", name="Save draft and preview").click()
    expect(page.get_by_text("The due date must not be before the start date.")).to_be_visible()
    assert not Campaign.objects.filter(name="AP access review (QA)").exists()

    due = today + dt.timedelta(days=30)
    page.get_by_label(re.compile(r"^Due on")).fill(due.isoformat())
    page.get_by_role("button", name="Save draft and preview").click()

    campaign = Campaign.objects.get(name="AP access review (QA)")
    assert campaign.status == Campaign.Status.DRAFT
    assert list(campaign.applications.values_list("name", flat=True)) == ["Accounts Payable"]
    expect(page).to_have_url(re.compile(rf"/reviews/campaigns/{campaign.pk}/preview/$"))
    expect(page.get_by_role("status")).to_contain_text("Campaign saved as a draft")
    expect(page.get_by_role("heading", name=f"Preview: {campaign.name}")).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text(
        f"Launching now would create {grants} review items, one per grant in scope, due {due:%Y-%m-%d}."
    )
    by_app = table_after(page, "By application")
    expect(by_app.get_by_role("row")).to_have_count(2)  # header + Accounts Payable
    expect(by_app.get_by_role("row").nth(1)).to_have_text(re.compile(rf"^\s*Accounts Payable\s*{grants}\s*$"))
    by_reviewer = table_after(page, "By reviewer")
    previewed = {}
    for row in by_reviewer.get_by_role("row").all()[1:]:
        name, n = row.get_by_role("cell").all_inner_texts()
        previewed[name.strip()] = int(n)
    assert sum(previewed.values()) == grants

    page.get_by_role("button", name="Launch campaign").click()
    expect(page).to_have_url(re.compile(rf"/reviews/campaigns/{campaign.pk}/$"))
    expect(page.get_by_role("status")).to_have_text(f"Launched: {grants} items routed to their reviewers.")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Active")
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.ACTIVE and campaign.item_count == grants
    items = ReviewItem.objects.filter(campaign=campaign)
    # What the preview promised is exactly what launch snapshotted.
    assert dict(Counter(i.reviewer.display_name for i in items.select_related("reviewer"))) == previewed
    expect(page.get_by_role("heading", name="Progress")).to_be_visible()
    expect_stat(page, "items", grants)
    expect_stat(page, "pending", grants)
    expect_stat(page, "certified", 0)
    expect(page.get_by_role("progressbar", name="Campaign progress")).to_have_attribute("value", "0")
    reviewers = table_after(page, "By reviewer")
    expect(reviewers.get_by_role("row")).to_have_count(1 + len(previewed))
    for name, n in previewed.items():
        expect(reviewers.get_by_role("row").filter(has_text=name)).to_contain_text(str(n))
    expect(
        table_after(page, "By application").get_by_role("row").filter(has_text="Accounts Payable")
    ).to_have_text(re.compile(rf"^\s*Accounts Payable\s*{grants}\s*{grants}\s*0\s*0\s*$"))
    expect(page.get_by_role("button", name="Close campaign")).to_have_count(0)  # not before sign-off

    # Decisions made elsewhere show up on reload.
    rita = user("rita")
    hers = list(items.filter(reviewer=rita).order_by("pk").values_list("pk", flat=True))
    assert len(hers) >= 3
    services.decide(item_ids=hers[:2], user=rita, certify=True, comment="Fine.")
    services.decide(item_ids=hers[2:3], user=rita, certify=False, comment="Left the team.")
    page.reload()
    expect_stat(page, "pending", grants - 3)
    expect_stat(page, "certified", 2)
    expect_stat(page, "revoked", 1)
    expect(page.get_by_role("progressbar", name="Campaign progress")).to_have_attribute(
        "value", str(round(100 * 3 / grants))
    )
    row = reviewers.get_by_role("row").filter(has_text="Rita Okafor")
    expect(row).to_contain_text(f"{round(100 * 3 / len(hers))}%")
    expect(row.get_by_role("cell")).to_have_text(
        ["Rita Okafor", f"{round(100 * 3 / len(hers))}%", str(len(hers) - 3), "2", "1", "0", "—"]
    )
    assert page.js_errors == []


# --- 4. Auditor: read-only ----------------------------------------------------------------------------------


def test_auditor_reads_campaigns_without_management_buttons_and_cannot_decide(page, login):
    campaign = demo_campaign()
    draft = Campaign.objects.create(
        name="Draft review for the auditor",
        fallback_reviewer=user("rita"),
        created_by=user("alice"),
        start_on=timezone.localdate(),
        due_on=timezone.localdate() + dt.timedelta(days=10),
    )
    item = pending_of("rita", campaign).order_by("pk").first()

    login(page, "audrey")
    nav(page).get_by_role("link", name="Campaigns").click()
    expect(page.get_by_role("heading", name="Review campaigns")).to_be_visible()
    results = page.locator("#results")
    expect(results.get_by_role("link", name=campaign.name)).to_be_visible()
    expect(results.get_by_role("link", name=draft.name)).to_be_visible()
    expect(page.get_by_role("button", name="New campaign")).to_have_count(0)

    results.get_by_role("link", name=campaign.name).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(campaign.name)
    expect(page.get_by_role("heading", level=1)).to_contain_text("Active")
    expect(page.get_by_role("heading", name="Progress")).to_be_visible()
    expect_stat(page, "items", campaign.item_count)
    main = page.get_by_role("main")
    # Her one action only reads: exporting the evidence pack (a POST form: no GET builds anything).
    expect(main.get_by_role("button")).to_have_count(1)
    expect(main.get_by_role("button", name="Export evidence pack")).to_have_count(1)
    expect(main.get_by_role("link", name="Draw a sample for testing")).to_have_count(1)
    expect(main.get_by_role("link", name="Preview and launch")).to_have_count(0)
    expect(main.get_by_role("link", name="Edit")).to_have_count(0)

    page.goto(draft.get_absolute_url())
    expect(page.get_by_role("heading", level=1)).to_contain_text("Draft")
    expect(main.get_by_role("button")).to_have_count(0)
    expect(main.get_by_role("link", name="Preview and launch")).to_have_count(0)
    expect(main.get_by_role("link", name="Edit")).to_have_count(0)
    assert page.goto(f"/reviews/campaigns/{draft.pk}/preview/").status == 403
    assert page.goto("/reviews/campaigns/new/").status == 403

    open_my_reviews(page)
    expect(queue_rows(page)).to_have_count(0)
    expect(queue(page)).to_contain_text("No items match.")
    expect(page.get_by_role("article").filter(has_text=campaign.name)).to_have_count(0)
    expect_progress(page, 0, 0)

    for path, form in [
        ("/reviews/decide/", {"item": str(item.pk), "action": "certify", "comment": "Looks fine to me."}),
        ("/reviews/delegate/", {"item": str(item.pk), "to_user": "oscar", "reason": "Not mine."}),
        (f"/reviews/campaigns/{draft.pk}/launch/", {}),
    ]:
        response = page.request.post(path, form=form, headers=csrf(page), max_redirects=0)
        assert response.status == 403, path
    item.refresh_from_db()
    draft.refresh_from_db()
    assert item.status == PENDING and item.reviewer == user("rita")
    assert draft.status == Campaign.Status.DRAFT
    assert page.js_errors == []


# --- 5. The item page -------------------------------------------------------------------------------------


def test_item_page_refuses_a_revoke_without_justification_and_a_bare_certify_of_a_flagged_item(page, login):
    rita = user("rita")
    item = (
        pending_of("rita")
        .filter(Q(terminated=True) | Q(orphan=True), sod_conflict=False)
        .order_by("identity_name", "pk")
        .first()
    )
    assert item is not None, "the demo queue should hold a terminated or orphan item"

    login(page, "rita")
    open_my_reviews(page)
    page.get_by_role("searchbox", name="Search").press_sequentially(item.account_key)
    expect(page).to_have_url(re.compile(r"[?&]q=[^&]+"))
    row = queue_rows(page).filter(has=page.get_by_role("checkbox", name=f"Select {item}", exact=True))
    row.get_by_role("link", name=item.entitlement_name).click()
    expect(page).to_have_url(re.compile(rf"/reviews/items/{item.pk}/$"))
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_have_text(f"{item.identity_name} holds {item.entitlement_name}")
    expect(page.get_by_role("main")).to_contain_text("terminated" if item.terminated else "orphan")

    comment = page.get_by_label("Comment / justification")
    expect(comment).to_have_attribute("placeholder", "Required: this item is flagged")
    page.get_by_role("button", name="Revoke", exact=True).click()
    expect(page).to_have_url(re.compile(rf"/reviews/items/{item.pk}/$"))
    expect(page.get_by_role("alert")).to_contain_text("A revocation needs a justification.")
    item.refresh_from_db()
    assert item.status == PENDING and not item.decisions.exists()

    page.get_by_role("button", name="Certify", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("certifying them needs a comment")
    item.refresh_from_db()
    assert item.status == PENDING

    comment.fill("Left in March; access was never removed.")
    page.get_by_role("button", name="Revoke", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("1 item revoked.")
    expect(page.get_by_role("main")).to_contain_text("Revoked by Rita Okafor at")
    decisions = page.get_by_role("table").filter(has=page.get_by_role("columnheader", name="Comment"))
    expect(decisions.get_by_role("row").filter(has_text="Left in March")).to_contain_text("Revoked")
    expect(page.get_by_role("button", name="Revoke", exact=True)).to_have_count(0)
    item.refresh_from_db()
    assert (item.status, item.decided_by, item.comment) == (
        ReviewItem.Status.REVOKED,
        rita,
        "Left in March; access was never removed.",
    )
    assert page.js_errors == []


# --- 6. Delegation to someone who may not decide ------------------------------------------------------------


def test_an_item_delegated_to_a_control_owner_can_be_decided_by_him_or_is_not_delegated(page, login):
    rita, oscar = user("rita"), user("oscar")
    item = (
        pending_of("rita")
        .exclude(identity_id=oscar.identity_id)
        .filter(terminated=False, orphan=False, sod_conflict=False)
        .order_by("pk")
        .first()
    )
    try:
        services.delegate(item_ids=[item.pk], user=rita, to_user=oscar, reason="Oscar owns this control.")
    except ValidationError:
        return  # refusing a delegate who may not decide is a correct answer too

    login(page, "oscar")
    open_my_reviews(page)
    tick(page, item).check()
    with page.expect_response(lambda response: response.url.endswith("/reviews/decide/")) as posted:
        bulk_button(page, "Certify selected").click()
    assert posted.value.status == 302, f"deciding a delegated item answered {posted.value.status}"
    expect(page.get_by_role("status")).to_have_text("1 item certified.")
    item.refresh_from_db()
    assert item.status == ReviewItem.Status.CERTIFIED and item.decided_by == oscar
