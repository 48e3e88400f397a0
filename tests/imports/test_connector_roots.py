"""File connectors read only under SOXGOV_CONNECTOR_FILE_ROOTS: the resolved path (symlinks, ``..``) is checked
when a connector is saved (Django admin, the model) and again when it is pulled (the run fails saying why)."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.urls import reverse

from entitlements import tasks
from entitlements.models import Connector, ConnectorRun
from evidence.models import EvidenceEvent
from soxgov.roles import Role


@pytest.fixture
def roots(db, tmp_path, settings):
    """One allowed root (tmp/inbox) with a feed in it, and a secret file next to it, outside."""
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    settings.SOXGOV_CONNECTOR_FILE_ROOTS = [inbox]
    secret = tmp_path / "secret.csv"
    secret.write_text("account_id\nroot\n")
    return {"inbox": inbox, "secret": secret}


def connector(path, **extra) -> Connector:
    return Connector(name="feed", kind="access_file", configuration={"path": str(path)}, **extra)


def test_a_connector_path_outside_the_roots_is_refused_naming_the_path_and_the_roots(roots):
    with pytest.raises(ValidationError) as refused:
        connector(roots["secret"]).full_clean()
    [message] = refused.value.message_dict["configuration"]
    assert str(roots["secret"]) in message and str(roots["inbox"]) in message
    assert "SOXGOV_CONNECTOR_FILE_ROOTS" in message


def test_a_connector_path_inside_a_root_is_accepted(roots, erp_rows, company):
    feed = roots["inbox"] / "erp.csv"
    connector(feed, application=company["applications"]["erp"]).full_clean()


@pytest.mark.parametrize("trick", ["dotdot", "symlink", "relative", "the root itself"])
def test_a_path_that_escapes_the_roots_once_resolved_is_refused(roots, trick):
    inbox = roots["inbox"]
    if trick == "dotdot":
        path = f"{inbox}/../secret.csv"
    elif trick == "symlink":
        link = inbox / "innocent.csv"
        link.symlink_to(roots["secret"])
        path = str(link)
    elif trick == "relative":
        path = "inbox/../secret.csv"
    else:
        path = str(inbox)
    with pytest.raises(ValidationError, match="configuration"):
        connector(path).full_clean()


def test_with_no_roots_configured_no_file_connector_may_read_anything(roots, settings):
    settings.SOXGOV_CONNECTOR_FILE_ROOTS = []
    with pytest.raises(ValidationError) as refused:
        connector(roots["inbox"] / "erp.csv").full_clean()
    assert "until SOXGOV_CONNECTOR_FILE_ROOTS" in refused.value.message_dict["configuration"][0]


def test_django_admin_refuses_a_connector_reading_outside_the_roots_and_saves_nothing(roots, make_user, db):
    client = Client()
    client.force_login(make_user("alice", Role.ADMIN))
    response = client.post(
        reverse("admin:entitlements_connector_add"),
        {
            "name": "steal",
            "kind": "identity_file",
            "configuration": json.dumps({"path": str(roots["secret"])}),
            "cron": "",
            "deletion_threshold_percent": "10",
            "deletion_threshold_count": "20",
            "enabled": "on",
            "_save": "Save",
        },
    )
    assert response.status_code == 200
    assert str(roots["secret"]) in response.content.decode()
    assert not Connector.objects.exists()
    assert not EvidenceEvent.objects.filter(action__startswith="config.connector").exists()


def test_a_pull_whose_path_left_the_roots_fails_naming_path_and_roots_and_reads_nothing(
    roots, company, settings, import_store
):
    """Saved when the link pointed inside; swapped to point outside before the nightly pull."""
    feed = roots["inbox"] / "erp.csv"
    feed.write_text("account_id\nbob\n")
    link = roots["inbox"] / "nightly.csv"
    link.symlink_to(feed)
    saved = connector(link, application=company["applications"]["erp"])
    saved.full_clean()
    saved.save()
    link.unlink()
    link.symlink_to(roots["secret"])

    run = ConnectorRun.objects.get(pk=tasks.pull_connector(saved.pk))

    assert run.status == ConnectorRun.Status.FAILED
    assert str(link) in run.error and str(roots["inbox"]) in run.error
    assert run.problems[0]["file"] == str(link)
    assert not list(import_store.glob("*")), "nothing was copied into the input store"
    refused = EvidenceEvent.objects.get(action="import.run.refused", subject_id=str(run.pk))
    assert str(link) in refused.payload_data["first_problems"][0]


def test_a_pull_of_a_missing_file_fails_saying_so(roots, company):
    saved = connector(roots["inbox"] / "not-yet.csv", application=company["applications"]["erp"])
    saved.save()
    run = ConnectorRun.objects.get(pk=tasks.pull_connector(saved.pk))
    assert run.status == ConnectorRun.Status.FAILED
    assert "not-yet.csv: cannot be read: No such file or directory" in run.error
