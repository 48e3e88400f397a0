"""Closed-loop remediation: a revoke opens a task; only a later pull proves the access gone."""

import csv
import io
import zipfile

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

    screenshot = SimpleUploadedFile("removed.png", b"\x89PNG\r\n\x1a\n fake screenshot")
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


# --- attachments: size limit and allowed types, by extension and by content ----------------------------------


def ooxml(main_part: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr(main_part, "<document/>")
    return buffer.getvalue()


def zip_of_an_executable() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("setup.exe", b"MZ\x90\x00\x03\x00\x00\x00")
    return buffer.getvalue()


PE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + bytes(64)
ACCEPTED = {
    "proof.pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj",
    "proof.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "proof.jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF",
    "proof.JPEG": b"\xff\xd8\xff\xe1\x00\x10Exif",
    "proof.txt": b"Removed from the ERP group on 2026-03-01 by IT.",
    "proof.csv": b"account,removed_at\nbob,2026-03-01\n",
    "proof.eml": b"From: it@example.com\r\nSubject: access removed\r\n\r\nDone.",
    "proof.msg": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504),
    "proof.xlsx": ooxml("xl/workbook.xml"),
    "proof.docx": ooxml("word/document.xml"),
}
REFUSED = {
    "an executable renamed .pdf": ("proof.pdf", PE, "is not a .pdf file"),
    "an executable renamed .txt": ("proof.txt", PE, "is binary, not a .txt text file"),
    "a zip of an executable renamed .docx": ("proof.docx", zip_of_an_executable(), "is not a .docx file"),
    "a png named .jpg": ("proof.jpg", ACCEPTED["proof.png"], "is not a .jpg file"),
    "an executable": ("setup.exe", PE, "not accepted as proof (allowed: pdf, png, jpg, jpeg, txt, csv"),
    "a web page": ("proof.html", b"<html><script>alert(1)</script>", "not accepted as proof"),
    "no extension": ("proof", b"%PDF-1.7", "not accepted as proof"),
}


@pytest.fixture
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def stored_files(media) -> list:
    return [path for path in media.rglob("*") if path.is_file()] if media.exists() else []


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_allowed_attachment_types_are_kept_as_proof(revoked, people, media, name):
    remediation.task_close_manually(
        task_id=revoked.pk,
        user=people["oscar"],
        proof="Removed by hand",
        attachment=SimpleUploadedFile(name, ACCEPTED[name]),
    )
    revoked.refresh_from_db()
    assert revoked.status == "manual" and revoked.attachment.read() == ACCEPTED[name]


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_an_attachment_of_a_type_not_allowed_is_refused_naming_the_file_and_nothing_is_stored(
    revoked, people, media, case
):
    name, content, reason = REFUSED[case]
    with pytest.raises(ValidationError) as refused:
        remediation.task_close_manually(
            task_id=revoked.pk,
            user=people["oscar"],
            proof="Removed by hand",
            attachment=SimpleUploadedFile(name, content),
        )
    [message] = refused.value.message_dict["attachment"]
    assert message.startswith(f"{name}: ") and reason in message
    revoked.refresh_from_db()
    assert (revoked.status, revoked.attachment.name, revoked.attachment_sha256) == ("open", "", "")
    assert stored_files(media) == []
    assert not EvidenceEvent.objects.filter(action="remediation.task.closed_manually").exists()


def test_an_attachment_over_the_size_limit_is_refused(revoked, people, media, settings):
    settings.SOXGOV_ATTACHMENT_MAX_BYTES = 1000
    big = SimpleUploadedFile("scan.pdf", b"%PDF-1.7\n" + bytes(1000))
    with pytest.raises(ValidationError, match=r"scan\.pdf: 1009 bytes is over the limit of 1000 bytes"):
        remediation.task_close_manually(task_id=revoked.pk, user=people["oscar"], proof="x", attachment=big)
    assert stored_files(media) == []


def test_the_default_limits_are_20_mib_and_the_documented_types():
    from django.conf import settings

    assert settings.SOXGOV_ATTACHMENT_MAX_BYTES == 20 * 1024 * 1024
    assert settings.SOXGOV_ATTACHMENT_TYPES == [
        "pdf", "png", "jpg", "jpeg", "txt", "csv", "xlsx", "docx", "eml", "msg"
    ]  # fmt: skip


def test_the_api_refuses_a_renamed_executable_with_400_naming_the_field_and_keeps_a_real_pdf(
    revoked, people, media
):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(people["oscar"])
    url = f"/api/reviews/remediation/{revoked.pk}/close/"
    body = {"proof": "Removed by hand", "attachment": SimpleUploadedFile("proof.pdf", PE)}
    response = client.post(url, body, format="multipart")
    assert response.status_code == 400, response.content
    assert "proof.pdf: the content is not a .pdf file" in response.json()["attachment"][0]
    assert stored_files(media) == []

    body = {"proof": "Removed by hand", "attachment": SimpleUploadedFile("proof.pdf", ACCEPTED["proof.pdf"])}
    response = client.post(url, body, format="multipart")
    assert response.status_code == 200, response.content
    assert response.json()["status"] == "manual" and len(response.json()["attachment_sha256"]) == 64


def test_the_page_says_why_an_attachment_was_refused_and_the_task_stays_open(revoked, people, media):
    client = Client()
    client.force_login(people["oscar"])
    response = client.post(
        f"/reviews/remediation/{revoked.pk}/close/",
        {"proof": "Removed by hand", "attachment": SimpleUploadedFile("proof.pdf", PE)},
        follow=True,
    )
    assert "Not closed: proof.pdf: the content is not a .pdf file" in response.content.decode()
    revoked.refresh_from_db()
    assert revoked.status == "open" and stored_files(media) == []
