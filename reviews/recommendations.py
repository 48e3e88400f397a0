"""Recommendations for reviewers: revoke, review carefully or likely fine, each with its reasons in words.

Deterministic and explainable: no weights, no score. Every item gets signals SOXGov already holds, stored on the
item as numbers and facts, and the recommendation follows from them by three rules (docs/review-intelligence.md
explains them to auditors, with the settings):

- **revoke**: the person is terminated; the account is an orphan; a non-human identity has no live owner; or
  the access is unused (dormant where the application reports last use, or never used) *and* rare among the
  person's peers;
- **review carefully**: an SoD conflict; privileged access; the person on leave; revoked before and granted
  again; unused; rare among peers; or the only one of its kind in the reviewer's queue unless most peers hold it;
- **likely fine**: none of these.

Peers: the people (active or on leave) with the same department and title, else with the same manager, when that
group has at least ``SOXGOV_RECOMMEND_MIN_PEERS`` people; "rare" is held by at most
``SOXGOV_RECOMMEND_RARE_PERCENT`` of them, "most" at least ``SOXGOV_RECOMMEND_COMMON_PERCENT``. "New since the
last certification" and "certified before by the same reviewer" are told, and change nothing.

Computed at launch inside the launch's one INSERT ... SELECT (reviews/scoping.py joins the signals and wraps the
SELECT for the recommendation), so a million-item launch writes each item once; refreshed for the pending items
of the people a pull changed (``refresh``), and computed for the items a standing micro-review adds
(``recompute``), with a few UPDATE statements over just those items. Each decision keeps the recommendation and
reasons its reviewer was shown (reviews/services.py), and its evidence event carries them, so an evidence pack
shows what the reviewer was told.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction

from entitlements.models import Account, Grant, Identity
from reviews.models import Advice, Campaign, ReviewItem

T_ITEM = ReviewItem._meta.db_table
T_IDENTITY = Identity._meta.db_table
T_ACCOUNT = Account._meta.db_table
T_GRANT = Grant._meta.db_table
PEER_LABELS = {"title": "same department and title", "manager": "same manager"}

# What the launch SELECT (reviews/scoping.py) yields besides the snapshot: the signals, from joins...
SIGNAL_COLUMNS = (
    "peer_holders",
    "peer_size",
    "peer_basis",
    "never_used",
    "regranted",
    "owner_gone",
    "on_leave",
)
# ... and, in a wrapping SELECT over the campaign's rows, those that need them all, and the recommendation.
DERIVED_COLUMNS = ("unique_in_queue", "certified_by_reviewer", "recommendation")

# Over aliases g (grant), a (account), i (identity, NULL for an orphan) of the launch SELECT.
SIGNALS_SELECT = """
    CASE WHEN rts.n IS NOT NULL THEN COALESCE(rth.n, 0) WHEN rms.n IS NOT NULL THEN COALESCE(rmh.n, 0) END,
    CASE WHEN rts.n IS NOT NULL THEN rts.n ELSE rms.n END,
    CASE WHEN rts.n IS NOT NULL THEN 'title' WHEN rms.n IS NOT NULL THEN 'manager' ELSE '' END,
    (a.last_used_at IS NULL AND rus.application_id IS NOT NULL),
    (rr.account_id IS NOT NULL),
    COALESCE(i.kind <> 'human' AND (ro.id IS NULL OR ro.status = 'terminated'), FALSE),
    COALESCE(i.status = 'leave', FALSE)"""
SIGNALS_JOINS = f"""
    LEFT JOIN {T_IDENTITY} ro ON ro.id = i.owner_id
    LEFT JOIN rec_usage rus ON rus.application_id = a.application_id
    LEFT JOIN rec_title_size rts ON i.kind = 'human' AND rts.department = i.department AND rts.title = i.title
    LEFT JOIN rec_title_held rth ON rts.n IS NOT NULL AND rth.department = i.department AND rth.title = i.title
                               AND rth.entitlement_id = g.entitlement_id
    LEFT JOIN rec_manager_size rms ON i.kind = 'human' AND rms.manager_id = i.manager_id
    LEFT JOIN rec_manager_held rmh ON rms.n IS NOT NULL AND rmh.manager_id = i.manager_id
                                 AND rmh.entitlement_id = g.entitlement_id
    LEFT JOIN rec_revoked rr ON rr.account_id = a.id AND rr.entitlement_id = g.entitlement_id"""


def signal_tables(application_ids: list[int]) -> str:
    """The launch SELECT's common table expressions the signals join: peer groups (people active or on leave;
    department and title, else manager; at least SOXGOV_RECOMMEND_MIN_PEERS) and how many of each hold each
    entitlement of the scope, the applications that report last use, earlier revocations. Computed once each,
    so a million items cost a few hash joins."""
    apps = ", ".join(str(int(pk)) for pk in application_ids) or "-1"
    minimum = int(settings.SOXGOV_RECOMMEND_MIN_PEERS)
    return f"""rec_people AS (
            SELECT id, department, title, manager_id FROM {T_IDENTITY} WHERE kind = 'human' AND status <> 'terminated'
        ),
        -- Who holds what, once per person and entitlement (two accounts holding it count once), read once for
        -- both kinds of peer group.
        rec_holding AS (
            SELECT DISTINCT a.identity_id AS person, g.entitlement_id FROM {T_GRANT} g
            JOIN {T_ACCOUNT} a ON a.id = g.account_id
            WHERE a.application_id IN ({apps}) AND a.identity_id IS NOT NULL
        ),
        rec_title_size AS (
            SELECT department, title, COUNT(*) AS n FROM rec_people WHERE department <> '' AND title <> ''
            GROUP BY department, title HAVING COUNT(*) >= {minimum}
        ),
        rec_title_held AS (
            SELECT p.department, p.title, h.entitlement_id, COUNT(*) AS n
            FROM rec_holding h JOIN rec_people p ON p.id = h.person
            WHERE p.department <> '' AND p.title <> '' GROUP BY p.department, p.title, h.entitlement_id
        ),
        rec_manager_size AS (
            SELECT manager_id, COUNT(*) AS n FROM rec_people WHERE manager_id IS NOT NULL
            GROUP BY manager_id HAVING COUNT(*) >= {minimum}
        ),
        rec_manager_held AS (
            SELECT p.manager_id, h.entitlement_id, COUNT(*) AS n
            FROM rec_holding h JOIN rec_people p ON p.id = h.person
            WHERE p.manager_id IS NOT NULL GROUP BY p.manager_id, h.entitlement_id
        ),
        rec_usage AS (
            SELECT DISTINCT application_id FROM {T_ACCOUNT}
            WHERE last_used_at IS NOT NULL AND application_id IN ({apps})
        ),
        rec_revoked AS (
            SELECT DISTINCT account_id, entitlement_id FROM {T_ITEM} WHERE status = 'revoked'
        )"""


def _advice(unique: str, prefix: str = "") -> str:
    """The CASE giving the recommendation from the signals (columns named ``prefix`` + name); ``unique`` is the
    SQL saying the item is the only one of its kind in its reviewer's queue."""
    rare, common = int(settings.SOXGOV_RECOMMEND_RARE_PERCENT), int(settings.SOXGOV_RECOMMEND_COMMON_PERCENT)
    c = prefix
    unused = f"({c}never_used OR ({c}dormant AND {c}last_used_at IS NOT NULL))"
    is_rare = f"({c}peer_size IS NOT NULL AND {c}peer_holders * 100 <= {rare} * {c}peer_size)"
    is_common = f"({c}peer_size IS NOT NULL AND {c}peer_holders * 100 >= {common} * {c}peer_size)"
    return f"""CASE
        WHEN {c}terminated OR {c}orphan OR {c}owner_gone OR ({unused} AND {is_rare}) THEN '{Advice.REVOKE}'
        WHEN {c}sod_conflict OR {c}privileged OR {c}on_leave OR {c}regranted OR {unused} OR {is_rare}
             OR (({unique}) AND NOT {is_common}) THEN '{Advice.CAREFUL}'
        ELSE '{Advice.FINE}' END"""


