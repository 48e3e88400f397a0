"""Rules: the ruleset file (exit-code contract), edits with evidence, and the re-check a change triggers."""

import json

import pytest
from django.core.management import call_command

from evidence.models import EvidenceEvent
from evidence.services import Actor
from sod.models import Check, Rule, RuleMember, Violation
from sod.rules import RuleSpec, rule_delete, rules_save

HEADER = "rule_id,rule_name,risk,process,side,application,entitlement_id\n"
GOOD = HEADER + (
    "P2P-01,Create vendors and approve payments,critical,Procure to pay,vendors,ERP,VENDOR_CREATE\n"
    "P2P-01,Create vendors and approve payments,critical,Procure to pay,vendors,ERP,VENDOR_EDIT\n"
    "P2P-01,Create vendors and approve payments,critical,Procure to pay,payments,Bank,PAY_APPROVE\n"
    "R2R-01,Post and approve journals,HIGH,Record to report,post,ERP,JE_POST\n"
    "R2R-01,Post and approve journals,HIGH,Record to report,approve,ERP,JE_APPROVE\n"
)


def run(path, capsys):
    try:
        call_command("import_sod_rules", str(path))
    except SystemExit as exit:
        code = exit.code
    else:
        code = 0
    out = capsys.readouterr()
    return code, out.out, out.err


