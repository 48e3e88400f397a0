"""Read-side questions for campaign pages: progress, the reviewer's sign-off state, and an item's context."""

from __future__ import annotations

import hashlib

from django.db import connection
from django.db.models import Count, F, Q
from django.utils import timezone

from entitlements.models import Account, Grant
from reviews.models import Campaign, Notification, ReviewItem, SignOff
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