def with_recommendation(sql: str, columns: tuple[str, ...]) -> str:
    """Wrap the launch SELECT (yielding ``columns``) so it also yields DERIVED_COLUMNS: whether the item is the
    only one with its entitlement in its reviewer's queue (a window over the campaign's rows), whether this
    reviewer certified it before, and the recommendation."""
    names = ", ".join(columns)
    unique = "COUNT(*) OVER (PARTITION BY b.reviewer_id, b.entitlement_id) = 1"
    return f"""WITH b ({names}) AS ({sql})
        SELECT {", ".join(f"b.{c}" for c in columns)},
            CASE WHEN {unique} THEN TRUE ELSE FALSE END,
            (rc.account_id IS NOT NULL),
            {_advice(unique, prefix="b.")}
        FROM b LEFT JOIN (
            SELECT DISTINCT account_id, entitlement_id, decided_by_id FROM {T_ITEM} WHERE status = 'certified'
        ) rc ON rc.account_id = b.account_id AND rc.entitlement_id = b.entitlement_id
            AND rc.decided_by_id = b.reviewer_id"""


@dataclass(frozen=True)
class SqlParts:
    """What the launch SELECT (reviews/scoping.py) takes from here: its common table expressions (after a comma),
    its select-list tail, its joins, and the wrapper adding DERIVED_COLUMNS."""

    tables: str
    select: str
    joins: str
    wrap: Callable[[str, tuple[str, ...]], str]


def sql_parts(*, apps: list[int], recommend: bool = True) -> SqlParts:
    if recommend:
        return SqlParts(signal_tables(apps), SIGNALS_SELECT, SIGNALS_JOINS, with_recommendation)
    # The columns at their defaults: what a launch writes without recommending (the benchmark's baseline).
    return SqlParts(
        "rec_none AS (SELECT 1 AS one)",
        "CAST(NULL AS INTEGER), CAST(NULL AS INTEGER), '', FALSE, FALSE, FALSE, FALSE",
        "",
        lambda sql, columns: f"WITH b ({', '.join(columns)}) AS ({sql}) SELECT b.*, FALSE, FALSE, '' FROM b",
    )


