"""Connectors and applications through the API and the admin pages: writable for admins, evidenced, secrets
write-only (the value shows up in no answer, page or evidence)."""

import json

import pytest
from cryptography.fernet import Fernet
from django.test import override_settings
from rest_framework.test import APIClient

from entitlements.models import (
    Application,
    Connector,
    ConnectorRun,
    ConnectorSecret,
    ConnectorThresholdChange,
)
from evidence.models import EvidenceEvent
from soxgov.roles import Role
from tests.connector_sources import SourceDatabase

SECRET = "Api-Secret-Value-123"


@pytest.fixture(autouse=True)
def keys(tmp_path):
    with override_settings(
        SOXGOV_SECRET_KEYS=[Fernet.generate_key().decode()],
        SOXGOV_IMPORT_DIR=tmp_path / "store",
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    ):
        yield


@pytest.fixture
def erp(db, tmp_path, settings):
    source = SourceDatabase(tmp_path, settings)
    source.add_role("GL_POST", "Post journal", admin=True)
    source.add_user("bob", employee_no="E2", roles=["GL_POST"])
    source.add_user("carol", employee_no="E3", roles=["GL_POST"])
    yield source
    source.close()


@pytest.fixture
def people(make_user):
    return {
        "alice": make_user("alice", Role.ADMIN),
        "adam": make_user("adam", Role.ADMIN),
        "audrey": make_user("audrey", Role.AUDITOR),
    }


