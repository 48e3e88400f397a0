"""Preventive what-if (service and API), the sod_check command, and the SoD API's writes."""

import datetime as dt
import json

import pytest
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from evidence.models import EvidenceEvent
from evidence.services import Actor
from sod.checks import run_check
from sod.engine import Scope
from sod.models import Check, Rule, Violation
from sod.selectors import what_if
from soxgov.roles import Role


@pytest.fixture
def rules(p2p, rule_of):
    return {
        "p2p": rule_of(
            "P2P-01", {"create vendor": ["vendor_create", "vendor_edit"], "approve payment": ["pay_approve"]}
        ),
        "r2r": rule_of("R2R-01", {"post": ["je_post"], "approve": ["je_approve"]}, risk="critical"),
    }


def test_what_if_names_the_rule_and_the_existing_grants_that_collide(p2p, rules):
    vera = p2p["people"]["vera"]
    p2p["grant"](p2p["account"](p2p["erp"], "vera", vera), "vendor_edit", "je_post")

    hits = what_if(vera, [p2p["ents"]["pay_approve"]])

    assert [hit.rule.code for hit in hits] == ["P2P-01"]
    assert hits[0].existing == {"create vendor": ["ERP/VENDOR_EDIT via vera"], "approve payment": []}
    assert hits[0].proposed == {"create vendor": [], "approve payment": ["Bank/PAY_APPROVE"]}
    assert not hits[0].already_violated


def test_what_if_answers_no_conflict_and_flags_conflicts_that_already_exist(p2p, rules):
    walt = p2p["people"]["walt"]
    assert what_if(walt, [p2p["ents"]["pay_approve"]]) == []
    p2p["grant"](p2p["account"](p2p["erp"], "walt", walt), "je_post", "je_approve")
    (hit,) = what_if(walt, [p2p["ents"]["je_post"]])
    assert hit.already_violated


def test_what_if_changes_nothing(p2p, rules):
    vera = p2p["people"]["vera"]
    p2p["grant"](p2p["account"](p2p["erp"], "vera", vera), "je_post")
    before = (Violation.objects.count(), EvidenceEvent.objects.count(), Check.objects.count())
    what_if(vera, [p2p["ents"]["je_approve"]])
    assert (Violation.objects.count(), EvidenceEvent.objects.count(), Check.objects.count()) == before


def test_sod_check_command_default_all_and_counts(p2p, rules, capsys):
    vera = p2p["people"]["vera"]
    p2p["grant"](p2p["account"](p2p["erp"], "vera", vera), "je_post", "je_approve")

    call_command("sod_check")  # first ever check: everything whose access has history
    first = capsys.readouterr().out
    assert "1 opened, 0 resolved" in first and "live violations: 1 open" in first

    call_command("sod_check", "--all")
    out = capsys.readouterr().out
    assert "all identities and orphan accounts checked; 0 opened, 0 resolved, 1 unchanged" in out


def test_sod_check_default_rechecks_only_what_changed_since_the_last_check(p2p, rules, capsys):
    vera, walt = p2p["people"]["vera"], p2p["people"]["walt"]
    p2p["grant"](p2p["account"](p2p["erp"], "vera", vera), "je_post", "je_approve")
    call_command("sod_check", "--all")
    p2p["grant"](p2p["account"](p2p["erp"], "walt", walt), "je_post")
    capsys.readouterr()

    call_command("sod_check")

    check = Check.objects.order_by("-pk").first()
    assert check.identities_checked == 1 and not check.full


def test_sod_check_refuses_an_unknown_rule(p2p, rules):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no rule with id NOPE"):
        call_command("sod_check", "--rule", "NOPE")


@pytest.fixture
def api(make_person):
    def as_user(name, *roles):
        client = APIClient()
        client.force_authenticate(make_person(name, *roles))
        return client

    return as_user


