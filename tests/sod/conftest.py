"""A small procure-to-pay world for SoD tests: vendors are created in ERP, payments approved in the bank portal."""

import pytest
from django.utils import timezone

from entitlements.models import Account, Application, Entitlement, Grant, Identity
from evidence.services import Actor
from sod.rules import RuleSpec, rules_save


@pytest.fixture
def p2p(db):
    now = timezone.now()
    erp = Application.objects.create(name="ERP", sox_in_scope=True)
    bank = Application.objects.create(name="Bank")
    ents = {
        "vendor_create": Entitlement.objects.create(
            application=erp, entitlement_id="VENDOR_CREATE", name="Create vendor"
        ),
        "vendor_edit": Entitlement.objects.create(
            application=erp, entitlement_id="VENDOR_EDIT", name="Edit vendor"
        ),
        "je_post": Entitlement.objects.create(application=erp, entitlement_id="JE_POST", name="Post journal"),
        "je_approve": Entitlement.objects.create(
            application=erp, entitlement_id="JE_APPROVE", name="Approve journal"
        ),
        "pay_approve": Entitlement.objects.create(
            application=bank, entitlement_id="PAY_APPROVE", name="Approve payment"
        ),
        "pay_release": Entitlement.objects.create(
            application=bank, entitlement_id="PAY_RELEASE", name="Release payment"
        ),
    }
    people = {
        name: Identity.objects.create(
            employee_id=f"E{i}", email=f"{name}@example.com", display_name=name.title()
        )
        for i, name in enumerate(["vera", "walt", "xena"], start=1)
    }
    people["bot"] = Identity.objects.create(
        employee_id="SVC9", display_name="pay-bot", kind=Identity.Kind.SERVICE, owner=people["walt"]
    )
    accounts = {}

    def account(app, key, identity=None):
        acct = Account.objects.create(application=app, account_id=key, identity=identity, first_seen=now)
        accounts[f"{key}@{app.name}"] = acct
        return acct

    def grant(acct, *names):
        for name in names:
            Grant.objects.create(account=acct, entitlement=ents[name], first_seen=now)

    def revoke(acct, name):
        Grant.objects.filter(account=acct, entitlement=ents[name]).delete()

    return {
        "erp": erp,
        "bank": bank,
        "ents": ents,
        "people": people,
        "accounts": accounts,
        "account": account,
        "grant": grant,
        "revoke": revoke,
        "now": now,
    }


@pytest.fixture
def rule_of(p2p, django_capture_on_commit_callbacks):
    """Create a rule from side name -> entitlement names (the re-check it enqueues is not run here)."""

    def make(code, sides, risk="high", enabled=True):
        spec = RuleSpec(
            code=code,
            name=f"Rule {code}",
            risk=risk,
            process="Procure to pay",
            enabled=enabled,
            sides=[(side, [p2p["ents"][n].pk for n in names]) for side, names in sides.items()],
        )
        with django_capture_on_commit_callbacks(execute=False):
            (rule,) = rules_save([(spec, None)], actor=Actor.system("tests"))
        return rule

    return make
