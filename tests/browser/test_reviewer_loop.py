"""Real Chromium: the reviewer's loop without friction. Decisions happen in place (no reload) and focus moves on;
the decide and sign-off bar stays in view; filters live in the URL; `c` on a flagged row asks for the comment;
a bulk certify applies the unflagged rows and names the flagged ones; each row says why it is yours; a mistaken
revoke is withdrawn from the item page and its remediation task cancelled."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from reviews import services
from reviews.models import RemediationTask, ReviewItem

from .test_review_flows import (
    PENDING,
    flag_select,
    open_my_reviews,
    queue,
    queue_rows,
    shown_item_ids,
    tick,
    user,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="/usr/bin/chromium is missing"),
]


def action_bar(page):
    return page.get_by_role("region", name="Decide and sign off")


def in_viewport(page, locator) -> bool:
    box = locator.bounding_box()
    height = page.viewport_size["height"]
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height + 1


def mark_no_reload(page):
    page.evaluate("window.__soxgovNoReload = 'still here'")


def assert_not_reloaded(page):
    assert page.evaluate("window.__soxgovNoReload") == "still here"


def test_decisions_happen_in_place_focus_moves_on_and_the_bar_stays_in_view(page, login):
    page.set_viewport_size({"width": 1280, "height": 800})
    login(page, "rita")
    open_my_reviews(page)
    bar = action_bar(page)
    expect(bar.get_by_role("button", name="Certify selected")).to_be_visible()
    assert in_viewport(page, bar), "the action bar should sit at the bottom of the window"
    page.mouse.wheel(0, 1500)
    page.wait_for_timeout(200)
    assert page.evaluate("window.scrollY") > 500 and in_viewport(page, bar)

    # Each row says why it is hers and who the person is.
    first_rows = queue_rows(page).all_inner_texts()
    assert all("Yours: " in text for text in first_rows)
    assert any(re.search(r"Yours: (manager|owner) of ", text) for text in first_rows)

    # Filters are in the URL: a reload shows the same filtered queue.
    flag_select(page).select_option(label="privileged")
    expect(page).to_have_url(re.compile(r"[?&]flag=privileged(&|$)"))
    page.reload()
    page.wait_for_load_state("load")
    expect(flag_select(page)).to_have_value("privileged")
    flag_select(page).select_option(label="Any")
    expect(page).to_have_url(re.compile(r"[?&]flag=(&|$)"))
    expect(page.locator(".htmx-request, .htmx-swapping, .htmx-settling")).to_have_count(0)

    ids = shown_item_ids(page)
    by_pk = ReviewItem.objects.in_bulk(ids)
    clean = [n for n, pk in enumerate(ids) if not by_pk[pk].needs_comment]
    flagged = [n for n, pk in enumerate(ids) if by_pk[pk].needs_comment]
    assert len(clean) >= 5 and len(flagged) >= 2, "the demo's first page should mix flagged and clean rows"

    # A bulk certify in place: no reload, and focus on the row after the last one decided.
    mark_no_reload(page)
    a, b = clean[0], clean[1]
    following = ids[b + 1]
    tick(page, by_pk[ids[a]]).check()
    tick(page, by_pk[ids[b]]).check()
    bar.get_by_role("button", name="Certify selected").click()
    expect(page.get_by_role("status")).to_have_text("2 items certified.")
    assert_not_reloaded(page)
    expect(queue(page).locator(f'tr[data-item="{following}"]')).to_be_focused()

    # Certify without a comment, two clean rows and a flagged one: the clean ones are certified, the flagged one
    # is named, stays ticked, and the comment box is where to write next.
    held = by_pk[ids[flagged[0]]]
    clean_two = [by_pk[ids[n]] for n in clean[2:4]]
    for item in [*clean_two, held]:
        tick(page, item).check()
    bar.get_by_role("button", name="Certify selected").click()
    expect(page.get_by_role("status")).to_have_text("2 items certified.")
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text(f"1 flagged item not certified: {held}")
    expect(alert).to_contain_text("certifying them needs a comment")
    expect(tick(page, held)).to_be_checked()
    comment = bar.get_by_label("Comment / justification")
    expect(comment).to_be_focused()
    assert {i.status for i in ReviewItem.objects.filter(pk__in=[i.pk for i in clean_two])} == {"certified"}
    held.refresh_from_db()
    assert held.status == PENDING
    comment.fill("Known exception, mitigated by the monthly report.")
    bar.get_by_role("button", name="Certify selected").click()
    expect(page.get_by_role("status")).to_have_text("1 item certified.")
    held.refresh_from_db()
    assert (held.status, held.comment) == ("certified", "Known exception, mitigated by the monthly report.")
    assert_not_reloaded(page)

    # `c` on a flagged row asks why, as `r` does; dismissing decides nothing, answering certifies that row.
    target = next(
        item
        for item in ReviewItem.objects.filter(pk__in=shown_item_ids(page), status=PENDING)
        if item.needs_comment
    )
    row = queue(page).locator(f'tr[data-item="{target.pk}"]')
    position = shown_item_ids(page).index(target.pk)
    for _ in range(len(shown_item_ids(page))):
        page.keyboard.press("k")  # to the first row, wherever focus was
    for _ in range(position):
        page.keyboard.press("j")
    expect(row).to_be_focused()
    prompts: list[str] = []
    page.once("dialog", lambda dialog: (prompts.append(dialog.message), dialog.dismiss()))
    page.keyboard.press("c")
    page.wait_for_timeout(300)
    target.refresh_from_db()
    assert target.status == PENDING
    page.once(
        "dialog", lambda dialog: (prompts.append(dialog.message), dialog.accept("Covered by control C-12."))
    )
    with page.expect_response(lambda response: response.url.endswith("/reviews/decide/")):
        page.keyboard.press("c")
    expect(page.get_by_role("status")).to_have_text("1 item certified.")
    target.refresh_from_db()
    assert (target.status, target.comment) == ("certified", "Covered by control C-12.")
    labels = ", ".join(target.comment_flag_labels)
    assert prompts == [f"This item is flagged ({labels}): why certify it? (required)"] * 2
    assert_not_reloaded(page)
    assert page.js_errors == []


def test_a_mistaken_revoke_is_withdrawn_on_the_item_page_and_its_task_cancelled(page, login):
    rita = user("rita")
    item = next(i for i in ReviewItem.objects.filter(reviewer=rita, status=PENDING) if not i.needs_comment)
    services.decide(item_ids=[item.pk], user=rita, certify=False, comment="Thought he had left")
    task = RemediationTask.objects.get(item=item, status=RemediationTask.Status.OPEN)

    login(page, "rita")
    page.goto("/reviews/?status=revoked")
    row = queue(page).locator(f'tr[data-item="{item.pk}"]')
    row.get_by_role("link", name=f"Change the decision on {item}").click()
    expect(page).to_have_url(re.compile(rf"/reviews/items/{item.pk}/$"))
    page.get_by_text("Change this decision").click()
    page.get_by_label("Why you change it (required)").fill("Wrong person: he is still in accounts payable.")
    page.get_by_role("button", name="Withdraw the revocation: certify").click()
    expect(page.get_by_role("status")).to_have_text("Decision changed: now certified.")
    item.refresh_from_db()
    task.refresh_from_db()
    assert item.status == "certified" and task.status == RemediationTask.Status.CANCELLED
    decisions = page.get_by_role("table").filter(has=page.get_by_role("columnheader", name="What"))
    expect(decisions.get_by_role("row")).to_have_count(3)  # header, the revoke, the certification
    expect(decisions).to_contain_text("Wrong person: he is still in accounts payable.")

    # Certified now: until she signs off, the page offers the other way round.
    page.get_by_text("Change this decision").click()
    expect(page.get_by_role("button", name="Revoke instead")).to_be_visible()
    assert page.js_errors == []
