"""Decisions, delegation, sign-off and the campaign's end; reminders, escalation, micro-reviews, recurrence."""

import datetime as dt
import json

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from evidence.models import EvidenceEvent
from reviews import reminders, services
from reviews.models import Campaign, Decision, Notification, ReviewItem, SignOff


def test_certify_and_revoke_write_decisions_and_evidence(people, launched):
    _, items = launched
    rita = people["rita"]

    services.decide(item_ids=[items["bob"].pk], user=rita, certify=True)
    services.decide(item_ids=[items["svc-ledger"].pk], user=rita, certify=False, comment="Service retired")

    bob, bot = ReviewItem.objects.get(pk=items["bob"].pk), ReviewItem.objects.get(pk=items["svc-ledger"].pk)
    assert (bob.status, bob.decided_by) == ("certified", rita)
    assert (bot.status, bot.comment) == ("revoked", "Service retired")
    assert list(Decision.objects.order_by("pk").values_list("action", flat=True)) == ["certify", "revoke"]
    revoked = EvidenceEvent.objects.get(action="review.item.revoked")
    assert revoked.actor_user_id == rita.pk
    assert json.loads(revoked.payload)["comment"] == "Service retired"
    assert EvidenceEvent.objects.filter(action="review.item.certified", subject_id=str(bob.pk)).exists()


def test_a_revoke_needs_a_justification_and_a_flagged_certification_a_comment(people, launched):
    _, items = launched
    rita = people["rita"]
    with pytest.raises(ValidationError, match="justification"):
        services.decide(item_ids=[items["bob"].pk], user=rita, certify=False, comment="  ")
    with pytest.raises(ValidationError, match="flagged"):
        services.decide(item_ids=[items["ghost"].pk], user=rita, certify=True)  # an orphan account
    assert ReviewItem.objects.filter(status="pending").count() == 4
    services.decide(
        item_ids=[items["ghost"].pk], user=rita, certify=True, comment="Shared mailbox, owned by CRM team"
    )
    assert ReviewItem.objects.get(pk=items["ghost"].pk).status == "certified"


def test_only_the_assigned_reviewer_decides_and_nobody_decides_their_own_access(people, launched):
    _, items = launched
    with pytest.raises(ReviewItem.DoesNotExist, match="not assigned to you"):
        services.decide(item_ids=[items["bob"].pk], user=people["vic"], certify=True)
    # Even an item wrongly assigned to its subject is refused at decision time.
    ReviewItem.objects.filter(pk=items["carol"].pk).update(reviewer=people["bob"], reviewer_identity=None)
    ReviewItem.objects.filter(pk=items["bob"].pk).update(reviewer=people["bob"], reviewer_identity=None)
    with pytest.raises(PermissionDenied, match="own access"):
        services.decide(item_ids=[items["bob"].pk], user=people["bob"], certify=True)


def test_the_second_of_two_decisions_gets_a_conflict_and_nothing_is_lost(people, launched):
    _, items = launched
    rita = people["rita"]
    services.decide(item_ids=[items["bob"].pk], user=rita, certify=True)

    with pytest.raises(services.Conflict, match=r"already decided .* certified by rita"):
        services.decide(
            item_ids=[items["bob"].pk, items["svc-ledger"].pk], user=rita, certify=False, comment="x"
        )

    assert ReviewItem.objects.get(pk=items["bob"].pk).status == "certified"
    assert ReviewItem.objects.get(pk=items["svc-ledger"].pk).status == "pending"  # all or nothing


def test_bulk_decide_many_items_at_once(people, launched):
    _, items = launched
    mine = [items[k].pk for k in ("bob", "svc-ledger")]
    assert services.decide(item_ids=mine, user=people["rita"], certify=True) == 2
    assert EvidenceEvent.objects.filter(action="review.item.certified").count() == 2


