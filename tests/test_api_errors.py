"""One API error path: what a refused request answers (status and body), the query parameters that are refused
rather than ignored, and the OpenAPI schema that documents both.

Which route answers what for whom is tests/test_access_matrix.py; the rules behind each refusal are the
services' own tests.
"""

import datetime as dt

import pytest
import yaml
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.urls import reverse
from rest_framework.test import APIClient

from evidence.models import EvidenceEvent
from reviews.models import Campaign
from soxgov.api.errors import exception_handler
from soxgov.exceptions import Conflict


@pytest.fixture
def api(personas):
    def as_user(name):
        client = APIClient()
        client.force_authenticate(personas[name])
        return client

    return as_user


# --- the handler: one rule for every app --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raised", "status", "body"),
    [
        (Conflict("The campaign is closed."), 409, {"detail": "The campaign is closed."}),
        (ValidationError({"due_on": "Too early."}), 400, {"due_on": ["Too early."]}),
        (ValidationError("Select at least one item."), 400, {"detail": ["Select at least one item."]}),
        (PermissionDenied("Not yours."), 403, {"detail": "Not yours."}),
        (Campaign.DoesNotExist("No campaign 7."), 404, {"detail": "No campaign 7."}),
    ],
    ids=["conflict", "field error", "non-field error", "permission", "missing"],
)
def test_each_domain_exception_has_one_status_and_body(db, raised, status, body):
    response = exception_handler(raised, {})
    assert (response.status_code, response.data) == (status, body)


def test_an_unknown_exception_is_left_to_become_a_server_error(db):
    assert exception_handler(RuntimeError("boom"), {}) is None


# --- through the endpoints ---------------------------------------------------------------------------------


def test_a_campaign_patch_keeps_what_it_does_not_send_and_a_launched_one_answers_409(api, company):
    alice = api("alice")
    today = company["today"]
    created = alice.post(
        "/api/reviews/campaigns/",
        {
            "name": "Q3",
            "applications": ["ERP"],
            "fallback_reviewer": "rita",
            "identity_kinds": ["human"],
            "start_on": today.isoformat(),
            "due_on": (today + dt.timedelta(days=10)).isoformat(),
        },
        format="json",
    )
    assert created.status_code == 201, created.content
    url = f"/api/reviews/campaigns/{created.json()['id']}/"

    changed = alice.patch(url, {"description": "Quarterly"}, format="json")

    assert changed.status_code == 200, changed.content
    body = changed.json()
    assert (body["name"], body["description"], body["applications"], body["identity_kinds"]) == (
        "Q3",
        "Quarterly",
        ["ERP"],
        ["human"],
    )
    assert EvidenceEvent.objects.filter(action="review.campaign.changed").count() == 1

    assert alice.post(f"{url}launch/").status_code == 200
    refused = alice.patch(url, {"description": "Too late"}, format="json")
    assert refused.status_code == 409 and refused.json() == {
        "detail": "Only a draft campaign can be changed."
    }
    assert Campaign.objects.get().description == "Quarterly"
    preview = alice.get(f"{url}preview/")
    assert preview.status_code == 409 and "draft" in preview.json()["detail"]


def test_bad_campaign_values_are_all_named_at_once_and_nothing_is_saved(api, company):
    response = api("alice").post(
        "/api/reviews/campaigns/",
        {
            "name": "x",
            "routing": "named",
            "fallback_reviewer": "audrey",
            "identity_kinds": ["robot"],
            "departments": "Finance",
            "start_on": "2026-12-10",
            "due_on": "2026-12-01",
        },
        format="json",
    )
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"named_reviewer", "fallback_reviewer", "identity_kinds", "departments", "due_on"}
    assert "no reviewer role" in body["fallback_reviewer"][0]
    assert "robot" in body["identity_kinds"][0]
    assert not Campaign.objects.exists()


@pytest.mark.parametrize("page_size", ["all", "0", "-1", "1.5", "", "\uff11"])  # the last: a full-width one
def test_an_unreadable_page_size_is_refused_naming_the_parameter(api, company, page_size):
    response = api("audrey").get(reverse("identity-list"), {"page_size": page_size})
    assert response.status_code == 400
    assert list(response.json()) == ["page_size"]


