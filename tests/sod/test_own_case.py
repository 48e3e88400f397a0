"""Nobody answers their own case: a control owner does not mitigate, accept, decide or close a violation or an
exception about their own access (by identity link or by e-mail) or a non-human identity they own; the person in
conflict does not own its compensating control; answers have a ceiling; SoD exceptions close with the conflict;
a rejection says why."""

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client
from django.utils import timezone
from rest_framework.test import APIClient

from entitlements.models import Account, Identity
from evidence.services import Actor
from sod import exceptions as actions
from sod import services
from sod.checks import run_check
from sod.engine import Scope
from sod.hygiene import run_hygiene
from sod.models import Check, ControlException, RiskAcceptance, Violation
from soxgov.models import User
from soxgov.roles import Role

TODAY = timezone.localdate()
NEXT_MONTH = TODAY + dt.timedelta(days=30)


def relink(user, identity):
    """Change the link behind the model's back, as a direct edit or a stale link would."""
    User.objects.filter(pk=user.pk).update(identity=identity)
    user.refresh_from_db()


@pytest.fixture
def conflict(p2p, rule_of):
    """Vera can create vendors and approve payments; so can pay-bot, which Walt owns."""
    rule_of("P2P-01", {"create vendor": ["vendor_create"], "approve payment": ["pay_approve"]})
    vera, bot = p2p["people"]["vera"], p2p["people"]["bot"]
    p2p["grant"](p2p["account"](p2p["erp"], "vera", vera), "vendor_create")
    p2p["grant"](p2p["account"](p2p["bank"], "vera", vera), "pay_approve")
    p2p["grant"](p2p["account"](p2p["erp"], "pay-bot", bot), "vendor_create")
    p2p["grant"](p2p["account"](p2p["bank"], "pay-bot", bot), "pay_approve")
    run_check(Scope.everything(), trigger=Check.Trigger.MANUAL, actor=Actor.system("tests"))
    return {
        "vera": Violation.objects.get(identity=vera),
        "bot": Violation.objects.get(identity=bot),
    }


@pytest.fixture
def owners(make_user, make_person, p2p):
    """Control owners: Oscar and Olga (independent), Vera (in conflict, by e-mail), Walt (owns pay-bot)."""
    return {
        "oscar": make_person("oscar", Role.CONTROL_OWNER),
        "olga": make_person("olga", Role.CONTROL_OWNER),
        "vera": make_user("vera", Role.CONTROL_OWNER, email="VERA@example.com"),
        "walt": make_user("walt", Role.CONTROL_OWNER, email="walt@example.com"),
    }


def mitigate(violation, user, owner, expires_on=NEXT_MONTH):
    return services.violation_mitigate(
        violation_id=violation.pk,
        user=user,
        control="Monthly vendor master review",
        description="AP manager reviews the vendor change log.",
        owner=owner,
        frequency="monthly",
        expires_on=expires_on,
    )


# --- 3. Nobody answers their own violation ----------------------------------------------------------------


def test_control_owner_cannot_mitigate_own_violation_when_the_link_is_missing(conflict, owners, p2p):
    relink(owners["vera"], None)
    with pytest.raises(PermissionDenied, match="your own access"):
        mitigate(conflict["vera"], owners["vera"], p2p["people"]["xena"])
    conflict["vera"].refresh_from_db()
    assert conflict["vera"].status == Violation.Status.OPEN


def test_control_owner_cannot_approve_acceptance_of_own_violation_when_linked_elsewhere(
    conflict, owners, p2p
):
    services.acceptance_request(
        violation_id=conflict["vera"].pk,
        user=owners["oscar"],
        justification="Small team",
        expires_on=NEXT_MONTH,
    )
    relink(owners["vera"], p2p["people"]["xena"])
    acceptance = RiskAcceptance.objects.get()
    with pytest.raises(PermissionDenied):
        services.acceptance_decide(acceptance_id=acceptance.pk, user=owners["vera"], approve=True)
    acceptance.refresh_from_db()
    assert acceptance.status == RiskAcceptance.Status.REQUESTED


def test_owner_of_a_non_human_identity_cannot_answer_its_violation(conflict, owners):
    relink(owners["walt"], None)  # Walt by e-mail only
    with pytest.raises(PermissionDenied):
        services.acceptance_request(
            violation_id=conflict["bot"].pk,
            user=owners["walt"],
            justification="batch job",
            expires_on=NEXT_MONTH,
        )
    assert not RiskAcceptance.objects.exists()


