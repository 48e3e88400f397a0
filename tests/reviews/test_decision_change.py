"""Changing a decision before sign-off: the remediation task follows, the evidence names old and new, and only
the item's reviewer may, never on their own access and never after signing off."""

import io

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.utils import timezone

from evidence.models import EvidenceEvent
from evidence.verify_pack import read_pack
from evidence.verify_pack import verify as verify_pack
from reviews import changes, progress, services
from reviews.models import Campaign, Decision, RemediationTask, ReviewerProgress, ReviewItem


def events(action):
    return [e.payload_data for e in EvidenceEvent.objects.filter(action=action).order_by("sequence")]


def test_a_withdrawn_revoke_cancels_its_task_with_evidence_naming_old_and_new(people, launched):
    _, items = launched
    rita, bob = people["rita"], items["bob"]
    services.decide(item_ids=[bob.pk], user=rita, certify=False, comment="Moved to sales")
    task = RemediationTask.objects.get(item=bob)
    revoke = Decision.objects.get(item=bob)

    item = changes.decision_change(
        item_id=bob.pk, user=rita, certify=True, comment="Wrong Bob: he still posts"
    )

    assert (item.status, item.comment, item.decided_by) == ("certified", "Wrong Bob: he still posts", rita)
    task.refresh_from_db()
    assert (task.status, task.closed_by) == ("cancelled", rita) and task.closed_at is not None
    (cancelled,) = events("remediation.task.cancelled")
    assert cancelled["item"] == bob.pk and cancelled["by"] == "rita"
    changed = events("review.item.certified")[-1]
    assert changed["changed_from"] == "revoked" and changed["replaces_decision"] == revoke.pk
    assert changed["comment"] == "Wrong Bob: he still posts"
    # The decision log keeps both: the mistake and its correction.
    assert list(Decision.objects.filter(item=bob).values_list("action", flat=True)) == ["revoke", "certify"]


def test_certify_then_revoke_opens_a_task_and_revoking_again_after_a_withdrawal_opens_a_new_one(
    people, launched
):
    _, items = launched
    rita, bot = people["rita"], items["svc-ledger"]
    services.decide(item_ids=[bot.pk], user=rita, certify=True, comment="Nightly sync")
    assert not RemediationTask.objects.filter(item=bot).exists()

    changes.decision_change(item_id=bot.pk, user=rita, certify=False, comment="Sync was retired in May")
    first = RemediationTask.objects.get(item=bot)
    assert first.status == "open"
    assert events("review.item.revoked")[-1]["changed_from"] == "certified"

    changes.decision_change(item_id=bot.pk, user=rita, certify=True, comment="Retirement postponed")
    changes.decision_change(item_id=bot.pk, user=rita, certify=False, comment="Retired after all")
    tasks = list(RemediationTask.objects.filter(item=bot).order_by("pk").values_list("status", flat=True))
    assert tasks == ["cancelled", "open"]
    assert len(events("remediation.task.opened")) == 2


def test_changing_a_decision_moves_no_progress_counter(people, launched):
    campaign, items = launched
    rita = people["rita"]
    services.decide(item_ids=[items["svc-ledger"].pk], user=rita, certify=True, comment="ok")
    before = ReviewerProgress.objects.get(campaign=campaign, reviewer=rita).pending
    changes.decision_change(item_id=items["svc-ledger"].pk, user=rita, certify=False, comment="no")
    assert ReviewerProgress.objects.get(campaign=campaign, reviewer=rita).pending == before
    assert progress.for_reviewer(rita)[0]["pending"] == before


def test_a_change_needs_a_reason_a_decided_item_and_another_decision(people, launched):
    _, items = launched
    rita, bot = people["rita"], items["svc-ledger"]
    with pytest.raises(ValidationError, match="not decided yet"):
        changes.decision_change(item_id=bot.pk, user=rita, certify=False, comment="why not")
    services.decide(item_ids=[bot.pk], user=rita, certify=True, comment="ok")
    with pytest.raises(ValidationError, match="Say why"):
        changes.decision_change(item_id=bot.pk, user=rita, certify=False, comment="  ")
    with pytest.raises(ValidationError, match="already certified"):
        changes.decision_change(item_id=bot.pk, user=rita, certify=True, comment="again")
    assert Decision.objects.filter(item=bot).count() == 1
    assert not RemediationTask.objects.exists()


