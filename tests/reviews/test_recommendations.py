"""Recommendations (reviews/recommendations.py) on the small company of tests/reviews/intelligence.py, where each
right answer is known by construction."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from entitlements.models import Grant
from evidence.models import EvidenceEvent
from reviews import recommendations, services
from reviews.models import Decision, ReviewItem
from tests.reviews.intelligence import item, launch

pytestmark = pytest.mark.django_db


def test_each_signal_and_the_recommendation_it_leads_to(world):
    campaign = launch(world)

    p1_vendor = item(campaign, "P1", "VENDOR_MASTER")
    assert (p1_vendor.peer_holders, p1_vendor.peer_size, p1_vendor.peer_basis) == (1, 10, "title")
    assert p1_vendor.dormant and p1_vendor.unique_in_queue is False  # Q5 holds it too
    assert p1_vendor.recommendation == "revoke"
    assert recommendations.reasons(p1_vendor) == [
        f"unused for over 90 days (last used {p1_vendor.last_used_at:%Y-%m-%d})",
        "held by 1 of 10 peers in Accounts Payable (same department and title)",
        "new since the last certification",
    ]
    p5 = item(campaign, "P5", "AP_ENTER")
    assert (p5.peer_holders, p5.peer_size, p5.recommendation) == (10, 10, "fine")
    assert item(campaign, "P2", "GL_ADMIN").recommendation == "careful"  # privileged
    assert item(campaign, "P3", "AP_ENTER").recommendation == "revoke"  # terminated (flag at launch)
    p4 = item(campaign, "P4", "AP_ENTER")
    assert (p4.on_leave, p4.recommendation) == (True, "careful")
    p6 = item(campaign, "P6", "AP_ENTER")
    assert (p6.never_used, p6.recommendation) == (True, "careful")  # never used, but most peers hold it
    assert "never used" in recommendations.reasons(p6)
    q1 = item(campaign, "Q1", "AP_ENTER")
    assert (q1.peer_holders, q1.peer_size, q1.peer_basis, q1.recommendation) == (4, 5, "manager", "fine")
    assert "held by 4 of 5 peers (same manager)" in recommendations.reasons(q1)
    q5 = item(campaign, "Q5", "VENDOR_MASTER")
    assert (q5.peer_holders, q5.peer_size) == (1, 5)  # 20%: not rare at the default 10%
    assert q5.recommendation == "fine"
    bot = ReviewItem.objects.get(campaign=campaign, account_key="ap-sync")
    assert (bot.owner_gone, bot.peer_size, bot.recommendation) == (True, None, "revoke")
    assert item(campaign, "P2", "GL_ADMIN").unique_in_queue is True


def test_thresholds_are_settings(world, settings):
    settings.SOXGOV_RECOMMEND_RARE_PERCENT = 20
    campaign = launch(world)
    assert item(campaign, "Q5", "VENDOR_MASTER").recommendation == "careful"  # 1 of 5 is now rare
    settings.SOXGOV_RECOMMEND_MIN_PEERS = 11
    other = launch(world, name="again")
    assert item(other, "P5", "AP_ENTER").peer_size is None  # no group of 11 or more


def test_history_revoked_and_granted_again_and_certified_before(world):
    users = world["users"]
    first = launch(world, name="Q3 review")
    services.decide(
        item_ids=[item(first, "P7", "AP_ENTER").pk], user=users["mia"], certify=False, comment="not needed"
    )
    services.decide(item_ids=[item(first, "P8", "AP_ENTER").pk], user=users["mia"], certify=True)

    second = launch(world)

    p7, p8 = item(second, "P7", "AP_ENTER"), item(second, "P8", "AP_ENTER")
    assert (p7.regranted, p7.recommendation) == (True, "careful")
    assert "revoked in an earlier review and granted again" in recommendations.reasons(p7)
    assert (p8.certified_by_reviewer, p8.new_access, p8.recommendation) == (True, False, "fine")
    assert "certified before by the same reviewer" in recommendations.reasons(p8)


def test_a_decision_keeps_what_its_reviewer_was_told_and_the_evidence_says_it(world):
    users = world["users"]
    campaign = launch(world)
    target = item(campaign, "P1", "VENDOR_MASTER")
    ReviewItem.objects.filter(pk=target.pk).update(shown_at=timezone.now() - dt.timedelta(seconds=42))

    services.decide(item_ids=[target.pk], user=users["mia"], certify=True, comment="needed for the audit")

    decision = Decision.objects.get(item=target)
    assert decision.recommendation == "revoke"
    assert decision.reasons.startswith("unused for over 90 days")
    assert (decision.batch, 42 <= decision.seconds_shown <= 44) == (1, True)
    event = EvidenceEvent.objects.get(action="review.item.certified", subject_id=str(target.pk))
    assert event.payload_data["recommendation"] == "revoke"
    assert event.payload_data["reasons"] == decision.reasons
    assert event.payload_data["seconds_shown"] == decision.seconds_shown


def test_refreshed_for_the_pending_items_of_people_whose_access_changed(world):
    campaign = launch(world)
    assert item(campaign, "P5", "AP_ENTER").recommendation == "fine"
    # Half the clerks lose AP_ENTER: P5 now holds what 5 of 10 hold... and four more lose it: 1 of 10.
    Grant.objects.filter(
        entitlement=world["ent"]["AP_ENTER"], account__identity__employee_id__in=["P1", "P2", "P3", "P4", "P6",
                                                                                  "P7", "P8", "P9", "P10", "P11"]
    ).delete()  # fmt: skip
    world["accounts"]["P5"].last_used_at = timezone.now() - dt.timedelta(days=300)
    world["accounts"]["P5"].save()
    ReviewItem.objects.filter(pk=item(campaign, "P5", "AP_ENTER").pk).update(
        last_used_at=world["accounts"]["P5"].last_used_at, dormant=True
    )

    assert recommendations.refresh([world["people"]["P5"].pk]) == 1

    p5 = item(campaign, "P5", "AP_ENTER")
    assert (p5.peer_holders, p5.peer_size, p5.recommendation) == (1, 10, "revoke")
    # Only that person's pending items were recomputed.
    assert item(campaign, "P7", "AP_ENTER").peer_holders == 10


def test_the_queue_shows_recommendations_filters_by_them_and_times_from_first_shown(world, client):
    mia = world["users"]["mia"]
    campaign = launch(world)
    client.force_login(mia)

    page = client.get("/reviews/?recommendation=revoke").content.decode()

    revoke = ReviewItem.objects.filter(campaign=campaign, recommendation="revoke")
    assert "held by 1 of 10 peers in Accounts Payable" in page
    assert page.count('<span class="badge bad">Revoke</span>') == revoke.count()
    assert '<span class="badge good">Likely fine</span>' not in page
    # Shown now: the rows on that page, and only those.
    shown = set(ReviewItem.objects.filter(shown_at__isnull=False).values_list("pk", flat=True))
    assert shown == set(revoke.values_list("pk", flat=True))
    item_page = client.get(item(campaign, "P5", "AP_ENTER").get_absolute_url()).content.decode()
    assert "Likely fine" in item_page and "held by 10 of 10 peers" in item_page
    assert item(campaign, "P5", "AP_ENTER").shown_at is not None


def test_a_bulk_certify_over_recommended_revokes_asks_first_naming_them(world, client):
    mia = world["users"]["mia"]
    campaign = launch(world)
    client.force_login(mia)
    vendor, fine = item(campaign, "P1", "VENDOR_MASTER"), item(campaign, "P5", "AP_ENTER")
    body = {"item": [vendor.pk, fine.pk], "action": "certify", "comment": "ok", "next": "/reviews/"}

    asked = client.post("/reviews/decide/", body, follow=True).content.decode()

    assert "Nothing was certified: SOXGov recommends revoking 1 of the selected items" in asked
    assert str(vendor) in asked and "I have looked at the items recommended for revoke" in asked
    assert ReviewItem.objects.filter(campaign=campaign, status="pending").count() == campaign.item_count

    client.post("/reviews/decide/", {**body, "confirm_revokes": "1"})

    assert set(ReviewItem.objects.filter(status="certified").values_list("pk", flat=True)) == {
        vendor.pk,
        fine.pk,
    }
    assert Decision.objects.get(item=vendor).batch == 2
