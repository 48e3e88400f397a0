"""Reading access, now and on a past date.

"On date D" means at the end of day D in the configured time zone: whatever was recorded before midnight
that night. Past state comes from django-simple-history: for each object, its latest history record before
that moment, unless that record is a deletion.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.utils import timezone

from entitlements.models import Account, Application, Entitlement, Grant, Identity

ACCOUNT_FIELDS = ("id", "account_id", "application_id", "identity_id", "privileged")


def end_of_day(day: dt.date) -> dt.datetime:
    next_midnight = dt.datetime.combine(day + dt.timedelta(days=1), dt.time.min)
    return timezone.make_aware(next_midnight, timezone.get_current_timezone())


def _as_of(model, moment: dt.datetime, **filters):
    """Historical records alive at ``moment``: the latest per object before it, deletions dropped.

    ``filters`` must only name fields that never change on an object (such as a grant's entitlement),
    because they narrow the records before the latest one is picked.
    """
    return model.history.filter(history_date__lt=moment, **filters).latest_of_each().exclude(history_type="-")


@dataclass(frozen=True)
class HeldAccess:
    """One grant as it stood on a date."""

    grant_id: int
    application_id: int
    application: str
    account_pk: int
    account_id: str
    identity_id: int | None
    identity: str
    entitlement_pk: int
    entitlement: str
    privileged: bool
    since: dt.datetime


def entitlement_holders_on(*, entitlement: Entitlement, day: dt.date) -> list[HeldAccess]:
    """Who held entitlement E at the end of day D, with the account and identity as they stood then."""
    moment = end_of_day(day)
    grants = list(
        _as_of(Grant, moment, entitlement_id=entitlement.pk).values(
            "id", "account_id", "entitlement_id", "first_seen"
        )
    )
    account_ids = list({g["account_id"] for g in grants})
    accounts = {row["id"]: row for row in _as_of(Account, moment, id__in=account_ids).values(*ACCOUNT_FIELDS)}
    return _held(moment, grants, accounts)


def identity_access_on(*, identity: Identity, day: dt.date) -> list[HeldAccess]:
    """What identity I held at the end of day D: every grant of every account linked to I at that moment."""
    moment = end_of_day(day)
    # An account's identity link can change, so pick each account's latest state first and filter after.
    accounts = {
        row["id"]: row
        for row in _as_of(Account, moment).filter(identity_id=identity.pk).values(*ACCOUNT_FIELDS)
    }
    grants = list(
        _as_of(Grant, moment)
        .filter(account_id__in=list(accounts))
        .values("id", "account_id", "entitlement_id", "first_seen")
    )
    return _held(moment, grants, accounts)


def _held(moment, grants: list[dict], accounts: dict[int, dict]) -> list[HeldAccess]:
    entitlement_ids = {g["entitlement_id"] for g in grants}
    entitlements = {
        row["id"]: row
        for row in _as_of(Entitlement, moment)
        .filter(id__in=list(entitlement_ids))
        .values("id", "name", "privileged")
    }
    identity_ids = {a["identity_id"] for a in accounts.values()} - {None}
    identities = dict(
        _as_of(Identity, moment).filter(id__in=list(identity_ids)).values_list("id", "display_name")
    )
    application_ids = {a["application_id"] for a in accounts.values()}
    applications = dict(Application.objects.filter(id__in=application_ids).values_list("id", "name"))
    result = []
    for grant in grants:
        account = accounts.get(grant["account_id"])
        if account is None:
            continue
        entitlement = entitlements.get(grant["entitlement_id"], {})
        result.append(
            HeldAccess(
                grant_id=grant["id"],
                application_id=account["application_id"],
                application=applications.get(account["application_id"], f"#{account['application_id']}"),
                account_pk=account["id"],
                account_id=account["account_id"],
                identity_id=account["identity_id"],
                identity=identities.get(
                    account["identity_id"], "(orphan)" if account["identity_id"] is None else "?"
                ),
                entitlement_pk=grant["entitlement_id"],
                entitlement=entitlement.get("name", ""),
                privileged=bool(account["privileged"] or entitlement.get("privileged")),
                since=grant["first_seen"],
            )
        )
    return sorted(result, key=lambda h: (h.application, h.identity, h.account_id, h.entitlement))
