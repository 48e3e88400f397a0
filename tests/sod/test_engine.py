"""The engine and the checks that apply it: what opens, what resolves, what stays untouched, and the evidence."""

import json

import pytest

from evidence.models import EvidenceEvent
from evidence.services import Actor
from sod.checks import run_check
from sod.engine import Scope, detect
from sod.models import Check, Violation

ACTOR = Actor.system("tests")


def check(scope=None, **kwargs):
    return run_check(scope or Scope.everything(), trigger=Check.Trigger.MANUAL, actor=ACTOR, **kwargs)


@pytest.fixture
def vendor_payment(rule_of):
    return rule_of(
        "P2P-01", {"create vendor": ["vendor_create", "vendor_edit"], "approve payment": ["pay_approve"]}
    )


def test_one_identity_holding_both_sides_across_applications_is_a_violation(p2p, vendor_payment):
    vera = p2p["people"]["vera"]
    p2p["grant"](p2p["account"](p2p["erp"], "vera", vera), "vendor_edit")
    p2p["grant"](p2p["account"](p2p["bank"], "v.era", vera), "pay_approve")
    walt = p2p["people"]["walt"]
    p2p["grant"](p2p["account"](p2p["erp"], "walt", walt), "vendor_create")  # one side only

    result = check()

    violation = Violation.objects.get()
    assert (violation.rule, violation.identity, violation.account) == (vendor_payment, vera, None)
    assert violation.status == Violation.Status.OPEN
    assert violation.holder == "Vera (E1)"
    assert (result.opened, result.resolved, result.unchanged) == (1, 0, 0)
    event = EvidenceEvent.objects.get(action="sod.violation.opened")
    payload = json.loads(event.payload)
    assert payload["rule"] == "P2P-01"
    assert payload["conflict"] == {
        "create vendor": ["ERP/VENDOR_EDIT via vera"],
        "approve payment": ["Bank/PAY_APPROVE via v.era"],
    }
    assert event.subject_id == str(violation.pk)
    assert EvidenceEvent.objects.filter(action="sod.check.completed", subject_id=str(result.pk)).exists()


def test_checking_again_changes_nothing(p2p, vendor_payment):
    vera = p2p["people"]["vera"]
    p2p["grant"](p2p["account"](p2p["erp"], "vera", vera), "vendor_create", "vendor_edit")
    p2p["grant"](p2p["account"](p2p["bank"], "vera", vera), "pay_approve")
    check()
    opened_before = EvidenceEvent.objects.filter(action="sod.violation.opened").count()

    again = check()

    assert (again.opened, again.resolved, again.unchanged) == (0, 0, 1)
    assert Violation.objects.count() == 1
    assert EvidenceEvent.objects.filter(action="sod.violation.opened").count() == opened_before


def test_a_violation_is_resolved_by_a_check_once_the_conflict_is_gone_and_others_stay_untouched(
    p2p, vendor_payment
):
    vera, walt = p2p["people"]["vera"], p2p["people"]["walt"]
    vera_bank = p2p["account"](p2p["bank"], "vera", vera)
    for person, key in ((vera, "vera"), (walt, "walt")):
        p2p["grant"](p2p["account"](p2p["erp"], key, person), "vendor_create")
    p2p["grant"](vera_bank, "pay_approve")
    p2p["grant"](p2p["account"](p2p["bank"], "walt", walt), "pay_approve")
    check()
    walts = Violation.objects.get(identity=walt)
    walts_history = walts.history.count()

    p2p["revoke"](vera_bank, "pay_approve")
    result = check(Scope(identity_ids=[vera.pk], account_ids=()))

    veras = Violation.objects.get(identity=vera)
    assert veras.status == Violation.Status.RESOLVED
    assert veras.resolved_by_check == result
    assert veras.resolution == "conflict no longer held"
    walts.refresh_from_db()
    assert walts.status == Violation.Status.OPEN
    assert walts.history.count() == walts_history
    assert (result.opened, result.resolved, result.unchanged) == (0, 1, 0)
    resolved = EvidenceEvent.objects.get(action="sod.violation.resolved")
    assert json.loads(resolved.payload)["previous_status"] == "open"


