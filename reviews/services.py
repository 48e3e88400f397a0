"""Campaign lifecycle and review decisions. Every state change writes evidence in the same transaction.

draft -> active (launch: one set-based INSERT ... SELECT snapshots the items) -> completed (nothing pending)
-> signed off (every reviewer signed off) -> closed (an admin closes it).

Decisions are made only by the item's current reviewer, never on their own access, only while the campaign is
active and before their sign-off. Concurrent decisions on one item: the first commits, the second finds the
item no longer pending and is told who decided it (a conditional UPDATE, so no update is lost).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Max
from django.utils import timezone

from entitlements.selves import identity_ids_of
from evidence.chain import format_time
from evidence.services import Actor, Event, Subject, event_record, events_record
from reviews import notify, progress, recommendations, stamps
from reviews.models import Campaign, Decision, ReviewItem, SignOff
from reviews.remediation import tasks_for_revocations
from reviews.scoping import ITEM_COLUMNS, item_source, reviewers_without_identity
from reviews.selectors import launched_items_sha256, may_review
from soxgov import access, jobs
from soxgov.exceptions import Conflict


def _require_admin(user, action=access.CHANGE) -> None:
    access.require(user, Campaign, action)


def _locked_campaign(campaign_id: int) -> Campaign:
    return (
        Campaign.objects.select_for_update(of=("self",))
        .select_related("fallback_reviewer", "created_by", "named_reviewer")
        .get(pk=campaign_id)
    )


# --- Scope, preview, launch -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    total: int
    by_application: list[tuple[str, int]]
    by_reviewer: list[tuple[str, int]]
    flagged: dict[str, int]


def campaign_preview(campaign: Campaign) -> Preview:
    """Item counts by application, reviewer and flag: exactly what launch would snapshot now."""
    if campaign.status != Campaign.Status.DRAFT:
        raise Conflict("Only a draft has a preview.")
    sql, params = item_source(campaign)
    names = ", ".join(f"{column}" for column in ITEM_COLUMNS)
    flags = ", ".join(f"SUM(CASE WHEN {flag} THEN 1 ELSE 0 END)" for flag in ReviewItem.FLAGS)
    wrapped = f"""
        WITH source ({names}) AS ({sql})
        SELECT application_id, reviewer_id, COUNT(*), {flags} FROM source GROUP BY application_id, reviewer_id
    """
    with connection.cursor() as cursor:
        cursor.execute(wrapped, params)
        rows = cursor.fetchall()
    from entitlements.models import Application
    from soxgov.models import User

    apps = dict(Application.objects.values_list("pk", "name"))
    users = {u.pk: u.display_name for u in User.objects.filter(pk__in={r[1] for r in rows})}
    by_app: Counter = Counter()
    by_reviewer: Counter = Counter()
    flagged: Counter = Counter()
    for row in rows:
        by_app[apps.get(row[0], "?")] += row[2]
        by_reviewer[users.get(row[1], "?")] += row[2]
        for flag, n in zip(ReviewItem.FLAGS, row[3:], strict=True):
            flagged[flag] += int(n or 0)
    return Preview(
        total=sum(by_app.values()),
        by_application=sorted(by_app.items()),
        by_reviewer=sorted(by_reviewer.items(), key=lambda kv: (-kv[1], kv[0])),
        flagged={flag: flagged[flag] for flag in ReviewItem.FLAGS},
    )


def _insert_items(campaign: Campaign, *, grant_ids=None, now=None) -> int:
    sql, params = item_source(campaign, grant_ids=grant_ids, now=now)
    table = ReviewItem._meta.db_table
    insert = f"INSERT INTO {table} ({', '.join(ITEM_COLUMNS)}) {sql}"
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(insert, params)
            return cursor.rowcount
    except IntegrityError:
        names = _unassignable(sql, params)
        if not names:
            raise
        raise Conflict(
            f"Nobody may review their own access, and no reviewer is left for the access of {', '.join(names)}: "
            "the routed reviewer, the fallback reviewer and you are the subject or missing. Choose another "
            "fallback reviewer."
        ) from None


def _unassignable(sql: str, params: list) -> list[str]:
    """The people whose items no reviewer can take (only computed when a launch failed)."""
    columns = ", ".join(ITEM_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH source ({columns}) AS ({sql}) SELECT DISTINCT identity_name FROM source "
            "WHERE reviewer_id IS NULL ORDER BY identity_name",
            params,
        )
        return [row[0] for row in cursor.fetchall()[:10]]


def campaign_launch(*, campaign_id: int, user) -> Campaign:
    """Snapshot every grant in scope into review items, set-based, and activate the campaign."""
    from reviews.tasks import notify_launched

    _require_admin(user)
    now = timezone.now()
    with transaction.atomic():
        campaign = _locked_campaign(campaign_id)
        if campaign.status != Campaign.Status.DRAFT:
            raise Conflict(
                f"Only a draft campaign can be launched; this one is {campaign.get_status_display().lower()}."
            )
        # Again at launch: a link can be removed between saving the draft and launching it (or its recurrence).
        refused = reviewers_without_identity(campaign)
        if refused:
            raise Conflict(f"Not launched: {' '.join(refused.values())}")
        count = _insert_items(campaign, now=now)  # with their recommendations (reviews/recommendations.py)
        progress.rebuild(campaign.pk)
        campaign.status = Campaign.Status.ACTIVE
        campaign.launched_at = now
        campaign.item_count = count
        campaign.save(update_fields=["status", "launched_at", "item_count"])
        summary = _summary(campaign)
        event_record(
            actor=Actor.for_user(user),
            action="review.campaign.launched",
            subject=campaign,
            payload={
                "items": count,
                **summary,
                "scope": campaign_scope(campaign),
                # Binds every item, decided or not, to what was launched (a pack's rows are checked against it).
                "items_sha256": launched_items_sha256(campaign),
                "at": format_time(now),
            },
        )
        jobs.enqueue(notify_launched, campaign.pk, origin=campaign)
    return campaign


def _summary(campaign: Campaign) -> dict:
    items = ReviewItem.objects.filter(campaign=campaign).order_by()
    return {
        "reviewers": items.values("reviewer").distinct().count(),
        "by_application": {
            str(app): n for app, n in items.values_list("application__name").annotate(n=Count("id"))
        },
    }


def campaign_scope(campaign: Campaign) -> dict:
    return {
        "applications": sorted(campaign.applications.values_list("name", flat=True)) or "SOX in scope",
        "min_criticality": campaign.min_criticality or "any",
        "privileged_only": campaign.privileged_only,
        "identity_kinds": campaign.identity_kinds or "all",
        "departments": campaign.departments or "all",
        "routing": campaign.routing,
        "fallback_reviewer": campaign.fallback_reviewer.get_username(),
        "start_on": campaign.start_on,
        "due_on": campaign.due_on,
    }


def micro_review_grants(*, grant_ids: list[int], run_id: int | None) -> int:
    """Standing micro-reviews: put newly added grants in scope of each active micro campaign at once."""
    created = 0
    for campaign in Campaign.objects.filter(
        kind=Campaign.Kind.MICRO, status=Campaign.Status.ACTIVE
    ).select_related("fallback_reviewer", "created_by", "named_reviewer"):
        with transaction.atomic():
            before = set(
                ReviewItem.objects.filter(campaign=campaign, grant_id__in=grant_ids).values_list(
                    "grant_id", flat=True
                )
            )
            fresh = [pk for pk in grant_ids if pk not in before]
            if not fresh:
                continue
            count = _insert_items(campaign, grant_ids=fresh)
            if not count:
                continue
            recommendations.recompute(campaign, fresh)  # in this campaign's whole queue
            items = list(
                ReviewItem.objects.filter(campaign=campaign, grant_id__in=fresh).select_related(
                    "application", "reviewer"
                )
            )
            progress.added(items)
            Campaign.objects.filter(pk=campaign.pk).update(item_count=F("item_count") + count)
            events_record(
                actor=Actor.system("reviews.micro_review"),
                events=[
                    Event(
                        "review.item.created",
                        Subject.of(item),
                        {
                            **_item_access(item),
                            "reviewer": item.reviewer_id,
                            "routed_to": item.reviewer.get_username(),
                            "run": run_id,
                        },
                    )
                    for item in items
                ],
            )
            for item in items:
                transaction.on_commit(lambda item=item: notify.item_assigned(item.pk))
            created += count
    return created


# --- Decisions --------------------------------------------------------------------------------------------


def _decidable(user, item_ids: list[int], campaign_states=(Campaign.Status.ACTIVE,)):
    """The items, locked, if every one is assigned to ``user``; others answer as if they did not exist."""
    items = list(
        access.restrict(ReviewItem.objects.select_for_update(of=("self",)), user, access.CHANGE)
        .filter(pk__in=item_ids, reviewer=user)
        .select_related("campaign", "application")
        .order_by("pk")
    )
    found = {item.pk for item in items}
    missing = [pk for pk in item_ids if pk not in found]
    if missing:
        raise ReviewItem.DoesNotExist(f"Review item {missing[0]} does not exist or is not assigned to you.")
    selves = identity_ids_of(user)
    for item in items:
        if item.identity_id is not None and item.identity_id in selves:
            raise PermissionDenied("Nobody may review their own access.")
        if item.campaign.status not in campaign_states:
            raise Conflict(f"The campaign {item.campaign} is {item.campaign.get_status_display().lower()}.")
        if item.signed_off:
            raise Conflict("You signed off these decisions; they are locked.")
    return items


def decide(*, item_ids: list[int], user, certify: bool, comment: str = "") -> int:
    """Certify or revoke items assigned to ``user``. A revoke needs a justification; certifying a flagged item
    (terminated, orphan, SoD conflict) needs a comment. All or nothing; returns the number decided."""
    comment = comment.strip()
    if not item_ids:
        raise ValidationError("Select at least one item.")
    if not certify and not comment:
        raise ValidationError({"comment": "A revocation needs a justification."})
    now = timezone.now()
    status = ReviewItem.Status.CERTIFIED if certify else ReviewItem.Status.REVOKED
    with transaction.atomic():
        items = _decidable(user, item_ids)
        decided = [item for item in items if item.status != ReviewItem.Status.PENDING]
        if decided:
            first = decided[0]
            who = first.decided_by.display_name if first.decided_by else "someone"
            raise Conflict(
                f"{len(decided)} of these items were already decided (item {first.pk}: "
                f"{first.get_status_display().lower()} by {who} at {first.decided_at:%Y-%m-%d %H:%M}). Nothing was changed."
            )
        if certify and not comment:
            flagged = [item for item in items if item.needs_comment]
            if flagged:
                raise ValidationError(
                    {
                        "comment": f"{len(flagged)} selected item(s) are flagged (terminated, orphan or SoD conflict): "
                        "certifying them needs a comment."
                    }
                )
        # Conditional update: only still-pending rows change; a concurrent decision shows up as a short count.
        changed = ReviewItem.objects.filter(
            pk__in=[i.pk for i in items], status=ReviewItem.Status.PENDING
        ).update(status=status, decided_by=user, decided_at=now, comment=comment)
        if changed == len(items):
            progress.decided(items)
        if changed != len(items):
            raise Conflict(
                "Another decision on these items committed first. Nothing was changed; reload to see it."
            )
        action = Decision.Action.CERTIFY if certify else Decision.Action.REVOKE
        previous = previous_decisions(user, {item.campaign_id for item in items})
        told = {
            item.pk: how_decided(item, now, batch=len(items), since=previous.get(item.campaign_id))
            for item in items
        }
        decisions = _decisions_create(
            Decision(item=i, action=action, actor=user, at=now, comment=comment, **told[i.pk]) for i in items
        )
        # A revocation is not done until a pull proves it: each opens a remediation task, in this transaction.
        remediation = [] if certify else tasks_for_revocations(items, now=now)
        events_record(
            actor=Actor.for_user(user),
            events=remediation
            + [
                Event(
                    f"review.item.{status}",
                    Subject.of(item),
                    {
                        **_item_access(item),
                        "comment": comment,
                        **_decision_binding(decisions[item.pk], user, now),
                        **told[item.pk],
                    },
                )
                for item in items
            ],
        )
        for campaign_id in {item.campaign_id for item in items}:
            _complete_if_done(campaign_id, now)
    return len(items)


def delegate(*, item_ids: list[int], user, to_user, reason: str) -> int:
    """Hand items to someone else, with a reason; never to the person whose access it is."""
    reason = reason.strip()
    if not reason:
        raise ValidationError({"reason": "Say why you delegate."})
    now = timezone.now()
    with transaction.atomic():
        items = _decidable(user, item_ids)
        if to_user.pk == user.pk:
            raise ValidationError({"to_user": "Choose someone other than yourself."})
        if not to_user.is_active:
            raise ValidationError({"to_user": f"{to_user.display_name} cannot sign in."})
        signed = SignOff.objects.filter(campaign_id__in={i.campaign_id for i in items}, reviewer=to_user)
        if signed.exists():
            raise ValidationError(
                {
                    "to_user": f"{to_user.display_name} has already signed off this campaign and cannot take more items."
                }
            )
        if not may_review(to_user):
            # A control owner or an auditor could not decide it, and nobody else may: it would stay pending.
            raise ValidationError(
                {"to_user": f"{to_user.display_name} does not review access (no reviewer role)."}
            )
        if any(item.status != ReviewItem.Status.PENDING for item in items):
            raise Conflict(
                "Only pending items can be delegated; some were decided meanwhile. Nothing was changed."
            )
        if to_user.identity_id is None:
            raise ValidationError(
                {
                    "to_user": f"{to_user.display_name} has no identity linked, so SOXGov cannot tell whose access "
                    "they may not review; link one first."
                }
            )
        theirs = identity_ids_of(to_user)
        subjects = [item for item in items if item.identity_id is not None and item.identity_id in theirs]
        if subjects:
            raise ValidationError(
                {
                    "to_user": f"{to_user.display_name} is the subject of {len(subjects)} of these items and may not review them."
                }
            )
        ReviewItem.objects.filter(pk__in=[i.pk for i in items]).update(
            shown_at=None,  # the new reviewer's decisions are timed from when they are shown the item
            reviewer=to_user,
            reviewer_identity=to_user.identity_id,
        )
        progress.delegated(items, to_user)
        decisions = _decisions_create(
            Decision(
                item=i,
                action=Decision.Action.DELEGATE,
                actor=user,
                at=now,
                comment=reason,
                delegated_to=to_user,
            )
            for i in items
        )
        events_record(
            actor=Actor.for_user(user),
            events=[
                Event(
                    "review.item.delegated",
                    Subject.of(item),
                    {
                        **_item_access(item),
                        "from": user.get_username(),
                        "to": to_user.get_username(),
                        "reason": reason,
                        **_decision_binding(decisions[item.pk], user, now),
                    },
                )
                for item in items
            ],
        )
        count = len(items)
        campaign_id = items[0].campaign_id
        transaction.on_commit(lambda: notify.delegated(campaign_id, to_user.pk, user.pk, count))
    return count


def _item_access(item: ReviewItem) -> dict:
    """What an item's events say about the access decided: an evidence pack binds the item's row to it."""
    return {
        "campaign": item.campaign_id,
        "grant": item.grant_id,
        "application": item.application.name,
        "identity": item.identity_name,
        "account": item.account_key,
        "entitlement": item.entitlement_key,
        "entitlement_name": item.entitlement_name,
        "flags": item.flags,
    }


def how_decided(item: ReviewItem, now, *, batch: int, since=None) -> dict:
    """What a certify or revoke keeps, on its Decision row and in its evidence event alike (evidence/binding.py,
    v4): the recommendation and reasons the reviewer was shown, how many items the one request decided, and the
    seconds it had: from the item first shown to its reviewer, or from their previous decision in the campaign
    (``since``) if that came later, so a queue opened on Monday and certified row by row on Tuesday is timed
    decision by decision. None if the item was never shown (an API call)."""
    if item.shown_at is None:
        seconds = None
    else:
        start = max(item.shown_at, since) if since is not None else item.shown_at
        seconds = max(0, int((now - start).total_seconds()))
    return {**recommendations.snapshot(item), "batch": batch, "seconds_shown": seconds}


def previous_decisions(user, campaign_ids) -> dict[int, object]:
    """When ``user`` last certified or revoked something in each of these campaigns."""
    return dict(
        Decision.objects.filter(
            actor=user,
            item__campaign_id__in=list(campaign_ids),
            action__in=[Decision.Action.CERTIFY, Decision.Action.REVOKE],
        )
        .order_by()
        .values_list("item__campaign_id")
        .annotate(last=Max("at"))
    )


def _decisions_create(decisions) -> dict[int, Decision]:
    """The decisions, saved, by item id (their ids go into the evidence that binds a pack's rows to the chain)."""
    made = Decision.objects.bulk_create(list(decisions))
    if any(d.pk is None for d in made):  # a database that returns no ids from a bulk insert
        made = Decision.objects.filter(item__in=[d.item_id for d in made], at=made[0].at, actor=made[0].actor)
    return {d.item_id: d for d in made}


def _decision_binding(decision: Decision, user, now) -> dict:
    """What an evidence pack's decision row binds to (evidence/binding.py): the row's id, action, actor and its
    exact time (the event's own time is taken later, under the chain lock)."""
    return {
        "decision": decision.pk,
        "action": decision.action,
        "by": user.get_username(),
        "at": format_time(now),
    }


def _complete_if_done(campaign_id: int, now) -> None:
    campaign = Campaign.objects.select_for_update().get(pk=campaign_id)
    if campaign.kind == Campaign.Kind.MICRO or campaign.status != Campaign.Status.ACTIVE:
        return
    if ReviewItem.objects.filter(campaign=campaign, status=ReviewItem.Status.PENDING).exists():
        return
    campaign.status = Campaign.Status.COMPLETED
    campaign.completed_at = now
    campaign.save(update_fields=["status", "completed_at"])
    event_record(
        actor=Actor.system("reviews"),
        action="review.campaign.completed",
        subject=campaign,
        payload=_outcome(campaign),
    )


def _outcome(campaign: Campaign) -> dict:
    counts = dict(
        ReviewItem.objects.filter(campaign=campaign).values_list("status").annotate(n=Count("id")).order_by()
    )
    return {status: counts.get(status, 0) for status in ReviewItem.Status.values}


def sign_off(*, campaign_id: int, user, attested: bool) -> SignOff:
    """Sign off my part of a campaign: every item assigned to me is decided, and I confirm the attestation
    statement (settings.SOXGOV_ATTESTATION_TEXT, kept word for word in the evidence). Locks my decisions."""
    if not attested:
        raise ValidationError({"attest": "Confirm the attestation statement to sign off."})
    now = timezone.now()
    with transaction.atomic():
        campaign = _locked_campaign(campaign_id)
        mine = ReviewItem.objects.filter(campaign=campaign, reviewer=user)
        if campaign.status not in (Campaign.Status.ACTIVE, Campaign.Status.COMPLETED):
            raise Conflict(f"The campaign is {campaign.get_status_display().lower()}.")
        if campaign.kind == Campaign.Kind.MICRO:
            raise Conflict("A standing micro-review has no sign-off: each item is decided as it comes.")
        total = mine.count()
        if not total:
            raise PermissionDenied("You have no items in this campaign.")
        pending = mine.filter(status=ReviewItem.Status.PENDING).count()
        if pending:
            raise Conflict(
                f"{pending} of your {total} items are still pending: decide them before signing off."
            )
        if SignOff.objects.filter(campaign=campaign, reviewer=user).exists():
            raise Conflict("You already signed off this campaign.")
        record = SignOff.objects.create(campaign=campaign, reviewer=user, at=now, items=total)
        mine.update(signed_off=True)
        counts = dict(mine.values_list("status").annotate(n=Count("id")).order_by())
        events = [
            Event(
                "review.signoff.recorded",
                Subject.of(campaign),
                {
                    "reviewer": user.get_username(),
                    "items": total,
                    **counts,
                    "sign_off": record.pk,
                    "at": format_time(now),
                    "attestation": settings.SOXGOV_ATTESTATION_TEXT,
                },
            )
        ]
        if campaign.status == Campaign.Status.COMPLETED and not _reviewers_left(campaign):
            campaign.status = Campaign.Status.SIGNED_OFF
            campaign.signed_off_at = now
            campaign.save(update_fields=["status", "signed_off_at"])
            events.append(Event("review.campaign.signed_off", Subject.of(campaign), _outcome(campaign)))
            # The chain head at sign-off is signed and kept outside the database (after this commit: the job
            # runs once the sign-off's events are in the chain).
            _checkpoint_after_sign_off(campaign)
        events_record(actor=Actor.for_user(user), events=events)
        # The reviewer's decisions are locked now: how they were made is final.
        stamps.findings_raise(campaign_id=campaign.pk, reviewer=user)
    return record


def _checkpoint_after_sign_off(campaign: Campaign) -> None:
    from evidence.tasks import checkpoint_job

    jobs.enqueue(checkpoint_job, "campaign_sign_off", origin=campaign)


def _reviewers_left(campaign: Campaign) -> int:
    signed = SignOff.objects.filter(campaign=campaign).values("reviewer")
    return (
        ReviewItem.objects.filter(campaign=campaign)
        .exclude(reviewer__in=signed)
        .values("reviewer")
        .distinct()
        .count()
    )


def campaign_close(*, campaign_id: int, user) -> Campaign:
    _require_admin(user)
    now = timezone.now()
    with transaction.atomic():
        campaign = _locked_campaign(campaign_id)
        events = []
        if campaign.status == Campaign.Status.COMPLETED and _reviewers_left(campaign) == 0:
            campaign.status, campaign.signed_off_at = Campaign.Status.SIGNED_OFF, now
            events.append(Event("review.campaign.signed_off", Subject.of(campaign), _outcome(campaign)))
        if campaign.status not in (Campaign.Status.SIGNED_OFF,) and not (
            campaign.kind == Campaign.Kind.MICRO and campaign.status == Campaign.Status.ACTIVE
        ):
            raise Conflict("A campaign is closed once every reviewer has signed off.")
        campaign.status = Campaign.Status.CLOSED
        campaign.closed_at = now
        campaign.save(update_fields=["status", "closed_at", "signed_off_at"])
        events.append(Event("review.campaign.closed", Subject.of(campaign), _outcome(campaign)))
        events_record(actor=Actor.for_user(user), events=events)
        stamps.findings_raise(campaign_id=campaign.pk)
    return campaign