def test_delegation_never_goes_to_someone_who_may_not_decide(people, launched):
    _, items = launched
    with pytest.raises(ValidationError, match="does not review access"):
        services.delegate(
            item_ids=[items["bob"].pk], user=people["rita"], to_user=people["oscar"], reason="x"
        )
    assert ReviewItem.objects.get(pk=items["bob"].pk).reviewer == people["rita"]


def test_delegation_moves_items_with_a_reason_and_never_to_the_subject(
    people, launched, django_capture_on_commit_callbacks
):
    _, items = launched
    rita = people["rita"]
    with pytest.raises(ValidationError, match="subject"):
        services.delegate(
            item_ids=[items["bob"].pk], user=rita, to_user=people["bob"], reason="he knows best"
        )
    with pytest.raises(ValidationError, match="why"):
        services.delegate(item_ids=[items["bob"].pk], user=rita, to_user=people["vic"], reason="")

    with django_capture_on_commit_callbacks(execute=True):
        services.delegate(item_ids=[items["bob"].pk], user=rita, to_user=people["vic"], reason="On leave")

    moved = ReviewItem.objects.get(pk=items["bob"].pk)
    assert moved.reviewer == people["vic"] and moved.status == "pending"
    assert Decision.objects.get(action="delegate").delegated_to == people["vic"]
    assert EvidenceEvent.objects.filter(action="review.item.delegated").count() == 1
    assert Notification.objects.filter(user=people["vic"], kind="delegated").exists()


def test_sign_off_needs_every_item_decided_locks_them_and_ends_the_campaign(people, launched):
    campaign, items = launched
    rita, vic = people["rita"], people["vic"]
    with pytest.raises(ValidationError, match="still pending"):
        services.sign_off(campaign_id=campaign.pk, user=rita, attested=True)
    services.decide(item_ids=[items[k].pk for k in ("bob", "svc-ledger")], user=rita, certify=True)
    services.decide(item_ids=[items["ghost"].pk], user=rita, certify=False, comment="Nobody owns it")

    services.sign_off(campaign_id=campaign.pk, user=rita, attested=True)

    assert SignOff.objects.get(reviewer=rita).items == 3
    assert EvidenceEvent.objects.filter(action="review.signoff.recorded").count() == 1
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.ACTIVE  # vic still has Carol's item
    services.decide(item_ids=[items["carol"].pk], user=vic, certify=True)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.COMPLETED
    services.sign_off(campaign_id=campaign.pk, user=vic, attested=True)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SIGNED_OFF
    services.campaign_close(campaign_id=campaign.pk, user=people["alice"])
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.CLOSED
    assert (
        EvidenceEvent.objects.filter(
            action__in=["review.campaign.signed_off", "review.campaign.closed"]
        ).count()
        == 2
    )


def test_signed_off_decisions_are_locked(people, launched):
    campaign, items = launched
    vic = people["vic"]
    services.decide(item_ids=[items["carol"].pk], user=vic, certify=True)
    services.sign_off(campaign_id=campaign.pk, user=vic, attested=True)
    ReviewItem.objects.filter(pk=items["carol"].pk).update(status="pending")  # even if it were pending again
    with pytest.raises(ValidationError, match="locked"):
        services.decide(item_ids=[items["carol"].pk], user=vic, certify=False, comment="x")


def test_reminders_at_the_cadence_and_one_escalation_after_the_due_date(
    people, launched, django_capture_on_commit_callbacks
):
    campaign, _ = launched
    today = timezone.localdate()
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):  # mail leaves once the reminders commit
        assert reminders.remind_and_escalate(today) == (2, 0)  # rita and vic have pending items
    assert reminders.remind_and_escalate(today + dt.timedelta(days=3)) == (0, 0)  # cadence: 7 days
    assert reminders.remind_and_escalate(today + dt.timedelta(days=7)) == (2, 0)
    assert {m.to[0] for m in mail.outbox} == {"rita@example.com", "vic@example.com"}

    late = campaign.due_on + dt.timedelta(days=campaign.escalate_after_days + 1)
    sent, escalated = reminders.remind_and_escalate(late)
    assert escalated == 2
    sent_again, escalated_again = reminders.remind_and_escalate(late + dt.timedelta(days=1))
    assert escalated_again == 0  # once per reviewer
    # Rita has no manager: her escalation goes to the fallback reviewer (vic); vic's goes to the creator.
    targets = set(
        Notification.objects.filter(kind="escalation").values_list("user__username", "about__username")
    )
    assert targets == {("vic", "rita"), ("alice", "vic")}
    assert EvidenceEvent.objects.filter(action="review.escalated").count() == 2
    assert EvidenceEvent.objects.filter(action="review.reminder.sent").count() == 4 + sent + sent_again