def test_an_incremental_check_ignores_identities_outside_its_scope(p2p, vendor_payment):
    vera, walt = p2p["people"]["vera"], p2p["people"]["walt"]
    for person, key in ((vera, "vera"), (walt, "walt")):
        p2p["grant"](p2p["account"](p2p["erp"], key, person), "vendor_create")
        p2p["grant"](p2p["account"](p2p["bank"], key, person), "pay_approve")

    result = check(Scope(identity_ids=[walt.pk], account_ids=()))

    assert list(Violation.objects.values_list("identity", flat=True)) == [walt.pk]
    assert result.identities_checked == 1 and not result.full


def test_a_conflict_that_returns_after_resolution_opens_a_new_violation(p2p, vendor_payment):
    vera = p2p["people"]["vera"]
    erp = p2p["account"](p2p["erp"], "vera", vera)
    p2p["grant"](erp, "vendor_create")
    p2p["grant"](p2p["account"](p2p["bank"], "vera", vera), "pay_approve")
    check()
    p2p["revoke"](erp, "vendor_create")
    check()
    p2p["grant"](erp, "vendor_edit")

    check()

    assert list(Violation.objects.order_by("pk").values_list("status", flat=True)) == ["resolved", "open"]


def test_orphan_accounts_are_checked_on_their_own(p2p, rule_of):
    rule = rule_of("P2P-02", {"create": ["vendor_create"], "edit": ["je_post"]})
    ghost = p2p["account"](p2p["erp"], "ghost")
    p2p["grant"](ghost, "vendor_create", "je_post")
    # Two orphan accounts never add up to one holder.
    p2p["grant"](p2p["account"](p2p["erp"], "ghost2"), "vendor_create")
    p2p["grant"](p2p["account"](p2p["erp"], "ghost3"), "je_post")

    check()

    violation = Violation.objects.get()
    assert (violation.rule, violation.identity, violation.account) == (rule, None, ghost)
    assert violation.holder == "orphan account ghost @ ERP"


def test_an_orphan_violation_is_resolved_when_the_pull_deletes_the_account(p2p, rule_of):
    rule_of("P2P-02", {"create": ["vendor_create"], "edit": ["je_post"]})
    ghost = p2p["account"](p2p["erp"], "ghost")
    p2p["grant"](ghost, "vendor_create", "je_post")
    check()
    ghost.delete()

    check(Scope(identity_ids=(), account_ids=()))

    violation = Violation.objects.get()
    assert (violation.status, violation.resolution) == ("resolved", "orphan account removed")
    assert violation.holder == "orphan account ghost @ ERP"


def test_non_human_identities_count(p2p, vendor_payment):
    bot = p2p["people"]["bot"]
    p2p["grant"](p2p["account"](p2p["erp"], "svc", bot), "vendor_create")
    p2p["grant"](p2p["account"](p2p["bank"], "svc", bot), "pay_approve")

    check()

    assert Violation.objects.get().identity == bot


def test_every_side_of_a_three_sided_rule_is_needed(p2p, rule_of):
    rule_of("R2R-03", {"post": ["je_post"], "approve": ["je_approve"], "pay": ["pay_release"]})
    vera, walt = p2p["people"]["vera"], p2p["people"]["walt"]
    p2p["grant"](p2p["account"](p2p["erp"], "vera", vera), "je_post", "je_approve")
    p2p["grant"](p2p["account"](p2p["erp"], "walt", walt), "je_post", "je_approve")
    p2p["grant"](p2p["account"](p2p["bank"], "walt", walt), "pay_release")

    check()

    assert list(Violation.objects.values_list("identity", flat=True)) == [walt.pk]


def test_disabling_a_rule_resolves_its_violations(p2p, vendor_payment):
    vera = p2p["people"]["vera"]
    p2p["grant"](p2p["account"](p2p["erp"], "vera", vera), "vendor_create")
    p2p["grant"](p2p["account"](p2p["bank"], "vera", vera), "pay_approve")
    check()
    vendor_payment.enabled = False
    vendor_payment.save()

    check(Scope.everything(rule_ids=[vendor_payment.pk]))

    assert Violation.objects.get().resolution == "rule disabled"
    assert detect(Scope.everything()) == set()
