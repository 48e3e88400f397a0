"""Telling reviewers: in-app notifications and e-mail (Django's e-mail backend; the console in the demo).

Called after the deciding transaction commits (transaction.on_commit), so a failing mail server never undoes
a decision. Reminders and escalations are evidenced by the daily task that sends them (reviews/reminders.py).
"""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Count
from django.urls import reverse
from django.utils import timezone

from reviews.models import Campaign, Notification, ReviewItem
from soxgov.models import User


def _send(user, *, campaign: Campaign | None, kind: str, text: str, url: str, about=None) -> Notification:
    note = Notification.objects.create(
        user=user,
        campaign=campaign,
        kind=kind,
        text=text[:500],
        url=url,
        created_at=timezone.now(),
        about=about,
    )
    if user.email:
        link = f"{settings.SOXGOV_BASE_URL}{url}" if url else settings.SOXGOV_BASE_URL
        subject, body = f"[SOXGov] {text[:120]}", f"{text}\n\n{link}\n"
        # Only once the notification (and its evidence) committed: a rollback must not leave a sent mail.
        transaction.on_commit(lambda: send_mail(subject, body, None, [user.email], fail_silently=True))
    return note


def my_reviews_url(campaign: Campaign) -> str:
    return f"{reverse('reviews:my_reviews')}?campaign={campaign.pk}"


def launched(campaign_id: int) -> int:
    campaign = Campaign.objects.get(pk=campaign_id)
    counts = (
        ReviewItem.objects.filter(campaign=campaign)
        .values_list("reviewer")
        .annotate(n=Count("id"))
        .order_by()
    )
    users = User.objects.in_bulk([reviewer for reviewer, _ in counts])
    for reviewer, n in counts:
        _send(
            users[reviewer],
            campaign=campaign,
            kind="assigned",
            text=f"{campaign.name}: {n} item(s) to review by {campaign.due_on:%Y-%m-%d}.",
            url=my_reviews_url(campaign),
        )
    return len(counts)


def item_assigned(item_id: int) -> None:
    item = ReviewItem.objects.select_related("campaign", "reviewer").get(pk=item_id)
    _send(
        item.reviewer,
        campaign=item.campaign,
        kind="assigned",
        text=f"New access to review: {item.identity_name} holds {item.entitlement_name} ({item.account_key}).",
        url=item.get_absolute_url(),
    )


def delegated(campaign_id: int, to_user_id: int, from_user_id: int, count: int) -> None:
    campaign = Campaign.objects.get(pk=campaign_id)
    to_user, from_user = User.objects.get(pk=to_user_id), User.objects.get(pk=from_user_id)
    _send(
        to_user,
        campaign=campaign,
        kind="delegated",
        text=f"{from_user.display_name} delegated {count} item(s) of {campaign.name} to you.",
        url=my_reviews_url(campaign),
    )


def reminder(campaign: Campaign, user, pending: int) -> Notification:
    return _send(
        user,
        campaign=campaign,
        kind="reminder",
        text=f"Reminder: {pending} item(s) of {campaign.name} still need your decision (due {campaign.due_on:%Y-%m-%d}).",
        url=my_reviews_url(campaign),
    )


def escalation(campaign: Campaign, to_user, reviewer, pending: int) -> Notification:
    return _send(
        to_user,
        campaign=campaign,
        kind="escalation",
        text=f"Escalation: {reviewer.display_name} has {pending} overdue item(s) in {campaign.name} "
        f"(due {campaign.due_on:%Y-%m-%d}).",
        url=campaign.get_absolute_url(),
        about=reviewer,
    )
