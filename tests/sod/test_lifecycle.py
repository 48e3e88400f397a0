"""open -> mitigated | risk accepted (four eyes) | resolved; expiry reopens; every transition is evidenced."""

import datetime as dt
import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from evidence.models import EvidenceEvent
from evidence.services import Actor
from sod import services
from sod.checks import run_check
from sod.engine import Scope
from sod.models import Check, Mitigation, RiskAcceptance, Violation
from soxgov.roles import Role

TODAY = timezone.localdate()
NEXT_YEAR = TODAY + dt.timedelta(days=365)


@pytest.fixture
def violation(p2p, rule_of):
    rule_of("P2P-01", {"create vendor": ["vendor_create"], "approve payment": ["pay_approve"]})
    vera = p2p["people"]["vera"]
    p2p["grant"](p2p["account"](p2p["erp"], "vera", vera), "vendor_create")
    p2p["vera_bank"] = p2p["account"](p2p["bank"], "vera", vera)
    p2p["grant"](p2p["vera_bank"], "pay_approve")
    run_check(Scope.everything(), trigger=Check.Trigger.MANUAL, actor=Actor.system("tests"))
    return Violation.objects.get()


@pytest.fixture
def owners(make_user, make_person):
    return {
        "oscar": make_person("oscar", Role.CONTROL_OWNER),
        "olga": make_person("olga", Role.CONTROL_OWNER),
        "audrey": make_user("audrey", Role.AUDITOR),
        "rita": make_user("rita", Role.REVIEWER),
    }


def mitigate(violation, user, p2p, expires_on=NEXT_YEAR):
    return services.violation_mitigate(
        violation_id=violation.pk,
        user=user,
        control="Monthly vendor master review",
        description="AP manager reviews the vendor change log.",
        owner=p2p["people"]["walt"],
        frequency="monthly",
        expires_on=expires_on,
    )


def last_event(action):
    event = EvidenceEvent.objects.filter(action=action).order_by("-sequence").first()
    assert event is not None, f"no {action} event"
    return event, json.loads(event.payload)


def test_a_compensating_control_mitigates_a_violation_with_evidence(violation, owners, p2p):
    mitigation = mitigate(violation, owners["oscar"], p2p)

    violation.refresh_from_db()
    assert violation.status == Violation.Status.MITIGATED
    assert mitigation.recorded_by == owners["oscar"]
    event, payload = last_event("sod.violation.mitigated")
    assert event.actor_user_id == owners["oscar"].pk and event.subject_id == str(violation.pk)
    assert payload["control"] == "Monthly vendor master review" and payload["previous_status"] == "open"
    assert payload["expires_on"] == NEXT_YEAR.isoformat()
    assert violation.history.first().status == "mitigated"


def test_a_mitigation_must_expire_after_today_and_a_refusal_changes_nothing(violation, owners, p2p):
    events = EvidenceEvent.objects.count()
    with pytest.raises(ValidationError, match="expire after today"):
        mitigate(violation, owners["oscar"], p2p, expires_on=TODAY)
    violation.refresh_from_db()
    assert violation.status == Violation.Status.OPEN
    assert not Mitigation.objects.exists() and EvidenceEvent.objects.count() == events


def test_auditors_and_reviewers_may_not_answer_violations(violation, owners, p2p):
    for who in ("audrey", "rita"):
        with pytest.raises(PermissionDenied):
            mitigate(violation, owners[who], p2p)
        with pytest.raises(PermissionDenied):
            services.acceptance_request(
                violation_id=violation.pk, user=owners[who], justification="x", expires_on=NEXT_YEAR
            )
    assert Violation.objects.get().status == Violation.Status.OPEN


