"""Read-side questions for campaign pages: progress, the reviewer's sign-off state, and an item's context."""

from __future__ import annotations

import hashlib

from django.db import connection
from django.db.models import Count, F, Q
from django.utils import timezone

from entitlements.models import Account, Grant
from reviews.models import Campaign, Decision, Notification, ReviewItem, SignOff
from sod.models import RuleMember, Violation
from soxgov import access
from soxgov.models import User

_BY_STATUS = {
    "pending": Count("id", filter=Q(status=ReviewItem.Status.PENDING)),
    "certified": Count("id", filter=Q(status=ReviewItem.Status.CERTIFIED)),
    "revoked": Count("id", filter=Q(status=ReviewItem.Status.REVOKED)),
    "total": Count("id"),
}


def may_review(user) -> bool:
    """Who may review access (be routed items, take a delegation, be a campaign's reviewer): whoever may
    decide review items. ``reviewers()`` is the same rule as a queryset."""
    return access.can_attempt(user, ReviewItem, access.CHANGE)


def reviewers():
    return access.users_who_may(ReviewItem, access.CHANGE)


def campaign_monitor(campaign: Campaign) -> dict:
    items = ReviewItem.objects.filter(campaign=campaign).order_by()
    by_reviewer = list(items.values("reviewer").annotate(**_BY_STATUS).order_by("-pending", "reviewer"))
    users = User.objects.in_bulk([row["reviewer"] for row in by_reviewer])
    signed = dict(SignOff.objects.filter(campaign=campaign).values_list("reviewer", "at"))
    reminded = dict(
        Notification.objects.filter(campaign=campaign, kind="reminder")
        .values_list("user")
        .annotate(n=Count("id"))
        .order_by()
    )
    for row in by_reviewer:
        row["user"] = users[row["reviewer"]]
        row["signed_off_at"] = signed.get(row["reviewer"])
        row["reminders"] = reminded.get(row["reviewer"], 0)
        row["percent"] = round(100 * (row["total"] - row["pending"]) / row["total"]) if row["total"] else 100
    by_application = list(
        items.values("application__name").annotate(**_BY_STATUS).order_by("application__name")
    )
    totals = items.aggregate(**_BY_STATUS)
    overdue = totals["pending"] if timezone.localdate() > campaign.due_on else 0
    decided = totals["total"] - totals["pending"]
    return {
        "by_reviewer": by_reviewer,
        "by_application": by_application,
        "totals": totals,
        "percent": round(100 * decided / totals["total"]) if totals["total"] else 100,
        "overdue": overdue,
        "reminders": sum(reminded.values()),
        "escalations": Notification.objects.filter(campaign=campaign, kind="escalation").count(),
    }


def my_counts(user) -> list[dict]:
    """Per campaign with items of mine: total and pending (the maintained counters, not a count)."""
    from reviews import progress

    return progress.for_reviewer(user)


def sign_off_state(user, counts: list[dict] | None = None) -> list[dict]:
    """Per campaign with items of mine: how many, how many pending, signed off or not."""
    counts = my_counts(user) if counts is None else counts
    campaigns = Campaign.objects.in_bulk([c["campaign"] for c in counts])
    signed = set(SignOff.objects.filter(reviewer=user).values_list("campaign", flat=True))
    rows = []
    for entry in counts:
        campaign = campaigns[entry["campaign"]]
        rows.append(
            {
                **entry,
                "campaign__name": campaign.name,
                "campaign__status": campaign.status,
                "campaign__due_on": campaign.due_on,
                "signed_off": campaign.pk in signed,
                "may_sign_off": entry["pending"] == 0
                and campaign.pk not in signed
                and campaign.status in (Campaign.Status.ACTIVE, Campaign.Status.COMPLETED),
            }
        )
    return sorted(rows, key=lambda r: (r["campaign__due_on"], r["campaign"]))


def needing_comment(user, item_ids: list[int]) -> list[ReviewItem]:
    """Those of ``user``'s pending items among ``item_ids`` whose certification needs a comment (their flags are
    the launch's snapshot, so the answer holds for the decision that follows)."""
    flagged = Q()
    for flag in ReviewItem.FLAGS_NEEDING_COMMENT:
        flagged |= Q(**{flag: True})
    return list(
        ReviewItem.objects.restrict(user, access.CHANGE)
        .filter(flagged, pk__in=item_ids, reviewer=user, status=ReviewItem.Status.PENDING)
        .select_related("application")
        .order_by("identity_name", "pk")
    )


