"""Nobody reviews their own access, whatever their identity link says: a user whose e-mail is the subject's is the
subject; a user with no identity linked is never routed items, and a campaign cannot name one as reviewer."""

import datetime as dt

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from rest_framework.test import APIClient

from reviews import services
from reviews.campaign_drafts import campaign_save
from reviews.models import Campaign, ReviewItem
from soxgov.models import User
from soxgov.roles import Role


def items_by_account(campaign):
    return {item.account_key: item for item in ReviewItem.objects.filter(campaign=campaign)}


def relink(user, identity):
    """Change the link behind the model's back, as a direct edit or a stale link would."""
    User.objects.filter(pk=user.pk).update(identity=identity)
    user.refresh_from_db()


@pytest.fixture
def nora(make_user):
    """A reviewer whose e-mail matches no identity: nothing links her to a person."""
    return make_user("nora", Role.REVIEWER)


def test_routing_never_gives_a_user_the_access_of_the_identity_with_their_email(
    people, company, make_campaign
):
    # Bob's user is linked to his manager's identity (a wrong link), and Rita's user to nobody.
    relink(people["rita"], None)
    relink(people["bob"], company["identities"]["rita"])
    campaign = make_campaign()

    services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])

    items = items_by_account(campaign)
    assert items["bob"].reviewer == people["vic"]  # routed to "Rita's" user, who is Bob by e-mail
    assert items["svc-ledger"].reviewer == people["bob"]  # the bot Rita owns: not Bob's access


def test_a_reviewer_whose_email_is_the_subjects_may_not_decide_without_a_link(people, company, make_campaign):
    campaign = make_campaign()
    services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])
    bobs = ReviewItem.objects.get(campaign=campaign, account_key="bob")
    # An item Bob came to hold while his link was missing (the database check sees no identity to compare).
    relink(people["bob"], None)
    ReviewItem.objects.filter(pk=bobs.pk).update(reviewer=people["bob"], reviewer_identity=None)

    with pytest.raises(PermissionDenied, match="own access"):
        services.decide(item_ids=[bobs.pk], user=people["bob"], certify=True, comment="fine")

    assert ReviewItem.objects.get(pk=bobs.pk).status == ReviewItem.Status.PENDING


def test_a_reviewer_linked_elsewhere_may_not_decide_the_access_of_their_email(people, company, make_campaign):
    campaign = make_campaign()
    services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])
    bobs = ReviewItem.objects.get(campaign=campaign, account_key="bob")
    relink(people["bob"], company["identities"]["carol"])
    ReviewItem.objects.filter(pk=bobs.pk).update(
        reviewer=people["bob"], reviewer_identity=company["identities"]["carol"]
    )

    with pytest.raises(PermissionDenied, match="own access"):
        services.decide(item_ids=[bobs.pk], user=people["bob"], certify=False, comment="remove it")
    assert ReviewItem.objects.get(pk=bobs.pk).status == ReviewItem.Status.PENDING


def test_delegation_is_refused_to_the_subject_by_email_even_when_linked_elsewhere(
    people, company, make_campaign
):
    campaign = make_campaign()
    services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])
    bobs = ReviewItem.objects.get(campaign=campaign, account_key="bob")
    relink(people["bob"], company["identities"]["carol"])

    with pytest.raises(ValidationError, match="subject"):
        services.delegate(item_ids=[bobs.pk], user=people["rita"], to_user=people["bob"], reason="he knows")
    assert ReviewItem.objects.get(pk=bobs.pk).reviewer == people["rita"]


def test_delegation_is_refused_to_a_user_without_an_identity(people, company, make_campaign, nora):
    campaign = make_campaign()
    services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])
    bobs = ReviewItem.objects.get(campaign=campaign, account_key="bob")

    with pytest.raises(ValidationError, match="no identity linked"):
        services.delegate(item_ids=[bobs.pk], user=people["rita"], to_user=nora, reason="holiday")
    assert ReviewItem.objects.get(pk=bobs.pk).reviewer == people["rita"]


def test_a_creator_without_an_identity_is_not_routed_items_and_the_launch_names_whose_access(
    people, company, make_campaign
):
    # Routed to Bob, with Bob as fallback: only the creator (Alice, no identity) is left for Bob's item.
    campaign = make_campaign(
        routing=Campaign.Routing.NAMED, named_reviewer=people["bob"], fallback_reviewer=people["bob"]
    )
    assert people["alice"].identity_id is None

    with pytest.raises(ValidationError, match="no reviewer is left for the access of Bob Builder"):
        services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])
    assert not ReviewItem.objects.exists()


def test_a_fallback_reviewer_without_an_identity_is_refused_at_launch(people, company, make_campaign, nora):
    campaign = make_campaign(fallback_reviewer=nora)

    with pytest.raises(ValidationError, match="nora has no identity linked"):
        services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT and not ReviewItem.objects.exists()


def test_a_named_or_fallback_reviewer_without_an_identity_is_refused_at_save(people, company, nora):
    today = timezone.localdate()
    with pytest.raises(ValidationError) as refused:
        campaign_save(
            user=people["alice"],
            name="Q1",
            routing="named",
            named_reviewer=nora,
            fallback_reviewer=nora,
            start_on=today,
            due_on=today + dt.timedelta(days=7),
        )

    assert set(refused.value.message_dict) == {"named_reviewer", "fallback_reviewer"}
    assert not Campaign.objects.exists()


def test_the_campaign_page_shows_the_services_refusal_beside_the_field(people, company, nora, client):
    client.force_login(people["alice"])
    today = timezone.localdate()
    response = client.post(
        "/reviews/campaigns/new/",
        {
            "name": "Q1",
            "kind": "periodic",
            "routing": "manager",
            "fallback_reviewer": nora.pk,
            "start_on": today,
            "due_on": today + dt.timedelta(days=7),
            "reminder_every_days": 7,
            "escalate_after_days": 3,
            "escalate_to": "manager",
        },
    )
    assert response.status_code == 400
    assert "nora has no identity linked" in str(response.context["form"].errors["fallback_reviewer"])
    assert not Campaign.objects.exists()


def test_the_api_refuses_a_fallback_reviewer_without_an_identity_naming_the_field(people, nora):
    client = APIClient()
    client.force_authenticate(people["alice"])
    today = timezone.localdate()
    response = client.post(
        "/api/reviews/campaigns/",
        {
            "name": "x",
            "fallback_reviewer": "nora",
            "start_on": today.isoformat(),
            "due_on": (today + dt.timedelta(days=7)).isoformat(),
        },
        format="json",
    )
    assert response.status_code == 400 and "no identity linked" in str(response.json()["fallback_reviewer"])
    assert not Campaign.objects.exists()
