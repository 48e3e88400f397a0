"""Real Chromium against the live server and the seeded demo company: the SoD pages.

The demo seed imports docs/examples/sod-rules.csv, so the demo company already has rules and live violations.
Every test logs in through the real login form; selectors go by role, label and visible text. What a test
expects is worked out from the database with the ORM, not copied from the page under test.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from entitlements.models import Account, Entitlement, Grant, Identity
from evidence.services import Actor
from sod import services
from sod.checks import run_check
from sod.engine import Scope
from sod.models import Check, Risk, RiskAcceptance, Rule, RuleMember, Violation
from soxgov.models import User
from tests.browser.pages import nav

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path("/usr/bin/chromium").exists(),
        reason="/usr/bin/chromium is missing: these tests drive Debian's Chromium (apt-get install chromium)",
    ),
]

VIOLATION_HREF = re.compile(r"^/sod/violations/(\d+)/$")


def identity(name: str) -> Identity:
    return Identity.objects.get(display_name=name)


def user(username: str) -> User:
    return User.objects.get(username=username)


def results_table(page):
    return page.locator("#results").get_by_role("table")


def result_links(page):
    return results_table(page).get_by_role("row").get_by_role("link")


def violation_rows(page):
    """The data rows of the violations table (the "No violations match." row has no link)."""
    return results_table(page).get_by_role("row").filter(has=page.get_by_role("link"))


def shown_violation_ids(page) -> list[int]:
    hrefs = result_links(page).evaluate_all("links => links.map(link => link.getAttribute('href'))")
    return [int(match[1]) for href in hrefs if (match := VIOLATION_HREF.match(href))]


def stat(page, label: str):
    """One count above the violations list, e.g. the "Open" box."""
    return page.get_by_role("region", name="Counts").get_by_role("article").filter(has_text=label)


def expect_stat(page, label: str, n: int):
    expect(stat(page, label)).to_have_text(re.compile(rf"^\s*{n}\s*{re.escape(label)}\s*$"))


def filter_select(page, label: str):
    """A select of the filter form (its accessible name is the label followed by the chosen option)."""
    return page.get_by_role("search").get_by_label(re.compile(rf"^{label}\b"))


def action_form(page, heading: str):
    """One of the forms under a violation, by its heading (the forms have no accessible name)."""
    return page.locator("form").filter(has=page.get_by_role("heading", name=heading))


def table_with_column(page, header: str):
    """The table with this column header (Mitigations: "Control"; Risk acceptances: "Justification")."""
    return page.get_by_role("table").filter(has=page.get_by_role("columnheader", name=header, exact=True))


def status_heading(page):
    return page.get_by_role("heading", level=1)


def log_out(page):
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Log in to SOXGov")).to_be_visible()


def entitlement_label(entitlement: Entitlement) -> str:
    """How the rule and what-if forms label an entitlement option."""
    return f"{entitlement.application.name} / {entitlement.name} ({entitlement.entitlement_id})"


def entitlement(entitlement_id: str) -> Entitlement:
    return Entitlement.objects.select_related("application").get(entitlement_id=entitlement_id)


def grant(account: Account, entitlement_id: str) -> None:
    Grant.objects.get_or_create(
        account=account,
        entitlement=Entitlement.objects.get(application=account.application, entitlement_id=entitlement_id),
        defaults={"first_seen": timezone.now()},
    )


def request_acceptance(violation: Violation, by: str) -> RiskAcceptance:
    return services.acceptance_request(
        violation_id=violation.pk,
        user=user(by),
        justification="Seasonal cover while the team is short-staffed.",
        expires_on=timezone.localdate() + dt.timedelta(days=60),
    )


# --- 1. Rules -------------------------------------------------------------------------------------------------


def test_admin_creates_a_two_sided_rule_and_the_htmx_search_finds_it(page, login):
    vendor = entitlement("AP_VENDOR_CREATE")
    invoice, payment_run = entitlement("AP_INVOICE_ENTER"), entitlement("AP_PAYMENT_RUN")

    login(page, "alice")
    nav(page).get_by_role("link", name="SoD rules").click()
    expect(page.get_by_role("heading", name="SoD rules")).to_be_visible()
    page.get_by_role("button", name="New rule").click()
    expect(page.get_by_role("heading", name="New SoD rule")).to_be_visible()

    page.get_by_label("Rule id").fill("QA-77")
    page.get_by_label("Name", exact=True).fill("Maintain vendors and key invoices")
    page.get_by_label("Risk").select_option(label="High")
    page.get_by_label("Business process").fill("Procure to pay")
    page.get_by_label("Description").fill("One person could invent a vendor and invoice for it.")
    sides = [
        ("Vendor master", [vendor]),
        ("Invoices and payment runs", [invoice, payment_run]),  # two picks: a real multi-select
    ]
    for number, (name, entitlements) in enumerate(sides, start=1):
        side_name = page.get_by_label(f"Side {number}", exact=True)
        side_name.fill(name)
        picker = page.get_by_role("group").filter(has=side_name).get_by_role("listbox")
        picker.select_option(label=[entitlement_label(e) for e in entitlements])
    page.get_by_role("button", name="Save rule").click()

    rule = Rule.objects.get(code="QA-77")
    expect(page).to_have_url(re.compile(rf"/sod/rules/{rule.pk}/$"))
    expect(page.get_by_role("status")).to_contain_text("Rule saved")
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_contain_text("QA-77")
    expect(heading).to_contain_text("Maintain vendors and key invoices")
    expect(heading).to_contain_text("High")
    expect(page.get_by_role("heading", name="Sides")).to_be_visible()
    for name, entitlements in sides:
        card = page.get_by_role("article").filter(has_text=name)
        expect(card).to_have_count(1)
        expect(card.get_by_role("listitem")).to_have_count(len(entitlements))
        for e in entitlements:
            expect(card).to_contain_text(e.entitlement_id)
            expect(card.get_by_role("link", name=f"{e.application.name} / {e.name}")).to_be_visible()
    assert {(m.side.name, m.entitlement.entitlement_id) for m in RuleMember.objects.filter(rule=rule)} == {
        (name, e.entitlement_id) for name, entitlements in sides for e in entitlements
    }

    nav(page).get_by_role("link", name="SoD rules").click()
    expect(result_links(page).filter(has_text="P2P-01")).to_be_visible()
    page.evaluate("window.__soxgovNoReload = 'still here'")
    page.get_by_role("searchbox", name="Search").press_sequentially("vendors and key")
    expect(page).to_have_url(re.compile(r"/sod/rules/\?(.*&)?q=vendors(\+|%20)and(\+|%20)key(&|$)"))
    expect(result_links(page)).to_have_count(1)
    expect(result_links(page)).to_have_text("QA-77")
    row = results_table(page).get_by_role("row").filter(has=page.get_by_role("link", name="QA-77"))
    expect(row).to_contain_text("Procure to pay")
    expect(row).to_contain_text("High")
    assert page.evaluate("window.__soxgovNoReload") == "still here"
    expect(page.get_by_role("heading", name="SoD rules")).to_be_visible()
    assert page.js_errors == []


# --- 2. Violations: filter, open, mitigate ---------------------------------------------------------------


def test_control_owner_filters_violations_and_mitigates_one_refusing_an_expiry_not_after_today(page, login):
    critical = Violation.objects.filter(rule__risk=Risk.CRITICAL, status=Violation.Status.OPEN).order_by("pk")
    assert critical.count() >= 3, "the demo seed should leave several critical violations"
    # One critical violation is already mitigated, so the status filter has something to tell apart.
    already = critical.first()
    services.violation_mitigate(
        violation_id=already.pk,
        user=user("alice"),
        control="Weekly vendor master review",
        description="Finance reviews every new vendor.",
        owner=identity("Alice Nakamura"),
        frequency="weekly",
        expires_on=timezone.localdate() + dt.timedelta(days=90),
    )
    live_critical = Violation.objects.filter(rule__risk=Risk.CRITICAL, status__in=Violation.ACTIVE)
    open_critical = live_critical.filter(status=Violation.Status.OPEN)
    n_live, n_open = live_critical.count(), open_critical.count()
    target = open_critical.filter(identity__isnull=False).select_related("rule", "identity").order_by("pk")[0]

    login(page, "oscar")
    nav(page).get_by_role("link", name="Violations").click()
    expect(page.get_by_role("heading", name="SoD violations")).to_be_visible()
    expect(violation_rows(page)).to_have_count(Violation.objects.filter(status__in=Violation.ACTIVE).count())
    page.evaluate("window.__soxgovNoReload = 'still here'")

    filter_select(page, "Risk").select_option(label="Critical")
    expect(page).to_have_url(re.compile(r"[?&]risk=critical(&|$)"))
    expect(violation_rows(page)).to_have_count(n_live)
    expect(stat(page, "live high")).to_have_count(0)
    expect_stat(page, "live critical", n_live)
    expect_stat(page, "Open", n_open)
    expect_stat(page, "Mitigated", 1)
    for row in violation_rows(page).all():
        expect(row).to_contain_text("Critical")

    filter_select(page, "Status").select_option(label="Open")
    expect(page).to_have_url(re.compile(r"[?&]status=open(&|$)"))
    expect(violation_rows(page)).to_have_count(n_open)
    expect_stat(page, "Mitigated", 0)
    expect_stat(page, "Open", n_open)
    assert sorted(shown_violation_ids(page)) == sorted(open_critical.values_list("pk", flat=True))
    assert already.pk not in shown_violation_ids(page)
    assert page.evaluate("window.__soxgovNoReload") == "still here"

    results_table(page).get_by_role("link", name=str(target.pk), exact=True).click()
    expect(page).to_have_url(re.compile(rf"/sod/violations/{target.pk}/$"))
    expect(status_heading(page)).to_contain_text(f"Violation #{target.pk}: {target.holder}")
    expect(status_heading(page)).to_contain_text("Open")

    # The conflicting grants, by side: what the holder's accounts hold of each side of the rule.
    expect(page.get_by_role("heading", name="The conflicting grants")).to_be_visible()
    for side in target.rule.sides.all():
        held = Grant.objects.filter(account__identity=target.identity, entitlement__sod_sides=side)
        assert held.exists()
        card = page.get_by_role("article").filter(has=page.get_by_text(side.name, exact=True))
        for g in held.select_related("account", "entitlement"):
            expect(card).to_contain_text(g.entitlement.entitlement_id)
            expect(card).to_contain_text(f"via account {g.account.account_id}")

    mitigations = table_with_column(page, "Control")
    today = timezone.localdate()
    for bad_date in (today - dt.timedelta(days=3), today):
        form = action_form(page, "Mitigate with a compensating control")
        form.get_by_label("Compensating control").fill("Too late")
        form.get_by_label("Description").fill("Expires before it starts.")
        form.get_by_label("Owner").select_option(label="Oscar Lindqvist")
        form.get_by_label("Frequency").select_option(label="Monthly")
        form.get_by_label("Expires on").fill(bad_date.isoformat())
        form.get_by_role("button", name="Record mitigation").click()
        expect(page.get_by_role("alert")).to_contain_text("Not mitigated")
        expect(page.get_by_role("alert")).to_contain_text("Expires on: Must be after today")
        expect(status_heading(page)).to_contain_text("Open")
        expect(mitigations).to_contain_text("None.")
    target.refresh_from_db()
    assert target.status == Violation.Status.OPEN and not target.mitigations.exists()

    expires = today + dt.timedelta(days=120)
    form = action_form(page, "Mitigate with a compensating control")
    form.get_by_label("Compensating control").fill("Monthly payment run review")
    form.get_by_label("Description").fill("The controller reviews every payment run against approvals.")
    form.get_by_label("Owner").select_option(label="Oscar Lindqvist")
    form.get_by_label("Frequency").select_option(label="Monthly")
    form.get_by_label("Expires on").fill(expires.isoformat())
    form.get_by_role("button", name="Record mitigation").click()

    expect(page.get_by_role("status")).to_have_text("Mitigation recorded.")
    expect(status_heading(page)).to_contain_text("Mitigated")
    row = mitigations.get_by_role("row").filter(has_text="Monthly payment run review")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("The controller reviews every payment run")
    expect(row).to_contain_text("Oscar Lindqvist")
    expect(row).to_contain_text("Monthly")
    expect(row).to_contain_text(expires.isoformat())
    target.refresh_from_db()
    assert target.status == Violation.Status.MITIGATED
    assert page.js_errors == []


# --- 3. Four eyes ----------------------------------------------------------------------------------------


def test_risk_acceptance_needs_a_second_person_and_the_admin_approves_it(page, login):
    violation = Violation.objects.filter(status=Violation.Status.OPEN).order_by("pk")[0]
    until = timezone.localdate() + dt.timedelta(days=30)

    login(page, "oscar")
    page.goto(violation.get_absolute_url())
    expect(status_heading(page)).to_contain_text("Open")
    form = action_form(page, "Request risk acceptance")
    form.get_by_label("Justification").fill("Only two people in the team until the new hire starts.")
    form.get_by_label("Accepted until").fill(until.isoformat())
    form.get_by_role("button", name="Request acceptance").click()

    expect(page.get_by_role("status")).to_contain_text("another person must approve it")
    acceptances = table_with_column(page, "Justification")
    row = acceptances.get_by_role("row").filter(has_text="Only two people in the team")
    expect(row).to_contain_text("Requested")
    expect(row).to_contain_text("Oscar Lindqvist")  # the requesting user
    expect(row).to_contain_text(until.isoformat())
    expect(row).to_contain_text("Another person must decide.")
    expect(page.get_by_role("button", name="Approve")).to_have_count(0)
    expect(page.get_by_role("button", name="Reject")).to_have_count(0)
    expect(page.get_by_role("button", name="Request acceptance")).to_have_count(0)  # one pending at a time
    expect(status_heading(page)).to_contain_text("Open")

    # Nor can he approve it by posting the approve form himself.
    acceptance = RiskAcceptance.objects.get(violation=violation)
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.request.post(
        f"/sod/acceptances/{acceptance.pk}/approve/",
        form={"note": "self-approved"},
        headers={"X-CSRFToken": token},
    )
    # Refused as every four-eyes refusal is (soxgov/api/errors.py, the pages alike): 403, saying why.
    assert response.status == 403
    assert "someone else must decide it" in response.text()
    acceptance.refresh_from_db()
    assert acceptance.status == RiskAcceptance.Status.REQUESTED

    log_out(page)
    login(page, "alice")
    page.goto(violation.get_absolute_url())
    row = table_with_column(page, "Justification").get_by_role("row").filter(has_text="Only two people")
    expect(row.get_by_text("Another person must decide.")).to_have_count(0)
    row.get_by_placeholder("Note").fill("Agreed until the hire starts.")
    row.get_by_role("button", name="Approve").click()

    expect(page.get_by_role("status")).to_have_text("Risk acceptance approved.")
    expect(status_heading(page)).to_contain_text("Risk accepted")
    row = table_with_column(page, "Justification").get_by_role("row").filter(has_text="Only two people")
    expect(row).to_contain_text("Approved")
    expect(row).to_contain_text("Alice Nakamura")
    expect(row).to_contain_text("Agreed until the hire starts.")
    violation.refresh_from_db()
    acceptance.refresh_from_db()
    assert violation.status == Violation.Status.ACCEPTED
    assert acceptance.decided_by == user("alice")
    assert page.js_errors == []


def test_each_violation_action_form_labels_its_own_date_field(page, login):
    violation = Violation.objects.filter(status=Violation.Status.OPEN).order_by("pk")[0]
    login(page, "oscar")
    page.goto(violation.get_absolute_url())
    expect(
        action_form(page, "Mitigate with a compensating control").get_by_label("Expires on")
    ).to_have_count(1)
    # The page is loaded: count without waiting.
    assert action_form(page, "Request risk acceptance").get_by_label("Accepted until").count() == 1


# --- 4. What if ----------------------------------------------------------------------------------------


def half_of_a_rule() -> tuple[Identity, Rule, Entitlement]:
    """An active person who holds one side of a two-sided demo rule and nothing of the other, and an
    entitlement of the other side. P2P-01 first (the brief's example), then any rule."""
    rules = sorted(
        Rule.objects.filter(enabled=True, side_count=2), key=lambda rule: (rule.code != "P2P-01", rule.code)
    )
    for rule in rules:
        for have, lack in itertools.permutations(rule.sides.order_by("position", "pk")):
            holders = Identity.objects.filter(
                kind=Identity.Kind.HUMAN,
                status=Identity.Status.ACTIVE,
                accounts__grants__entitlement__in=have.entitlements.all(),
            ).exclude(accounts__grants__entitlement__in=lack.entitlements.all())
            person = holders.exclude(employee_id="").order_by("employee_id").first()
            if person is not None:
                return person, rule, lack.entitlements.select_related("application").order_by("pk")[0]
    raise AssertionError("no demo identity holds exactly one side of a two-sided rule")


def test_what_if_shows_the_rule_a_grant_would_complete_and_no_conflict_for_someone_else(page, login):
    person, rule, proposed = half_of_a_rule()
    rule_entitlements = Entitlement.objects.filter(sod_members__rule=rule)
    collides = (
        Grant.objects.filter(account__identity=person, entitlement__in=rule_entitlements)
        .select_related("account", "entitlement__application")
        .order_by("pk")
    )
    # Someone who holds nothing of any rule the proposed entitlement is on.
    touched = Entitlement.objects.filter(sod_members__rule__members__entitlement=proposed)
    bystander = (
        Identity.objects.filter(kind=Identity.Kind.HUMAN, status=Identity.Status.ACTIVE)
        .exclude(employee_id="")
        .exclude(accounts__grants__entitlement__in=touched)
        .order_by("employee_id")
        .first()
    )

    login(page, "alice")
    nav(page).get_by_role("link", name="SoD rules").click()
    page.get_by_role("link", name="What if …?").click()
    expect(page.get_by_role("heading", name="Would this grant create an SoD conflict?")).to_be_visible()

    page.get_by_label("Identity").fill(person.employee_id)
    page.get_by_role("listbox", name="Would be granted").select_option(label=entitlement_label(proposed))
    page.get_by_role("button", name="Check").click()

    expect(page).to_have_url(re.compile(rf"/sod/what-if/\?(.*&)?identity={person.employee_id}(&|$)"))
    expect(page.get_by_role("heading", name=re.compile(r"^\d+ rules? hit$"))).to_be_visible()
    hit = page.get_by_role("article").filter(has_text=rule.code)
    expect(hit).to_have_count(1)
    expect(hit).to_contain_text(rule.name)
    expect(hit).to_contain_text("this grant would create the conflict")
    expect(hit).not_to_contain_text("already in conflict")
    for g in collides:
        expect(hit).to_contain_text(
            f"{g.entitlement.application.name}/{g.entitlement.entitlement_id} via {g.account.account_id}"
        )
    side_row = hit.get_by_role("row").filter(
        has_text=f"{proposed.application.name}/{proposed.entitlement_id}"
    )
    expect(side_row).to_have_count(1)
    expect(page.get_by_text("No conflict")).to_have_count(0)

    page.get_by_label("Identity").fill(bystander.employee_id)
    page.get_by_role("listbox", name="Would be granted").select_option(label=entitlement_label(proposed))
    page.get_by_role("button", name="Check").click()
    expect(page).to_have_url(re.compile(rf"[?&]identity={bystander.employee_id}(&|$)"))
    expect(page.get_by_role("status")).to_contain_text("No conflict")
    expect(page.get_by_role("article")).to_have_count(0)

    # An identity the form cannot resolve is refused, not guessed.
    page.get_by_label("Identity").fill("nobody-at-all")
    page.get_by_role("listbox", name="Would be granted").select_option(label=entitlement_label(proposed))
    page.get_by_role("button", name="Check").click()
    expect(page.get_by_role("alert")).to_contain_text("No identity you can see matches 'nobody-at-all'")
    assert page.js_errors == []


# --- 5. Read-only and scope ----------------------------------------------------------------------------


def plant_conflicts_in_ritas_scope() -> dict[str, str]:
    """Give one of each kind of holder in Rita's scope a conflict, check, and return holder -> rule code."""
    rita = identity("Rita Okafor")
    report = Identity.objects.get(display_name="Deborah Kowalski", manager=rita)
    robot = Identity.objects.exclude(kind=Identity.Kind.HUMAN).get(display_name="AR dunning bot", owner=rita)
    orphan = Account.objects.get(account_id="temp.contractor7", identity=None, application__owner=rita)
    grant(Account.objects.get(identity=report, application__name="ERP General Ledger"), "GL_JE_APPROVE")
    grant(Account.objects.get(identity=robot), "AR_CREDIT_MEMO")
    grant(Account.objects.get(identity=robot), "AR_CASH_APPLY")
    grant(orphan, "AP_INVOICE_ENTER")
    grant(orphan, "AP_PAYMENT_RUN")
    run_check(Scope.everything(), trigger=Check.Trigger.MANUAL, actor=Actor.system("test"))
    return {
        "Deborah Kowalski": "R2R-01",
        "AR dunning bot": "O2C-01",
        "orphan account temp.contractor7 @ Accounts Payable": "P2P-02",
    }


def test_auditor_reads_a_violation_without_action_forms_and_reviewer_sees_only_her_scope(page, login):
    violation = (
        Violation.objects.filter(status=Violation.Status.OPEN).select_related("rule").order_by("pk")[0]
    )
    request_acceptance(violation, by="oscar")
    planted = plant_conflicts_in_ritas_scope()

    login(page, "audrey")
    nav(page).get_by_role("link", name="Violations").click()
    results_table(page).get_by_role("link", name=str(violation.pk), exact=True).click()
    expect(status_heading(page)).to_contain_text(f"Violation #{violation.pk}")
    expect(page.get_by_role("link", name=str(violation.rule))).to_be_visible()
    expect(page.get_by_role("heading", name="The conflicting grants")).to_be_visible()
    row = table_with_column(page, "Justification").get_by_role("row").filter(has_text="Seasonal cover")
    expect(row).to_contain_text("Requested")

    main = page.get_by_role("main")
    expect(main.get_by_role("button")).to_have_count(0)
    expect(main.get_by_role("textbox")).to_have_count(0)
    expect(main.get_by_role("heading", name="Mitigate with a compensating control")).to_have_count(0)
    expect(main.get_by_role("heading", name="Request risk acceptance")).to_have_count(0)
    expect(main.get_by_text("Another person must decide.")).to_have_count(0)

    log_out(page)
    rita = user("rita")
    in_scope = Violation.objects.restrict(rita)
    for holder, code in planted.items():
        assert in_scope.filter(
            holder__startswith=holder, rule__code=code, status=Violation.Status.OPEN
        ).exists()
    assert 0 < in_scope.count() < Violation.objects.count() <= 50  # one page; some are outside her scope
    outside = Violation.objects.exclude(pk__in=in_scope.values("pk")).order_by("pk")[0]

    login(page, "rita")
    expect(nav(page).get_by_role("link", name="SoD rules")).to_have_count(0)
    nav(page).get_by_role("link", name="Violations").click()
    expect(page.get_by_role("heading", name="SoD violations")).to_be_visible()
    filter_select(page, "Status").select_option(label="Any")
    expect(page).to_have_url(re.compile(r"/sod/violations/\?(.*&)?status=(&|$)"))
    expect(violation_rows(page)).to_have_count(in_scope.count())
    assert sorted(shown_violation_ids(page)) == sorted(in_scope.values_list("pk", flat=True))
    for holder, code in planted.items():
        expect(violation_rows(page).filter(has_text=holder)).to_contain_text(code)
    expect(violation_rows(page).filter(has_text=outside.holder)).to_have_count(0)
    expect_stat(page, "Open", in_scope.filter(status=Violation.Status.OPEN).count())

    # She may look at one of hers, read-only; one outside her scope does not exist for her.
    mine = in_scope.get(holder__startswith="AR dunning bot")
    results_table(page).get_by_role("link", name=str(mine.pk), exact=True).click()
    expect(status_heading(page)).to_contain_text("AR dunning bot")
    expect(page.get_by_role("main").get_by_role("button")).to_have_count(0)
    assert page.goto(outside.get_absolute_url()).status == 404

    response = page.goto("/sod/rules/")
    assert response.status == 403
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    assert page.goto("/sod/what-if/").status == 403
    assert page.js_errors == []
