"""Real Chromium against the live server and the seeded demo company: the exception queue, the dashboard and
remediation.

The demo seed runs the hygiene checks, so the control owners' queue already holds exceptions of several kinds
(SoD violations, terminated people with enabled accounts, orphan and dormant accounts, non-human identities
without an owner). Every test logs in through the real login form; selectors go by role, label and visible
text. What a test expects is worked out from the database with the ORM, not copied from the page under test.
"""

from __future__ import annotations

import datetime as dt
import re
import statistics
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone
from playwright.sync_api import expect

from entitlements.models import Grant
from reviews import services as review_services
from reviews.models import Campaign, RemediationTask, ReviewItem
from sod import exceptions as exception_services
from sod.hygiene import run_hygiene
from sod.models import ControlException, ExceptionNote
from soxgov.models import User
from tests.browser.pages import nav

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path("/usr/bin/chromium").exists(),
        reason="/usr/bin/chromium is missing: these tests drive Debian's Chromium (apt-get install chromium)",
    ),
]

EXCEPTION_HREF = re.compile(r"^/exceptions/(\d+)/$")
PAGE_SIZE = settings.SOXGOV_PAGE_SIZE  # read now: one_page_queue raises it for some tests
Kind = ControlException.Kind
Status = ControlException.Status


def user(username: str) -> User:
    return User.objects.get(username=username)


def live_exceptions():
    return ControlException.objects.filter(status__in=ControlException.LIVE)


def first_live(kind: str) -> ControlException:
    exception = live_exceptions().filter(kind=kind).order_by("pk").first()
    assert exception is not None, f"the demo seed should leave a live {kind} exception"
    return exception


def results_table(page):
    return page.locator("#results").get_by_role("table")


def exception_rows(page):
    """The data rows of the queue (the "No exceptions match." row has no link)."""
    return results_table(page).get_by_role("row").filter(has=page.get_by_role("link"))


def shown_exception_ids(page) -> list[int]:
    hrefs = (
        results_table(page)
        .get_by_role("link")
        .evaluate_all("links => links.map(link => link.getAttribute('href'))")
    )
    return [int(match[1]) for href in hrefs if (match := EXCEPTION_HREF.match(href))]


def counts(page, region: str):
    return page.get_by_role("region", name=region).get_by_role("article")


def expect_count(box, n: int, label: str):
    expect(box).to_have_text(re.compile(rf"^\s*{n}\s*{re.escape(label)}\s*$"))


def kind_box(page, label: str):
    """One box of "Live exceptions by kind", by its link (kind labels share words, so match exactly)."""
    return counts(page, "Live exceptions by kind").filter(
        has=page.get_by_role("link", name=label, exact=True)
    )


def filter_select(page, label: str):
    """A select of the filter form (its accessible name is the label followed by the chosen option)."""
    return page.get_by_role("search").get_by_label(re.compile(rf"^{label}\b"))


def action_form(page, heading: str):
    """One of the forms under an exception, by its heading (the forms have no accessible name)."""
    return page.locator("form").filter(has=page.get_by_role("heading", name=heading, exact=True))


def status_line(page):
    """The paragraph under the title: severity, kind, status (and "until" for an answered exception)."""
    return page.get_by_role("main").locator("h1 + p")


def log_rows(page):
    log = page.get_by_role("table").filter(has=page.get_by_role("columnheader", name="What", exact=True))
    return log.locator("tbody").get_by_role("row")


def csrf(page) -> dict[str, str]:
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    return {"X-CSRFToken": token}


def log_out(page):
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in to SOXGov")).to_be_visible()


def open_queue(page):
    """Follow the nav link and wait for the load event: htmx (deferred) is then listening."""
    nav(page).get_by_role("link", name="Exceptions").click()
    expect(page).to_have_url(re.compile(r"/exceptions/\?status=live$"))
    expect(page.get_by_role("heading", name="Exceptions", level=1)).to_be_visible()
    page.wait_for_load_state("load")


def backdate(exception: ControlException, days: int) -> None:
    ControlException.objects.filter(pk=exception.pk).update(
        opened_at=timezone.now() - dt.timedelta(days=days)
    )


def expected_age_buckets() -> list[tuple[str, int]]:
    now = timezone.now()
    live = live_exceptions()

    def older(days):
        return now - dt.timedelta(days=days)

    return [
        ("under 7 days", live.filter(opened_at__gt=older(7)).count()),
        ("7-30 days", live.filter(opened_at__lte=older(7), opened_at__gt=older(30)).count()),
        ("30-90 days", live.filter(opened_at__lte=older(30), opened_at__gt=older(90)).count()),
        ("over 90 days", live.filter(opened_at__lte=older(90)).count()),
    ]


