"""The control owners' queue: hygiene checks open and auto-close exceptions; actions are evidenced; four eyes."""

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.utils import timezone

from entitlements.models import Account, Identity
from evidence.models import EvidenceEvent
from sod import exceptions as actions
from sod.hygiene import run_hygiene
from sod.models import ControlException
from soxgov.roles import Role

TODAY = timezone.localdate()
Kind = ControlException.Kind


def live(kind=None):
    rows = ControlException.objects.filter(status__in=ControlException.LIVE)
    return set(rows.filter(kind=kind).values_list("key", flat=True)) if kind else rows


def test_each_hygiene_check_finds_its_condition(company):
    accounts = company["accounts"]
    bob = company["identities"]["bob"]
    Identity.objects.filter(pk=bob.pk).update(status="terminated", termination_date=TODAY)
    Identity.objects.create(employee_id="BOT9", display_name="orphan-bot", kind=Identity.Kind.BOT)
    old = timezone.now() - dt.timedelta(days=400)
    Account.objects.filter(pk=accounts["carol_erp"].pk).update(last_used_at=old)

    opened, closed = run_hygiene()

    assert live(Kind.ORPHAN_ACCOUNT) == {f"orphan_account:{accounts['orphan_crm'].pk}"}
    assert live(Kind.TERMINATED_ACCESS) == {f"terminated_access:{accounts['bob_erp'].pk}"}
    assert {e.title for e in live().filter(kind=Kind.NHI_WITHOUT_OWNER)} == {"Bot orphan-bot has no owner"}
    assert live(Kind.DORMANT_ACCOUNT) == {f"dormant_account:{accounts['carol_erp'].pk}"}
    assert (opened, closed) == (4, 0)
    terminated = live().get(kind=Kind.TERMINATED_ACCESS)
    assert terminated.severity == "critical" and terminated.due_on == TODAY + dt.timedelta(days=7)
    assert EvidenceEvent.objects.filter(action="exception.opened").count() == 4


def test_running_again_changes_nothing_and_a_fixed_condition_closes_automatically(company):
    run_hygiene()
    assert run_hygiene() == (0, 0)
    ghost = company["accounts"]["orphan_crm"]
    Account.objects.filter(pk=ghost.pk).update(identity=company["identities"]["carol"])

    assert run_hygiene() == (0, 1)

    closed = ControlException.objects.get(key=f"orphan_account:{ghost.pk}")
    assert closed.status == "closed" and closed.close_reason.startswith("condition no longer holds")
    assert EvidenceEvent.objects.get(action="exception.closed").payload_data["automatic"] is True


def test_overdue_revocations_and_reviews_and_sod_violations_become_exceptions(company, personas, make_user):
    from reviews import services as review_services
    from reviews.models import Campaign, RemediationTask, ReviewItem
    from sod.models import Rule, RuleMember, RuleSide, Violation

    alice, rita = personas["alice"], personas["rita"]
    # A fallback reviewer needs an identity (so their own access can be kept from them).
    alice.identity = Identity.objects.create(
        employee_id="E0", email="alice@example.com", display_name="Alice"
    )
    alice.save(update_fields=["identity"])
    campaign = Campaign.objects.create(
        name="Late review",
        start_on=TODAY - dt.timedelta(days=30),
        due_on=TODAY - dt.timedelta(days=1),
        fallback_reviewer=alice,
        created_by=alice,
    )
    review_services.campaign_launch(campaign_id=campaign.pk, user=alice)
    bob_item = ReviewItem.objects.get(campaign=campaign, account_key="bob")
    review_services.decide(item_ids=[bob_item.pk], user=rita, certify=False, comment="left the team")
    RemediationTask.objects.update(due_on=TODAY - dt.timedelta(days=1))
    rule = Rule.objects.create(code="R1", name="R1", side_count=2, risk="critical")
    for n, key in enumerate(("post", "view")):
        side = RuleSide.objects.create(rule=rule, name=key, position=n)
        RuleMember.objects.create(rule=rule, side=side, entitlement=company["entitlements"][key])
    now = timezone.now()
    violation = Violation.objects.create(
        rule=rule,
        identity=company["identities"]["carol"],
        holder="Carol",
        opened_at=now,
        status_changed_at=now,
    )

    run_hygiene()

    assert live(Kind.REVOCATION_OVERDUE) == {f"revocation_overdue:{RemediationTask.objects.get().pk}"}
    assert live(Kind.REVIEW_OVERDUE) == {
        f"review_overdue:{campaign.pk}:{rita.pk}",
        f"review_overdue:{campaign.pk}:{alice.pk}",
    }
    sod = live().get(kind=Kind.SOD_VIOLATION)
    assert (sod.violation, sod.severity) == (violation, "critical")
    # The SoD exception follows its violation's answers.
    Violation.objects.filter(pk=violation.pk).update(status="mitigated")
    run_hygiene()
    sod.refresh_from_db()
    assert sod.status == "mitigated"


@pytest.fixture
def exception(company):
    run_hygiene()
    return ControlException.objects.get(kind=Kind.ORPHAN_ACCOUNT)


@pytest.fixture
def owners(make_user, make_person):
    return {name: make_person(name, Role.CONTROL_OWNER) for name in ("oscar", "olga")} | {
        "audrey": make_user("audrey", Role.AUDITOR)
    }