def test_risk_acceptance_takes_effect_only_when_another_person_approves(violation, owners):
    acceptance = services.acceptance_request(
        violation_id=violation.pk,
        user=owners["oscar"],
        justification="Two-person AP team.",
        expires_on=NEXT_YEAR,
    )
    violation.refresh_from_db()
    assert violation.status == Violation.Status.OPEN  # requested is not accepted

    with pytest.raises(PermissionDenied, match="someone else must decide"):
        services.acceptance_decide(acceptance_id=acceptance.pk, user=owners["oscar"], approve=True)
    assert RiskAcceptance.objects.get().status == RiskAcceptance.Status.REQUESTED

    services.acceptance_decide(acceptance_id=acceptance.pk, user=owners["olga"], approve=True, note="agreed")

    violation.refresh_from_db()
    acceptance.refresh_from_db()
    assert violation.status == Violation.Status.ACCEPTED
    assert (acceptance.status, acceptance.decided_by) == (RiskAcceptance.Status.APPROVED, owners["olga"])
    event, payload = last_event("sod.violation.accepted")
    assert event.actor_user_id == owners["olga"].pk and payload["requested_by"] == "oscar"
    assert EvidenceEvent.objects.filter(
        action="sod.acceptance.requested", actor_user_id=owners["oscar"].pk
    ).exists()


