"""The REST API: token auth, cursor pagination, filters, the OpenAPI schema, and evidence an auditor can check.

Who may call what is in tests/test_access_matrix.py; this file is about how the API behaves for those who may.
"""

import base64
import datetime as dt

import pytest
from django.test import Client
from django.urls import reverse

from entitlements.models import Account, Grant, Identity
from evidence.chain import GENESIS_HASH, event_hash, format_time, verify
from evidence.models import EvidenceEvent
from evidence.services import Actor, Event, Subject, event_record, events_record
from soxgov.models import ApiToken
from soxgov.tokens import token_create


@pytest.fixture(scope="module")
def web():
    # One client for the module: building its handler (the middleware chain) is the slow part.
    return Client()


@pytest.fixture
def client(db, web):
    web.logout()
    return web


@pytest.fixture
def token(personas):
    return token_create(actor=Actor.system("tests"), reason="tests", user=personas["audrey"])[1]


def bearer(key: str) -> dict:
    return {"Authorization": f"Token {key}"}


def get_json(client, url, params=None, headers=None, status=200):
    response = client.get(url, params or {}, headers=headers or {})
    assert response.status_code == status, response.content[:500]
    return response.json()


# --- token authentication --------------------------------------------------------------------------------


def test_auditor_reads_the_api_with_a_token_and_no_session(client, personas, company, token):
    data = get_json(client, reverse("identity-list"), headers=bearer(token))
    assert {row["display_name"] for row in data["results"]} == {
        i.display_name for i in Identity.objects.all()
    }


def test_a_token_is_issued_for_a_username_and_password_and_then_works(client, personas, company):
    response = client.post(reverse("api_token"), {"username": "audrey", "password": "correct horse battery"})
    assert response.status_code == 200
    key = response.json()["token"]
    assert ApiToken.objects.get(user=personas["audrey"]).prefix == key[:8]
    assert get_json(client, reverse("grant-list"), headers=bearer(key))["results"]


def test_a_wrong_password_gets_no_token(client, personas):
    response = client.post(reverse("api_token"), {"username": "audrey", "password": "wrong horse"})
    assert response.status_code == 400
    assert "token" not in response.json()


@pytest.mark.parametrize("header", ["Token not-a-real-key", "Token ", "Bearer abc", "Token a b"])
def test_a_bad_token_is_refused(client, personas, company, header):
    response = client.get(reverse("identity-list"), headers={"Authorization": header})
    assert response.status_code in (401, 403)
    assert "results" not in response.json()


def test_the_token_of_a_deactivated_user_stops_working(client, personas, company, token):
    personas["audrey"].is_active = False
    personas["audrey"].save()
    response = client.get(reverse("identity-list"), headers=bearer(token))
    assert response.status_code in (401, 403)


# --- cursor pagination -----------------------------------------------------------------------------------


def add_rows(company, n: int) -> None:
    """n more identities, each with an ERP account holding "Post journal", and n more evidence events."""
    now = dt.datetime.now(dt.UTC)
    erp, post = company["applications"]["erp"], company["entitlements"]["post"]
    people = Identity.objects.bulk_create(
        Identity(employee_id=f"X{i}", display_name=f"Extra {i:02}", department="Extra") for i in range(n)
    )
    accounts = Account.objects.bulk_create(
        Account(application=erp, account_id=f"extra{i}", identity=p, first_seen=now)
        for i, p in enumerate(people)
    )
    Grant.objects.bulk_create(Grant(account=a, entitlement=post, first_seen=now) for a in accounts)
    subject = Subject("tests.thing", "1", "thing")
    events_record(
        actor=Actor.system("tests"), events=[Event("test.row.added", subject, {"i": i}) for i in range(n)]
    )


def follow(client, url, headers=None, key="id"):
    """Every row of a list endpoint, by following ``next``; also checks each page's shape."""
    rows, pages = [], 0
    while url:
        data = get_json(client, url, headers=headers)
        assert set(data) == {"next", "previous", "results"}, "cursor pages have no count and no page numbers"
        assert len(data["results"]) <= 3
        rows += [row[key] for row in data["results"]]
        url, pages = data["next"], pages + 1
        assert pages < 100
    return rows, pages


