"""What a campaign reviews and who reviews it, as one SELECT over the grants in scope.

The same statement serves the preview (wrapped in a GROUP BY) and the launch (wrapped in INSERT ... SELECT), so
what an admin previews is exactly what launch snapshots. Set-based and portable (PostgreSQL and SQLite): flags
come from joins against small derived tables rather than per-row subqueries, so a million items cost a handful
of hash joins.

Routing picks an identity (the manager, an owner ...), then the active user linked to it. The fallback reviewer
takes an item when that identity has no active user, is terminated, or is the subject (by the user's identity
link or by their e-mail); the campaign's creator takes it if the fallback is the subject too. A user with no
identity linked is never routed an item. The database refuses self-review regardless (a check constraint).
"""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.utils import timezone

from entitlements.models import Account, Application, Entitlement, Grant, Identity
from entitlements.selves import identity_ids_of
from reviews import recommendations
from reviews.models import Campaign, ReviewItem
from reviews.selectors import may_review, reviewers
from sod.models import RuleMember, Violation
from soxgov.models import User

CRITICALITY_ORDER = ["low", "medium", "high", "critical"]

# The snapshot's columns, in order, as the inner SELECT yields them (before the recommendation's).
SNAPSHOT_COLUMNS = (
    "campaign_id",
    "grant_id",
    "account_id",
    "entitlement_id",
    "application_id",
    "identity_id",
    "identity_name",
    "department",
    "account_key",
    "entitlement_key",
    "entitlement_name",
    "last_used_at",
    "terminated",
    "orphan",
    "dormant",
    "privileged",
    "sod_conflict",
    "new_access",
    "non_human",
    "reviewer_id",
    "reviewer_identity_id",
    "status",
    "comment",
    "signed_off",
)
# The columns the whole statement yields, and the INSERT column list: the snapshot, its recommendation's signals
# and the recommendation (reviews/recommendations.py).
ITEM_COLUMNS = (*SNAPSHOT_COLUMNS, *recommendations.SIGNAL_COLUMNS, *recommendations.DERIVED_COLUMNS)


def _routed_identity(routing: str) -> str:
    """The identity whose user should review the item (SQL over aliases i, app, e)."""
    return {
        Campaign.Routing.MANAGER: "COALESCE(i.manager_id, i.owner_id, app.owner_id)",
        Campaign.Routing.IDENTITY_OWNER: "COALESCE(i.owner_id, i.manager_id, app.owner_id)",
        Campaign.Routing.APPLICATION_OWNER: "app.owner_id",
        Campaign.Routing.ENTITLEMENT_OWNER: "COALESCE(e.owner_id, app.owner_id)",
        Campaign.Routing.NAMED: "NULL",
    }[routing]


def _reviewer_case(campaign: Campaign, want: str) -> tuple[str, list]:
    """CASE choosing the reviewer (``want`` = "user") or their identity (``want`` = "identity"): the routed
    identity's user, else the named reviewer (named routing), else the fallback, else the creator; never the
    subject (i.id), whether by the user's identity link or by their e-mail (entitlements/selves.py), and never
    a user with no identity linked (nobody could tell whose access is theirs). No branch left means NULL,
    which the NOT NULL column refuses."""
    branches = [
        f"WHEN ru.user_id IS NOT NULL AND (i.id IS NULL OR (ru.identity_id <> i.id AND (ru.email = '' "
        f"OR i.email IS NULL OR LOWER(i.email) <> ru.email))) THEN ru.{want}_id"
    ]
    params: list = []
    people = [campaign.fallback_reviewer, campaign.created_by]
    if campaign.routing == Campaign.Routing.NAMED:
        people.insert(0, campaign.named_reviewer)
    for person in people:
        # Checked now, not only when the draft was saved: a recurrence may launch months later.
        if person is None or not may_review(person):
            continue
        if person.identity_id is None:
            continue
        selves = sorted(identity_ids_of(person))
        branches.append(f"WHEN (i.id IS NULL OR i.id NOT IN ({', '.join(['%s'] * len(selves))})) THEN %s")
        params += [*selves, person.pk if want == "user" else person.identity_id]
    return "CASE " + " ".join(branches) + " END", params