def test_the_api_answers_403_to_someone_answering_their_own_violation(conflict, owners, p2p):
    relink(owners["vera"], None)
    client = APIClient()
    client.force_authenticate(owners["vera"])
    response = client.post(
        f"/api/sod/violations/{conflict['vera'].pk}/mitigate/",
        {
            "control": "Review",
            "description": "Someone looks",
            "owner": p2p["people"]["xena"].pk,
            "frequency": "monthly",
            "expires_on": NEXT_MONTH.isoformat(),
        },
        format="json",
    )
    assert response.status_code == 403
    assert not conflict["vera"].mitigations.exists()


# --- 4. The person in conflict does not own the compensating control ----------------------------------------


def test_the_person_in_conflict_cannot_own_the_compensating_control(conflict, owners, p2p):
    with pytest.raises(ValidationError) as refused:
        mitigate(conflict["vera"], owners["oscar"], p2p["people"]["vera"])
    assert "owner" in refused.value.message_dict
    with pytest.raises(ValidationError, match="owns the account"):
        mitigate(conflict["bot"], owners["oscar"], p2p["people"]["walt"])
    assert not conflict["vera"].mitigations.exists() and not conflict["bot"].mitigations.exists()
    mitigate(conflict["bot"], owners["oscar"], p2p["people"]["xena"])  # someone independent


# --- 6. A ceiling on how long an answer holds ---------------------------------------------------------------


def test_a_mitigation_or_acceptance_beyond_the_ceiling_is_refused_naming_the_field_and_latest_date(
    conflict, owners, p2p, settings
):
    settings.SOXGOV_ANSWER_MAX_DAYS = 90
    latest = TODAY + dt.timedelta(days=90)
    with pytest.raises(ValidationError) as refused:
        mitigate(
            conflict["vera"], owners["oscar"], p2p["people"]["xena"], expires_on=latest + dt.timedelta(days=1)
        )
    assert latest.isoformat() in refused.value.message_dict["expires_on"][0]
    with pytest.raises(ValidationError, match=latest.isoformat()):
        services.acceptance_request(
            violation_id=conflict["vera"].pk,
            user=owners["oscar"],
            justification="x",
            expires_on=latest + dt.timedelta(days=1),
        )
    assert not RiskAcceptance.objects.exists() and not conflict["vera"].mitigations.exists()
    mitigate(conflict["vera"], owners["oscar"], p2p["people"]["xena"], expires_on=latest)


def test_the_default_ceiling_is_a_year_and_approval_checks_it_again(conflict, owners, settings):
    with pytest.raises(ValidationError, match="365 days"):
        services.acceptance_request(
            violation_id=conflict["vera"].pk,
            user=owners["oscar"],
            justification="x",
            expires_on=TODAY + dt.timedelta(days=366),
        )
    acceptance = services.acceptance_request(
        violation_id=conflict["vera"].pk,
        user=owners["oscar"],
        justification="x",
        expires_on=TODAY + dt.timedelta(days=200),
    )
    settings.SOXGOV_ANSWER_MAX_DAYS = 100  # lowered since the request
    with pytest.raises(ValidationError, match="expires_on"):
        services.acceptance_decide(acceptance_id=acceptance.pk, user=owners["olga"], approve=True)
    acceptance.refresh_from_db()
    assert acceptance.status == RiskAcceptance.Status.REQUESTED


# --- 8. A rejection says why --------------------------------------------------------------------------------


def test_rejecting_a_risk_acceptance_needs_a_reason(conflict, owners):
    acceptance = services.acceptance_request(
        violation_id=conflict["vera"].pk, user=owners["oscar"], justification="x", expires_on=NEXT_MONTH
    )
    with pytest.raises(ValidationError) as refused:
        services.acceptance_decide(acceptance_id=acceptance.pk, user=owners["olga"], approve=False, note="  ")
    assert "note" in refused.value.message_dict

    client = APIClient()
    client.force_authenticate(owners["olga"])
    response = client.post(f"/api/sod/acceptances/{acceptance.pk}/reject/", {}, format="json")
    assert response.status_code == 400 and "note" in response.json()

    page = Client()
    page.force_login(owners["olga"])
    page.post(f"/sod/acceptances/{acceptance.pk}/reject/", {"note": ""})
    acceptance.refresh_from_db()
    assert acceptance.status == RiskAcceptance.Status.REQUESTED

    services.acceptance_decide(
        acceptance_id=acceptance.pk, user=owners["olga"], approve=False, note="Not a reason"
    )
    acceptance.refresh_from_db()
    assert (acceptance.status, acceptance.decision_note) == (RiskAcceptance.Status.REJECTED, "Not a reason")