def test_assign_comment_and_close_with_proof_are_logged_and_evidenced(exception, owners):
    oscar = owners["oscar"]
    actions.assign(exception_id=exception.pk, user=oscar, owner=owners["olga"])
    actions.comment(exception_id=exception.pk, user=oscar, text="Ticket IAM-7 raised", remediation=True)
    with pytest.raises(ValidationError, match="proof"):
        actions.close(exception_id=exception.pk, user=oscar, proof=" ")

    actions.close(exception_id=exception.pk, user=oscar, proof="Account disabled in CRM, see IAM-7")

    exception.refresh_from_db()
    assert (exception.status, exception.owner, exception.closed_by) == ("closed", owners["olga"], oscar)
    assert list(exception.notes.values_list("action", flat=True)) == [
        "assigned",
        "remediation_noted",
        "closed",
    ]
    assert {"exception.assigned", "exception.remediation_noted", "exception.closed"} <= set(
        EvidenceEvent.objects.values_list("action", flat=True)
    )
    # The condition still holds (the account is still an orphan): the next check opens a new exception.
    assert run_hygiene() == (1, 0)


def test_risk_acceptance_needs_another_person_and_expires(exception, owners):
    oscar, olga = owners["oscar"], owners["olga"]
    until = TODAY + dt.timedelta(days=30)
    actions.request_acceptance(
        exception_id=exception.pk, user=oscar, justification="Shared mailbox", until=until
    )
    with pytest.raises(PermissionDenied, match="someone else"):
        actions.decide_acceptance(exception_id=exception.pk, user=oscar, approve=True)

    actions.decide_acceptance(exception_id=exception.pk, user=olga, approve=True, note="ok until review")

    exception.refresh_from_db()
    assert (exception.status, exception.answered_until) == ("accepted", until)
    run_hygiene(today=until + dt.timedelta(days=1))
    exception.refresh_from_db()
    assert exception.status == "open"
    assert EvidenceEvent.objects.filter(action="exception.reopened").count() == 1


def test_mitigation_holds_until_its_date_and_sod_exceptions_are_answered_on_the_violation(exception, owners):
    actions.mitigate(
        exception_id=exception.pk,
        user=owners["oscar"],
        control="Weekly log review",
        until=TODAY + dt.timedelta(days=5),
    )
    exception.refresh_from_db()
    assert exception.status == "mitigated"
    with pytest.raises(ValidationError, match="after today"):
        actions.mitigate(exception_id=exception.pk, user=owners["oscar"], control="x", until=TODAY)


def test_auditors_may_read_but_not_act(exception, owners):
    with pytest.raises(PermissionDenied):
        actions.comment(exception_id=exception.pk, user=owners["audrey"], text="hi")
    client = Client()
    client.force_login(owners["audrey"])
    assert client.get(exception.get_absolute_url()).status_code == 200
    assert client.post(f"/exceptions/{exception.pk}/close/", {"proof": "x"}).status_code == 403
    assert client.post(f"/api/exceptions/{exception.pk}/close/", {"proof": "x"}).status_code == 403
    exception.refresh_from_db()
    assert exception.status == "open"


def test_the_dashboard_renders_its_figures(exception, owners):
    client = Client()
    client.force_login(owners["audrey"])
    response = client.get("/dashboard/")
    assert response.status_code == 200
    figures = response.context["data"]
    assert dict(figures["exceptions_by_kind"])["Orphan account"] == 1
    assert dict(figures["exceptions_by_age"])["under 7 days"] == 1
    assert b'id="chart-age"' in response.content and b"chart.umd.min.js" in response.content


def test_one_person_with_two_accounts_cannot_approve_their_own_exception_acceptance(
    exception, make_user, company
):
    # carol is the identity E3 by her e-mail; carol-2 by her link.
    carol = make_user("carol", Role.CONTROL_OWNER)
    carol_2 = make_user("carol-2", Role.CONTROL_OWNER, identity=company["identities"]["carol"])
    actions.request_acceptance(
        exception_id=exception.pk,
        user=carol,
        justification="Shared mailbox",
        until=TODAY + dt.timedelta(days=30),
    )

    with pytest.raises(PermissionDenied, match=r"carol-2 and carol are the same person \(identity E3\)"):
        actions.decide_acceptance(exception_id=exception.pk, user=carol_2, approve=True)

    exception.refresh_from_db()
    assert exception.status == "open" and exception.acceptance_requested_by == carol
    assert not EvidenceEvent.objects.filter(action="exception.accepted").exists()


def test_the_dashboard_shows_a_median_of_zero_days_as_0_and_long_ones_with_one_decimal(exception, owners):
    from django.template.loader import render_to_string

    zero = {"count": 3, "median": 0.0, "p90": 0.0}
    long = {"count": 2, "median": 1444.0, "p90": 2001.25}
    html = render_to_string("sod/dashboard.html", {"data": {"time_to_remediate": zero, "review_lag": long}})
    assert "<strong>0.0</strong> days to remediate" in html and "p90 0.0," in html
    assert "<strong>1,444.0</strong> days of review lag" in html and "p90 2,001.3" in html
    empty = {"count": 0, "median": None, "p90": None}
    html = render_to_string("sod/dashboard.html", {"data": {"time_to_remediate": empty, "review_lag": empty}})
    assert "<strong>—</strong> days to remediate" in html