def test_after_sign_off_a_decision_is_locked(people, launched):
    campaign, _ = launched
    rita = people["rita"]
    mine = list(ReviewItem.objects.filter(campaign=campaign, reviewer=rita).values_list("pk", flat=True))
    services.decide(item_ids=mine, user=rita, certify=False, comment="Nobody needs these")
    services.sign_off(campaign_id=campaign.pk, user=rita, attested=True)
    before = EvidenceEvent.objects.count()
    with pytest.raises(ValidationError, match="signed off"):
        changes.decision_change(item_id=mine[0], user=rita, certify=True, comment="too late")
    assert EvidenceEvent.objects.count() == before
    assert set(RemediationTask.objects.values_list("status", flat=True)) == {"open"}


def test_a_completed_campaign_still_takes_changes_until_the_reviewer_signs_off(people, launched):
    campaign, items = launched
    for reviewer in (people["rita"], people["vic"]):
        mine = list(
            ReviewItem.objects.filter(campaign=campaign, reviewer=reviewer).values_list("pk", flat=True)
        )
        services.decide(item_ids=mine, user=reviewer, certify=True, comment="Known and needed")
    assert Campaign.objects.get(pk=campaign.pk).status == "completed"
    changes.decision_change(item_id=items["bob"].pk, user=people["rita"], certify=False, comment="He left")
    assert Campaign.objects.get(pk=campaign.pk).status == "completed"
    assert RemediationTask.objects.get().item_id == items["bob"].pk


def test_only_the_items_reviewer_changes_it_and_never_on_their_own_access(people, launched):
    _, items = launched
    rita, vic, bob = people["rita"], people["vic"], items["bob"]
    services.decide(item_ids=[bob.pk], user=rita, certify=False, comment="Moved to sales")
    with pytest.raises(ReviewItem.DoesNotExist, match="not assigned to you"):
        changes.decision_change(item_id=bob.pk, user=vic, certify=True, comment="I say he keeps it")
    with pytest.raises(ReviewItem.DoesNotExist):
        changes.decision_change(item_id=bob.pk, user=people["alice"], certify=True, comment="admin override")
    # An item that ends up with its own subject as reviewer (however it got there) is refused to them.
    ReviewItem.objects.filter(pk=bob.pk).update(reviewer=people["bob"], reviewer_identity=None)
    with pytest.raises(PermissionDenied, match="own access"):
        changes.decision_change(item_id=bob.pk, user=people["bob"], certify=True, comment="I need it")
    assert RemediationTask.objects.get().status == "open"
    assert ReviewItem.objects.get(pk=bob.pk).status == "revoked"


def test_a_delegate_who_decided_may_change_it_and_the_delegator_no_longer_may(people, launched):
    _, items = launched
    rita, vic, bob = people["rita"], people["vic"], items["bob"]
    services.delegate(item_ids=[bob.pk], user=rita, to_user=vic, reason="Bob moved to Vic's team")
    services.decide(item_ids=[bob.pk], user=vic, certify=True, comment="Still posts journals")
    with pytest.raises(ReviewItem.DoesNotExist):
        changes.decision_change(item_id=bob.pk, user=rita, certify=False, comment="I disagree")
    changes.decision_change(item_id=bob.pk, user=vic, certify=False, comment="He moved after all")
    assert ReviewItem.objects.get(pk=bob.pk).status == "revoked"


def test_a_revoke_whose_access_is_already_removed_stands(people, launched):
    _, items = launched
    rita, bob = people["rita"], items["bob"]
    services.decide(item_ids=[bob.pk], user=rita, certify=False, comment="Moved to sales")
    RemediationTask.objects.filter(item=bob).update(status="verified", closed_at=timezone.now())
    with pytest.raises(ValidationError, match="already removed"):
        changes.decision_change(item_id=bob.pk, user=rita, certify=True, comment="Mistake")
    assert ReviewItem.objects.get(pk=bob.pk).status == "revoked"
    assert not EvidenceEvent.objects.filter(action="remediation.task.cancelled").exists()


@pytest.mark.usefixtures("pack_keys_trusted")
def test_a_pack_of_a_campaign_with_changed_decisions_verifies(people, launched, tmp_path):
    campaign, items = launched
    rita = people["rita"]
    services.decide(item_ids=[items["ghost"].pk], user=rita, certify=False, comment="Nobody owns it")
    services.decide(item_ids=[items["svc-ledger"].pk], user=rita, certify=True, comment="Nightly sync")
    changes.decision_change(item_id=items["ghost"].pk, user=rita, certify=True, comment="CRM shared mailbox")
    changes.decision_change(item_id=items["svc-ledger"].pk, user=rita, certify=False, comment="Retired")
    out = tmp_path / "pack.zip"
    call_command(
        "export_evidence_pack", "--campaign", str(campaign.pk), "--out", str(out), stdout=io.StringIO()
    )
    checked = verify_pack(read_pack(str(out)))
    assert checked  # raises PackError naming the first row that disagrees with the chain
