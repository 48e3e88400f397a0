"""The automation contract of the import commands: exit 0 applied (with counts), 1 refused (every problem on
stderr, nothing changed), 3 held (why, and how to approve); approve_run / reject_run by a second admin only."""

from __future__ import annotations

import re

import pytest
from django.core.management.base import CommandError

from entitlements.models import Account, ConnectorRun, Grant, Identity
from evidence.models import EvidenceEvent
from soxgov.roles import Role
from tests.imports.conftest import ACCESS_HEADER, IDENTITY_HEADER, snapshot


def last_run() -> ConnectorRun:
    return ConnectorRun.objects.order_by("-pk").first()


@pytest.fixture
def bert(make_user):
    """A second admin."""
    return make_user("bert", Role.ADMIN)


@pytest.fixture
def many_identities(company):
    """30 more active people, so an identities file naming only the company's four would terminate 30 of 34."""
    Identity.objects.bulk_create(
        Identity(employee_id=f"X{n:03}", display_name=f"Extra {n}") for n in range(30)
    )


# --- import_access ----------------------------------------------------------------------------------------


def test_import_access_exits_0_and_prints_added_removed_changed_unchanged(company, write_csv, cmd):
    path = write_csv(
        "erp.csv",
        [
            ACCESS_HEADER,
            ["ERP", "bob", "", "E2", "", "disabled", "", "GL_POST", "Post journal", "role", "false"],
            ["ERP", "svc-ledger", "", "SVC1", "", "enabled", "", "GL_POST", "Post journal", "role", "false"],
            [
                "ERP",
                "svc-ledger",
                "",
                "SVC1",
                "",
                "enabled",
                "",
                "AP_APPROVE",
                "Approve payments",
                "role",
                "false",
            ],
            ["ERP", "dave", "", "E3", "", "enabled", "", "", "", "", ""],
        ],
    )

    outcome = cmd("import_access", str(path))

    assert outcome.code == 0, outcome
    run = last_run()
    assert f"run {run.pk} applied (4 rows)" in outcome.out
    assert "  accounts: 1 added, 1 removed, 1 changed, 1 unchanged" in outcome.out
    assert "  entitlements: 1 added, 0 removed, 0 changed, 1 unchanged" in outcome.out
    assert "  grants: 1 added, 1 removed, 0 changed, 2 unchanged" in outcome.out
    assert outcome.err == ""
    assert run.status == ConnectorRun.Status.APPLIED
    assert not Account.objects.filter(account_id="carol").exists()
    assert Account.objects.get(account_id="bob").status == "disabled"


def test_import_access_with_application_option_for_a_file_without_application_column(company, write_csv, cmd):
    path = write_csv(
        "crm.csv",
        [
            ["account_id", "employee_id", "entitlement_id"],
            ["ghost", "", "CRM_VIEW"],
            ["bob.crm", "E2", "CRM_VIEW"],
        ],
    )

    outcome = cmd("import_access", str(path), application="crm")

    assert outcome.code == 0, outcome
    assert "  grants: 1 added, 0 removed, 0 changed, 1 unchanged" in outcome.out
    assert Account.objects.get(account_id="bob.crm").identity == company["identities"]["bob"]
    # ERP, not named by the file, is untouched.
    assert Grant.objects.filter(account__application__name="ERP").count() == 3


def test_import_access_refused_exits_1_lists_every_problem_and_changes_nothing(company, write_csv, cmd):
    path = write_csv(
        "erp.csv",
        [
            ACCESS_HEADER,
            ["ERP", "bob", "", "E2", "", "enabled", "", "GL_POST", "Post journal", "role", "false"],
            ["ERP", "newbie", "", "E3", "", "locked", "", "GL_POST", "Post journal", "role", "false"],
            [
                "ERP",
                "svc-ledger",
                "",
                "SVC1",
                "",
                "enabled",
                "last tuesday",
                "GL_POST",
                "Post journal",
                "role",
                "maybe",
            ],
            ["Payroll", "pat", "", "", "", "enabled", "", "PAY", "Run payroll", "role", "false"],
            ["ERP", "eve", "", "E9", "", "enabled", "", "X", "X", "superuser", "false"],
        ],
    )
    before = snapshot()

    outcome = cmd("import_access", str(path))

    assert outcome.code == 1, outcome
    run = last_run()
    lines = outcome.err.splitlines()
    assert lines[0] == f"run {run.pk} refused, nothing changed: 5 problem(s)"
    assert set(lines[1:]) == {
        "erp.csv, row 3, column account_status: must be one of disabled, enabled (value 'locked')",
        "erp.csv, row 4, column privileged: must be true/false, yes/no or 1/0 (value 'maybe')",
        "erp.csv, row 4, column last_used_at: is not a date-time (use ISO 8601: YYYY-MM-DDTHH:MM:SS[+00:00]) "
        "(value 'last tuesday')",
        "erp.csv, row 5, column application: no application has this name (value 'Payroll')",
        "erp.csv, row 6, column entitlement_type: must be one of group, permission, role (value 'superuser')",
    }
    assert outcome.out == ""
    assert snapshot() == before
    assert run.status == ConnectorRun.Status.FAILED and run.problem_count == 5


