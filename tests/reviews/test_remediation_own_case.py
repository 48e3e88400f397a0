"""Remediation and the person losing access: they never own or close the task; and access a pull proved removed
that a later pull brings back re-opens as a "revoked access returned" exception linking both runs."""

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied

from entitlements.models import Identity
from evidence.models import EvidenceEvent
from reviews import remediation, services
from reviews.models import Decision, RemediationTask, ReviewItem
from sod.models import ControlException
from soxgov.models import User
from soxgov.roles import Role
from tests.reviews.test_remediation import OTHERS, pull_erp

RETURNED = ControlException.Kind.REVOKED_ACCESS_RETURNED
BOB_HOLDS = ["ERP", "bob", "E2", "GL_POST", "Post journal", "true"]
BOB_WITHOUT = ["ERP", "bob", "E2", "", "", ""]


def revoke(campaign_account, reviewer, campaign):
    item = ReviewItem.objects.get(campaign=campaign, account_key=campaign_account)
    assert item.reviewer == reviewer
    services.decide(item_ids=[item.pk], user=reviewer, certify=False, comment="not needed")
    return RemediationTask.objects.get(item=item)


def test_a_remediation_task_is_never_owned_by_the_person_losing_access(people, company, make_campaign):
    # Carol owns ERP: her own revocation falls to the next owner in the chain, the fallback reviewer (Vic).
    campaign = make_campaign()
    services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])

    task = revoke("carol", people["vic"], campaign)

    assert task.owner == people["vic"].identity and task.owner != company["identities"]["carol"]


def test_with_nobody_else_in_the_chain_the_task_is_left_unassigned_and_says_why(
    people, company, make_campaign, make_user
):
    carol = make_user("carol", Role.REVIEWER, email="carol@example.com")
    alice = people["alice"]
    User.objects.filter(pk=alice.pk).update(
        identity=Identity.objects.create(employee_id="E0", email="alice@example.com", display_name="Alice")
    )
    alice.refresh_from_db()
    campaign = make_campaign(fallback_reviewer=carol)
    services.campaign_launch(campaign_id=campaign.pk, user=alice)

    task = revoke("carol", alice, campaign)  # ERP's owner and the fallback are both Carol

    assert task.owner is None
    event = EvidenceEvent.objects.get(action="remediation.task.opened")
    assert "unassigned" in event.payload_data


def test_nobody_closes_the_remediation_of_their_own_access(people, company, make_campaign):
    campaign = make_campaign()
    services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])
    task = revoke("bob", people["rita"], campaign)
    bob = people["bob"]
    bob.groups.add(Group.objects.get(name=Role.CONTROL_OWNER.value))
    User.objects.filter(pk=bob.pk).update(identity=None)  # Bob by e-mail only
    bob = User.objects.get(pk=bob.pk)

    with pytest.raises(PermissionDenied, match="your own access"):
        remediation.task_close_manually(task_id=task.pk, user=bob, proof="removed it myself", ticket="CHG-9")

    task.refresh_from_db()
    assert task.status == RemediationTask.Status.OPEN
    remediation.task_close_manually(
        task_id=task.pk, user=people["oscar"], proof="removed in ERP", ticket="CHG-9"
    )


def test_revoked_access_that_a_later_pull_brings_back_opens_an_exception_linking_both_runs(
    people, company, make_campaign, tmp_path, django_capture_on_commit_callbacks
):
    campaign = make_campaign()
    services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])
    task = revoke("bob", people["rita"], campaign)
    erp = company["applications"]["erp"]
    verifying = pull_erp(tmp_path, [BOB_WITHOUT, *OTHERS], django_capture_on_commit_callbacks)
    task.refresh_from_db()
    assert task.status == RemediationTask.Status.VERIFIED

    returning = pull_erp(tmp_path, [BOB_HOLDS, *OTHERS], django_capture_on_commit_callbacks)

    exception = ControlException.objects.get(kind=RETURNED)
    assert exception.is_live and exception.severity == "high"
    assert exception.identity == company["identities"]["bob"] and exception.application == erp
    decision = Decision.objects.get(item=task.item, action="revoke")
    assert exception.detail["verified_by_run"] == verifying.pk
    assert exception.detail["returned_by_run"] == returning.pk
    assert (exception.detail["decision"], exception.detail["task"]) == (decision.pk, task.pk)
    opened = EvidenceEvent.objects.get(action="exception.opened", subject_id=str(exception.pk))
    assert opened.payload_data["returned_by_run"] == returning.pk
    returned = EvidenceEvent.objects.get(action="remediation.task.access_returned")
    assert returned.payload_data["verified_by_run"] == verifying.pk and returned.subject_id == str(task.pk)
    task.refresh_from_db()
    assert task.status == RemediationTask.Status.VERIFIED  # what the first pull proved stays proved

    # Running the post-import step again opens nothing twice; the hygiene check keeps it while the grant is back.
    remediation.verify_after_run(run_id=returning.pk, application_ids=[erp.pk])
    from sod.hygiene import run_hygiene

    run_hygiene()
    assert ControlException.objects.filter(kind=RETURNED, status="open").count() == 1

    pull_erp(tmp_path, [BOB_WITHOUT, *OTHERS], django_capture_on_commit_callbacks)
    exception.refresh_from_db()
    assert exception.status == "closed" and exception.close_reason.startswith("condition no longer holds")


def test_a_grant_of_another_account_does_not_count_as_returned_access(
    people, company, make_campaign, tmp_path, django_capture_on_commit_callbacks
):
    campaign = make_campaign()
    services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])
    revoke("bob", people["rita"], campaign)
    pull_erp(tmp_path, [BOB_WITHOUT, *OTHERS], django_capture_on_commit_callbacks)

    pull_erp(
        tmp_path,
        [BOB_WITHOUT, ["ERP", "bob2", "E2", "GL_POST", "Post journal", "true"], *OTHERS],
        django_capture_on_commit_callbacks,
    )

    assert not ControlException.objects.filter(kind=RETURNED).exists()


def test_a_control_owner_with_no_identity_cannot_close_a_remediation_by_hand(
    people, make_campaign, make_user
):
    campaign = make_campaign()
    services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])
    task = revoke("bob", people["rita"], campaign)
    nora = make_user("nora", Role.CONTROL_OWNER)

    with pytest.raises(PermissionDenied, match="link your user to your identity first"):
        remediation.task_close_manually(task_id=task.pk, user=nora, proof="removed in ERP", ticket="CHG-9")

    task.refresh_from_db()
    assert task.status == RemediationTask.Status.OPEN
