"""The daily round: remind reviewers with pending items at the campaign's cadence, escalate overdue ones once,
and launch the next round of recurring campaigns. Each reminder and escalation is evidenced."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone

from evidence.services import Actor, Event, Subject, events_record
from reviews import notify
from reviews.models import Campaign, Notification, ReviewItem
from soxgov.models import User

ACTOR = Actor.system("reviews.daily")
RECURRENCE_MONTHS = {"quarterly": 3, "semiannual": 6, "annual": 12}


def _pending_by_reviewer(campaign: Campaign) -> dict[int, int]:
    return dict(
        ReviewItem.objects.filter(campaign=campaign, status=ReviewItem.Status.PENDING)
        .values_list("reviewer")
        .annotate(n=Count("id"))
        .order_by()
    )


def _escalation_target(campaign: Campaign, reviewer):
    if campaign.escalate_to == Campaign.Escalation.MANAGER and reviewer.identity_id:
        manager = reviewer.identity.manager_id
        target = (
            User.objects.filter(identity_id=manager, is_active=True).order_by("pk").first()
            if manager
            else None
        )
        if target is not None and target.pk != reviewer.pk:
            return target
    return campaign.fallback_reviewer if campaign.fallback_reviewer_id != reviewer.pk else campaign.created_by


def remind_and_escalate(today: dt.date | None = None) -> tuple[int, int]:
    today = today or timezone.localdate()
    reminders = escalations = 0
    campaigns = Campaign.objects.filter(
        kind=Campaign.Kind.PERIODIC, status=Campaign.Status.ACTIVE, start_on__lte=today
    ).select_related("fallback_reviewer", "created_by")
    for campaign in campaigns:
        pending = _pending_by_reviewer(campaign)
        if not pending:
            continue
        users = User.objects.select_related("identity").in_bulk(list(pending))
        last_reminded = dict(
            Notification.objects.filter(campaign=campaign, kind="reminder")
            .values_list("user")
            .annotate(at=Max("created_at"))
            .order_by()
        )
        escalated = set(
            Notification.objects.filter(campaign=campaign, kind="escalation").values_list("about", flat=True)
        )
        with transaction.atomic():
            events = []
            for reviewer_id, n in sorted(pending.items()):
                reviewer = users[reviewer_id]
                last = last_reminded.get(reviewer_id)
                cadence = campaign.reminder_every_days
                if cadence and (last is None or (today - timezone.localdate(last)).days >= cadence):
                    notify.reminder(campaign, reviewer, n)
                    events.append(
                        Event(
                            "review.reminder.sent",
                            Subject.of(campaign),
                            {"reviewer": reviewer.get_username(), "pending": n},
                        )
                    )
                    reminders += 1
                overdue_since = campaign.due_on + dt.timedelta(days=campaign.escalate_after_days)
                if today > overdue_since and reviewer_id not in escalated:
                    target = _escalation_target(campaign, reviewer)
                    notify.escalation(campaign, target, reviewer, n)
                    events.append(
                        Event(
                            "review.escalated",
                            Subject.of(campaign),
                            {
                                "reviewer": reviewer.get_username(),
                                "to": target.get_username(),
                                "pending": n,
                                "due_on": campaign.due_on,
                            },
                        )
                    )
                    escalations += 1
            if events:
                events_record(actor=ACTOR, events=events)
    return reminders, escalations


def _add_months(day: dt.date, months: int) -> dt.date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for candidate in (31, 30, 29, 28):
        try:
            return dt.date(year, month, min(day.day, candidate))
        except ValueError:
            continue
    raise ValueError(day)


def launch_recurrences(today: dt.date | None = None) -> list[int]:
    """Recurring campaigns: when the next period starts, copy the campaign (scope, routing, cadence) and launch it."""
    from reviews.services import campaign_launch

    today = today or timezone.localdate()
    launched = []
    recurring = Campaign.objects.exclude(recurrence="").exclude(status=Campaign.Status.DRAFT)
    for campaign in recurring.select_related("created_by"):
        months = RECURRENCE_MONTHS[campaign.recurrence]
        start = _add_months(campaign.start_on, months)
        if start > today or Campaign.objects.filter(previous=campaign).exists():
            continue
        with transaction.atomic():
            successor = Campaign.objects.get(pk=campaign.pk)
            apps = list(campaign.applications.all())
            successor.pk = None
            successor.previous = campaign
            successor.name = f"{campaign.name.split(' · ')[0]} · {start:%Y-%m}"
            successor.status = Campaign.Status.DRAFT
            successor.start_on, successor.due_on = start, _add_months(campaign.due_on, months)
            successor.launched_at = successor.completed_at = successor.signed_off_at = successor.closed_at = (
                None
            )
            successor.item_count = 0
            successor.save()
            successor.applications.set(apps)
            events_record(
                actor=ACTOR,
                events=[
                    Event(
                        "review.campaign.created",
                        Subject.of(successor),
                        {"recurrence_of": campaign.pk, "start_on": start},
                    )
                ],
            )
            campaign_launch(campaign_id=successor.pk, user=campaign.created_by)
        launched.append(successor.pk)
    return launched