def test_a_readable_page_size_pages(api, company):
    body = api("audrey").get(reverse("identity-list"), {"page_size": "2"}).json()
    assert len(body["results"]) == 2 and body["next"]


@pytest.mark.parametrize(
    ("route", "parameter"),
    [
        ("account-list", "privileged"),
        ("account-list", "orphan"),
        ("identity-list", "unowned"),
        ("application-list", "sox_in_scope"),
        ("entitlement-list", "sensitive"),
        ("rule-list", "enabled"),
        ("controlexception-list", "mine"),
        ("remediationtask-list", "overdue"),
    ],
)
def test_an_unreadable_boolean_is_refused_naming_the_parameter(api, company, route, parameter):
    response = api("alice").get(reverse(route), {parameter: "maybe"})
    assert response.status_code == 400
    assert list(response.json()) == [parameter] and "true or false" in response.json()[parameter][0]


@pytest.mark.parametrize(("value", "expected"), [("true", {"ghost"}), ("TRUE", {"ghost"}), ("1", {"ghost"})])
def test_booleans_read_true_and_false_in_any_case(api, company, value, expected):
    rows = api("alice").get(reverse("account-list"), {"orphan": value}).json()["results"]
    assert {row["account_id"] for row in rows} == expected
    others = api("alice").get(reverse("account-list"), {"orphan": "False"}).json()["results"]
    assert "ghost" not in {row["account_id"] for row in others} and others


def test_the_list_page_refuses_an_unreadable_boolean_too(client, personas, company):
    client.force_login(personas["alice"])
    response = client.get(reverse("entitlements:account_list"), {"orphan": "maybe"})
    assert response.status_code == 400 and b"orphan" in response.content.lower()
    assert client.get(reverse("entitlements:account_list"), {"orphan": "true"}).status_code == 200


# --- the schema --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema(tmp_path_factory, django_db_blocker):
    path = tmp_path_factory.mktemp("schema") / "schema.yaml"
    with django_db_blocker.unblock():
        # --fail-on-warn: a serializer the generator cannot read, or a clash of names, fails here.
        call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(path))
    return yaml.safe_load(path.read_text())


def test_the_schema_documents_every_error_answer_with_the_shared_bodies(schema):
    launch = schema["paths"]["/api/reviews/campaigns/{id}/launch/"]["post"]["responses"]
    assert {"200", "400", "403", "404", "409"} <= set(launch)
    listing = schema["paths"]["/api/accounts/"]["get"]["responses"]
    assert {"200", "400", "403"} <= set(listing) and "409" not in listing
    error, invalid = (
        {"$ref": "#/components/schemas/Error"},
        {"$ref": "#/components/schemas/ValidationError"},
    )
    assert launch["409"]["content"]["application/json"]["schema"] == error
    assert launch["404"]["content"]["application/json"]["schema"] == error
    assert listing["400"]["content"]["application/json"]["schema"] == invalid
    components = schema["components"]["schemas"]
    assert components["Error"]["properties"]["detail"]["type"] == "string"
    assert components["ValidationError"]["additionalProperties"] == {
        "type": "array",
        "items": {"type": "string"},
    }
    token = schema["paths"]["/api/auth/token/"]["post"]["responses"]
    assert "403" not in token and "409" not in token  # anyone may ask for a token; it changes no object


@pytest.mark.parametrize(
    ("component", "field"),
    [("ControlException", "owner"), ("Decision", "delegated_to"), ("ReviewItem", "decided_by")],
)
def test_the_schema_marks_usernames_that_may_be_missing_as_nullable(schema, component, field):
    assert schema["components"]["schemas"][component]["properties"][field]["nullable"] is True


def test_the_schema_documents_boolean_filters_as_booleans(schema):
    parameters = {p["name"]: p for p in schema["paths"]["/api/accounts/"]["get"]["parameters"]}
    assert parameters["privileged"]["schema"]["type"] == "boolean"
    assert parameters["page_size"]["schema"]["type"] == "integer"
