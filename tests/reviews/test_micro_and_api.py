"""Standing micro-reviews fed by imports, and the campaign API."""

import csv
import datetime as dt

import pytest
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from entitlements import services as import_services
from entitlements.models import Entitlement
from evidence.models import EvidenceEvent
from evidence.services import Actor
from reviews import services
from reviews.models import Campaign, ReviewItem


def import_erp(tmp_path, rows, capture):
    path = tmp_path / f"erp-{len(list(tmp_path.iterdir()))}.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(
            [
                [
                    "application",
                    "account_id",
                    "employee_id",
                    "entitlement_id",
                    "entitlement_name",
                    "privileged",
                ],
                *rows,
            ]
        )
    with override_settings(SOXGOV_IMPORT_DIR=tmp_path / "store"), capture(execute=True):
        run = import_services.run_create(
            kind="access", source=path, source_name=path.name, actor=Actor.system("tests"), user=None
        )
        return import_services.run_execute(run_id=run.pk)


def test_an_import_that_adds_privileged_access_creates_a_micro_review_item_at_once(
    people, company, make_campaign, tmp_path, django_capture_on_commit_callbacks
):
    micro = make_campaign(name="Privileged access, as it appears", kind=Campaign.Kind.MICRO)
    services.campaign_launch(campaign_id=micro.pk, user=people["alice"])
    assert ReviewItem.objects.filter(campaign=micro).count() == 3  # the privileged GL_POST grants in ERP
    current = [
        ["ERP", "bob", "E2", "GL_POST", "Post journal", "true"],
        ["ERP", "carol", "E3", "GL_POST", "Post journal", "true"],
        ["ERP", "svc-ledger", "SVC1", "GL_POST", "Post journal", "true"],
    ]

    run = import_erp(
        tmp_path,
        [
            *current,
            ["ERP", "carol", "E3", "GL_CLOSE", "Close period", "true"],
            ["ERP", "bob", "E2", "GL_VIEW", "View", "false"],
        ],
        django_capture_on_commit_callbacks,
    )

    assert run.status == "applied"
    new = ReviewItem.objects.filter(campaign=micro).exclude(entitlement_key="GL_POST")
    assert list(new.values_list("account_key", "entitlement_key")) == [("carol", "GL_CLOSE")]  # not GL_VIEW
    event = EvidenceEvent.objects.get(action="review.item.created")
    assert event.payload_data["run"] == run.pk
    assert Entitlement.objects.filter(entitlement_id="GL_VIEW").exists()


@pytest.fixture
def api(people):
    def as_user(name):
        client = APIClient()
        client.force_authenticate(people[name])
        return client

    return as_user


def test_an_admin_creates_previews_and_launches_a_campaign_through_the_api(people, company, api):
    alice = api("alice")
    today = timezone.localdate()
    body = {
        "name": "API campaign",
        "applications": ["ERP"],
        "fallback_reviewer": "vic",
        "start_on": today.isoformat(),
        "due_on": (today + dt.timedelta(days=10)).isoformat(),
    }
    created = alice.post("/api/reviews/campaigns/", body, format="json")
    assert created.status_code == 201, created.content
    campaign_id = created.json()["id"]
    assert EvidenceEvent.objects.filter(action="review.campaign.created").exists()

    preview = alice.get(f"/api/reviews/campaigns/{campaign_id}/preview/")
    assert preview.json()["total"] == 3 and preview.json()["by_application"] == {"ERP": 3}

    launched = alice.post(f"/api/reviews/campaigns/{campaign_id}/launch/")
    assert launched.status_code == 200 and launched.json()["status"] == "active"
    again = alice.post(f"/api/reviews/campaigns/{campaign_id}/launch/")
    assert again.status_code == 409 and "draft" in again.json()["detail"]


def test_the_api_refuses_bad_campaigns_naming_the_field(people, api):
    response = api("alice").post(
        "/api/reviews/campaigns/",
        {"name": "x", "fallback_reviewer": "vic", "start_on": "2026-12-10", "due_on": "2026-12-01"},
        format="json",
    )
    assert response.status_code == 400 and "due_on" in response.json()
    assert not Campaign.objects.exists()


def test_a_reviewer_decides_her_items_through_the_api_and_sees_only_hers(people, company, make_campaign, api):
    campaign = make_campaign(applications=list(company["applications"].values()))
    services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])
    rita = api("rita")

    listed = rita.get("/api/reviews/items/").json()["results"]
    assert {row["account_key"] for row in listed} == {"bob", "svc-ledger", "ghost"}
    bob = next(row for row in listed if row["account_key"] == "bob")

    decided = rita.post(
        "/api/reviews/items/decide/", {"items": [bob["id"]], "action": "certify"}, format="json"
    )
    assert decided.status_code == 200 and decided.json() == {"decided": 1}
    twice = rita.post(
        "/api/reviews/items/decide/",
        {"items": [bob["id"]], "action": "revoke", "comment": "x"},
        format="json",
    )
    assert twice.status_code == 409 and "already decided" in twice.json()["detail"]
    carol = ReviewItem.objects.get(account_key="carol")
    others = rita.post(
        "/api/reviews/items/decide/", {"items": [carol.pk], "action": "certify"}, format="json"
    )
    assert others.status_code == 404  # someone else's item answers as if it did not exist