def client_for(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def create(client, erp, **extra):
    ledger = Application.objects.get_or_create(name="Ledger")[0]
    body = {
        "name": "ledger-db",
        "kind": "sql",
        "application": ledger.pk,
        "configuration": erp.config(),
        "secrets": {"password": {"value": SECRET}},
        **extra,
    }
    return client.post("/api/connectors/", body, format="json")


def everything_said(*responses) -> str:
    events = " ".join(EvidenceEvent.objects.values_list("payload", flat=True))
    return " ".join(r.content.decode() for r in responses) + events


def test_admin_creates_tests_and_pulls_a_connector(erp, people, django_capture_on_commit_callbacks):
    alice = client_for(people["alice"])
    created = create(alice, erp)
    assert created.status_code == 201, created.content
    body = created.json()
    assert "secrets" not in body
    assert body["secret_names"][0]["name"] == "password" and body["secret_names"][0]["kind"] == "encrypted"
    connector = Connector.objects.get(name="ledger-db")
    event = EvidenceEvent.objects.get(action="config.connector.created")
    payload = json.loads(event.payload)
    assert payload["secrets_changed"] == ["password"] and payload["new"]["kind"] == "sql"

    tested = alice.post(f"/api/connectors/{connector.pk}/test/")
    assert tested.status_code == 200 and tested.json()["ok"], tested.json()
    assert (tested.json()["ok"], tested.json()["accounts"], tested.json()["grants"]) == (True, 2, 2)

    with django_capture_on_commit_callbacks(execute=True):
        pulled = alice.post(f"/api/connectors/{connector.pk}/pull/")
    assert pulled.status_code == 202
    run = ConnectorRun.objects.get(pk=pulled.json()["id"])
    assert run.status == "applied" and run.connector == connector

    listed = alice.get("/api/connectors/")
    detail = alice.get(f"/api/connectors/{connector.pk}/")
    assert SECRET not in everything_said(created, tested, pulled, listed, detail)


def test_configuration_errors_are_400_naming_the_key_and_save_nothing(erp, people):
    alice = client_for(people["alice"])
    bad = create(
        alice,
        erp,
        configuration={"url": "postgresql://u:pw@h/db", "access_query": ""},
        secrets={"passwd": {"value": SECRET}},
    )
    assert bad.status_code == 400
    errors = bad.json()
    assert "url: must not contain a password; give it as the secret 'password'" in errors["configuration"]
    assert any("access_query: is required" in e for e in errors["configuration"])
    assert errors["secrets"] == ["secrets: 'passwd' is not a secret of a SQL connector"]
    assert not Connector.objects.exists() and not ConnectorSecret.objects.exists()
    assert SECRET not in bad.content.decode()
    shapeless = create(alice, erp, secrets={"password": SECRET})
    assert shapeless.status_code == 400 and "secrets" in shapeless.json()


def test_raising_thresholds_through_the_api_is_only_proposed(erp, people):
    alice = client_for(people["alice"])
    connector_id = create(alice, erp).json()["id"]
    raised = alice.patch(
        f"/api/connectors/{connector_id}/",
        {"deletion_threshold_percent": 100, "deletion_threshold_count": 100000},
        format="json",
    )
    assert raised.status_code == 200
    assert raised.json()["deletion_threshold_percent"] == 10
    change = ConnectorThresholdChange.objects.get(status="pending")
    assert (change.proposed_percent, change.proposed_by) == (100, people["alice"])
    lowered = alice.patch(f"/api/connectors/{connector_id}/", {"deletion_threshold_count": 3}, format="json")
    assert lowered.json()["deletion_threshold_count"] == 3


def test_secrets_are_replaced_and_removed_never_shown(erp, people):
    alice = client_for(people["alice"])
    connector_id = create(alice, erp).json()["id"]
    ref = alice.patch(
        f"/api/connectors/{connector_id}/",
        {"secrets": {"password": {"reference": "env:LEDGER_PW"}}},
        format="json",
    )
    assert ref.status_code == 200
    assert ref.json()["secret_names"][0]["kind"] == "env"
    changed = EvidenceEvent.objects.filter(action="config.connector.changed").latest("sequence")
    assert json.loads(changed.payload)["secrets_changed"] == ["password"]
    gone = alice.patch(f"/api/connectors/{connector_id}/", {"secrets": {"password": None}}, format="json")
    assert gone.json()["secret_names"] == []


def test_auditors_read_without_configuration_and_cannot_write(erp, people):
    connector_id = create(client_for(people["alice"]), erp).json()["id"]
    audrey = client_for(people["audrey"])
    seen = audrey.get(f"/api/connectors/{connector_id}/").json()
    assert "configuration" not in seen and "secret_names" not in seen
    assert audrey.post(f"/api/connectors/{connector_id}/test/").status_code == 403
    assert audrey.post(f"/api/connectors/{connector_id}/pull/").status_code == 403
    assert (
        audrey.patch(f"/api/connectors/{connector_id}/", {"enabled": False}, format="json").status_code == 403
    )


def test_applications_are_writable_for_admins(people):
    alice = client_for(people["alice"])
    created = alice.post("/api/applications/", {"name": "Payroll", "criticality": "high"}, format="json")
    assert created.status_code == 201, created.content
    app = Application.objects.get(name="Payroll")
    assert json.loads(EvidenceEvent.objects.get(action="config.application.created").payload)["changed"][
        "criticality"
    ] == {"old": None, "new": "high"}
    twin = alice.post("/api/applications/", {"name": "payroll"}, format="json")
    assert twin.status_code == 400 and "exists already" in twin.json()["name"][0]
    changed = alice.patch(f"/api/applications/{app.pk}/", {"sox_in_scope": True}, format="json")
    assert changed.status_code == 200
    event = EvidenceEvent.objects.get(action="config.application.changed")
    assert json.loads(event.payload)["changed"] == {"sox_in_scope": {"old": False, "new": True}}
    assert client_for(people["audrey"]).post("/api/applications/", {"name": "X"}).status_code == 403


def test_connector_pages(erp, people, client):
    client.force_login(people["alice"])
    page = client.get("/connectors/new/")
    assert page.status_code == 200
    ledger = Application.objects.create(name="Ledger")
    form = {
        "name": "ledger-db",
        "kind": "sql",
        "application": ledger.pk,
        "configuration": "{not json",
        "deletion_threshold_percent": 10,
        "deletion_threshold_count": 20,
        "enabled": "on",
        "secret_password": SECRET,
    }
    refused = client.post("/connectors/new/", form)
    assert refused.status_code == 400 and "Enter a valid JSON" in refused.content.decode()
    assert SECRET not in refused.content.decode()
    refused = client.post("/connectors/new/", {**form, "configuration": json.dumps({"url": "ftp://x"})})
    assert refused.status_code == 400
    assert "url: &#x27;ftp&#x27; is not supported" in refused.content.decode()
    assert "access_query: is required" in refused.content.decode()
    assert not Connector.objects.exists()

    saved = client.post("/connectors/new/", {**form, "configuration": json.dumps(erp.config())})
    assert saved.status_code == 302
    connector = Connector.objects.get(name="ledger-db")
    assert ConnectorSecret.objects.get(connector=connector).kind == "encrypted"
    edit = client.get(f"/connectors/{connector.pk}/")
    listing = client.get("/connectors/")
    tested = client.post(f"/connectors/{connector.pk}/test/")
    assert "2 accounts, 1 entitlements, 2 grants" in tested.content.decode()
    for response in (edit, listing, tested):
        assert response.status_code == 200
        assert SECRET not in response.content.decode()
    assert 'type="password"' in edit.content.decode()
    pulled = client.post(f"/connectors/{connector.pk}/pull/")
    assert pulled.status_code == 302 and pulled.url.startswith("/imports/")


def test_django_admin_checks_the_configuration_and_shows_no_secret(erp, people, client):
    connector_id = create(client_for(people["alice"]), erp).json()["id"]
    client.force_login(people["alice"])
    page = client.get(f"/admin/entitlements/connector/{connector_id}/change/")
    assert page.status_code == 200
    assert "password (encrypted" in page.content.decode() and SECRET not in page.content.decode()
    connector = Connector.objects.get(pk=connector_id)
    form = {
        "name": connector.name,
        "kind": "sql",
        "application": connector.application_id,
        "configuration": json.dumps({"url": "postgresql://reader:pw@db/erp"}),
        "cron": "",
        "deletion_threshold_percent": 10,
        "deletion_threshold_count": 20,
        "enabled": "on",
    }
    refused = client.post(f"/admin/entitlements/connector/{connector_id}/change/", form)
    assert refused.status_code == 200  # the form again, with the problems
    text = refused.content.decode()
    assert "url: must not contain a password" in text and "access_query: is required" in text
    connector.refresh_from_db()
    assert connector.configuration == erp.config()