def test_an_admin_creates_and_changes_a_rule_through_the_api_with_evidence(
    p2p, api, django_capture_on_commit_callbacks
):
    alice = api("alice", Role.ADMIN)
    body = {
        "code": "TRE-01",
        "name": "Approve and release payments",
        "risk": "critical",
        "sides": [
            {"name": "approve", "entitlements": [p2p["ents"]["pay_approve"].pk]},
            {"name": "release", "entitlements": [p2p["ents"]["pay_release"].pk]},
        ],
    }
    with django_capture_on_commit_callbacks(execute=True):
        created = alice.post("/api/sod/rules/", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["side_count"] == 2
    assert Check.objects.filter(rule__code="TRE-01", trigger="rule_change").exists()

    changed = alice.patch(f"/api/sod/rules/{created.json()['id']}/", {"risk": "high"}, format="json")
    assert changed.status_code == 200 and changed.json()["risk"] == "high"
    assert changed.json()["sides"] == body["sides"]  # a PATCH keeps what it does not name
    event = EvidenceEvent.objects.get(action="sod.rule.changed")
    assert json.loads(event.payload)["before"]["risk"] == "critical"


def test_the_api_refuses_a_one_sided_rule_naming_the_problem(p2p, api):
    alice = api("alice", Role.ADMIN)
    body = {
        "code": "X",
        "name": "X",
        "risk": "high",
        "sides": [{"name": "a", "entitlements": [p2p["ents"]["je_post"].pk]}],
    }
    response = alice.post("/api/sod/rules/", body, format="json")
    assert response.status_code == 400
    assert "at least two sides" in json.dumps(response.json())
    assert not Rule.objects.exists()


def test_the_api_answers_a_violation_and_enforces_four_eyes(p2p, rules, api):
    vera = p2p["people"]["vera"]
    p2p["grant"](p2p["account"](p2p["erp"], "vera", vera), "je_post", "je_approve")
    run_check(Scope.everything(), trigger=Check.Trigger.MANUAL, actor=Actor.system("tests"))
    violation = Violation.objects.get()
    oscar, olga = api("oscar", Role.CONTROL_OWNER), api("olga", Role.CONTROL_OWNER)
    until = (timezone.localdate() + dt.timedelta(days=90)).isoformat()

    detail = oscar.get(f"/api/sod/violations/{violation.pk}/").json()
    assert detail["conflict"]["post"][0]["entitlement_id"] == "JE_POST"

    past = oscar.post(
        f"/api/sod/violations/{violation.pk}/request-acceptance/",
        {"justification": "x", "expires_on": "2000-01-01"},
        format="json",
    )
    assert past.status_code == 400 and "expires_on" in past.json()
    requested = oscar.post(
        f"/api/sod/violations/{violation.pk}/request-acceptance/",
        {"justification": "Small team", "expires_on": until},
        format="json",
    )
    assert requested.status_code == 201
    own = oscar.post(f"/api/sod/acceptances/{requested.json()['id']}/approve/", {}, format="json")
    # Four eyes is who may act (403), as for an exception's acceptance, a held run or a threshold change.
    assert own.status_code == 403 and "someone else" in own.json()["detail"]
    approved = olga.post(
        f"/api/sod/acceptances/{requested.json()['id']}/approve/", {"note": "ok"}, format="json"
    )
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert Violation.objects.get().status == Violation.Status.ACCEPTED


def test_the_what_if_api(p2p, rules, api):
    vera = p2p["people"]["vera"]
    p2p["grant"](p2p["account"](p2p["erp"], "vera", vera), "je_post")
    auditor = api("audrey", Role.AUDITOR)

    response = auditor.post(
        "/api/sod/what-if/",
        {"identity": vera.pk, "entitlements": [p2p["ents"]["je_approve"].pk]},
        format="json",
    )

    assert response.status_code == 200
    data = response.json()
    assert data["conflict"] is True
    assert data["rules_hit"][0]["rule"]["code"] == "R2R-01"
    assert data["rules_hit"][0]["existing_grants"]["post"] == ["ERP/JE_POST via vera"]
    missing = auditor.post(
        "/api/sod/what-if/", {"identity": vera.pk, "entitlements": [999999]}, format="json"
    )
    assert missing.status_code == 400 and "999999" in json.dumps(missing.json())
