"""Closed-loop remediation: a revoke opens a task; only a later pull proves the access gone."""

import csv
import io

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client, override_settings

from entitlements import services as import_services
from evidence.models import EvidenceEvent
from evidence.services import Actor
from reviews import remediation, services
from reviews.models import RemediationTask, ReviewItem

ERP_HEADER = ["application", "account_id", "employee_id", "entitlement_id", "entitlement_name", "privileged"]


@pytest.fixture
def revoked(people, company, make_campaign):
    campaign = make_campaign()
    services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])
    bob = ReviewItem.objects.get(campaign=campaign, account_key="bob")
    services.decide(item_ids=[bob.pk], user=people["rita"], certify=False, comment="Moved to sales")
    return RemediationTask.objects.get()


def pull_erp(tmp_path, rows, capture):
    path = tmp_path / f"erp{len(list(tmp_path.glob('erp*.csv')))}.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([ERP_HEADER, *rows])
    with override_settings(SOXGOV_IMPORT_DIR=tmp_path / "store"), capture(execute=True):
        run = import_services.run_create(
            kind="access", source=path, source_name=path.name, actor=Actor.system("t"), user=None
        )
        return import_services.run_execute(run_id=run.pk)


OTHERS = [
    ["ERP", "carol", "E3", "GL_POST", "Post journal", "true"],
    ["ERP", "svc-ledger", "SVC1", "GL_POST", "Post journal", "true"],
]


def test_a_revoke_opens_a_task_owned_by_the_application_owner_with_evidence(revoked, company):
    assert revoked.status == "open" and revoked.owner == company["identities"]["carol"]  # ERP's owner
    assert (revoked.account_key, revoked.entitlement_key) == ("bob", "GL_POST")
    event = EvidenceEvent.objects.get(action="remediation.task.opened")
    assert event.payload_data["item"] == revoked.item_id


def test_a_pull_that_still_contains_the_grant_leaves_the_task_open(
    revoked, tmp_path, django_capture_on_commit_callbacks
):
    pull_erp(
        tmp_path,
        [["ERP", "bob", "E2", "GL_POST", "Post journal", "true"], *OTHERS],
        django_capture_on_commit_callbacks,
    )
    revoked.refresh_from_db()
    assert revoked.status == "open"


def test_a_later_pull_without_the_grant_closes_the_task_and_links_the_run(
    revoked, tmp_path, django_capture_on_commit_callbacks
):
    run = pull_erp(tmp_path, [["ERP", "bob", "E2", "", "", ""], *OTHERS], django_capture_on_commit_callbacks)

    revoked.refresh_from_db()
    assert revoked.status == "verified" and revoked.closing_run == run
    event = EvidenceEvent.objects.get(action="remediation.task.verified")
    assert event.payload_data["connector_run"] == run.pk and event.payload_data["item"] == revoked.item_id
    assert event.payload_data["input_sha256"] == run.input_sha256


def test_a_manual_close_needs_proof_and_is_marked_manual(revoked, people):
    oscar = people["oscar"]
    with pytest.raises(ValidationError, match="needs proof"):
        remediation.task_close_manually(task_id=revoked.pk, user=oscar, proof="done")
    revoked.refresh_from_db()
    assert revoked.status == "open"

    screenshot = SimpleUploadedFile("removed.png", b"\x89PNG fake screenshot")
    remediation.task_close_manually(
        task_id=revoked.pk, user=oscar, proof="Removed by hand in ERP", attachment=screenshot
    )

    revoked.refresh_from_db()
    assert (revoked.status, revoked.closed_by) == ("manual", oscar)
    event = EvidenceEvent.objects.get(action="remediation.task.closed_manually")
    assert (
        event.payload_data["attachment_sha256"] == revoked.attachment_sha256
        and len(revoked.attachment_sha256) == 64
    )


def test_reviewers_and_auditors_may_not_close_tasks(revoked, people):
    from django.core.exceptions import PermissionDenied

    for who in ("rita", "audrey"):
        with pytest.raises(PermissionDenied):
            remediation.task_close_manually(task_id=revoked.pk, user=people[who], proof="x", ticket="T-1")


def test_open_revocations_export_as_csv_with_inert_formulas(revoked, people):
    ReviewItem.objects.filter(pk=revoked.item_id).update(comment='=HYPERLINK("http://evil")')
    client = Client()
    client.force_login(people["oscar"])

    response = client.get("/reviews/remediation/", {"status": "open", "export": "csv"})

    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:4] == ["task_id", "application", "account_id", "entitlement_id"]
    assert rows[1][2:4] == ["bob", "GL_POST"]
    assert rows[1][-1] == '\'=HYPERLINK("http://evil")'
    xlsx = client.get("/reviews/remediation/", {"export": "xlsx"})
    assert xlsx.status_code == 200 and b"".join(xlsx.streaming_content)[:2] == b"PK"
    assert EvidenceEvent.objects.filter(action="remediation.export.downloaded").count() == 2
