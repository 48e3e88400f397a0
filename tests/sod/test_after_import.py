"""The hook into the import pipeline: an applied run re-checks just the identities it changed."""

import csv

import pytest
from django.test import override_settings

from entitlements import services
from evidence.services import Actor
from sod.models import Check, Violation

HEADER = ["application", "account_id", "employee_id", "entitlement_id", "entitlement_name"]


@pytest.fixture
def bank_file(tmp_path):
    def write(name, rows):
        path = tmp_path / name
        with path.open("w", newline="") as handle:
            csv.writer(handle).writerows([HEADER, *rows])
        return path

    return write


def import_bank(path, django_capture_on_commit_callbacks, tmp_path):
    with (
        override_settings(SOXGOV_IMPORT_DIR=tmp_path / "store"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        run = services.run_create(
            kind="access", source=path, source_name=path.name, actor=Actor.system("tests"), user=None
        )
        return services.run_execute(run_id=run.pk)


@pytest.fixture
def world(p2p, rule_of):
    rule_of("P2P-01", {"create vendor": ["vendor_create"], "approve payment": ["pay_approve"]})
    vera, walt = p2p["people"]["vera"], p2p["people"]["walt"]
    p2p["grant"](p2p["account"](p2p["erp"], "vera", vera), "vendor_create")
    p2p["grant"](p2p["account"](p2p["erp"], "walt", walt), "vendor_create")
    return p2p


def test_an_import_that_creates_a_conflict_opens_a_violation_for_just_that_identity(
    world, bank_file, django_capture_on_commit_callbacks, tmp_path
):
    run = import_bank(
        bank_file("bank.csv", [["Bank", "v.era", "E1", "PAY_APPROVE", "Approve payment"]]),
        django_capture_on_commit_callbacks,
        tmp_path,
    )

    assert run.status == "applied"
    violation = Violation.objects.get()
    assert violation.identity == world["people"]["vera"]
    check = Check.objects.get()
    assert (check.trigger, check.connector_run, check.full) == ("import", run, False)
    assert check.identities_checked == 1  # only Vera's grants changed
    assert violation.opened_by_check == check


def test_a_later_import_that_removes_the_grant_resolves_it_and_leaves_others_untouched(
    world, bank_file, django_capture_on_commit_callbacks, tmp_path
):
    both = [
        ["Bank", "v.era", "E1", "PAY_APPROVE", "Approve payment"],
        ["Bank", "walt", "E2", "PAY_APPROVE", "Approve payment"],
    ]
    import_bank(bank_file("bank1.csv", both), django_capture_on_commit_callbacks, tmp_path)
    walts = Violation.objects.get(identity=world["people"]["walt"])
    walts_history = walts.history.count()

    run = import_bank(
        bank_file("bank2.csv", [both[1], ["Bank", "v.era", "E1", "", ""]]),
        django_capture_on_commit_callbacks,
        tmp_path,
    )

    veras = Violation.objects.get(identity=world["people"]["vera"])
    assert veras.status == Violation.Status.RESOLVED
    assert veras.resolution == f"conflict no longer held after import #{run.pk}"
    assert veras.resolved_by_check.connector_run == run
    walts.refresh_from_db()
    assert walts.status == Violation.Status.OPEN and walts.history.count() == walts_history


def test_an_import_that_changes_nothing_checks_nobody(
    world, bank_file, django_capture_on_commit_callbacks, tmp_path
):
    rows = [["Bank", "v.era", "E1", "PAY_APPROVE", "Approve payment"]]
    import_bank(bank_file("bank.csv", rows), django_capture_on_commit_callbacks, tmp_path)
    import_bank(bank_file("again.csv", rows), django_capture_on_commit_callbacks, tmp_path)

    last = Check.objects.order_by("-pk").first()
    assert (last.identities_checked, last.opened, last.resolved) == (0, 0, 0)
    assert Violation.objects.count() == 1


def test_orphan_accounts_of_the_imported_application_are_checked(
    world, bank_file, django_capture_on_commit_callbacks, tmp_path, rule_of
):
    rule_of("TRE-01", {"approve": ["pay_approve"], "release": ["pay_release"]})
    rows = [
        ["Bank", "ghost", "", "PAY_APPROVE", "Approve payment"],
        ["Bank", "ghost", "", "PAY_RELEASE", "Release payment"],
    ]
    import_bank(bank_file("bank.csv", rows), django_capture_on_commit_callbacks, tmp_path)

    violation = Violation.objects.get()
    assert violation.identity is None and violation.account.account_id == "ghost"

    import_bank(bank_file("empty-ghost.csv", [rows[0]]), django_capture_on_commit_callbacks, tmp_path)
    violation.refresh_from_db()
    assert violation.status == Violation.Status.RESOLVED


def test_an_import_that_deletes_an_orphan_account_resolves_its_violation(
    world, bank_file, django_capture_on_commit_callbacks, tmp_path, rule_of
):
    rule_of("TRE-01", {"approve": ["pay_approve"], "release": ["pay_release"]})
    ghost = [
        ["Bank", "ghost", "", "PAY_APPROVE", "Approve payment"],
        ["Bank", "ghost", "", "PAY_RELEASE", "Release payment"],
    ]
    vera = [["Bank", "v.era", "E1", "PAY_APPROVE", "Approve payment"]]
    import_bank(bank_file("bank.csv", ghost + vera), django_capture_on_commit_callbacks, tmp_path)
    assert Violation.objects.filter(account__account_id="ghost", status="open").count() == 1

    run = import_bank(bank_file("no-ghost.csv", vera), django_capture_on_commit_callbacks, tmp_path)

    assert run.status == "applied", run.error
    ghosts = Violation.objects.get(holder="orphan account ghost @ Bank", rule__code="TRE-01")
    assert (ghosts.status, ghosts.resolution) == ("resolved", "orphan account removed")
    assert Violation.objects.get(identity=world["people"]["vera"]).status == "open"  # P2P-01 untouched