def write(tmp_path, text, name="rules.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_ruleset_file_creates_rules_with_sides_and_evidence(
    p2p, tmp_path, capsys, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        code, out, _ = run(write(tmp_path, GOOD), capsys)

    assert code == 0 and "2 rules read: 2 created or changed" in out
    rule = Rule.objects.get(code="P2P-01")
    assert (rule.risk, rule.process, rule.side_count) == ("critical", "Procure to pay", 2)
    assert {s.name: sorted(e.entitlement_id for e in s.entitlements.all()) for s in rule.sides.all()} == {
        "vendors": ["VENDOR_CREATE", "VENDOR_EDIT"],
        "payments": ["PAY_APPROVE"],
    }
    assert Rule.objects.get(code="R2R-01").risk == "high"  # case-insensitive
    created = EvidenceEvent.objects.filter(action="sod.rule.created")
    assert created.count() == 2
    after = json.loads(created.get(subject_id=str(rule.pk)).payload)["after"]
    assert after["sides"] == {
        "payments": ["Bank/PAY_APPROVE"],
        "vendors": ["ERP/VENDOR_CREATE", "ERP/VENDOR_EDIT"],
    }
    # Each new rule was checked for everyone once the import committed.
    assert set(Check.objects.values_list("rule__code", flat=True)) == {"P2P-01", "R2R-01"}


def test_importing_the_same_file_again_changes_nothing(p2p, tmp_path, capsys):
    path = write(tmp_path, GOOD)
    run(path, capsys)
    events = EvidenceEvent.objects.count()

    code, out, _ = run(path, capsys)

    assert code == 0 and "0 created or changed, 2 unchanged" in out
    assert EvidenceEvent.objects.count() == events


def test_a_changed_rule_is_evidenced_with_before_and_after(p2p, tmp_path, capsys):
    run(write(tmp_path, GOOD), capsys)
    changed = GOOD.replace("Bank,PAY_APPROVE", "Bank,PAY_RELEASE")

    code, _, _ = run(write(tmp_path, changed), capsys)

    assert code == 0
    payload = json.loads(EvidenceEvent.objects.get(action="sod.rule.changed").payload)
    assert payload["before"]["sides"]["payments"] == ["Bank/PAY_APPROVE"]
    assert payload["after"]["sides"]["payments"] == ["Bank/PAY_RELEASE"]


def test_a_bad_ruleset_is_refused_with_every_problem_and_changes_nothing(p2p, tmp_path, capsys):
    bad = HEADER + (
        "P2P-01,Vendors and payments,critical,P2P,vendors,ERP,VENDOR_CREATE\n"
        "P2P-01,Vendors and payments,severe,P2P,payments,Bank,PAY_APPROVE\n"  # row 3: risk
        "P2P-01,Vendors and payments,critical,P2P,payments,Nowhere,X\n"  # row 4: application
        "P2P-01,Vendors and payments,critical,P2P,payments,ERP,NOPE\n"  # row 5: entitlement
        "R2R-01,Journals,high,R2R,post,ERP,JE_POST\n"  # row 6: one side only
        "P2P-02,Dup,high,P2P,a,ERP,VENDOR_CREATE\n"
        "P2P-02,Dup,high,P2P,b,ERP,VENDOR_CREATE\n"  # row 8: same entitlement on two sides
        "P2P-03,,high,P2P,a,ERP,VENDOR_CREATE\n"  # row 9: no name
    )
    events = EvidenceEvent.objects.count()

    code, out, err = run(write(tmp_path, bad), capsys)

    assert code == 1 and out == ""
    assert "rules.csv, row 3, column risk: must be one of critical, high, medium, low (value 'severe')" in err
    assert "rules.csv, row 4, column application: no such application" in err
    assert (
        "rules.csv, row 5, column entitlement_id: application ERP has no entitlement with this id (value 'NOPE')"
        in err
    )
    assert "rules.csv, row 6, column side: rule R2R-01 has 1 side(s); a rule needs at least two" in err
    assert "rules.csv, row 8, column side: ERP/VENDOR_CREATE is already on side 'a' of rule P2P-02" in err
    assert "rules.csv, row 9, column rule_name: is required" in err
    assert not Rule.objects.exists() and EvidenceEvent.objects.count() == events


def test_a_ruleset_without_required_columns_is_refused(p2p, tmp_path, capsys):
    code, _, err = run(write(tmp_path, "rule_id,rule_name,side\nX,Y,Z\n"), capsys)
    assert code == 1
    for column in ("risk", "application", "entitlement_id"):
        assert f"row 1, column {column}: required column is missing" in err


def test_a_rule_change_rechecks_that_rule_for_everyone(p2p, django_capture_on_commit_callbacks):
    vera = p2p["people"]["vera"]
    p2p["grant"](p2p["account"](p2p["erp"], "vera", vera), "je_post", "je_approve")
    spec = RuleSpec(
        code="R2R-01",
        name="Post and approve journals",
        risk="high",
        sides=[("post", [p2p["ents"]["je_post"].pk]), ("approve", [p2p["ents"]["je_approve"].pk])],
    )

    with django_capture_on_commit_callbacks(execute=True):
        (rule,) = rules_save([(spec, None)], actor=Actor.system("tests"))

    assert Violation.objects.get().identity == vera
    spec.enabled = False
    with django_capture_on_commit_callbacks(execute=True):
        rules_save([(spec, Rule.objects.get(pk=rule.pk))], actor=Actor.system("tests"))
    assert Violation.objects.get().status == Violation.Status.RESOLVED


def test_a_rule_with_violations_is_disabled_not_deleted(p2p, rule_of):
    rule = rule_of("X-1", {"a": ["je_post"], "b": ["je_approve"]})
    vera = p2p["people"]["vera"]
    p2p["grant"](p2p["account"](p2p["erp"], "vera", vera), "je_post", "je_approve")
    from sod.checks import run_check
    from sod.engine import Scope

    run_check(Scope.everything(), trigger=Check.Trigger.MANUAL, actor=Actor.system("tests"))
    with pytest.raises(Exception, match="disable it instead"):
        rule_delete(rule, actor=Actor.system("tests"))
    assert Rule.objects.filter(pk=rule.pk).exists()


def test_a_rule_without_violations_can_be_deleted_with_evidence(p2p, rule_of):
    rule = rule_of("X-2", {"a": ["je_post"], "b": ["je_approve"]})
    rule_delete(rule, actor=Actor.system("tests"))
    assert not Rule.objects.exists() and not RuleMember.objects.exists()
    assert json.loads(EvidenceEvent.objects.get(action="sod.rule.deleted").payload)["before"]["code"] == "X-2"


@pytest.mark.parametrize(
    ("sides", "message"),
    [
        ([("only", ["je_post"])], "at least two sides"),
        ([("a", ["je_post"]), ("b", ["je_post"])], "may be on only one"),
        ([("a", ["je_post"]), ("a", ["je_approve"])], "unique"),
    ],
)
def test_invalid_rules_are_refused(p2p, sides, message):
    from django.core.exceptions import ValidationError

    spec = RuleSpec(
        code="BAD", name="Bad", risk="high", sides=[(n, [p2p["ents"][e].pk for e in es]) for n, es in sides]
    )
    with pytest.raises(ValidationError, match=message):
        rules_save([(spec, None)], actor=Actor.system("tests"))
    assert not Rule.objects.exists()


def test_importing_a_ruleset_again_keeps_a_disabled_rule_disabled(p2p, tmp_path, capsys):
    path = write(tmp_path, GOOD)
    run(path, capsys)
    Rule.objects.filter(code="R2R-01").update(enabled=False)

    run(path, capsys)

    assert not Rule.objects.get(code="R2R-01").enabled