def test_import_access_refused_lists_at_most_200_problems_then_how_many_more(company, write_csv, cmd):
    rows = [["account_id", "account_status"]] + [[f"a{n}", "frozen"] for n in range(500)]
    path = write_csv("erp.csv", rows)

    outcome = cmd("import_access", str(path), application="ERP")

    assert outcome.code == 1
    lines = outcome.err.splitlines()
    assert lines[0].endswith("refused, nothing changed: 500 problem(s)")
    assert len([line for line in lines if "column account_status" in line]) == 200
    assert lines[-1] == "... and 300 more"


def test_import_access_held_exits_3_saying_why_and_how_to_approve(company, write_csv, cmd):
    path = write_csv("erp.csv", [ACCESS_HEADER])
    before = snapshot()

    outcome = cmd("import_access", str(path), application="ERP")

    assert outcome.code == 3, outcome
    run = last_run()
    assert (
        f"run {run.pk} held for approval, nothing applied: ERP: the file has no rows for it, but it has 3 accounts and 3 grants"
        in outcome.err
    )
    assert f"approve with: python manage.py approve_run {run.pk} --user <another admin>" in outcome.err
    assert run.status == ConnectorRun.Status.HELD
    after = snapshot()
    assert after.pop("evidence") == before.pop("evidence") + 1  # import.run.held, nothing else
    assert after == before


def test_import_access_missing_file_and_unknown_application_are_command_errors(
    company, tmp_path, write_csv, cmd
):
    with pytest.raises(CommandError, match="no such file"):
        cmd("import_access", str(tmp_path / "absent.csv"), application="ERP")
    path = write_csv("x.csv", [["account_id"], ["a"]])
    with pytest.raises(CommandError, match="no application named 'Nope'"):
        cmd("import_access", str(path), application="Nope")
    assert not ConnectorRun.objects.exists()


# --- import_identities ------------------------------------------------------------------------------------


def test_import_identities_exits_0_and_prints_counts(company, write_csv, cmd):
    path = write_csv(
        "hr.csv",
        [
            IDENTITY_HEADER,
            ["E1", "rita@example.com", "Rita Reviewer", "", "", "", "active", "", "human", ""],
            ["E2", "bob@example.com", "Bob Builder", "", "Lead builder", "E1", "active", "", "human", ""],
            ["SVC1", "", "ledger-sync", "", "", "", "active", "", "service", "E1"],
            ["E4", "dan@example.com", "Dan New", "Finance", "", "E1", "active", "", "human", ""],
        ],
    )

    outcome = cmd("import_identities", str(path))

    assert outcome.code == 0, outcome
    run = last_run()
    assert f"run {run.pk} applied (4 rows)" in outcome.out
    assert "  identities: 1 added, 0 removed, 1 terminated absent, 1 changed, 2 unchanged" in outcome.out
    dan = Identity.objects.get(employee_id="E4")
    assert (dan.department, dan.title, dan.manager) == ("Finance", "", company["identities"]["rita"])
    assert Identity.objects.get(employee_id="E3").status == Identity.Status.TERMINATED


def test_import_identities_refused_exits_1_lists_every_problem_and_changes_nothing(company, write_csv, cmd):
    path = write_csv(
        "hr.csv",
        [
            IDENTITY_HEADER,
            ["E1", "rita@example.com", "Rita Reviewer", "", "", "", "active", "", "human", ""],
            ["E2", "bob@example.com", "Bob Builder", "", "", "E1", "retired", "", "human", ""],
            ["E3", "carol@example.com", "Carol Other", "", "", "", "terminated", "2024-02-30", "human", ""],
            ["SVC1", "", "ledger-sync", "", "", "", "active", "", "robot", "E1"],
            ["E4", "dan@example.com", "Dan New", "Finance", "", "E1", "active", "", "human", ""],
        ],
    )
    before = snapshot()

    outcome = cmd("import_identities", str(path))

    assert outcome.code == 1, outcome
    run = last_run()
    lines = outcome.err.splitlines()
    assert lines[0] == f"run {run.pk} refused, nothing changed: 3 problem(s)"
    assert set(lines[1:]) == {
        "hr.csv, row 3, column status: must be one of active, leave, terminated (value 'retired')",
        "hr.csv, row 4, column termination_date: is not a date (use ISO 8601: YYYY-MM-DD) (value '2024-02-30')",
        "hr.csv, row 5, column kind: must be one of api_key, bot, human, service, system (value 'robot')",
    }
    assert snapshot() == before
    assert not Identity.objects.filter(employee_id="E4").exists()


