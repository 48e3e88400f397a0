"""A connector's safety thresholds: stricter at once; more permissive (up to disabling the gate) only once a second
admin approves, by every route (service, Django admin, API, the Imports page), with old and new evidenced."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from entitlements import services
from entitlements.models import (
    Account,
    Application,
    Connector,
    ConnectorRun,
    ConnectorThresholdChange,
    Entitlement,
    Grant,
)
from entitlements.thresholds import thresholds_approve, thresholds_change, thresholds_reject
from evidence.models import EvidenceEvent
from evidence.services import Actor
from soxgov.roles import Role

Status = ConnectorThresholdChange.Status


@pytest.fixture
def admins(make_user):
    return {"alice": make_user("alice", Role.ADMIN), "bert": make_user("bert", Role.ADMIN)}


@pytest.fixture
def erp_feed(company):
    """The ERP connector, strict: hold any pull removing more than 10% of its grants (and more than 0)."""
    return Connector.objects.create(
        name="ERP nightly",
        kind="access_file",
        application=company["applications"]["erp"],
        configuration={"path": "/srv/erp.csv"},
        deletion_threshold_percent=10,
        deletion_threshold_count=0,
    )


def pull_without_carol(connector, erp_rows, write_csv) -> ConnectorRun:
    """A pull of the ERP that drops Carol: one grant of three (33%)."""
    path = write_csv("erp.csv", [row for row in erp_rows if row[1] != "carol"])
    run = services.run_create(
        kind="access",
        source=path,
        source_name=path.name,
        actor=Actor.system("tests"),
        application=connector.application,
        connector=connector,
    )
    return services.run_execute(run_id=run.pk)


def thresholds_of(connector) -> tuple[int, int]:
    connector.refresh_from_db()
    return connector.deletion_threshold_percent, connector.deletion_threshold_count


def payload(action: str) -> dict:
    return EvidenceEvent.objects.get(action=action).payload_data


# --- the service --------------------------------------------------------------------------------------------


def test_raising_a_threshold_is_only_proposed_and_pulls_keep_the_old_one_until_another_admin_approves(
    admins, erp_feed, erp_rows, write_csv
):
    change = thresholds_change(
        connector_id=erp_feed.pk, user=admins["alice"], percent=50, count=0, reason="ERP clean-up"
    )

    assert change.status == Status.PENDING
    assert thresholds_of(erp_feed) == (10, 0)
    assert payload("config.connector.thresholds.proposed") == {
        "change": change.pk,
        "old": {"deletion_threshold_percent": 10, "deletion_threshold_count": 0},
        "new": {"deletion_threshold_percent": 50, "deletion_threshold_count": 0},
        "reason": "ERP clean-up",
    }
    assert pull_without_carol(erp_feed, erp_rows, write_csv).status == ConnectorRun.Status.HELD

    thresholds_approve(change_id=change.pk, user=admins["bert"], reason="confirmed with IT")

    assert thresholds_of(erp_feed) == (50, 0)
    approved = payload("config.connector.thresholds.approved")
    assert (approved["old"], approved["new"], approved["proposed_by"], approved["decision_reason"]) == (
        {"deletion_threshold_percent": 10, "deletion_threshold_count": 0},
        {"deletion_threshold_percent": 50, "deletion_threshold_count": 0},
        "alice (alice)",
        "confirmed with IT",
    )
    assert pull_without_carol(erp_feed, erp_rows, write_csv).status == ConnectorRun.Status.APPLIED


@pytest.mark.parametrize(
    ("percent", "count"),
    [(100, 0), (10, 1_000_000), (11, 0), (5, 5)],
    ids=["disable", "count", "one", "mixed"],
)
def test_any_value_that_rises_makes_the_whole_change_a_proposal(admins, erp_feed, percent, count):
    change = thresholds_change(connector_id=erp_feed.pk, user=admins["alice"], percent=percent, count=count)
    assert change.status == Status.PENDING and thresholds_of(erp_feed) == (10, 0)


def test_the_proposer_cannot_approve_their_own_threshold_change(admins, erp_feed):
    change = thresholds_change(connector_id=erp_feed.pk, user=admins["alice"], percent=100, count=0)
    with pytest.raises(PermissionDenied, match="cannot also approve"):
        thresholds_approve(change_id=change.pk, user=admins["alice"])
    change.refresh_from_db()
    assert change.status == Status.PENDING and thresholds_of(erp_feed) == (10, 0)
    assert not EvidenceEvent.objects.filter(action="config.connector.thresholds.approved").exists()


def test_the_database_refuses_a_threshold_change_approved_by_its_proposer(admins, erp_feed):
    change = thresholds_change(connector_id=erp_feed.pk, user=admins["alice"], percent=100, count=0)
    with pytest.raises(IntegrityError), transaction.atomic():
        ConnectorThresholdChange.objects.filter(pk=change.pk).update(
            status=Status.APPROVED, decided_by=admins["alice"], decided_at=timezone.now()
        )


def test_lowering_a_threshold_applies_at_once_and_is_evidenced_with_old_and_new(admins, erp_feed):
    change = thresholds_change(connector_id=erp_feed.pk, user=admins["alice"], percent=5, count=0)
    assert change.status == Status.APPLIED and thresholds_of(erp_feed) == (5, 0)
    lowered = payload("config.connector.thresholds.lowered")
    assert (lowered["old"], lowered["new"]) == (
        {"deletion_threshold_percent": 10, "deletion_threshold_count": 0},
        {"deletion_threshold_percent": 5, "deletion_threshold_count": 0},
    )


def test_a_second_proposal_while_one_waits_is_refused(admins, erp_feed):
    first = thresholds_change(connector_id=erp_feed.pk, user=admins["alice"], percent=50, count=0)
    with pytest.raises(ValidationError, match=rf"#{first.pk} proposed by alice \(alice\) is still waiting"):
        thresholds_change(connector_id=erp_feed.pk, user=admins["bert"], percent=90, count=0)
    assert ConnectorThresholdChange.objects.filter(status=Status.PENDING).count() == 1


def test_a_rejected_or_withdrawn_proposal_changes_nothing_and_is_evidenced(admins, erp_feed):
    change = thresholds_change(connector_id=erp_feed.pk, user=admins["alice"], percent=50, count=0)
    thresholds_reject(change_id=change.pk, user=admins["alice"], reason="wrong connector")
    assert thresholds_of(erp_feed) == (10, 0)
    assert payload("config.connector.thresholds.rejected")["withdrawn"] is True
    with pytest.raises(ValidationError, match="not waiting for approval"):
        thresholds_approve(change_id=change.pk, user=admins["bert"])


def test_a_control_owner_cannot_change_thresholds(make_user, erp_feed):
    with pytest.raises(PermissionDenied):
        thresholds_change(
            connector_id=erp_feed.pk, user=make_user("oscar", Role.CONTROL_OWNER), percent=5, count=0
        )
    assert thresholds_of(erp_feed) == (10, 0)


# --- Django admin -----------------------------------------------------------------------------------------


def admin_form(connector, **fields) -> dict:
    return {
        "name": connector.name,
        "kind": connector.kind,
        "application": connector.application_id or "",
        "configuration": json.dumps(connector.configuration),
        "cron": "",
        "deletion_threshold_percent": str(connector.deletion_threshold_percent),
        "deletion_threshold_count": str(connector.deletion_threshold_count),
        "enabled": "on",
        "_save": "Save",
        **fields,
    }


@pytest.fixture
def srv_root(settings):
    settings.SOXGOV_CONNECTOR_FILE_ROOTS = ["/srv"]


def test_django_admin_does_not_save_raised_thresholds_but_proposes_them(admins, erp_feed, srv_root):
    client = Client()
    client.force_login(admins["alice"])
    response = client.post(
        reverse("admin:entitlements_connector_change", args=[erp_feed.pk]),
        admin_form(erp_feed, deletion_threshold_percent="100", cron="0 2 * * *"),
        follow=True,
    )
    assert response.status_code == 200
    assert "needs a second admin" in response.content.decode()
    erp_feed.refresh_from_db()
    assert (erp_feed.deletion_threshold_percent, erp_feed.cron) == (10, "0 2 * * *")
    change = ConnectorThresholdChange.objects.get()
    assert (change.status, change.proposed_percent, change.proposed_by) == (
        Status.PENDING,
        100,
        admins["alice"],
    )
    # The admin's save event records what was saved, not thresholds that were not.
    changed = payload("config.connector.changed")["changed"]
    assert changed["cron"] == {"old": "", "new": "0 2 * * *"} and "deletion_threshold_percent" not in changed


def test_django_admin_says_why_a_raise_is_not_proposed_while_another_waits(admins, erp_feed, srv_root):
    first = thresholds_change(connector_id=erp_feed.pk, user=admins["bert"], percent=50, count=0)
    client = Client()
    client.force_login(admins["alice"])
    response = client.post(
        reverse("admin:entitlements_connector_change", args=[erp_feed.pk]),
        admin_form(erp_feed, deletion_threshold_percent="90"),
        follow=True,
    )
    assert response.status_code == 200
    assert f"Thresholds not changed: ERP nightly: threshold change #{first.pk}" in response.content.decode()
    assert thresholds_of(erp_feed) == (10, 0)
    assert list(ConnectorThresholdChange.objects.values_list("pk", flat=True)) == [first.pk]


def test_django_admin_lowers_thresholds_at_once(admins, erp_feed, srv_root):
    client = Client()
    client.force_login(admins["alice"])
    client.post(
        reverse("admin:entitlements_connector_change", args=[erp_feed.pk]),
        admin_form(erp_feed, deletion_threshold_percent="3"),
    )
    assert thresholds_of(erp_feed) == (3, 0)
    assert ConnectorThresholdChange.objects.get().status == Status.APPLIED


def test_a_new_connector_with_permissive_thresholds_starts_at_the_defaults_until_approved(
    admins, company, srv_root
):
    client = Client()
    client.force_login(admins["alice"])
    template = Connector(
        name="CRM feed",
        kind="access_file",
        application=company["applications"]["crm"],
        configuration={"path": "/srv/crm.csv"},
        deletion_threshold_percent=100,
        deletion_threshold_count=20,
    )
    client.post(reverse("admin:entitlements_connector_add"), admin_form(template))
    created = Connector.objects.get(name="CRM feed")
    assert thresholds_of(created) == (10, 20)
    assert ConnectorThresholdChange.objects.get(connector=created).proposed_percent == 100


# --- API and the Imports page --------------------------------------------------------------------------------


def api(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def post_json(client, url, body) -> tuple[int, dict]:
    response = client.post(url, body, content_type="application/json")
    return response.status_code, response.json()


def test_api_proposes_a_raise_and_another_admin_approves_it(admins, erp_feed):
    status, change = post_json(
        api(admins["alice"]),
        reverse("connector-thresholds", args=[erp_feed.pk]),
        {"deletion_threshold_percent": 40, "reason": "migration week"},
    )
    assert (status, change["status"], change["old_percent"], change["proposed_percent"]) == (
        201,
        "pending",
        10,
        40,
    )
    assert thresholds_of(erp_feed) == (10, 0)

    approve = reverse("connectorthresholdchange-approve", args=[change["id"]])
    status, body = post_json(api(admins["alice"]), approve, {"reason": "me"})
    assert status == 403 and "cannot also approve" in body["detail"]
    status, body = post_json(api(admins["bert"]), approve, {"reason": "ok"})
    assert (status, body["status"], body["decided_by_name"]) == (200, "approved", "bert (bert)")
    assert thresholds_of(erp_feed) == (40, 0)
    status, body = post_json(api(admins["bert"]), approve, {})
    assert status == 409 and "not waiting for approval" in body["detail"]


def test_api_refuses_a_second_pending_proposal_with_409_and_bad_values_with_400(admins, erp_feed):
    url = reverse("connector-thresholds", args=[erp_feed.pk])
    assert post_json(api(admins["alice"]), url, {"deletion_threshold_percent": 40})[0] == 201
    status, body = post_json(api(admins["bert"]), url, {"deletion_threshold_percent": 90})
    assert status == 409 and "still waiting" in body["detail"]
    status, body = post_json(api(admins["bert"]), url, {"deletion_threshold_percent": 101})
    assert status == 400 and "deletion_threshold_percent" in body


def test_imports_page_lists_pending_changes_with_approve_for_another_admin_only(admins, erp_feed):
    change = thresholds_change(connector_id=erp_feed.pk, user=admins["alice"], percent=60, count=0)
    approve = reverse("entitlements:threshold_approve", args=[change.pk])

    own = api(admins["alice"]).get(reverse("entitlements:run_list")).content.decode()
    assert "ERP nightly" in own and "60% and 0" in own and approve not in own and "Withdraw" in own

    bert = api(admins["bert"])
    other = bert.get(reverse("entitlements:run_list")).content.decode()
    assert approve in other
    response = bert.post(approve, {"reason": "fine"})
    assert response.status_code == 302 and response["Location"] == reverse("entitlements:run_list")
    assert thresholds_of(erp_feed) == (60, 0)


# --- four eyes are two people; manual uploads keep the connectors' thresholds -------------------------------


def test_one_person_with_two_admin_accounts_cannot_approve_their_own_threshold_change(
    make_user, company, erp_feed
):
    # bob is the identity E2 by his e-mail; bob-admin by his link.
    bob = make_user("bob", Role.ADMIN)
    bob_admin = make_user("bob-admin", Role.ADMIN, identity=company["identities"]["bob"])
    change = thresholds_change(connector_id=erp_feed.pk, user=bob, percent=100, count=0)

    with pytest.raises(PermissionDenied, match=r"bob-admin and bob are the same person \(identity E2\)"):
        thresholds_approve(change_id=change.pk, user=bob_admin)

    change.refresh_from_db()
    assert change.status == Status.PENDING and thresholds_of(erp_feed) == (10, 0)
    assert not EvidenceEvent.objects.filter(action="config.connector.thresholds.approved").exists()


@pytest.fixture
def payroll(db):
    """An application of 100 grants (one per account) whose connector holds any pull removing over 2%."""
    now = timezone.now()
    app = Application.objects.create(name="Payroll")
    role = Entitlement.objects.create(application=app, entitlement_id="USER", name="User")
    accounts = Account.objects.bulk_create(
        Account(application=app, account_id=f"u{n:03}", first_seen=now) for n in range(100)
    )
    Grant.objects.bulk_create(Grant(account=a, entitlement=role, first_seen=now) for a in accounts)
    Connector.objects.create(
        name="Payroll nightly",
        kind="access_file",
        application=app,
        configuration={"path": "/srv/payroll.csv"},
        deletion_threshold_percent=2,
        deletion_threshold_count=0,
    )
    return app


def upload_by_hand(write_csv, app, keep: int, user=None) -> ConnectorRun:
    """What the Imports page, the API and ``import_access`` do: a run with no connector."""
    rows = [["application", "account_id", "entitlement_id", "entitlement_name"]] + [
        [app.name, f"u{n:03}", "USER", "User"] for n in range(keep)
    ]
    path = write_csv("payroll.csv", rows)
    run = services.run_create(
        kind="access", source=path, source_name=path.name, actor=Actor.system("tests"), user=user
    )
    return services.run_execute(run_id=run.pk)


def test_a_manual_upload_is_held_by_the_strictest_threshold_of_the_applications_connectors(
    payroll, write_csv
):
    # 15 of 100 grants: under the global default (10% and 20), over the connector's 2%.
    run = upload_by_hand(write_csv, payroll, keep=85)

    assert run.status == ConnectorRun.Status.HELD
    assert run.held_reason.startswith(
        "Payroll: would remove 15 of 100 grants (15.0%), over the threshold of 2% and 0 grants"
    )
    assert Grant.objects.filter(account__application=payroll).count() == 100


def test_a_raised_threshold_waiting_for_approval_does_not_let_a_manual_upload_through(
    admins, payroll, write_csv
):
    connector = payroll.connectors.get()
    thresholds_change(connector_id=connector.pk, user=admins["alice"], percent=50, count=0)
    assert upload_by_hand(write_csv, payroll, keep=85).status == ConnectorRun.Status.HELD

    # A second, lenient connector of the same application does not loosen the gate either.
    Connector.objects.create(
        name="Payroll weekly", kind="access_file", application=payroll, deletion_threshold_percent=90
    )
    run = upload_by_hand(write_csv, payroll, keep=85)
    assert run.status == ConnectorRun.Status.HELD and "threshold of 2%" in run.held_reason


def test_a_manual_upload_for_an_application_without_connectors_keeps_the_global_default(payroll, write_csv):
    payroll.connectors.all().delete()
    run = upload_by_hand(write_csv, payroll, keep=85)
    assert run.status == ConnectorRun.Status.APPLIED, run.held_reason