@pytest.fixture
def one_page_queue(settings):
    """Pages large enough for the whole demo queue (67 live exceptions) on one page.

    Paging past the first page of the queue crashes (see test_the_queue_pages_through_more_than_one_page);
    the tests that are about something else look at one page so that they test what they are about.
    ``settings`` is process-wide, so the live server's thread sees it too.
    """
    settings.SOXGOV_PAGE_SIZE = 500


# --- 1. The queue: counts, htmx filter, assign, comment ---------------------------------------------------------


def test_the_queue_pages_through_more_than_one_page(page, login):
    live = live_exceptions()
    assert live.count() > PAGE_SIZE, "the demo queue should span two pages"
    login(page, "oscar")
    with page.expect_response(re.compile(r"/exceptions/\?status=live$")) as first:
        nav(page).get_by_role("link", name="Exceptions").click()
    assert first.value.status == 200
    expect(exception_rows(page)).to_have_count(PAGE_SIZE)
    first_page = shown_exception_ids(page)
    page.get_by_role("link", name="Next").click()
    expect(exception_rows(page)).to_have_count(live.count() - PAGE_SIZE)
    assert sorted(first_page + shown_exception_ids(page)) == sorted(live.values_list("pk", flat=True))


def test_control_owner_filters_the_queue_by_kind_and_assigns_and_comments_an_exception(
    page, login, one_page_queue
):
    # Two exceptions made older, so the age boxes have more than one bucket to tell apart.
    backdate(first_live(Kind.DORMANT_ACCOUNT), 40)
    backdate(first_live(Kind.ORPHAN_ACCOUNT), 120)
    live = live_exceptions()
    by_kind = {kind: live.filter(kind=kind).count() for kind in Kind.values}
    assert by_kind[Kind.TERMINATED_ACCESS] >= 2 and len([n for n in by_kind.values() if n]) >= 4
    terminated = live.filter(kind=Kind.TERMINATED_ACCESS)
    target = terminated.order_by("due_on", "pk").first()

    login(page, "oscar")
    open_queue(page)
    for value, label in Kind.choices:
        expect_count(kind_box(page, label), by_kind[value], label)
    buckets = expected_age_buckets()
    assert dict(buckets)["30-90 days"] == 1 and dict(buckets)["over 90 days"] == 1
    ages = counts(page, "Live exceptions by age")
    for label, n in buckets:
        expect_count(ages.filter(has_text=label), n, f"open {label}")
    expect(exception_rows(page)).to_have_count(live.count())

    # The kind filter swaps the rows in place (htmx): a marker on window survives only without a reload.
    page.evaluate("window.__soxgovNoReload = 'still here'")
    filter_select(page, "Kind").select_option(label="Terminated person with an enabled account")
    expect(page).to_have_url(re.compile(r"/exceptions/\?(.*&)?kind=terminated_access(&|$)"))
    expect(exception_rows(page)).to_have_count(terminated.count())
    assert sorted(shown_exception_ids(page)) == sorted(terminated.values_list("pk", flat=True))
    for row in exception_rows(page).all():
        expect(row).to_contain_text("Terminated person with an enabled account")
        expect(row).to_contain_text("unassigned")
    assert page.evaluate("window.__soxgovNoReload") == "still here"
    expect_count(kind_box(page, "Orphan account"), by_kind[Kind.ORPHAN_ACCOUNT], "Orphan account")

    results_table(page).get_by_role("link", name=str(target.pk), exact=True).click()
    expect(page).to_have_url(re.compile(rf"/exceptions/{target.pk}/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(target.title)
    expect(status_line(page)).to_contain_text("Terminated person with an enabled account")
    expect(status_line(page)).to_contain_text("Open")
    expect(log_rows(page)).to_have_text(["Nothing yet."])

    assign = action_form(page, "Assign")
    assign.get_by_label("Assign to").select_option(label="oscar")
    assign.get_by_role("button", name="Assign").click()
    expect(page.get_by_role("status")).to_have_text("Done.")
    owner = page.get_by_role("definition").filter(has_text="Oscar Lindqvist")
    expect(owner).to_have_count(1)

    comment = action_form(page, "Comment or record remediation")
    comment.get_by_label("Comment").fill("Asked HR to confirm the leaving date; ticket IAM-4711 disables it.")
    comment.get_by_label("This records remediation work").check()
    comment.get_by_role("button", name="Add").click()
    expect(page.get_by_role("status")).to_have_text("Done.")

    rows = log_rows(page)
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("assigned")
    expect(rows.nth(0)).to_contain_text("to Oscar Lindqvist")
    expect(rows.nth(0)).to_contain_text("(oscar)")
    expect(rows.nth(1)).to_contain_text("remediation")
    expect(rows.nth(1)).to_contain_text("ticket IAM-4711 disables it")
    expect(rows.nth(1)).to_contain_text("(oscar)")
    target.refresh_from_db()
    assert target.owner == user("oscar") and target.status == Status.OPEN
    assert list(ExceptionNote.objects.filter(exception=target).values_list("action", flat=True)) == [
        "assigned",
        "remediation_noted",
    ]

    # "Assigned to me" now finds exactly this one.
    open_queue(page)
    filter_select(page, "Assigned to me").select_option(label="Yes")
    expect(page).to_have_url(re.compile(r"[?&]mine=true(&|$)"))
    expect(exception_rows(page)).to_have_count(1)
    assert shown_exception_ids(page) == [target.pk]
    expect(exception_rows(page)).to_contain_text("Oscar Lindqvist")
    assert page.js_errors == []


def test_the_exception_log_names_each_action_in_words(page, login):
    exception = first_live(Kind.ORPHAN_ACCOUNT)
    oscar = user("oscar")
    exception_services.comment(exception_id=exception.pk, user=oscar, text="Owner found.", remediation=True)
    exception_services.request_acceptance(
        exception_id=exception.pk,
        user=oscar,
        justification="Owner confirms it is needed.",
        until=timezone.localdate() + dt.timedelta(days=30),
    )
    login(page, "oscar")
    page.goto(exception.get_absolute_url())
    expect(log_rows(page)).to_have_count(2)
    # The page is loaded: read without waiting.
    assert [row.get_by_role("cell").nth(1).inner_text() for row in log_rows(page).all()] == [
        "remediation noted",
        "acceptance requested",
    ]


# --- 2. Close with proof; the next hygiene run reopens a condition that still holds ----------------------------


def test_closing_needs_proof_and_the_next_hygiene_run_opens_the_condition_again(page, login):
    exception = first_live(Kind.ORPHAN_ACCOUNT)
    key = exception.key

    login(page, "oscar")
    page.goto(exception.get_absolute_url())
    expect(status_line(page)).to_contain_text("Open")
    close = action_form(page, "Close with proof")
    # Blank proof (spaces pass the browser's "required" check; the server strips them).
    close.get_by_label("Proof").fill("   ")
    close.get_by_role("button", name="Close").click()
    expect(page.get_by_role("alert")).to_contain_text("Not done")
    expect(page.get_by_role("alert")).to_contain_text("Proof")
    expect(status_line(page)).to_contain_text("Open")
    exception.refresh_from_db()
    assert exception.status == Status.OPEN and exception.closed_at is None
    assert not exception.notes.exists()

    proof = "Account disabled in Accounts Payable, see change CHG-2291."
    action_form(page, "Close with proof").get_by_label("Proof").fill(proof)
    action_form(page, "Close with proof").get_by_role("button", name="Close").click()
    expect(page.get_by_role("status")).to_have_text("Done.")
    expect(status_line(page)).to_contain_text("Closed")
    closed = page.get_by_role("definition").filter(has_text="closed with proof")
    expect(closed).to_contain_text("by Oscar Lindqvist")
    expect(closed).to_contain_text(f"Proof: {proof}")
    expect(page.get_by_role("main").get_by_role("button")).to_have_count(0)  # closed: nothing more to do
    expect(log_rows(page).filter(has_text=proof)).to_contain_text("closed")
    exception.refresh_from_db()
    assert (exception.status, exception.closed_by, exception.proof) == (Status.CLOSED, user("oscar"), proof)
    assert not live_exceptions().filter(key=key).exists()

    # The account is still orphaned: closing did not fix it, so the next hygiene run opens it again.
    opened, closed_now = run_hygiene()
    assert (opened, closed_now) == (1, 0)
    again = live_exceptions().get(key=key)
    assert again.pk != exception.pk and again.status == Status.OPEN and again.owner is None

    page.goto("/exceptions/?status=live&kind=orphan_account")
    expect(exception_rows(page)).to_have_count(live_exceptions().filter(kind=Kind.ORPHAN_ACCOUNT).count())
    expect(results_table(page).get_by_role("link", name=str(again.pk), exact=True)).to_be_visible()
    expect(results_table(page).get_by_role("link", name=str(exception.pk), exact=True)).to_have_count(0)
    page.goto("/exceptions/?status=closed")
    expect(exception_rows(page)).to_have_count(1)
    assert shown_exception_ids(page) == [exception.pk]
    assert page.js_errors == []


# --- 3. Four eyes on a non-SoD exception ---------------------------------------------------------------------


def test_risk_acceptance_of_an_exception_needs_a_second_person(page, login):
    exception = first_live(Kind.DORMANT_ACCOUNT)
    until = timezone.localdate() + dt.timedelta(days=45)
    justification = "Quarter-end batch account; used once a quarter by design."

    login(page, "oscar")
    page.goto(exception.get_absolute_url())
    expect(action_form(page, "Mitigate")).to_have_count(1)  # a non-SoD exception is answered here
    accept = action_form(page, "Accept the risk")
    accept.get_by_label("Justification").fill(justification)
    accept.get_by_label("Accepted until").fill(until.isoformat())
    accept.get_by_role("button", name="Request acceptance").click()

    expect(page.get_by_role("status")).to_have_text("Done.")
    requested = page.get_by_role("definition").filter(has_text=justification)
    expect(requested).to_have_text(f"by Oscar Lindqvist until {until.isoformat()}: {justification}")
    expect(page.get_by_text("Another person must decide the pending risk acceptance.")).to_be_visible()
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    expect(page.get_by_role("button", name="Reject")).to_have_count(0)
    expect(page.get_by_role("button", name="Request acceptance")).to_have_count(0)  # one pending at a time
    expect(status_line(page)).to_contain_text("Open")
    exception.refresh_from_db()
    assert exception.acceptance_requested_by == user("oscar") and exception.acceptance_until == until

    # Nor can he approve it by posting the approve form himself.
    response = page.request.post(
        f"/exceptions/{exception.pk}/approve/", form={"note": "self-approved"}, headers=csrf(page)
    )
    assert response.ok
    assert "someone else must decide it" in response.text()
    exception.refresh_from_db()
    assert exception.status == Status.OPEN and exception.acceptance_requested_by == user("oscar")

    log_out(page)
    login(page, "alice")
    page.goto(exception.get_absolute_url())
    expect(page.get_by_text("Another person must decide the pending risk acceptance.")).to_have_count(0)
    decide = page.get_by_role("article").filter(has_text="Decide the risk acceptance")
    decide.get_by_placeholder("Note").fill("Agreed: reviewed with the batch owner.")
    decide.get_by_role("button", name="Approve").click()

    expect(page.get_by_role("status")).to_have_text("Done.")
    expect(status_line(page)).to_contain_text(f"Risk accepted until {until.isoformat()}")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    expect(page.get_by_role("term").filter(has_text="Risk acceptance requested")).to_have_count(0)
    expect(log_rows(page).last).to_contain_text("accepted")
    expect(log_rows(page).last).to_contain_text("Agreed: reviewed with the batch owner.")
    expect(log_rows(page).last).to_contain_text("(alice)")
    exception.refresh_from_db()
    assert (exception.status, exception.answered_until) == (Status.ACCEPTED, until)
    assert exception.acceptance_requested_by is None
    assert page.js_errors == []


# --- 4. An SoD exception is answered on its violation ------------------------------------------------------------


def test_an_sod_exception_links_to_its_violation_and_offers_no_mitigate_or_accept(page, login):
    exception = first_live(Kind.SOD_VIOLATION)
    violation = exception.violation

    login(page, "oscar")
    page.goto(exception.get_absolute_url())
    expect(page.get_by_role("heading", level=1)).to_have_text(exception.title)
    expect(status_line(page)).to_contain_text("SoD violation")
    expect(action_form(page, "Assign")).to_have_count(1)
    expect(action_form(page, "Close with proof")).to_have_count(1)
    expect(action_form(page, "Mitigate")).to_have_count(0)
    expect(action_form(page, "Accept the risk")).to_have_count(0)
    expect(page.get_by_role("button", name="Request acceptance")).to_have_count(0)
    expect(page.get_by_role("button", name="Mitigate until")).to_have_count(0)

    # Posting the mitigate form anyway is refused by the service.
    response = page.request.post(
        f"/exceptions/{exception.pk}/mitigate/",
        form={
            "control": "Weekly review",
            "until": (timezone.localdate() + dt.timedelta(days=30)).isoformat(),
        },
        headers=csrf(page),
    )
    assert response.ok
    assert "mitigated or accepted on its violation" in response.text()
    exception.refresh_from_db()
    assert exception.status == Status.OPEN and exception.answered_until is None

    page.reload()
    link = page.get_by_role("link", name=str(violation), exact=True)
    expect(link).to_have_attribute("href", violation.get_absolute_url())
    link.click()
    expect(page).to_have_url(re.compile(rf"/sod/violations/{violation.pk}/$"))
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Violation #{violation.pk}")
    assert page.js_errors == []


# --- 5. Dashboard; read-only auditor; reviewer refused ----------------------------------------------------------


def test_auditor_sees_the_dashboard_charts_and_reads_exceptions_without_acting(page, login, one_page_queue):
    # Some history for the figures: three certified items (review lag), one exception past due.
    rita = user("rita")
    campaign = Campaign.objects.get(name__startswith="SOX access review ")
    pending = ReviewItem.objects.filter(reviewer=rita, status=ReviewItem.Status.PENDING).order_by("pk")
    certified = list(pending.values_list("pk", flat=True)[:3])
    review_services.decide(item_ids=certified, user=rita, certify=True, comment="Checked with the lead.")
    late = first_live(Kind.NHI_WITHOUT_OWNER)
    ControlException.objects.filter(pk=late.pk).update(due_on=timezone.localdate() - dt.timedelta(days=2))

    overdue = live_exceptions().filter(due_on__lt=timezone.localdate()).count()
    lags = []
    for item in ReviewItem.objects.filter(pk__in=certified):
        first_seen = Grant.objects.get(
            account_id=item.account_id, entitlement_id=item.entitlement_id
        ).first_seen
        lags.append((item.decided_at - first_seen).total_seconds() / 86400)
    items = ReviewItem.objects.filter(campaign=campaign)
    total, decided = items.count(), items.exclude(status=ReviewItem.Status.PENDING).count()
    assert overdue >= 1 and decided == 3

    login(page, "audrey")
    nav(page).get_by_role("link", name="Dashboard").click()
    expect(page).to_have_url(re.compile(r"/dashboard/$"))
    expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()
    expect(page.locator('canvas[data-drawn="true"]')).to_have_count(3)
    for name in ("Open exceptions by age", "Open exceptions by kind", "Campaign completion"):
        expect(page.get_by_role("img", name=name)).to_have_attribute("data-drawn", "true")

    headline = counts(page, "Headline figures")
    expect_count(headline.filter(has_text="past due"), overdue, "exceptions past due")
    lag = headline.filter(has_text="review lag")
    expect(lag).to_contain_text(f"{statistics.median(lags):,.1f} days of review lag")
    expect(lag).to_contain_text("n=3)")
    expect(headline.filter(has_text="to remediate")).to_contain_text("n=0)")
    kinds = page.get_by_role("img", name="Open exceptions by kind")
    for value, label in Kind.choices:
        expect(kinds).to_contain_text(f"{label}: {live_exceptions().filter(kind=value).count()}.")
    row = page.get_by_role("row").filter(has_text=campaign.name)
    expect(row).to_contain_text(f"{decided} / {total} ({round(100 * decided / total)}%)")

    # The exception page: read-only for the auditor, and the action URLs refuse her.
    exception = first_live(Kind.TERMINATED_ACCESS)
    open_queue(page)
    results_table(page).get_by_role("link", name=str(late.pk), exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(late.title)
    page.goto(exception.get_absolute_url())
    expect(page.get_by_role("heading", level=1)).to_have_text(exception.title)
    expect(page.get_by_role("heading", name="Log")).to_be_visible()
    main = page.get_by_role("main")
    expect(main.get_by_role("button")).to_have_count(0)
    expect(main.get_by_role("textbox")).to_have_count(0)
    expect(main.locator("form")).to_have_count(0)
    for action, form in [
        ("close", {"proof": "Auditor closing it."}),
        ("assign", {"owner": str(user("audrey").pk)}),
        ("comment", {"text": "Auditor was here."}),
    ]:
        response = page.request.post(
            f"/exceptions/{exception.pk}/{action}/", form=form, headers=csrf(page), max_redirects=0
        )
        assert response.status == 403, action
    exception.refresh_from_db()
    assert exception.status == Status.OPEN and exception.owner is None and not exception.notes.exists()

    log_out(page)
    login(page, "rita")
    expect(nav(page).get_by_role("link", name="Exceptions")).to_have_count(0)
    expect(nav(page).get_by_role("link", name="Dashboard")).to_have_count(0)
    for path in ("/exceptions/", "/dashboard/", exception.get_absolute_url()):
        assert page.goto(path).status == 403, path
        expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    assert page.js_errors == []


# --- 6. Remediation: a manual close needs proof -----------------------------------------------------------------


def test_control_owner_closes_a_remediation_task_manually_only_with_proof(page, login):
    rita = user("rita")
    item = (
        ReviewItem.objects.filter(reviewer=rita, status=ReviewItem.Status.PENDING)
        .select_related("application")
        .order_by("pk")
        .first()
    )
    review_services.decide(item_ids=[item.pk], user=rita, certify=False, comment="Left the team in May.")
    task = RemediationTask.objects.get(item=item)
    assert task.status == RemediationTask.Status.OPEN

    login(page, "oscar")
    nav(page).get_by_role("link", name="Remediation").click()
    expect(page).to_have_url(re.compile(r"/reviews/remediation/\?status=open$"))
    expect(page.get_by_role("heading", name="Remediation", level=1)).to_be_visible()
    row = results_table(page).get_by_role("row").filter(has=page.get_by_role("link", name=str(task.pk)))
    expect(row).to_contain_text(task.account_key)
    expect(row).to_contain_text(task.entitlement_key)
    expect(row).to_contain_text(item.application.name)
    expect(row).to_contain_text("Open")
    row.get_by_role("link", name=str(task.pk), exact=True).click()

    expect(page).to_have_url(re.compile(rf"/reviews/remediation/{task.pk}/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text(
        f"Remove {task.entitlement_key} from {task.account_key} in {item.application.name}"
    )
    close = action_form(page, "Close manually")
    close.get_by_label("What proves the access is gone").fill("Removed by hand in the admin console.")
    close.get_by_role("button", name="Close with proof").click()
    expect(page.get_by_role("alert")).to_contain_text("Not closed: A manual close needs proof")
    task.refresh_from_db()
    assert task.status == RemediationTask.Status.OPEN and task.closed_at is None

    close = action_form(page, "Close manually")
    close.get_by_label("What proves the access is gone").fill("Removed by hand in the admin console.")
    # By name: the label "Ticket reference" of this form points at the tracking form's field (see
    # test_the_manual_close_form_labels_its_own_ticket_field).
    close.locator("input[name=ticket]").fill("SNOW-CHG-1042")
    close.get_by_role("button", name="Close with proof").click()
    expect(page.get_by_role("status")).to_have_text("Closed manually, with proof.")
    expect(page.get_by_role("main").get_by_text("Closed manually, with proof", exact=True)).to_be_visible()
    expect(page.get_by_role("definition").filter(has_text="SNOW-CHG-1042")).to_have_count(1)
    expect(
        page.get_by_role("definition").filter(has_text="Removed by hand in the admin console.")
    ).to_contain_text("by Oscar Lindqvist")
    expect(page.get_by_role("main").get_by_role("button")).to_have_count(0)
    task.refresh_from_db()
    assert (task.status, task.ticket, task.closed_by) == (
        RemediationTask.Status.MANUAL,
        "SNOW-CHG-1042",
        user("oscar"),
    )
    assert task.proof == "Removed by hand in the admin console."

    # The dashboard now counts one remediated task.
    nav(page).get_by_role("link", name="Dashboard").click()
    expect(page.locator('canvas[data-drawn="true"]')).to_have_count(3)
    expect(counts(page, "Headline figures").filter(has_text="to remediate")).to_contain_text("n=1)")
    assert page.js_errors == []


def test_the_manual_close_form_labels_its_own_ticket_field(page, login):
    rita = user("rita")
    item = ReviewItem.objects.filter(reviewer=rita, status=ReviewItem.Status.PENDING).order_by("pk").first()
    review_services.decide(item_ids=[item.pk], user=rita, certify=False, comment="Left the team in May.")
    task = RemediationTask.objects.get(item=item)

    login(page, "oscar")
    page.goto(task.get_absolute_url())
    expect(action_form(page, "Track").get_by_label("Ticket reference")).to_have_count(1)
    # The page is loaded: count without waiting.
    assert action_form(page, "Close manually").get_by_label("Ticket reference").count() == 1