def reviewers_without_identity(campaign: Campaign) -> dict[str, str]:
    """The campaign's named and fallback reviewers who have no identity linked, by field, with why they are
    refused: SOXGov could not keep their own access from them."""
    fields = ["fallback_reviewer"]
    if campaign.routing == Campaign.Routing.NAMED:
        fields.insert(0, "named_reviewer")
    refused = {}
    for name in fields:
        person = getattr(campaign, name)
        if person is not None and person.identity_id is None:
            refused[name] = (
                f"{person.display_name} has no identity linked (their e-mail matches none), so SOXGov cannot "
                "keep their own access from them; link an identity or choose someone else."
            )
    return refused


def _in(column: str, values: list) -> tuple[str, list]:
    if not values:
        return "", []
    return f" AND {column} IN ({', '.join(['%s'] * len(values))})", list(values)


def scope_applications(campaign: Campaign) -> list[int]:
    chosen = list(campaign.applications.values_list("pk", flat=True)) if campaign.pk else []
    apps = (
        Application.objects.filter(pk__in=chosen) if chosen else Application.objects.filter(sox_in_scope=True)
    )
    if campaign.min_criticality:
        allowed = CRITICALITY_ORDER[CRITICALITY_ORDER.index(campaign.min_criticality) :]
        apps = apps.filter(criticality__in=allowed)
    return sorted(apps.values_list("pk", flat=True))