def _execute(sql: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def refresh(identity_ids) -> int:
    """Recompute the pending items of these people in active campaigns (their access or record changed)."""
    ids = sorted({int(pk) for pk in identity_ids if pk is not None})
    if not ids:
        return 0
    pending = ReviewItem.objects.filter(
        identity_id__in=ids, status=ReviewItem.Status.PENDING, campaign__status=Campaign.Status.ACTIVE
    )
    campaigns = list(pending.values_list("campaign_id", flat=True).distinct().order_by())
    for campaign_id in campaigns:
        grants = list(pending.filter(campaign_id=campaign_id).values_list("grant_id", flat=True))
        with transaction.atomic():
            recompute(Campaign.objects.get(pk=campaign_id), grants)
    return len(campaigns)


def recompute(campaign: Campaign, grant_ids: list[int]) -> None:
    """Signals and recommendation of these items of a campaign (refreshed after a pull, or added by a standing
    micro-review): the signals from the launch SELECT of just these grants, then what needs the whole queue."""
    from reviews.scoping import ITEM_COLUMNS, item_source

    signals = ", ".join(f"{c} = s.{c}" for c in SIGNAL_COLUMNS)
    for start in range(0, len(grant_ids), 500):
        chunk = [int(pk) for pk in grant_ids[start : start + 500]]
        marks = ", ".join(["%s"] * len(chunk))
        target = f"{T_ITEM}.campaign_id = %s AND {T_ITEM}.grant_id IN ({marks})"
        params = [campaign.pk, *chunk]
        source, source_params = item_source(campaign, grant_ids=chunk)
        _execute(
            f"""UPDATE {T_ITEM} SET {signals} FROM (
                WITH s ({", ".join(ITEM_COLUMNS)}) AS ({source}) SELECT * FROM s
            ) s WHERE s.grant_id = {T_ITEM}.grant_id AND {target}""",
            [*source_params, *params],
        )
        _execute(
            f"""UPDATE {T_ITEM} SET certified_by_reviewer = (EXISTS (
                SELECT 1 FROM {T_ITEM} p WHERE p.account_id = {T_ITEM}.account_id
                AND p.entitlement_id = {T_ITEM}.entitlement_id AND p.status = 'certified'
                AND p.decided_by_id = {T_ITEM}.reviewer_id AND p.campaign_id <> {T_ITEM}.campaign_id))
            WHERE {target}""",
            params,
        )
        unique = f"""NOT EXISTS (SELECT 1 FROM {T_ITEM} q WHERE q.campaign_id = {T_ITEM}.campaign_id
            AND q.reviewer_id = {T_ITEM}.reviewer_id AND q.entitlement_id = {T_ITEM}.entitlement_id
            AND q.id <> {T_ITEM}.id)"""
        _execute(f"UPDATE {T_ITEM} SET unique_in_queue = ({unique}) WHERE {target}", params)
        _execute(
            f"UPDATE {T_ITEM} SET recommendation = {_advice(f'{T_ITEM}.unique_in_queue')} WHERE {target}",
            params,
        )


# Reasons in words, most serious first: the risk signals, then usage and peers (with their figures), then these.
RISK_WORDS = (
    ("terminated", "the person is terminated"),
    ("orphan", "orphan account: no person is linked to it"),
    ("owner_gone", "non-human identity without a live owner"),
    ("sod_conflict", "creates an SoD conflict for this person"),
    ("privileged", "privileged access"),
    ("on_leave", "the person is on leave"),
)
HISTORY_WORDS = (
    ("regranted", "revoked in an earlier review and granted again"),
    ("unique_in_queue", "the only item with this entitlement in the reviewer's queue"),
    ("new_access", "new since the last certification"),
    ("certified_by_reviewer", "certified before by the same reviewer"),
)


def reasons(item: ReviewItem) -> list[str]:
    """Why the item has its recommendation, in words, from its stored signals (most serious first)."""
    said = [words for signal, words in RISK_WORDS if getattr(item, signal)]
    if item.never_used:
        said.append("never used")
    elif item.dormant and item.last_used_at is not None:
        said.append(
            f"unused for over {settings.SOXGOV_DORMANT_DAYS} days (last used {item.last_used_at:%Y-%m-%d})"
        )
    if item.peer_size:
        where = f" in {item.department}" if item.department and item.peer_basis == "title" else ""
        said.append(
            f"held by {item.peer_holders or 0} of {item.peer_size} peers{where} "
            f"({PEER_LABELS.get(item.peer_basis, item.peer_basis)})"
        )
    said += [words for signal, words in HISTORY_WORDS if getattr(item, signal)]
    return said


def snapshot(item: ReviewItem) -> dict:
    """What a decision keeps of the recommendation its reviewer was shown."""
    return {"recommendation": item.recommendation, "reasons": "; ".join(reasons(item))}