@pytest.mark.parametrize(
    ("route", "model", "key"),
    [
        ("identity-list", Identity, "id"),
        ("account-list", Account, "id"),
        ("grant-list", Grant, "id"),
        ("evidenceevent-list", EvidenceEvent, "sequence"),
    ],
)
def test_following_next_visits_every_row_once_in_key_order(
    client, personas, company, token, route, model, key
):
    add_rows(company, 10)
    rows, pages = follow(client, reverse(route) + "?page_size=3", headers=bearer(token), key=key)
    assert rows == sorted(model.objects.values_list("pk", flat=True))
    assert len(rows) >= 10 and pages == -(-len(rows) // 3)


def test_previous_leads_back_to_the_page_before(client, personas, company, token):
    add_rows(company, 8)
    first = get_json(client, reverse("identity-list"), {"page_size": 3}, headers=bearer(token))
    second = get_json(client, first["next"], headers=bearer(token))
    assert first["previous"] is None
    back = get_json(client, second["previous"], headers=bearer(token))
    assert back["results"] == first["results"]


def test_reviewer_pages_through_only_her_own_scope(client, personas, company):
    add_rows(company, 8)  # the extras have no manager or owner: none are Rita's
    client.force_login(personas["rita"])
    rows, _ = follow(client, reverse("identity-list") + "?page_size=1")
    ids = company["identities"]
    assert rows == sorted([ids["rita"].pk, ids["bob"].pk, ids["bot"].pk])


def drf_cursor(raw: str) -> str:
    return base64.b64encode(raw.encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [drf_cursor("p=abc"), drf_cursor("p=1.5&r=1"), drf_cursor("o=-1"), drf_cursor("r=x"), "//79"],
    ids=["text position", "fractional position", "negative offset", "bad direction", "not ASCII"],
)
def test_a_tampered_api_cursor_is_refused_not_a_server_error(client, personas, company, token, cursor):
    response = client.get(reverse("identity-list"), {"cursor": cursor}, headers=bearer(token))
    assert response.status_code == 404
    assert response.json() == {"detail": "Invalid cursor"}


def test_page_size_is_capped(client, personas, company, token):
    add_rows(company, 3)
    data = get_json(client, reverse("identity-list"), {"page_size": 100000}, headers=bearer(token))
    assert len(data["results"]) == Identity.objects.count()  # under the cap of 1000, so all of them


# --- filters ----------------------------------------------------------------------------------------------


def names(data, field="display_name"):
    return sorted(row[field] for row in data["results"])


def test_q_searches_identities_case_insensitively(client, personas, company, token):
    data = get_json(client, reverse("identity-list"), {"q": "BOB"}, headers=bearer(token))
    assert names(data) == ["Bob Builder"]


def test_q_searches_accounts_by_the_identity_name(client, personas, company, token):
    data = get_json(client, reverse("account-list"), {"q": "carol"}, headers=bearer(token))
    assert names(data, "account_id") == ["carol"]


@pytest.mark.parametrize(
    ("value", "expected"), [("true", ["ghost"]), ("false", ["bob", "carol", "svc-ledger"])]
)
def test_orphan_filter_selects_accounts_without_an_identity(
    client, personas, company, token, value, expected
):
    data = get_json(client, reverse("account-list"), {"orphan": value}, headers=bearer(token))
    assert names(data, "account_id") == expected


def test_application_filter_narrows_accounts_entitlements_and_grants(client, personas, company, token):
    erp, crm = company["applications"]["erp"], company["applications"]["crm"]
    accounts = get_json(client, reverse("account-list"), {"application": erp.pk}, headers=bearer(token))
    assert names(accounts, "account_id") == ["bob", "carol", "svc-ledger"]
    entitlements = get_json(
        client, reverse("entitlement-list"), {"application": crm.pk}, headers=bearer(token)
    )
    assert names(entitlements, "name") == ["View customers"]
    grants = get_json(client, reverse("grant-list"), {"application": crm.pk}, headers=bearer(token))
    assert [g["account"] for g in grants["results"]] == [company["accounts"]["orphan_crm"].pk]


def test_filters_combine(client, personas, company, token):
    erp = company["applications"]["erp"]
    data = get_json(
        client, reverse("account-list"), {"application": erp.pk, "q": "svc"}, headers=bearer(token)
    )
    assert names(data, "account_id") == ["svc-ledger"]


def test_a_reviewer_cannot_filter_by_an_application_outside_her_scope(client, personas, company):
    client.force_login(personas["rita"])
    response = client.get(reverse("account-list"), {"application": company["applications"]["erp"].pk})
    assert response.status_code == 400
    assert "application" in response.json()


def test_an_invalid_filter_value_is_a_400_naming_the_filter(client, personas, company, token):
    response = client.get(reverse("identity-list"), {"kind": "robot"}, headers=bearer(token))
    assert response.status_code == 400
    assert "kind" in response.json()


def test_evidence_events_filter_by_action_prefix_and_subject(client, personas, company, token):
    bob = company["identities"]["bob"]
    event_record(actor=Actor.system("tests"), action="access.grant.added", subject=bob, payload={})
    event_record(actor=Actor.system("tests"), action="access.grant.removed", subject=bob, payload={})
    event_record(actor=Actor.system("tests"), action="config.application.created", subject=bob, payload={})
    data = get_json(client, reverse("evidenceevent-list"), {"action": "access.grant"}, headers=bearer(token))
    assert names(data, "action") == ["access.grant.added", "access.grant.removed"]
    data = get_json(
        client,
        reverse("evidenceevent-list"),
        {"subject_type": "entitlements.identity", "subject_id": str(bob.pk), "action": "config"},
        headers=bearer(token),
    )
    assert names(data, "action") == ["config.application.created"]


# --- schema and docs --------------------------------------------------------------------------------------


def test_schema_is_an_openapi_document_listing_every_endpoint(client, personas):
    client.force_login(personas["audrey"])
    response = client.get(reverse("api_schema"), {"format": "json"})
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "SOXGov API"
    for path in (
        "/api/identities/",
        "/api/identities/{id}/",
        "/api/applications/",
        "/api/accounts/",
        "/api/entitlements/",
        "/api/grants/{id}/",
        "/api/evidence/events/",
        "/api/evidence/events/{sequence}/",
        "/api/evidence/verifications/",
        "/api/evidence/packs/",
        "/api/evidence/packs/{id}/download/",
    ):
        assert path in schema["paths"], path
    assert set(schema["paths"]["/api/evidence/packs/"]) == {"get", "post"}, "a pack is asked for with a POST"
    assert "tokenAuth" in schema["components"]["securitySchemes"]
    assert set(schema["paths"]["/api/identities/"]) == {"get"}, "the identity API is read-only"


def test_schema_is_served_as_yaml_by_default(client, personas):
    client.force_login(personas["audrey"])
    response = client.get(reverse("api_schema"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    assert response.content.startswith(b"openapi: 3.")


def test_api_docs_render_for_a_signed_in_user(client, personas):
    client.force_login(personas["rita"])
    response = client.get(reverse("api_docs"))
    assert response.status_code == 200
    assert "swagger-ui" in response.content.decode().lower()
    # The schema's address is in the start-up script, which the page loads from its own URL (CSP: no inline script).
    start_up = client.get(reverse("api_docs") + "?script=")
    assert reverse("api_schema") in start_up.content.decode()


@pytest.mark.parametrize("route", ["api_schema", "api_docs"])
def test_schema_and_docs_are_not_served_to_anonymous_visitors(client, db, route):
    assert client.get(reverse(route)).status_code in (302, 401, 403)


# --- evidence events --------------------------------------------------------------------------------------


@pytest.fixture
def events(company, personas):
    bob = company["identities"]["bob"]
    return [
        event_record(actor=Actor.system("tests"), action="access.grant.added", subject=bob, payload={"n": 1}),
        event_record(
            actor=Actor.for_user(personas["alice"]),
            action="config.identity.changed",
            subject=bob,
            payload={"changed": {"title": "Ops lead"}, "note": "naïve café"},
        ),
    ]


def test_evidence_event_exposes_payload_canonical_text_and_hashes(client, events, token):
    first, second = events
    data = get_json(client, reverse("evidenceevent-detail", args=[second.sequence]), headers=bearer(token))
    assert data["payload"] == {"changed": {"title": "Ops lead"}, "note": "naïve café"}
    assert (
        data["payload_canonical"] == second.payload == '{"changed":{"title":"Ops lead"},"note":"naïve café"}'
    )
    assert (data["prev_hash"], data["hash"]) == (first.hash, second.hash)
    assert (data["actor_kind"], data["actor_user"], data["subject_type"], data["subject_id"]) == (
        "user",
        second.actor_user_id,
        "entitlements.identity",
        str(events[0].subject_id),
    )


def test_an_auditor_can_verify_the_chain_from_the_api_alone(client, events, token):
    rows, _ = follow(
        client, reverse("evidenceevent-list") + "?page_size=3", headers=bearer(token), key="sequence"
    )
    data = get_json(client, reverse("evidenceevent-list"), {"page_size": 1000}, headers=bearer(token))[
        "results"
    ]
    assert [row["sequence"] for row in data] == rows
    chain = [
        {
            **row,
            "actor_id": row["actor_user"],
            "payload": row["payload_canonical"],
            "occurred_at": format_time(dt.datetime.fromisoformat(row["occurred_at"])),
        }
        for row in data
    ]
    assert chain[0]["prev_hash"] == GENESIS_HASH
    assert all(event_hash(row) == row["hash"] for row in chain)
    assert verify(chain).intact


def test_a_forged_payload_would_not_match_the_published_hash(client, events, token):
    data = get_json(client, reverse("evidenceevent-detail", args=[events[1].sequence]), headers=bearer(token))
    row = {
        **data,
        "actor_id": data["actor_user"],
        "payload": data["payload_canonical"].replace("Ops lead", "CEO"),
        "occurred_at": format_time(dt.datetime.fromisoformat(data["occurred_at"])),
    }
    assert event_hash(row) != data["hash"]


def test_connector_configuration_is_shown_to_admins_only(client, personas):
    from entitlements.models import Connector

    Connector.objects.create(name="erp file", kind="access_file", configuration={"path": "/data/erp.csv"})
    client.force_login(personas["audrey"])
    assert "configuration" not in client.get("/api/connectors/").json()["results"][0]
    client.force_login(personas["alice"])
    assert client.get("/api/connectors/").json()["results"][0]["configuration"] == {"path": "/data/erp.csv"}


# --- request bodies: JSON; a form or multipart body is refused with 415 ------------------------------------


def form_body(pairs: list[tuple[str, str]]):
    """A form body with repeated keys, as a browser or ``curl -F`` sends lists."""
    from django.http import QueryDict

    body = QueryDict(mutable=True)
    for key, value in pairs:
        body.appendlist(key, value)
    return body


def campaign_json(**extra) -> dict:
    today = dt.date.today()
    return {
        "name": "Scoped",
        "applications": ["ERP", "CRM"],
        "departments": ["Finance", "IT"],
        "identity_kinds": ["human", "service"],
        "fallback_reviewer": "rita",
        "start_on": today.isoformat(),
        "due_on": (today + dt.timedelta(days=10)).isoformat(),
        **extra,
    }


@pytest.fixture
def alice_api(personas, company):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(personas["alice"])
    return client


def test_a_campaign_created_with_json_lists_keeps_every_value(alice_api):
    response = alice_api.post(reverse("campaign-list"), campaign_json(), format="json")
    assert response.status_code == 201, response.content
    data = response.json()
    assert (sorted(data["applications"]), data["departments"], data["identity_kinds"]) == (
        ["CRM", "ERP"],
        ["Finance", "IT"],
        ["human", "service"],
    )


@pytest.mark.parametrize("method", ["post", "patch"])
def test_a_campaign_written_with_a_multipart_body_is_refused_with_415_and_changes_nothing(alice_api, method):
    """Before: a repeated key kept only its last value (two applications became one) or a list became text."""
    from reviews.models import Campaign

    draft = alice_api.post(
        reverse("campaign-list"), campaign_json(applications=["ERP"]), format="json"
    ).json()
    url = reverse("campaign-list") if method == "post" else reverse("campaign-detail", args=[draft["id"]])
    pairs = [
        (key, value)
        for key, values in campaign_json(name="Multipart").items()
        for value in (values if isinstance(values, list) else [values])
    ]
    before = list(Campaign.objects.values_list("name", "departments", "identity_kinds"))

    response = getattr(alice_api, method)(url, form_body(pairs), format="multipart")

    assert response.status_code == 415, response.content
    assert "multipart/form-data" in response.json()["detail"]
    assert list(Campaign.objects.values_list("name", "departments", "identity_kinds")) == before
    assert Campaign.objects.get(pk=draft["id"]).applications.get().name == "ERP"


@pytest.mark.parametrize(
    ("url_name", "pairs"),
    [
        ("rule-list", [("code", "SOD-9"), ("name", "x"), ("sides", "a"), ("sides", "b")]),
        ("reviewitem-decide", [("items", "1"), ("items", "2"), ("action", "certify")]),
        ("sod_what_if", [("identity", "1"), ("entitlements", "1"), ("entitlements", "2")]),
    ],
)
def test_other_writes_with_a_form_body_are_refused_with_415(alice_api, url_name, pairs):
    response = alice_api.post(reverse(url_name), form_body(pairs), format="multipart")
    assert response.status_code == 415, response.content
