"""The reviewer's queue page: decisions in place (htmx), a bulk certify that applies the unflagged rows and names
the flagged ones, why each item is yours, the sign-off attestation; and no query per row."""

import re

import pytest
from django.db import connection
from django.db.models import Count
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from evidence.models import EvidenceEvent
from reviews import services
from reviews.models import Campaign, ReviewItem, SignOff

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def rita(people):
    client = Client()
    client.force_login(people["rita"])
    return client


def decide(client, items, action, comment="", *, next_url="/reviews/?status=pending", headers=HTMX):
    # Confirmed: a bulk certify over items recommended for revoke asks first (tests/reviews/test_recommendations.py).
    body = {"item": [i.pk for i in items], "action": action, "comment": comment, "next": next_url,
            "confirm_revokes": "1"}  # fmt: skip
    return client.post(reverse("reviews:decide"), body, **headers)


def test_a_bulk_certify_applies_the_unflagged_rows_and_names_the_flagged_ones_left_ticked(rita, launched):
    _, items = launched
    bot, bob, ghost = items["svc-ledger"], items["bob"], items["ghost"]
    assert bob.needs_comment is False and ghost.needs_comment  # the orphan account needs a comment
    response = decide(rita, [bot, bob, ghost], "certify")
    assert response.status_code == 200
    page = response.content.decode()
    assert "<html" not in page  # the queue's results, swapped in place
    assert "2 items certified." in page
    assert re.search(r'role="alert"[^>]*>1 flagged item not certified: [^<]*ghost[^<]*\(orphan\)', page)
    assert "certifying them needs a comment" in page
    assert re.search(rf'value="{ghost.pk}" form="decide-form" aria-label="[^"]*" checked', page)
    assert 'aria-invalid="true"' in page
    statuses = dict(ReviewItem.objects.filter(pk__in=[bot.pk, bob.pk, ghost.pk]).values_list("pk", "status"))
    assert statuses == {bot.pk: "certified", bob.pk: "certified", ghost.pk: "pending"}

    response = decide(rita, [ghost], "certify", "Shared mailbox of the CRM team")
    assert "1 item certified." in response.content.decode()
    assert ReviewItem.objects.get(pk=ghost.pk).status == "certified"


def test_a_bulk_certify_of_only_flagged_rows_decides_nothing_and_says_so(rita, launched):
    _, items = launched
    before = EvidenceEvent.objects.count()
    page = decide(rita, [items["ghost"]], "certify").content.decode()
    assert "1 flagged item not certified" in page and "certified." not in page.replace("not certified", "")
    assert EvidenceEvent.objects.count() == before


def test_without_htmx_a_decision_still_goes_back_to_the_queue_it_came_from(rita, launched):
    _, items = launched
    response = decide(rita, [items["bob"]], "revoke", "Moved to sales", headers={})
    assert response.status_code == 302 and response["Location"] == "/reviews/?status=pending"


def test_the_fragment_keeps_the_filter_of_the_queue_it_answers(rita, launched):
    _, items = launched
    page = decide(rita, [items["bob"]], "certify", next_url="/reviews/?status=pending&q=ledger").content
    page = page.decode()
    assert 'name="next" value="/reviews/?status=pending&amp;q=ledger"' in page
    assert "svc-ledger" in page and "ghost" not in page  # the search still applies


def test_each_row_says_why_it_is_yours_and_who_the_person_is(people, launched, company):
    company["identities"]["bob"].__class__.objects.filter(pk=company["identities"]["bob"].pk).update(
        title="Accounts payable clerk", status="leave"
    )
    client = Client()
    client.force_login(people["rita"])
    page = client.get("/reviews/").content.decode()
    assert "Yours: manager of Bob Builder" in page
    assert "Yours: owner of ledger-sync" in page
    assert "Yours: owner of CRM" in page  # the orphan account: routed to the application owner
    assert "Accounts payable clerk" in page and "on leave" in page
    client.force_login(people["vic"])
    page = client.get("/reviews/").content.decode()
    assert "Yours: fallback reviewer: Carol Other may not review their own access" in page


def test_a_delegated_item_says_so(people, launched):
    _, items = launched
    services.delegate(
        item_ids=[items["bob"].pk], user=people["rita"], to_user=people["vic"], reason="holiday"
    )
    client = Client()
    client.force_login(people["vic"])
    page = client.get("/reviews/").content.decode()
    assert f"Yours: delegated to you by {people['rita'].display_name}" in page


@pytest.mark.parametrize("routing", [Campaign.Routing.MANAGER, Campaign.Routing.ENTITLEMENT_OWNER])
def test_the_queue_costs_the_same_queries_for_one_row_as_for_many(
    people, company, make_campaign, settings, routing
):
    campaign = make_campaign(applications=list(company["applications"].values()), routing=routing)
    services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])
    busiest = (
        ReviewItem.objects.filter(campaign=campaign).values("reviewer").annotate(n=Count("id")).order_by("-n")
    )
    reviewer = busiest.first()["reviewer"]
    client = Client()
    client.force_login(type(people["rita"]).objects.get(pk=reviewer))
    counts = []
    for size in (1, 50):
        settings.SOXGOV_PAGE_SIZE = size
        # Each page first seen: its rows are marked shown (one UPDATE whatever the rows), as for a new reviewer.
        ReviewItem.objects.update(shown_at=None)
        with CaptureQueriesContext(connection) as queries:
            response = client.get("/reviews/?status=")
        assert response.status_code == 200
        counts.append(len(queries))
    rows = ReviewItem.objects.filter(reviewer=reviewer).count()
    assert rows > 1 and counts[0] == counts[1], f"{counts} queries for 1 and {rows} rows"


def test_sign_off_needs_the_attestation_confirmed_and_keeps_its_text_in_the_evidence(
    people, launched, settings
):
    campaign, _ = launched
    settings.SOXGOV_ATTESTATION_TEXT = "I checked every line; what I certified is needed."
    rita_user = people["rita"]
    mine = list(ReviewItem.objects.filter(campaign=campaign, reviewer=rita_user).values_list("pk", flat=True))
    services.decide(item_ids=mine, user=rita_user, certify=True, comment="All known")
    client = Client()
    client.force_login(rita_user)
    page = client.get("/reviews/").content.decode()
    assert "I checked every line; what I certified is needed." in page
    client.post(reverse("reviews:sign_off", args=[campaign.pk]))
    assert not SignOff.objects.exists()
    assert "Confirm the attestation statement" in client.get("/reviews/").content.decode()
    client.post(reverse("reviews:sign_off", args=[campaign.pk]), {"attest": "1"})
    assert SignOff.objects.filter(reviewer=rita_user).exists()
    event = EvidenceEvent.objects.get(action="review.signoff.recorded")
    assert event.payload_data["attestation"] == "I checked every line; what I certified is needed."


def test_the_api_sign_off_needs_attest_true(people, launched):
    campaign, _ = launched
    rita_user = people["rita"]
    mine = list(ReviewItem.objects.filter(campaign=campaign, reviewer=rita_user).values_list("pk", flat=True))
    services.decide(item_ids=mine, user=rita_user, certify=True, comment="All known")
    client = Client()
    client.force_login(rita_user)
    url = f"/api/reviews/campaigns/{campaign.pk}/sign-off/"
    refused = client.post(url, {}, content_type="application/json")
    assert refused.status_code == 400 and "attest" in refused.content.decode()
    assert client.post(url, {"attest": True}, content_type="application/json").status_code == 201