def test_import_identities_held_exits_3_when_too_many_would_be_terminated(
    company, many_identities, write_csv, identities_rows, cmd
):
    path = write_csv("hr.csv", identities_rows)
    before = snapshot()

    outcome = cmd("import_identities", str(path))

    assert outcome.code == 3, outcome
    assert "held for approval, nothing applied: would terminate 30 of 34 active identities" in outcome.err
    assert Identity.objects.filter(status="terminated").count() == 0
    after = snapshot()
    assert after.pop("evidence") == before.pop("evidence") + 1
    assert after == before


def test_import_over_the_size_limit_exits_1_before_any_run_is_queued(company, write_csv, cmd, settings):
    settings.SOXGOV_IMPORT_MAX_BYTES = 100
    path = write_csv("hr.csv", [IDENTITY_HEADER] + [["E1", "rita@example.com", "Rita Reviewer"]] * 5)
    before = snapshot()

    outcome = cmd("import_identities", str(path))

    assert outcome.code == 1
    assert outcome.err.strip() == "hr.csv: file is larger than the limit of 100 bytes"
    assert snapshot() == before
    assert not ConnectorRun.objects.exists()


# --- approve_run / reject_run -----------------------------------------------------------------------------


@pytest.fixture
def held_run(personas, write_csv, cmd):
    """An ERP pull started by alice (an admin) that would remove all three ERP grants: held."""
    path = write_csv("erp.csv", [ACCESS_HEADER])
    outcome = cmd("import_access", str(path), application="ERP", user="alice")
    assert outcome.code == 3, outcome
    run = last_run()
    assert run.started_by == personas["alice"]
    return run


def test_approve_run_by_a_second_admin_applies_the_held_run(held_run, bert, cmd):
    outcome = cmd("approve_run", str(held_run.pk), user="bert", reason="ERP decommissioned")

    assert outcome.code == 0, outcome
    assert f"run {held_run.pk} applied" in outcome.out
    assert "  grants: 0 added, 3 removed, 0 changed, 0 unchanged" in outcome.out
    held_run.refresh_from_db()
    assert held_run.status == ConnectorRun.Status.APPLIED
    assert (held_run.decided_by.username, held_run.decision_reason) == ("bert", "ERP decommissioned")
    assert not Grant.objects.filter(account__application__name="ERP").exists()


def test_approve_run_by_the_admin_who_started_it_is_refused(held_run, cmd):
    before = snapshot()
    with pytest.raises(CommandError, match="the admin who started a run cannot also approve or reject it"):
        cmd("approve_run", str(held_run.pk), user="alice")
    with pytest.raises(CommandError, match="the admin who started a run cannot also approve or reject it"):
        cmd("reject_run", str(held_run.pk), user="alice")
    held_run.refresh_from_db()
    assert held_run.status == ConnectorRun.Status.HELD
    assert snapshot() == before


@pytest.mark.parametrize("username", ["rita", "oscar", "audrey", "mallory"])
def test_approve_and_reject_run_by_a_non_admin_are_refused(held_run, cmd, username):
    before = snapshot()
    for command_name in ("approve_run", "reject_run"):
        with pytest.raises(CommandError, match="only an admin may approve or reject a held run"):
            cmd(command_name, str(held_run.pk), user=username)
    held_run.refresh_from_db()
    assert held_run.status == ConnectorRun.Status.HELD
    assert snapshot() == before


def test_reject_run_marks_it_rejected_and_applies_nothing(held_run, bert, cmd):
    before = snapshot()

    outcome = cmd("reject_run", str(held_run.pk), user="bert", reason="export was truncated")

    assert outcome.code == 0
    assert outcome.out.strip() == f"run {held_run.pk} rejected by bert"
    held_run.refresh_from_db()
    assert held_run.status == ConnectorRun.Status.REJECTED
    assert held_run.decided_by.username == "bert"
    after = snapshot()
    assert after.pop("evidence") == before.pop("evidence") + 1  # import.run.rejected
    assert after == before
    assert EvidenceEvent.objects.order_by("-sequence").first().action == "import.run.rejected"
    # A rejected run can be neither approved nor rejected again.
    with pytest.raises(
        CommandError, match=re.escape(f"run {held_run.pk} is rejected, not held for approval")
    ):
        cmd("approve_run", str(held_run.pk), user="bert")


def test_approve_run_of_an_unknown_run_or_user_is_a_command_error(held_run, bert, cmd):
    with pytest.raises(CommandError, match="no run 999999"):
        cmd("approve_run", "999999", user="bert")
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        cmd("approve_run", str(held_run.pk), user="nobody")


def test_approve_run_of_a_system_started_run_by_any_admin(personas, write_csv, cmd):
    path = write_csv("erp.csv", [ACCESS_HEADER])
    assert cmd("import_access", str(path), application="ERP").code == 3

    outcome = cmd("approve_run", str(last_run().pk), user="alice")

    assert outcome.code == 0, outcome
    assert last_run().status == ConnectorRun.Status.APPLIED