def item_context(item: ReviewItem) -> dict:
    """What makes a decision easy: SoD rules this grant takes part in, when the access appeared and changed,
    and how many peers in the same department hold the same entitlement."""
    rules = []
    if item.sod_conflict:
        holder = Q(identity_id=item.identity_id) if item.identity_id else Q(account_id=item.account_id)
        rule_ids = RuleMember.objects.filter(entitlement_id=item.entitlement_id).values("rule_id")
        rules = list(
            Violation.objects.filter(
                holder, rule_id__in=rule_ids, status__in=Violation.ACTIVE
            ).select_related("rule")
        )
    grant = Grant.objects.filter(pk=item.grant_id).first()
    account = Account.objects.filter(pk=item.account_id).first()
    account_changes = (
        list(account.history.order_by("-history_date").values("history_date", "history_type", "status")[:5])
        if account
        else []
    )
    peers = None
    if item.identity_id and item.department:
        peers = (
            Grant.objects.filter(
                entitlement_id=item.entitlement_id, account__identity__department=item.department
            )
            .exclude(account__identity_id=item.identity_id)
            .values("account__identity_id")
            .distinct()
            .count()
        )
    previous = (
        ReviewItem.objects.filter(account_id=item.account_id, entitlement_id=item.entitlement_id)
        .exclude(pk=item.pk)
        .exclude(status=ReviewItem.Status.PENDING)
        .select_related("campaign", "decided_by")
        .order_by("-decided_at")
        .first()
    )
    return {
        "violations": rules,
        "grant_first_seen": grant.first_seen if grant else None,
        "grant_gone": grant is None,
        "account_changes": account_changes,
        "peers": peers,
        "previous": previous,
    }


def launched_items_sha256(campaign: Campaign) -> str:
    """The digest the launch event chains over the items just launched (evidence/binding.py: the encoding).
    It runs inside the launch's transaction: PostgreSQL hashes each item in SQL, so only the aggregate crosses
    to Python; elsewhere the items stream through Python in id order."""
    from evidence.binding import ITEM_SNAPSHOT

    items = ReviewItem.objects.filter(campaign=campaign)
    if connection.vendor == "postgresql":
        return _items_sha256_in_sql(items, ITEM_SNAPSHOT)
    return _items_sha256_in_python(items, ITEM_SNAPSHOT)


def _items_sha256_in_python(items, snapshot) -> str:
    from evidence.binding import cell_text, item_line
    from evidence.chain import format_time

    fields = [column if column != "reviewer" else "reviewer__username" for column in snapshot]
    last_used = fields.index("last_used_at")
    digest = hashlib.sha256()
    for values in items.order_by("pk").values_list(*fields).iterator(chunk_size=5000):
        texts = [cell_text(value) for value in values]
        texts[last_used] = format_time(values[last_used]) if values[last_used] else ""
        digest.update(hashlib.sha256(item_line(texts)).digest())
    return digest.hexdigest()


def _items_sha256_in_sql(items, snapshot) -> str:
    from evidence.pack_csv import CsvCell, EventTime

    cells = {
        f"c{n}": EventTime(F(column))
        if column == "last_used_at"
        else CsvCell(F("reviewer__username" if column == "reviewer" else column))
        for n, column in enumerate(snapshot)
    }
    sql, params = items.annotate(**cells).values_list("pk", *cells).query.sql_with_params()
    texts = ", ".join(
        f"replace(replace(coalesce({name}::text, ''), E'\\r\\n', E'\\n'), E'\\r', E'\\n') AS {name}"
        for name in cells
    )
    line = " || ".join(
        f"octet_length(convert_to({name}, 'UTF8'))::text || ':' || {name} || ','" for name in cells
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"""SELECT encode(sha256(coalesce(string_agg(sha256(convert_to({line}, 'UTF8')), ''::bytea
                                                         ORDER BY pk), ''::bytea)), 'hex')
                FROM (SELECT pk, {texts} FROM ({sql}) AS raw (pk, {", ".join(cells)})) AS cells""",
            params,
        )
        return cursor.fetchone()[0]