# --- The exception queue ------------------------------------------------------------------------------------


@pytest.fixture
def dormant_bot(company, make_user):
    """A dormant-account exception about the bot Rita owns, and Rita as a control owner."""
    old = timezone.now() - dt.timedelta(days=400)
    Account.objects.filter(pk=company["accounts"]["bot_erp"].pk).update(last_used_at=old)
    run_hygiene()
    return ControlException.objects.get(kind=ControlException.Kind.DORMANT_ACCOUNT)


@pytest.fixture
def queue_owners(make_user, make_person):
    return {
        "rita": make_user("rita", Role.CONTROL_OWNER, email="rita@example.com"),
        "oscar": make_person("oscar", Role.CONTROL_OWNER),
        "olga": make_person("olga", Role.CONTROL_OWNER),
    }


def test_the_owner_of_a_non_human_identity_cannot_close_or_answer_its_exception(dormant_bot, queue_owners):
    rita = queue_owners["rita"]
    relink(rita, None)
    with pytest.raises(PermissionDenied):
        actions.close(exception_id=dormant_bot.pk, user=rita, proof="disabled it")
    with pytest.raises(PermissionDenied):
        actions.mitigate(exception_id=dormant_bot.pk, user=rita, control="I watch it", until=NEXT_MONTH)
    with pytest.raises(PermissionDenied):
        actions.request_acceptance(
            exception_id=dormant_bot.pk, user=rita, justification="x", until=NEXT_MONTH
        )
    actions.request_acceptance(
        exception_id=dormant_bot.pk, user=queue_owners["oscar"], justification="x", until=NEXT_MONTH
    )
    with pytest.raises(PermissionDenied):
        actions.decide_acceptance(exception_id=dormant_bot.pk, user=rita, approve=True)
    with pytest.raises(ValidationError, match="about rita"):
        actions.assign(exception_id=dormant_bot.pk, user=queue_owners["oscar"], owner=rita)
    dormant_bot.refresh_from_db()
    assert dormant_bot.status == ControlException.Status.OPEN and dormant_bot.owner is None


def test_the_api_answers_403_to_someone_closing_their_own_exception(dormant_bot, queue_owners):
    client = APIClient()
    client.force_authenticate(queue_owners["rita"])
    response = client.post(f"/api/exceptions/{dormant_bot.pk}/close/", {"proof": "done"}, format="json")
    assert response.status_code == 403
    dormant_bot.refresh_from_db()
    assert dormant_bot.status == ControlException.Status.OPEN


def test_a_reviewer_cannot_close_the_exception_about_their_own_overdue_review(company, queue_owners):
    exception = ControlException.objects.create(
        kind=ControlException.Kind.REVIEW_OVERDUE,
        severity="medium",
        key="review_overdue:1:1",
        title="Review overdue: oscar",
        detail={"campaign": 1, "reviewer": "oscar"},
        due_on=TODAY,
        opened_at=timezone.now(),
    )
    with pytest.raises(PermissionDenied):
        actions.close(exception_id=exception.pk, user=queue_owners["oscar"], proof="I will do it")
    actions.close(exception_id=exception.pk, user=queue_owners["olga"], proof="Reviewed with oscar")


