"""Who may do what is evidenced with old and new values, and the user-to-identity link cannot be moved to
make someone decide their own case."""

import datetime as dt
import re

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from entitlements.models import Identity
from evidence.models import EvidenceEvent
from evidence.services import Actor
from soxgov.services import user_identity_set, users_link_identities


def admin_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def change_form(user, **changes) -> dict:
    """The Django admin change form of ``user`` as it stands, with ``changes`` applied."""
    data = {
        "username": user.username,
        "email": user.email,
        "first_name": user.first_name,
        "last_name": user.last_name,
        "is_active": "on" if user.is_active else "",
        "is_staff": "on" if user.is_staff else "",
        "is_superuser": "on" if user.is_superuser else "",
        "groups": list(user.groups.values_list("pk", flat=True)),
        "identity": user.identity_id or "",
        "date_joined_0": "2024-01-01",
        "date_joined_1": "00:00:00",
        "_save": "Save",
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v not in ("", None)}


def launch_campaign(company, personas):
    """Routed to managers: Rita gets the review items of Bob and of the bot she owns (pending)."""
    from entitlements.models import Identity
    from reviews.models import Campaign
    from reviews.services import campaign_launch

    # A fallback reviewer needs an identity, or SOXGov could not keep her own access from her.
    alice = personas["alice"]
    alice.identity = Identity.objects.create(
        employee_id="E0", email="alice@example.com", display_name="Alice"
    )
    alice.save(update_fields=["identity"])
    today = company["today"]
    campaign = Campaign.objects.create(
        name="Q4 review",
        start_on=today,
        due_on=today + dt.timedelta(days=14),
        fallback_reviewer=personas["alice"],
        created_by=personas["alice"],
    )
    campaign.applications.set(company["applications"].values())
    campaign_launch(campaign_id=campaign.pk, user=personas["alice"])


def open_exception(owner, **fields):
    from sod.models import ControlException

    return ControlException.objects.create(
        kind=ControlException.Kind.ORPHAN_ACCOUNT,
        severity="high",
        key=f"orphan_account:{owner.pk}",
        title="Orphan account ghost",
        owner=owner,
        due_on=timezone.localdate(),
        opened_at=timezone.now(),
        **fields,
    )


def test_role_and_activation_changes_in_admin_are_evidenced_with_old_and_new_values(personas):
    mallory = personas["mallory"]
    reviewer = Group.objects.get(name="reviewer")
    response = admin_client(personas["alice"]).post(
        reverse("admin:soxgov_user_change", args=[mallory.pk]),
        change_form(mallory, groups=[reviewer.pk], is_active=""),
    )
    assert response.status_code == 302
    event = EvidenceEvent.objects.get(action="access.user.changed")
    assert event.actor_user == personas["alice"] and event.subject_id == str(mallory.pk)
    assert event.payload_data["changes"] == {
        "roles": {"old": [], "new": ["reviewer"]},
        "is_active": {"old": True, "new": False},
    }


def test_staff_and_superuser_changes_by_a_superuser_are_evidenced_with_old_and_new(personas, make_user):
    root = make_user("root", is_superuser=True, is_staff=True)
    mallory = personas["mallory"]
    response = admin_client(root).post(
        reverse("admin:soxgov_user_change", args=[mallory.pk]),
        change_form(mallory, is_staff="on", is_superuser="on"),
    )
    assert response.status_code == 302
    changes = EvidenceEvent.objects.get(action="access.user.changed").payload_data["changes"]
    assert changes == {"is_staff": {"old": False, "new": True}, "is_superuser": {"old": False, "new": True}}


def test_identity_change_in_admin_is_refused_while_the_user_has_undecided_review_items(company, personas):
    """Otherwise an admin relinks Rita to Bob, and Rita certifies Bob's access as if it were someone else's."""
    launch_campaign(company, personas)
    rita, bob = personas["rita"], company["identities"]["bob"]
    before = EvidenceEvent.objects.count()
    response = admin_client(personas["alice"]).post(
        reverse("admin:soxgov_user_change", args=[rita.pk]), change_form(rita, identity=bob.pk)
    )
    assert response.status_code == 200
    assert "cannot change while they have open work" in response.content.decode()
    assert "undecided review item(s) assigned to them" in response.content.decode()
    rita.refresh_from_db()
    assert rita.identity == company["identities"]["rita"]
    assert EvidenceEvent.objects.count() == before


def test_identity_change_in_admin_is_evidenced_with_old_and_new_identity(company, personas):
    mallory, carol = personas["mallory"], company["identities"]["carol"]
    response = admin_client(personas["alice"]).post(
        reverse("admin:soxgov_user_change", args=[mallory.pk]), change_form(mallory, identity=carol.pk)
    )
    assert response.status_code == 302
    event = EvidenceEvent.objects.get(action="access.user.identity_changed", subject_id=str(mallory.pk))
    assert event.actor_user == personas["alice"]
    assert (event.payload_data["old"], event.payload_data["new"]) == (
        None,
        {"id": carol.pk, "name": str(carol)},
    )


def _requested_acceptance(company, personas):
    from sod.models import RiskAcceptance, Rule, Violation

    now = timezone.now()
    rule = Rule.objects.create(code="SOD-1", name="Post and view", risk="high", side_count=2)
    violation = Violation.objects.create(
        rule=rule,
        identity=company["identities"]["carol"],
        holder="Carol",
        opened_at=now,
        status_changed_at=now,
    )
    RiskAcceptance.objects.create(
        violation=violation,
        justification="Month-end cover.",
        expires_on=company["today"] + dt.timedelta(days=90),
        requested_by=personas["oscar"],
        requested_at=now,
    )


@pytest.mark.parametrize(
    ("work", "reason"),
    [
        (lambda company, personas: _requested_acceptance(company, personas), "risk acceptance request(s)"),
        (lambda company, personas: open_exception(personas["oscar"]), "open control exception(s) they own"),
        (
            lambda company, personas: open_exception(
                personas["alice"], acceptance_requested_by=personas["oscar"], acceptance_justification="x"
            ),
            "control exception risk acceptance request(s)",
        ),
    ],
    ids=["requested risk acceptance", "owned open exception", "exception acceptance awaiting a decision"],
)
def test_identity_service_refuses_a_user_with_open_answers(company, personas, work, reason):
    work(company, personas)
    oscar, carol = personas["oscar"], company["identities"]["carol"]
    before = EvidenceEvent.objects.count()
    with pytest.raises(ValidationError, match=re.escape(reason)):
        user_identity_set(actor=Actor.for_user(personas["alice"]), user=oscar, identity=carol)
    oscar.refresh_from_db()
    assert oscar.identity is None and EvidenceEvent.objects.count() == before


def test_e_mail_auto_link_waits_until_the_user_has_no_open_work(company, personas, make_user):
    from sod.models import ControlException

    olga = make_user("olga", email="olga@example.com")
    exception = open_exception(olga)
    olga_identity = Identity.objects.create(employee_id="E9", email="olga@example.com", display_name="Olga")
    assert users_link_identities() == 0
    olga.refresh_from_db()
    assert olga.identity is None
    ControlException.objects.filter(pk=exception.pk).update(status=ControlException.Status.CLOSED)
    assert users_link_identities() == 1
    olga.refresh_from_db()
    assert olga.identity == olga_identity
    event = EvidenceEvent.objects.get(action="access.user.identity_changed", subject_id=str(olga.pk))
    assert event.payload_data["new"]["id"] == olga_identity.pk