def test_the_database_refuses_a_self_approved_acceptance(violation, owners):
    acceptance = services.acceptance_request(
        violation_id=violation.pk, user=owners["oscar"], justification="x", expires_on=NEXT_YEAR
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        RiskAcceptance.objects.filter(pk=acceptance.pk).update(
            status="approved", decided_by=owners["oscar"], decided_at=timezone.now()
        )


def test_a_rejected_acceptance_leaves_the_violation_open(violation, owners):
    acceptance = services.acceptance_request(
        violation_id=violation.pk, user=owners["oscar"], justification="x", expires_on=NEXT_YEAR
    )
    services.acceptance_decide(acceptance_id=acceptance.pk, user=owners["olga"], approve=False, note="no")
    assert Violation.objects.get().status == Violation.Status.OPEN
    assert RiskAcceptance.objects.get().status == RiskAcceptance.Status.REJECTED
    last_event("sod.acceptance.rejected")


def test_only_one_pending_acceptance_per_violation(violation, owners):
    services.acceptance_request(
        violation_id=violation.pk, user=owners["oscar"], justification="x", expires_on=NEXT_YEAR
    )
    with pytest.raises(ValidationError, match="pending"):
        services.acceptance_request(
            violation_id=violation.pk, user=owners["olga"], justification="y", expires_on=NEXT_YEAR
        )


@pytest.mark.parametrize("answer", ["mitigation", "acceptance"])
def test_an_expired_answer_reopens_the_violation(violation, owners, p2p, answer):
    if answer == "mitigation":
        mitigate(violation, owners["oscar"], p2p, expires_on=TODAY + dt.timedelta(days=1))
    else:
        acceptance = services.acceptance_request(
            violation_id=violation.pk,
            user=owners["oscar"],
            justification="x",
            expires_on=TODAY + dt.timedelta(days=1),
        )
        services.acceptance_decide(acceptance_id=acceptance.pk, user=owners["olga"], approve=True)

    assert services.expire_due(today=TODAY + dt.timedelta(days=1)) == 0  # still valid on its last day
    assert services.expire_due(today=TODAY + dt.timedelta(days=2)) == 1

    violation.refresh_from_db()
    assert violation.status == Violation.Status.OPEN
    _, payload = last_event("sod.violation.reopened")
    assert payload["reason"].startswith(
        "mitigation expired" if answer == "mitigation" else "risk acceptance expired"
    )
    assert services.expire_due(today=TODAY + dt.timedelta(days=3)) == 0  # once


def test_a_resolved_violation_ends_its_mitigation_and_cannot_be_answered(violation, owners, p2p):
    mitigate(violation, owners["oscar"], p2p)
    p2p["revoke"](p2p["vera_bank"], "pay_approve")

    run_check(Scope.everything(), trigger=Check.Trigger.MANUAL, actor=Actor.system("tests"))

    violation.refresh_from_db()
    assert violation.status == Violation.Status.RESOLVED
    assert Mitigation.objects.get().end_reason == "violation resolved"
    _, payload = last_event("sod.violation.resolved")
    assert payload["previous_status"] == "mitigated"
    with pytest.raises(ValidationError, match="resolved"):
        mitigate(violation, owners["oscar"], p2p)


def test_a_new_mitigation_supersedes_an_approved_acceptance(violation, owners, p2p):
    acceptance = services.acceptance_request(
        violation_id=violation.pk, user=owners["oscar"], justification="x", expires_on=NEXT_YEAR
    )
    services.acceptance_decide(acceptance_id=acceptance.pk, user=owners["olga"], approve=True)

    mitigate(violation, owners["oscar"], p2p)

    assert Violation.objects.get().status == Violation.Status.MITIGATED
    assert RiskAcceptance.objects.get().status == RiskAcceptance.Status.ENDED


def test_nobody_answers_a_conflict_in_their_own_access(violation, make_user, p2p):
    vera_user = make_user("vera", Role.CONTROL_OWNER, email="vera@example.com")
    assert vera_user.identity == p2p["people"]["vera"]
    with pytest.raises(PermissionDenied, match="your own access"):
        mitigate(violation, vera_user, p2p)
    with pytest.raises(PermissionDenied, match="your own access"):
        services.acceptance_request(
            violation_id=violation.pk, user=vera_user, justification="x", expires_on=NEXT_YEAR
        )
    assert Violation.objects.get().status == Violation.Status.OPEN


def test_the_owner_of_a_non_human_identity_may_not_approve_its_acceptance(p2p, rule_of, owners, make_user):
    rule_of("P2P-01", {"create vendor": ["vendor_create"], "approve payment": ["pay_approve"]})
    bot = p2p["people"]["bot"]  # owned by Walt
    p2p["grant"](p2p["account"](p2p["erp"], "bot", bot), "vendor_create")
    p2p["grant"](p2p["account"](p2p["bank"], "bot", bot), "pay_approve")
    run_check(Scope.everything(), trigger=Check.Trigger.MANUAL, actor=Actor.system("tests"))
    walt = make_user("walt", Role.CONTROL_OWNER, email="walt@example.com")
    acceptance = services.acceptance_request(
        violation_id=Violation.objects.get().pk, user=owners["oscar"], justification="x", expires_on=NEXT_YEAR
    )
    with pytest.raises(PermissionDenied):
        services.acceptance_decide(acceptance_id=acceptance.pk, user=walt, approve=True)
    assert RiskAcceptance.objects.get().status == RiskAcceptance.Status.REQUESTED


def test_an_undecided_request_expires_so_a_new_one_can_be_made(violation, owners):
    services.acceptance_request(
        violation_id=violation.pk,
        user=owners["oscar"],
        justification="x",
        expires_on=TODAY + dt.timedelta(days=1),
    )
    services.expire_due(today=TODAY + dt.timedelta(days=1))

    assert RiskAcceptance.objects.get().status == RiskAcceptance.Status.EXPIRED
    last_event("sod.acceptance.expired")
    services.acceptance_request(
        violation_id=violation.pk, user=owners["olga"], justification="y", expires_on=NEXT_YEAR
    )
    assert RiskAcceptance.objects.filter(status=RiskAcceptance.Status.REQUESTED).count() == 1


def test_one_person_with_two_accounts_cannot_approve_their_own_risk_acceptance(violation, make_user, p2p):
    # xena is the identity E3 by her e-mail; xena-2 by her link.
    xena = make_user("xena", Role.CONTROL_OWNER, email="xena@example.com")
    xena_2 = make_user("xena-2", Role.CONTROL_OWNER, identity=p2p["people"]["xena"])
    acceptance = services.acceptance_request(
        violation_id=violation.pk, user=xena, justification="Two-person AP team.", expires_on=NEXT_YEAR
    )

    with pytest.raises(PermissionDenied, match=r"xena-2 and xena are the same person \(identity E3\)"):
        services.acceptance_decide(acceptance_id=acceptance.pk, user=xena_2, approve=True)

    assert RiskAcceptance.objects.get().status == RiskAcceptance.Status.REQUESTED
    assert Violation.objects.get().status == Violation.Status.OPEN
    assert not EvidenceEvent.objects.filter(action="sod.acceptance.approved").exists()
