"""A small company for the review-intelligence tests, where each right answer is known by construction: eleven AP
clerks, one terminated and one on leave (a department-and-title peer group of ten), five people under one manager
with no title (a manager peer group), a bot whose owner left; Mia reviews everything (a named reviewer)."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from entitlements.models import Account, Application, Entitlement, Grant, Identity
from reviews import services
from reviews.models import Campaign, ReviewItem
from soxgov.roles import Role


def build_world(make_user) -> dict:
    now = timezone.now()
    mia = Identity.objects.create(employee_id="M1", email="mia@example.com", display_name="Mia Manager")
    max_ = Identity.objects.create(employee_id="M2", email="max@example.com", display_name="Max Manager")
    erp = Application.objects.create(name="ERP", sox_in_scope=True)
    ent = {
        code: Entitlement.objects.create(
            application=erp, entitlement_id=code, name=code, privileged=privileged
        )
        for code, privileged in (("AP_ENTER", False), ("VENDOR_MASTER", False), ("GL_ADMIN", True))
    }
    people, accounts = {}, {}

    def person(key, *, last_used=now - dt.timedelta(days=3), manager=mia, department="Accounts Payable",
               title="AP Clerk", **extra):  # fmt: skip
        identity = Identity.objects.create(
            employee_id=key, email=f"{key.lower()}@example.com", display_name=key, manager=manager,
            department=department, title=title, **extra,
        )  # fmt: skip
        people[key] = identity
        accounts[key] = Account.objects.create(
            application=erp, account_id=key.lower(), identity=identity, first_seen=now - dt.timedelta(days=400),
            last_used_at=last_used,
        )  # fmt: skip
        return identity

    for n in range(1, 12):
        person(f"P{n}")
    # P1: the only clerk with vendor master, unused for 200 days: unused and rare -> revoke.
    accounts["P1"].last_used_at = now - dt.timedelta(days=200)
    accounts["P1"].save()
    people["P3"].status, people["P3"].termination_date = "terminated", timezone.localdate()
    people["P3"].save()
    people["P4"].status = "leave"
    people["P4"].save()
    accounts["P6"].last_used_at = None  # ERP reports last use (the others have dates): never used
    accounts["P6"].save()
    for n in range(1, 12):
        Grant.objects.create(account=accounts[f"P{n}"], entitlement=ent["AP_ENTER"], first_seen=now)
    Grant.objects.create(account=accounts["P1"], entitlement=ent["VENDOR_MASTER"], first_seen=now)
    Grant.objects.create(account=accounts["P2"], entitlement=ent["GL_ADMIN"], first_seen=now)
    # Five people without department or title under Max: peers by manager; four hold AP_ENTER.
    for n in range(1, 6):
        person(f"Q{n}", manager=max_, department="", title="")
        if n < 5:
            Grant.objects.create(account=accounts[f"Q{n}"], entitlement=ent["AP_ENTER"], first_seen=now)
    Grant.objects.create(account=accounts["Q5"], entitlement=ent["VENDOR_MASTER"], first_seen=now)
    # A bot whose owner left.
    gone = Identity.objects.create(
        employee_id="X1",
        display_name="Gone Owner",
        status="terminated",
        termination_date=timezone.localdate(),
    )
    bot = Identity.objects.create(employee_id="BOT1", display_name="ap-sync", kind="service", owner=gone)
    bot_account = Account.objects.create(
        application=erp, account_id="ap-sync", identity=bot, first_seen=now, last_used_at=now
    )
    Grant.objects.create(account=bot_account, entitlement=ent["AP_ENTER"], first_seen=now)
    Identity.objects.create(employee_id="V1", email="vic@example.com", display_name="Vic")
    users = {
        "alice": make_user("alice", Role.ADMIN),
        "mia": make_user("mia", Role.REVIEWER, email="mia@example.com"),
        "vic": make_user("vic", Role.REVIEWER, email="vic@example.com"),
    }
    return {"people": people, "accounts": accounts, "ent": ent, "erp": erp, "users": users}


def launch(world, name="Q4 review") -> Campaign:
    users = world["users"]
    today = timezone.localdate()
    campaign = Campaign.objects.create(
        name=name, start_on=today, due_on=today + dt.timedelta(days=14), routing=Campaign.Routing.NAMED,
        named_reviewer=users["mia"], fallback_reviewer=users["vic"], created_by=users["alice"],
    )  # fmt: skip
    campaign.applications.set([world["erp"]])
    return services.campaign_launch(campaign_id=campaign.pk, user=users["alice"])


def item(campaign, who: str, code: str) -> ReviewItem:
    return ReviewItem.objects.get(campaign=campaign, account_key=who.lower(), entitlement_key=code)