def test_exception_answers_have_the_ceiling_and_a_rejection_needs_a_reason(
    dormant_bot, queue_owners, settings
):
    oscar, olga = queue_owners["oscar"], queue_owners["olga"]
    settings.SOXGOV_ANSWER_MAX_DAYS = 60
    latest = TODAY + dt.timedelta(days=60)
    with pytest.raises(ValidationError) as refused:
        actions.mitigate(
            exception_id=dormant_bot.pk, user=oscar, control="x", until=latest + dt.timedelta(days=1)
        )
    assert latest.isoformat() in refused.value.message_dict["until"][0]
    with pytest.raises(ValidationError, match=latest.isoformat()):
        actions.request_acceptance(
            exception_id=dormant_bot.pk, user=oscar, justification="x", until=latest + dt.timedelta(days=1)
        )
    actions.request_acceptance(exception_id=dormant_bot.pk, user=oscar, justification="x", until=latest)
    with pytest.raises(ValidationError) as refused:
        actions.decide_acceptance(exception_id=dormant_bot.pk, user=olga, approve=False)
    assert "note" in refused.value.message_dict

    page = Client()
    page.force_login(olga)
    page.post(f"/exceptions/{dormant_bot.pk}/reject/", {"note": ""})
    dormant_bot.refresh_from_db()
    assert dormant_bot.acceptance_requested_by == oscar


# --- 7. An SoD exception closes with its conflict -----------------------------------------------------------


def test_an_sod_exception_cannot_be_closed_while_its_violation_is_live(conflict, owners, p2p):
    run_hygiene()
    exception = ControlException.objects.get(violation=conflict["vera"])
    with pytest.raises(ValidationError, match="still exists"):
        actions.close(exception_id=exception.pk, user=owners["oscar"], proof="talked to Vera")
    mitigate(conflict["vera"], owners["oscar"], p2p["people"]["xena"])
    with pytest.raises(ValidationError, match="mitigated"):
        actions.close(exception_id=exception.pk, user=owners["oscar"], proof="mitigated")
    exception.refresh_from_db()
    assert exception.status == ControlException.Status.OPEN

    p2p["revoke"](p2p["accounts"]["vera@Bank"], "pay_approve")
    run_check(Scope.everything(), trigger=Check.Trigger.MANUAL, actor=Actor.system("tests"))
    conflict["vera"].refresh_from_db()
    assert conflict["vera"].status == Violation.Status.RESOLVED
    actions.close(exception_id=exception.pk, user=owners["oscar"], proof="payment approval removed")


# --- a user who is no identity answers nothing ------------------------------------------------------------------


def test_a_control_owner_with_no_identity_cannot_approve_a_risk_acceptance(conflict, owners, make_user):
    # nora has no identity linked and her e-mail matches none: SOXGov cannot tell whether the conflict is hers.
    nora = make_user("nora", Role.CONTROL_OWNER)
    acceptance = services.acceptance_request(
        violation_id=conflict["vera"].pk, user=owners["oscar"], justification="x", expires_on=NEXT_MONTH
    )
    with pytest.raises(PermissionDenied, match="link your user to your identity first"):
        services.acceptance_decide(acceptance_id=acceptance.pk, user=nora, approve=True)
    with pytest.raises(PermissionDenied, match="nora has no identity linked"):
        services.acceptance_request(
            violation_id=conflict["bot"].pk, user=nora, justification="x", expires_on=NEXT_MONTH
        )
    assert RiskAcceptance.objects.get().status == RiskAcceptance.Status.REQUESTED
    assert Violation.objects.get(pk=conflict["vera"].pk).status == Violation.Status.OPEN


def test_a_control_owner_with_no_identity_cannot_close_or_approve_an_exception(
    dormant_bot, queue_owners, make_user
):
    nora = make_user("nora", Role.CONTROL_OWNER)
    with pytest.raises(PermissionDenied, match="link your user to your identity first"):
        actions.close(exception_id=dormant_bot.pk, user=nora, proof="disabled, see CHG-1")
    actions.request_acceptance(
        exception_id=dormant_bot.pk, user=queue_owners["oscar"], justification="batch job", until=NEXT_MONTH
    )
    with pytest.raises(PermissionDenied, match="link your user to your identity first"):
        actions.decide_acceptance(exception_id=dormant_bot.pk, user=nora, approve=True)
    dormant_bot.refresh_from_db()
    assert dormant_bot.status == "open" and dormant_bot.closed_by is None

    # Once her e-mail matches an identity she may answer (she is not the bot's owner).
    Identity.objects.create(employee_id="E7", email="nora@example.com", display_name="Nora")
    actions.decide_acceptance(exception_id=dormant_bot.pk, user=nora, approve=True)
    dormant_bot.refresh_from_db()
    assert dormant_bot.status == "accepted"
