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

Computed set-based, a few UPDATE statements per campaign, at launch (``compute``); refreshed for the pending items
of the people a pull changed (``refresh``). Each decision keeps the recommendation and reasons its reviewer was
shown (reviews/services.py), and its evidence event carries them, so an evidence pack shows what the reviewer was
told.
"""

from __future__ import annotations

from django.conf import settings
from django.db import connection, transaction

from entitlements.models import Account, Grant, Identity
from reviews.models import Advice, Campaign, ReviewItem

T_ITEM = ReviewItem._meta.db_table
T_IDENTITY = Identity._meta.db_table
T_ACCOUNT = Account._meta.db_table
T_GRANT = Grant._meta.db_table
PEER_LABELS = {"title": "same department and title", "manager": "same manager"}


def _thresholds() -> tuple[int, int, int]:
    return (
        settings.SOXGOV_RECOMMEND_MIN_PEERS,
        settings.SOXGOV_RECOMMEND_RARE_PERCENT,
        settings.SOXGOV_RECOMMEND_COMMON_PERCENT,
    )


def _execute(sql: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def compute(campaign_id: int, *, grant_ids: list[int] | None = None) -> None:
    """Signals and recommendation of every item of a campaign (at launch), or of the items of ``grant_ids`` (a
    standing micro-review adding items)."""
    if grant_ids is None:
        _update(f"{T_ITEM}.campaign_id = %s", [campaign_id], campaign_id)
        return
    for start in range(0, len(grant_ids), 500):
        chunk = [int(pk) for pk in grant_ids[start : start + 500]]
        marks = ", ".join(["%s"] * len(chunk))
        _update(
            f"{T_ITEM}.campaign_id = %s AND {T_ITEM}.grant_id IN ({marks})",
            [campaign_id, *chunk],
            campaign_id,
        )


def refresh(identity_ids) -> int:
    """Recompute the pending items of these people in active campaigns (their access or record changed)."""
    ids = sorted({int(pk) for pk in identity_ids if pk is not None})
    if not ids:
        return 0
    campaigns = list(
        ReviewItem.objects.filter(
            identity_id__in=ids, status=ReviewItem.Status.PENDING, campaign__status=Campaign.Status.ACTIVE
        )
        .values_list("campaign_id", flat=True)
        .distinct()
        .order_by()
    )
    marks = ", ".join(["%s"] * len(ids))
    for campaign_id in campaigns:
        with transaction.atomic():
            _update(
                f"{T_ITEM}.campaign_id = %s AND {T_ITEM}.status = 'pending' AND {T_ITEM}.identity_id IN ({marks})",
                [campaign_id, *ids],
                campaign_id,
            )
    return len(campaigns)


def _update(target: str, params: list, campaign_id: int) -> None:
    """Set every signal, then the recommendation, of the items ``target`` selects (all in one campaign)."""
    minimum, rare, common = _thresholds()
    _execute(
        f"""UPDATE {T_ITEM} SET peer_holders = NULL, peer_size = NULL, peer_basis = '', never_used = FALSE,
            regranted = FALSE, certified_by_reviewer = FALSE, unique_in_queue = FALSE, owner_gone = FALSE,
            on_leave = FALSE WHERE {target}""",
        params,
    )
    # The person's record: on leave; a non-human identity whose owner is missing or terminated.
    _execute(
        f"""UPDATE {T_ITEM} SET on_leave = (i.status = 'leave'),
            owner_gone = (i.kind <> 'human' AND (o.id IS NULL OR o.status = 'terminated'))
        FROM {T_IDENTITY} i LEFT JOIN {T_IDENTITY} o ON o.id = i.owner_id
        WHERE i.id = {T_ITEM}.identity_id AND {target}""",
        params,
    )
    # Never used: only where the application reports last use (some account of it has a date).
    _execute(
        f"""UPDATE {T_ITEM} SET never_used = TRUE
        FROM (SELECT DISTINCT application_id FROM {T_ACCOUNT} WHERE last_used_at IS NOT NULL) u
        WHERE u.application_id = {T_ITEM}.application_id AND {T_ITEM}.last_used_at IS NULL AND {target}""",
        params,
    )
    _peers(target, params, campaign_id, minimum)
    # History: revoked in an earlier campaign, and here again; certified before by this reviewer.
    _execute(
        f"""UPDATE {T_ITEM} SET regranted = TRUE
        FROM (SELECT DISTINCT account_id, entitlement_id FROM {T_ITEM}
              WHERE status = 'revoked' AND campaign_id <> %s) r
        WHERE r.account_id = {T_ITEM}.account_id AND r.entitlement_id = {T_ITEM}.entitlement_id AND {target}""",
        [campaign_id, *params],
    )
    _execute(
        f"""UPDATE {T_ITEM} SET certified_by_reviewer = TRUE
        FROM (SELECT DISTINCT account_id, entitlement_id, decided_by_id FROM {T_ITEM}
              WHERE status = 'certified' AND campaign_id <> %s) c
        WHERE c.account_id = {T_ITEM}.account_id AND c.entitlement_id = {T_ITEM}.entitlement_id
          AND c.decided_by_id = {T_ITEM}.reviewer_id AND {target}""",
        [campaign_id, *params],
    )
    _execute(
        f"""UPDATE {T_ITEM} SET unique_in_queue = TRUE
        FROM (SELECT reviewer_id, entitlement_id FROM {T_ITEM} WHERE campaign_id = %s
              GROUP BY reviewer_id, entitlement_id HAVING COUNT(*) = 1) q
        WHERE q.reviewer_id = {T_ITEM}.reviewer_id AND q.entitlement_id = {T_ITEM}.entitlement_id AND {target}""",
        [campaign_id, *params],
    )
    unused = "(never_used OR (dormant AND last_used_at IS NOT NULL))"
    is_rare = f"(peer_size IS NOT NULL AND peer_holders * 100 <= {rare:d} * peer_size)"
    is_common = f"(peer_size IS NOT NULL AND peer_holders * 100 >= {common:d} * peer_size)"
    _execute(
        f"""UPDATE {T_ITEM} SET recommendation = CASE
            WHEN terminated OR orphan OR owner_gone OR ({unused} AND {is_rare}) THEN '{Advice.REVOKE}'
            WHEN sod_conflict OR privileged OR on_leave OR regranted OR {unused} OR {is_rare}
                 OR (unique_in_queue AND NOT {is_common}) THEN '{Advice.CAREFUL}'
            ELSE '{Advice.FINE}' END
        WHERE {target}""",
        params,
    )


def _peers(target: str, params: list, campaign_id: int, minimum: int) -> None:
    """How many of the person's peers hold the entitlement: by department and title first, else by manager,
    each only for a group of at least ``minimum`` people. Counted over the grants of the campaign's
    entitlements only."""
    people = "p.kind = 'human' AND p.status <> 'terminated'"
    in_campaign = f"g.entitlement_id IN (SELECT DISTINCT entitlement_id FROM {T_ITEM} WHERE campaign_id = %s)"
    for basis, keys in (("title", ("department", "title")), ("manager", ("manager_id",))):
        present = " AND ".join(
            f"p.{key} <> ''" if key != "manager_id" else "p.manager_id IS NOT NULL" for key in keys
        )
        group = ", ".join(f"p.{key}" for key in keys)
        size_match = " AND ".join(f"s.{key} = i.{key}" for key in keys)
        held_match = " AND ".join(f"h.{key} = i.{key}" for key in keys)
        pending = "" if basis == "title" else f"AND {T_ITEM}.peer_basis = ''"
        _execute(
            f"""UPDATE {T_ITEM} SET peer_size = s.n, peer_holders = h.n, peer_basis = '{basis}'
            FROM {T_IDENTITY} i,
                 (SELECT {group}, COUNT(*) AS n FROM {T_IDENTITY} p WHERE {people} AND {present}
                  GROUP BY {group} HAVING COUNT(*) >= %s) s,
                 (SELECT {group}, g.entitlement_id, COUNT(DISTINCT p.id) AS n
                  FROM {T_GRANT} g JOIN {T_ACCOUNT} a ON a.id = g.account_id
                  JOIN {T_IDENTITY} p ON p.id = a.identity_id
                  WHERE {people} AND {present} AND {in_campaign}
                  GROUP BY {group}, g.entitlement_id) h
            WHERE i.id = {T_ITEM}.identity_id AND i.kind = 'human' AND {size_match} AND {held_match}
              AND h.entitlement_id = {T_ITEM}.entitlement_id {pending} AND {target}""",
            [minimum, campaign_id, *params],
        )


def reasons(item: ReviewItem) -> list[str]:
    """Why the item has its recommendation, in words, from its stored signals (most serious first)."""
    said = []
    if item.terminated:
        said.append("the person is terminated")
    if item.orphan:
        said.append("orphan account: no person is linked to it")
    if item.owner_gone:
        said.append("non-human identity without a live owner")
    if item.sod_conflict:
        said.append("creates an SoD conflict for this person")
    if item.privileged:
        said.append("privileged access")
    if item.on_leave:
        said.append("the person is on leave")
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
    if item.regranted:
        said.append("revoked in an earlier review and granted again")
    if item.unique_in_queue:
        said.append("the only item with this entitlement in the reviewer's queue")
    if item.new_access:
        said.append("new since the last certification")
    if item.certified_by_reviewer:
        said.append("certified before by the same reviewer")
    return said


def snapshot(item: ReviewItem) -> dict:
    """What a decision keeps of the recommendation its reviewer was shown."""
    return {"recommendation": item.recommendation, "reasons": "; ".join(reasons(item))}
