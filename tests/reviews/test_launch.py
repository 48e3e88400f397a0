"""Scoping, routing and the launch snapshot."""

import json

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from evidence.models import EvidenceEvent
from reviews import services
from reviews.models import Campaign, Notification, ReviewItem


def items_by_account(campaign):
    return {item.account_key: item for item in ReviewItem.objects.filter(campaign=campaign)}


def test_launch_snapshots_one_item_per_grant_in_scope_routed_to_the_manager(
    people, company, make_campaign, django_capture_on_commit_callbacks
):
    campaign = make_campaign(applications=list(company["applications"].values()))

    with django_capture_on_commit_callbacks(execute=True):
        services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])

    campaign.refresh_from_db()
    items = items_by_account(campaign)
    assert set(items) == {"bob", "carol", "svc-ledger", "ghost"}
    assert campaign.status == Campaign.Status.ACTIVE and campaign.item_count == 4
    # Bob -> his manager Rita; the bot -> its owner Rita; the orphan in CRM -> CRM's owner Rita;
    # Carol has no manager: ERP's owner is Carol herself, so the fallback (vic) takes it.
    assert {k: i.reviewer.username for k, i in items.items()} == {
        "bob": "rita",
        "svc-ledger": "rita",
        "ghost": "rita",
        "carol": "vic",
    }
    assert items["ghost"].orphan and items["ghost"].identity_name == "Orphan account ghost"
    assert items["svc-ledger"].non_human and not items["bob"].non_human
    assert items["bob"].privileged  # GL_POST is privileged
    assert all(i.new_access for i in items.values())  # never certified before
    event = EvidenceEvent.objects.get(action="review.campaign.launched")
    assert json.loads(event.payload)["items"] == 4
    assert Notification.objects.filter(kind="assigned", user=people["rita"]).exists()


def test_preview_counts_what_launch_would_snapshot(people, company, make_campaign):
    campaign = make_campaign(applications=list(company["applications"].values()))
    preview = services.campaign_preview(campaign)
    assert preview.total == 4
    assert dict(preview.by_application) == {"ERP": 3, "CRM": 1}
    assert dict(preview.by_reviewer) == {"rita": 3, "vic": 1}  # users without a full name show their username
    assert preview.flagged["orphan"] == 1 and preview.flagged["non_human"] == 1
    assert not ReviewItem.objects.exists()


def test_the_default_scope_is_the_sox_in_scope_applications(people, company, make_campaign):
    campaign = make_campaign()
    services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])
    assert set(items_by_account(campaign)) == {"bob", "carol", "svc-ledger"}  # ERP only


def test_scope_filters_kinds_departments_and_privileged(people, company, make_campaign):
    campaign = make_campaign(applications=list(company["applications"].values()), identity_kinds=["service"])
    services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])
    # Non-human only; orphan accounts always stay in scope (someone must own them).
    assert set(items_by_account(campaign)) == {"svc-ledger", "ghost"}


def test_application_owner_routing_never_assigns_someones_own_access(people, company, make_campaign):
    campaign = make_campaign(
        routing=Campaign.Routing.APPLICATION_OWNER, applications=[company["applications"]["crm"]]
    )
    services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])
    assert items_by_account(campaign)["ghost"].reviewer == people["rita"]


def test_the_fallback_takes_items_whose_routed_reviewer_is_the_subject(people, company, make_campaign):
    from entitlements.models import Identity

    # Make Bob his own manager's manager... simpler: route Bob's item to Bob through a named reviewer.
    campaign = make_campaign(routing=Campaign.Routing.NAMED, named_reviewer=people["bob"])
    services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])
    items = items_by_account(campaign)
    assert items["bob"].reviewer == people["vic"]  # Bob may not review Bob
    assert items["carol"].reviewer == people["bob"]
    assert Identity.objects.get(pk=items["bob"].identity_id).display_name == "Bob Builder"


def test_the_database_refuses_self_review(people, company, make_campaign):
    campaign = make_campaign()
    services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])
    bobs = ReviewItem.objects.get(campaign=campaign, account_key="bob")
    with pytest.raises(IntegrityError), transaction.atomic():
        ReviewItem.objects.filter(pk=bobs.pk).update(
            reviewer=people["bob"], reviewer_identity=bobs.identity_id
        )


def test_only_a_draft_launches_and_only_admins_launch(people, company, make_campaign):
    from django.core.exceptions import PermissionDenied

    campaign = make_campaign()
    with pytest.raises(PermissionDenied):
        services.campaign_launch(campaign_id=campaign.pk, user=people["rita"])
    services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])
    with pytest.raises(ValidationError, match="Only a draft"):
        services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])


def test_a_launch_with_no_possible_reviewer_is_refused_naming_whose_access(people, company, make_campaign):
    from soxgov.roles import Role

    # Bob creates the campaign and is its fallback; with named routing to Bob, nobody may take Bob's item.
    people["bob"].groups.add(*people["alice"].groups.all())
    campaign = make_campaign(
        routing=Campaign.Routing.NAMED,
        named_reviewer=people["bob"],
        fallback_reviewer=people["bob"],
        created_by=people["bob"],
    )
    assert Role.ADMIN
    with pytest.raises(ValidationError, match="no reviewer is left for the access of Bob Builder"):
        services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT and not ReviewItem.objects.exists()


@pytest.mark.postgres
def test_postgresql_hashes_the_launched_items_to_the_bytes_python_and_the_offline_verifier_hash(
    people, company, make_campaign, db
):
    """The launch digest is built in SQL on PostgreSQL; the verifier rebuilds it in Python: they must agree,
    names with a CR, non-ASCII text, a formula-like value and times with and without microseconds included."""
    import datetime as dt

    from django.db import connection

    from evidence.binding import ITEM_SNAPSHOT
    from reviews.selectors import _items_sha256_in_python, _items_sha256_in_sql

    if connection.vendor != "postgresql":
        pytest.skip("the SQL digest is PostgreSQL's")
    campaign = make_campaign()
    services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])
    items = ReviewItem.objects.filter(campaign=campaign).order_by("pk")
    first, second, *_ = items
    ReviewItem.objects.filter(pk=first.pk).update(
        identity_name="Zoë\r\nO'Brien",
        department="=SUM(A1)",
        last_used_at=dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC),
    )
    ReviewItem.objects.filter(pk=second.pk).update(
        last_used_at=dt.datetime(2026, 3, 4, 5, 6, 7, 120, tzinfo=dt.UTC), entitlement_name="Ledger\radmin"
    )
    assert _items_sha256_in_sql(items, ITEM_SNAPSHOT) == _items_sha256_in_python(items, ITEM_SNAPSHOT)