def test_a_recurring_campaign_launches_its_next_round(people, company, make_campaign):
    campaign = make_campaign(recurrence="quarterly")
    services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])
    assert reminders.launch_recurrences(timezone.localdate()) == []
    [successor_id] = reminders.launch_recurrences(timezone.localdate() + dt.timedelta(days=95))
    successor = Campaign.objects.get(pk=successor_id)
    campaign.refresh_from_db()
    assert successor.previous == campaign and successor.status == Campaign.Status.ACTIVE
    assert successor.item_count == campaign.item_count
    assert reminders.launch_recurrences(timezone.localdate() + dt.timedelta(days=96)) == []


def test_certified_access_is_not_new_in_the_next_campaign(people, company, make_campaign):
    first = make_campaign()
    services.campaign_launch(campaign_id=first.pk, user=people["alice"])
    bobs = ReviewItem.objects.get(campaign=first, account_key="bob")
    services.decide(item_ids=[bobs.pk], user=people["rita"], certify=True)
    second = make_campaign(name="Next")
    services.campaign_launch(campaign_id=second.pk, user=people["alice"])
    again = {i.account_key: i.new_access for i in ReviewItem.objects.filter(campaign=second)}
    assert again == {"bob": False, "carol": True, "svc-ledger": True}


def test_progress_counters_stay_equal_to_the_items_through_decisions_and_delegation(people, launched):
    from django.db.models import Count, Q

    from reviews.models import ReviewerProgress

    campaign, items = launched

    def actual():
        rows = (
            ReviewItem.objects.filter(campaign=campaign)
            .values("reviewer")
            .annotate(total=Count("id"), pending=Count("id", filter=Q(status="pending")))
        )
        return {(r["reviewer"], r["total"], r["pending"]) for r in rows}

    def counted():
        rows = ReviewerProgress.objects.filter(campaign=campaign, total__gt=0)
        return set(rows.values_list("reviewer", "total", "pending"))

    assert counted() == actual()
    services.decide(item_ids=[items["bob"].pk], user=people["rita"], certify=True)
    assert counted() == actual()
    services.delegate(
        item_ids=[items["svc-ledger"].pk], user=people["rita"], to_user=people["vic"], reason="x"
    )
    assert counted() == actual()
    with pytest.raises(services.Conflict):
        services.decide(item_ids=[items["bob"].pk], user=people["rita"], certify=True)
    assert counted() == actual()


def test_signing_off_the_last_reviewer_creates_a_checkpoint(
    people, company, make_campaign, django_capture_on_commit_callbacks
):
    from evidence.models import Checkpoint

    campaign = make_campaign(applications=[company["applications"]["crm"]])
    services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])
    ghost = ReviewItem.objects.get(campaign=campaign)
    services.decide(item_ids=[ghost.pk], user=people["rita"], certify=False, comment="nobody")
    with django_capture_on_commit_callbacks(execute=True):
        services.sign_off(campaign_id=campaign.pk, user=people["rita"], attested=True)
    checkpoint = Checkpoint.objects.get()
    assert checkpoint.reason == "campaign_sign_off"
    assert checkpoint.sequence == EvidenceEvent.objects.get(action="review.campaign.signed_off").sequence