def item_source(
    campaign: Campaign, *, grant_ids: list[int] | None = None, now=None, recommend: bool = True
) -> tuple[str, list]:
    """SELECT yielding ITEM_COLUMNS for every grant in the campaign's scope (or just ``grant_ids``).
    ``recommend=False`` leaves the recommendation's columns at their defaults, without its joins: the campaign
    benchmark's baseline for what recommending costs a launch."""
    now = now or timezone.now()
    t = {
        "grant": Grant._meta.db_table,
        "account": Account._meta.db_table,
        "entitlement": Entitlement._meta.db_table,
        "application": Application._meta.db_table,
        "identity": Identity._meta.db_table,
        "user": User._meta.db_table,
        "violation": Violation._meta.db_table,
        "member": RuleMember._meta.db_table,
        "item": ReviewItem._meta.db_table,
    }
    apps = scope_applications(campaign)
    if not apps:
        apps = [-1]  # nothing in scope: the statement still runs and yields nothing
    parts = recommendations.sql_parts(apps=apps, recommend=recommend)
    live = list(Violation.ACTIVE)
    live_sql = ", ".join(["%s"] * len(live))
    dormant_before = now - dt.timedelta(days=settings.SOXGOV_DORMANT_DAYS)
    routed = _routed_identity(campaign.routing)

    where, params_where = _in("a.application_id", apps)
    # A standing micro-review looks at privileged and sensitive access only, whatever else it says.
    if campaign.privileged_only or campaign.kind == Campaign.Kind.MICRO:
        where += " AND (e.privileged OR e.sensitive)"
    kinds = list(campaign.identity_kinds or [])
    if kinds:
        # Orphan accounts stay in scope whatever the kinds: someone must own them.
        where += f" AND (i.id IS NULL OR i.kind IN ({', '.join(['%s'] * len(kinds))}))"
        params_where += kinds
    departments_sql, departments = _in("i.department", list(campaign.departments or []))
    where += departments_sql
    params_where += departments
    if grant_ids is not None:
        ids_sql, ids = _in("g.id", list(grant_ids) or [-1])
        where += ids_sql
        params_where += ids

    # Only users who may review (selectors.reviewers(): the reviewer and admin roles) are routed items.
    may_review_sql, may_review_params = reviewers().values("pk").query.sql_with_params()
    reviewer_sql, reviewer_params = _reviewer_case(campaign, "user")
    reviewer_identity_sql, reviewer_identity_params = _reviewer_case(campaign, "identity")

    routed_join = (
        "LEFT JOIN eligible ru ON ru.identity_id = " + routed
        if routed != "NULL"
        else ("LEFT JOIN eligible ru ON 1 = 0")
    )
    sql = f"""
        WITH eligible_user AS (
            SELECT u.identity_id AS identity_id, MIN(u.id) AS user_id
            FROM {t["user"]} u JOIN {t["identity"]} ri ON ri.id = u.identity_id
            WHERE ri.status <> 'terminated' AND u.id IN ({may_review_sql})
            GROUP BY u.identity_id
        ),
        -- The chosen user's e-mail too: a user whose e-mail is the subject's is the subject, whatever the link.
        eligible AS (
            SELECT eu.identity_id AS identity_id, eu.user_id AS user_id, LOWER(COALESCE(u.email, '')) AS email
            FROM eligible_user eu JOIN {t["user"]} u ON u.id = eu.user_id
        ),
        conflict_people AS (
            SELECT DISTINCT v.identity_id AS identity_id, m.entitlement_id AS entitlement_id
            FROM {t["violation"]} v JOIN {t["member"]} m ON m.rule_id = v.rule_id
            WHERE v.identity_id IS NOT NULL AND v.status IN ({live_sql})
        ),
        conflict_accounts AS (
            SELECT DISTINCT v.account_id AS account_id, m.entitlement_id AS entitlement_id
            FROM {t["violation"]} v JOIN {t["member"]} m ON m.rule_id = v.rule_id
            WHERE v.account_id IS NOT NULL AND v.status IN ({live_sql})
        ),
        -- Computed once, before the first row is inserted. (A per-row NOT EXISTS against the table being filled
        -- is planned while that table is empty and turns quadratic on a first launch of a million items.)
        certified AS (
            SELECT DISTINCT account_id, entitlement_id FROM {t["item"]} WHERE status = 'certified'
        ),
        {parts.tables}
        SELECT
            %s,
            g.id, a.id, e.id, app.id, i.id,
            COALESCE(i.display_name, 'Orphan account ' || a.account_id),
            COALESCE(i.department, ''),
            a.account_id, e.entitlement_id, e.name, a.last_used_at,
            COALESCE(i.status = 'terminated', FALSE),
            a.identity_id IS NULL,
            COALESCE(a.last_used_at, a.first_seen) < %s,
            e.privileged,
            (cp.identity_id IS NOT NULL OR ca.account_id IS NOT NULL),
            c.account_id IS NULL,
            COALESCE(i.kind <> 'human', FALSE),
            {reviewer_sql},
            {reviewer_identity_sql},
            'pending', '', FALSE,
            {parts.select}
        FROM {t["grant"]} g
        JOIN {t["account"]} a ON a.id = g.account_id
        JOIN {t["entitlement"]} e ON e.id = g.entitlement_id
        JOIN {t["application"]} app ON app.id = a.application_id
        LEFT JOIN {t["identity"]} i ON i.id = a.identity_id
        {routed_join}
        LEFT JOIN conflict_people cp ON cp.identity_id = a.identity_id AND cp.entitlement_id = g.entitlement_id
        LEFT JOIN conflict_accounts ca ON ca.account_id = a.id AND ca.entitlement_id = g.entitlement_id
        LEFT JOIN certified c ON c.account_id = a.id AND c.entitlement_id = g.entitlement_id
        {parts.joins}
        WHERE 1 = 1 {where}
    """
    sql = parts.wrap(sql, (*SNAPSHOT_COLUMNS, *recommendations.SIGNAL_COLUMNS))
    params = [
        *may_review_params,
        *live,
        *live,
        campaign.pk,
        dormant_before,
        *reviewer_params,
        *reviewer_identity_params,
        *params_where,
    ]
    return sql, params