def annotate_why_yours(items: list[ReviewItem]) -> None:
    """Say on each item (``item.why``) why it is in its reviewer's queue, mirroring the launch's routing
    (reviews/scoping.py): the first identity the campaign's routing names, if its user is the reviewer; else the
    named or fallback reviewer, and why the routing found no one; else a delegation. Items come with their
    identity, its manager and owner, the application's owner and the campaign joined; delegations and entitlement
    owners take a query each for the page, never one per row."""
    from entitlements.models import Entitlement

    by_owner = [i.entitlement_id for i in items if i.campaign.routing == Campaign.Routing.ENTITLEMENT_OWNER]
    owners = (
        {
            pk: (owner, name, status)
            for pk, owner, name, status in Entitlement.objects.filter(
                pk__in=by_owner, owner__isnull=False
            ).values_list("pk", "owner_id", "owner__display_name", "owner__status")
        }
        if by_owner
        else {}
    )
    delegations = (
        Decision.objects.filter(item__in=items, action=Decision.Action.DELEGATE)
        .order_by("at", "id")
        .values_list("item_id", "delegated_to_id", "actor__first_name", "actor__last_name", "actor__username")
        if items
        else []
    )
    delegated = {item: (to, f"{first} {last}".strip() or user) for item, to, first, last, user in delegations}
    for item in items:
        to, by = delegated.get(item.pk, (None, ""))
        item.why = f"delegated to you by {by}" if to == item.reviewer_id else _why(item, owners)


def _why(item: ReviewItem, entitlement_owners: dict) -> str:
    campaign, person, app = item.campaign, item.identity, item.application
    who = person.display_name if person else item.identity_name
    routes = {
        Campaign.Routing.MANAGER: ("manager", "owner", "application"),
        Campaign.Routing.IDENTITY_OWNER: ("owner", "manager", "application"),
        Campaign.Routing.APPLICATION_OWNER: ("application",),
        Campaign.Routing.ENTITLEMENT_OWNER: ("entitlement", "application"),
        Campaign.Routing.NAMED: (),
    }[campaign.routing]
    routed = None  # (identity id, name, status, reason)
    for step in routes:
        if step == "manager" and person and person.manager_id:
            m = person.manager
            routed = (m.pk, m.display_name, m.status, f"manager of {who}")
        elif step == "owner" and person and person.owner_id:
            o = person.owner
            routed = (o.pk, o.display_name, o.status, f"owner of {who}")
        elif step == "application" and app.owner_id:
            o = app.owner
            routed = (o.pk, o.display_name, o.status, f"owner of {app.name}")
        elif step == "entitlement" and item.entitlement_id in entitlement_owners:
            routed = (*entitlement_owners[item.entitlement_id], f"owner of {item.entitlement_name}")
        if routed:
            break
    if routed and routed[0] == item.reviewer_identity_id:
        return routed[3]
    if campaign.routing == Campaign.Routing.NAMED and item.reviewer_id == campaign.named_reviewer_id:
        return "named reviewer of this campaign"
    if item.reviewer_id in (campaign.fallback_reviewer_id, campaign.created_by_id):
        if routed is None:
            reason = "an orphan account: no person to route by" if person is None else "nobody to route to"
        elif person is not None and routed[0] == person.pk:
            reason = f"{routed[1]} may not review their own access"
        elif routed[2] == "terminated":
            reason = f"{routed[1]}, {routed[3]}, is terminated"
        else:
            reason = f"{routed[1]}, {routed[3]}, has no active reviewer account"
        return f"fallback reviewer: {reason}"
    return "routed to you"


def mark_shown(user, items) -> int:
    """Note when pending items are first shown to their reviewer (the queue, the item page): decisions are timed
    from it (reviews/stamps.py). One UPDATE for the page, and none once every row on it was shown."""
    unseen = [
        item.pk
        for item in items
        if item.shown_at is None and item.reviewer_id == user.pk and item.status == ReviewItem.Status.PENDING
    ]
    if not unseen:
        return 0
    now = timezone.now()
    for item in items:
        if item.pk in unseen:
            item.shown_at = now
    return ReviewItem.objects.filter(pk__in=unseen, shown_at__isnull=True).update(shown_at=now)


def recommended_revoke(user, item_ids) -> list[ReviewItem]:
    """Which of these pending items of ``user``'s SOXGov recommends revoking, in queue order."""
    return list(
        ReviewItem.objects.filter(
            pk__in=list(item_ids), reviewer=user, status=ReviewItem.Status.PENDING, recommendation="revoke"
        ).order_by("identity_name", "id")
    )
