"""Bad input is refused with a clear problem (file, row, column, value, reason) and changes nothing; input that is
merely unusual (BOM, CRLF, quoting, header spelling, unknown columns, exact duplicates) is accepted.

Each refused file also carries a valid change (a new account or person), so "nothing changed" means something.
"""

from __future__ import annotations

import pytest
from django.test import override_settings

from entitlements.connectors.problems import ImportRefused
from entitlements.models import Account, ConnectorRun, Entitlement, Grant, Identity
from tests.imports.conftest import (
    ACCESS_HEADER,
    COMPANY_ERP_ACCESS,
    COMPANY_IDENTITIES,
    IDENTITY_HEADER,
    csv_text,
    run_file,
    snapshot,
)

NEW_ACCOUNT = ("ERP", "newbie", "", "E1", "", "enabled", "", "GL_POST", "Post journal", "role", "false")
NEW_PERSON = ("E4", "dan@example.com", "Dan New", "Finance", "", "E1", "active", "", "human", "")
ACCESS_BAD_ROW = 6  # header, three company accounts, the valid change (row 5), then the bad rows
IDENTITY_BAD_ROW = 7  # header, four company identities, the valid change (row 6), then the bad rows


def access_rows(*bad_rows, header=ACCESS_HEADER):
    return [header, *COMPANY_ERP_ACCESS, NEW_ACCOUNT, *bad_rows]


def identity_rows(*bad_rows, header=IDENTITY_HEADER):
    return [header, *COMPANY_IDENTITIES, NEW_PERSON, *bad_rows]


def access(**cells):
    row = dict(zip(ACCESS_HEADER, NEW_ACCOUNT, strict=True), account_id="other")
    row.update(cells)
    return [row[name] for name in ACCESS_HEADER]


def person(**cells):
    row = dict(zip(IDENTITY_HEADER, NEW_PERSON, strict=True), employee_id="E5", email="", display_name="Eve")
    row.update(cells)
    return [row[name] for name in IDENTITY_HEADER]


@pytest.fixture
def refuse(company):
    """refuse(path, kind) -> problems (as dicts); asserts the run failed and nothing changed."""

    def check(path, kind="access", application=None):
        before = snapshot()
        run = run_file(path, kind=kind, application=application)
        assert run.status == ConnectorRun.Status.FAILED, (run.status, run.counts, run.error)
        assert run.problems and run.problem_count >= len(run.problems)
        for problem in run.problems:
            assert set(problem) == {"file", "row", "column", "value", "reason"}
            assert problem["file"] == path.name
        assert snapshot() == before
        assert not Account.objects.filter(account_id="newbie").exists()
        assert not Identity.objects.filter(employee_id="E4").exists()
        return run.problems

    return check


@pytest.fixture
def accept(company):
    def check(path, kind="access", application=None):
        run = run_file(path, kind=kind, application=application)
        assert run.status == ConnectorRun.Status.APPLIED, (run.problems, run.error, run.held_reason)
        return run

    return check


def one(problems, **expected):
    """The single problem, checked field by field (reason: a substring)."""
    assert len(problems) == 1, problems
    problem = problems[0]
    reason = expected.pop("reason")
    assert {key: problem[key] for key in expected} == expected, problem
    assert reason in problem["reason"], problem
    return problem


# --- Missing columns ------------------------------------------------------------------------------------


def test_access_file_without_account_id_column_is_refused(write_csv, refuse):
    header = [c for c in ACCESS_HEADER if c != "account_id"]
    path = write_csv("erp.csv", [header, ["ERP", "", "E2", "", "enabled", "", "GL_POST", "x", "role", "no"]])
    one(refuse(path), row=1, column="account_id", value=None, reason="required column is missing")


def test_access_file_without_application_column_or_option_is_refused(write_csv, refuse):
    path = write_csv("erp.csv", [["account_id", "entitlement_id"], ["newbie", "GL_POST"]])
    one(
        refuse(path), row=1, column="application", reason="required column is missing (or give --application)"
    )


def test_identities_file_without_employee_id_or_email_column_is_refused(write_csv, refuse):
    path = write_csv("hr.csv", [["display_name", "status"], ["Dan New", "active"]])
    one(refuse(path, "identities"), row=1, column="employee_id", reason="required column is missing")


def test_identities_row_without_employee_id_or_email_is_refused(write_csv, refuse):
    path = write_csv("hr.csv", identity_rows(person(employee_id="", email="")))
    one(
        refuse(path, "identities"),
        row=IDENTITY_BAD_ROW,
        column="employee_id",
        reason="is required unless email",
    )


def test_access_row_with_empty_account_id_is_refused(write_csv, refuse):
    path = write_csv("erp.csv", access_rows(access(account_id="")))
    one(refuse(path), row=ACCESS_BAD_ROW, column="account_id", value=None, reason="is required")


def test_empty_file_is_refused(write_csv, refuse):
    one(refuse(write_csv("erp.csv", b"")), row=None, reason="the file is empty: a header line is required")


# --- Unknown enum values ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "column", "value", "reason"),
    [
        ("identities", "status", "retired", "must be one of active, leave, terminated"),
        ("identities", "kind", "robot", "must be one of api_key, bot, human, service, system"),
        ("access", "account_status", "locked", "must be one of disabled, enabled"),
        ("access", "entitlement_type", "superuser", "must be one of group, permission, role"),
        ("access", "privileged", "maybe", "must be true/false, yes/no or 1/0"),
    ],
)
def test_unknown_enum_value_is_refused_naming_row_column_and_value(
    write_csv, refuse, kind, column, value, reason
):
    if kind == "identities":
        bad = person(**{column: value, "owner_employee_id": ""})
        path = write_csv("hr.csv", identity_rows(bad))
    else:
        path = write_csv("erp.csv", access_rows(access(**{column: value})))
    row = IDENTITY_BAD_ROW if kind == "identities" else ACCESS_BAD_ROW
    one(refuse(path, kind), row=row, column=column, value=value, reason=reason)


def test_enum_values_are_case_insensitive(write_csv, accept):
    rows = access_rows(
        access(
            account_status="DISABLED",
            entitlement_type="Group",
            entitlement_id="G1",
            entitlement_name="G",
            privileged="YES",
        )
    )
    accept(write_csv("erp.csv", rows))
    other = Account.objects.get(account_id="other")
    assert (other.status, other.privileged) == ("disabled", True)
    assert Entitlement.objects.get(entitlement_id="G1").kind == "group"


# --- Dates ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["2024-02-30", "31/12/2024", "2024-1-5", "2024-13-01", "soon"])
def test_invalid_termination_date_is_refused(write_csv, refuse, value):
    path = write_csv("hr.csv", identity_rows(person(status="terminated", termination_date=value)))
    one(
        refuse(path, "identities"),
        row=IDENTITY_BAD_ROW,
        column="termination_date",
        value=value,
        reason="is not a date (use ISO 8601: YYYY-MM-DD)",
    )


@pytest.mark.parametrize("value", ["yesterday", "2024-13-01T00:00:00", "2024-02-30", "12/01/2024 10:00"])
def test_invalid_last_used_at_is_refused(write_csv, refuse, value):
    path = write_csv("erp.csv", access_rows(access(last_used_at=value)))
    one(refuse(path), row=ACCESS_BAD_ROW, column="last_used_at", value=value, reason="is not a date-time")


@pytest.mark.parametrize("value", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"])
def test_last_used_at_outside_the_representable_range_is_refused_not_a_crash(write_csv, refuse, value):
    path = write_csv("erp.csv", access_rows(access(last_used_at=value)))
    one(refuse(path), row=ACCESS_BAD_ROW, column="last_used_at", value=value, reason="out of range")


def test_valid_dates_are_accepted_in_iso_8601(write_csv, accept):
    rows = access_rows(
        access(last_used_at="2024-05-06T07:08:09+02:00"),
        access(account_id="other2", last_used_at="2024-05-06"),
    )
    accept(write_csv("erp.csv", rows))
    assert Account.objects.get(account_id="other").last_used_at.isoformat() == "2024-05-06T05:08:09+00:00"
    assert Account.objects.get(account_id="other2").last_used_at.isoformat() == "2024-05-06T00:00:00+00:00"


# --- Encoding ---------------------------------------------------------------------------------------------


def test_undecodable_bytes_are_refused_naming_row_and_column(write_csv, refuse):
    text = csv_text(access_rows(access(account_name="CAFE")))
    path = write_csv("erp.csv", text.encode().replace(b"CAFE", b"caf\xe9"))
    one(
        refuse(path),
        row=ACCESS_BAD_ROW,
        column="account_name",
        value="63 61 66 e9",
        reason="the bytes are not valid UTF-8",
    )


def test_undecodable_bytes_in_several_rows_are_all_listed(write_csv, refuse):
    text = csv_text(
        access_rows(access(account_name="BAD1"), access(account_id="x2", entitlement_name="BAD2"))
    )
    path = write_csv("erp.csv", text.encode().replace(b"BAD1", b"\xff").replace(b"BAD2", b"\xc3\x28"))
    problems = refuse(path)
    assert [(p["row"], p["column"]) for p in problems] == [
        (ACCESS_BAD_ROW, "account_name"),
        (ACCESS_BAD_ROW + 1, "entitlement_name"),
    ]


def test_undecodable_header_is_refused(write_csv, refuse):
    path = write_csv("erp.csv", b"account_id,caf\xe9\nnewbie,x\n")
    one(refuse(path, application=None), row=1, reason="the header is not valid UTF-8")


def test_latin1_file_is_refused_not_misread(write_csv, refuse):
    path = write_csv("hr.csv", csv_text(identity_rows(person(display_name="Zoë Müller"))).encode("latin-1"))
    problem = one(
        refuse(path, "identities"), row=IDENTITY_BAD_ROW, column="display_name", reason="not valid UTF-8"
    )
    assert "eb" in problem["value"]


def test_nul_character_in_a_cell_is_refused_naming_row_and_column(write_csv, refuse):
    path = write_csv("erp.csv", csv_text(access_rows(access(account_name="a\x00b"))))
    one(refuse(path), row=ACCESS_BAD_ROW, column="account_name", reason="NUL")


def test_nul_character_in_an_enum_value_is_refused_not_a_crash(write_csv, refuse):
    path = write_csv("erp.csv", csv_text(access_rows(access(account_status="enab\x00led"))))
    problems = refuse(path)
    assert [(p["row"], p["column"]) for p in problems] == [(ACCESS_BAD_ROW, "account_status")]


@pytest.mark.parametrize("kind", ["access", "identities"])
def test_malformed_csv_quoting_is_refused_naming_the_row(write_csv, refuse, kind):
    """Refused while the stage is streaming (on PostgreSQL: from inside COPY)."""
    rows = access_rows() if kind == "access" else identity_rows()
    text = csv_text(rows) + 'x"y,"unterminated\n'
    problem = one(refuse(write_csv("bad.csv", text), kind), row=len(rows) + 1, reason="not valid CSV")
    assert problem["column"] is None


# --- Cross-row and cross-table checks ---------------------------------------------------------------------


def test_one_account_claimed_by_two_people_is_refused(write_csv, refuse):
    rows = access_rows(
        access(account_id="shared", employee_id="E2", entitlement_id="GL_POST"),
        access(account_id="shared", employee_id="E3", entitlement_id="AP", entitlement_name="AP"),
    )
    one(
        refuse(write_csv("erp.csv", rows)),
        row=ACCESS_BAD_ROW + 1,
        column="employee_id",
        value="E2 / E3",
        reason="account 'shared' is claimed by two different people (also on row 6)",
    )


def test_one_account_claimed_by_two_emails_is_refused(write_csv, refuse):
    rows = access_rows(
        access(account_id="shared", employee_id="", email="bob@example.com"),
        access(account_id="shared", employee_id="", email="carol@example.com", entitlement_id=""),
    )
    one(refuse(write_csv("erp.csv", rows)), row=ACCESS_BAD_ROW + 1, reason="claimed by two different people")


def test_one_account_claimed_by_one_persons_employee_id_and_another_persons_email_is_refused(
    write_csv, refuse
):
    rows = access_rows(
        access(account_id="shared", employee_id="E2", email=""),
        access(account_id="shared", employee_id="", email="carol@example.com", entitlement_id=""),
    )
    one(refuse(write_csv("erp.csv", rows)), row=ACCESS_BAD_ROW + 1, reason="claimed by two different people")


def test_same_account_in_two_applications_is_two_accounts_not_a_conflict(write_csv, accept, company):
    rows = access_rows(
        access(
            account_id="bob",
            application="CRM",
            employee_id="E3",
            entitlement_id="CRM_VIEW",
            entitlement_name="View customers",
        ),
        access(
            account_id="ghost",
            application="CRM",
            employee_id="",
            entitlement_id="CRM_VIEW",
            entitlement_name="View customers",
        ),
    )
    accept(write_csv("both.csv", rows))
    assert Account.objects.get(application__name="CRM", account_id="bob").identity.employee_id == "E3"
    assert Account.objects.get(application__name="ERP", account_id="bob").identity.employee_id == "E2"


def test_unknown_application_is_refused(write_csv, refuse):
    path = write_csv("erp.csv", access_rows(access(application="Payroll")))
    one(
        refuse(path),
        row=ACCESS_BAD_ROW,
        column="application",
        value="Payroll",
        reason="no application has this name",
    )


def test_entitlement_with_two_different_names_is_refused(write_csv, refuse):
    path = write_csv("erp.csv", access_rows(access(entitlement_name="Post journals (renamed)")))
    one(
        refuse(path),
        row=ACCESS_BAD_ROW,
        column="entitlement_name",
        value="GL_POST",
        reason="has a different name or type than on row 2",
    )


def test_non_human_identity_without_owner_is_refused(write_csv, refuse):
    path = write_csv("hr.csv", identity_rows(person(kind="bot", owner_employee_id="")))
    one(
        refuse(path, "identities"),
        row=IDENTITY_BAD_ROW,
        column="owner_employee_id",
        reason="is required for a non-human identity",
    )


def test_human_with_an_owner_is_refused(write_csv, refuse):
    path = write_csv("hr.csv", identity_rows(person(kind="human", owner_employee_id="E1")))
    one(
        refuse(path, "identities"),
        row=IDENTITY_BAD_ROW,
        column="owner_employee_id",
        value="E1",
        reason="only non-human identities have an owner",
    )


def test_owner_not_a_person_in_the_file_is_refused(write_csv, refuse):
    path = write_csv("hr.csv", identity_rows(person(kind="api_key", owner_employee_id="SVC1")))
    one(
        refuse(path, "identities"),
        row=IDENTITY_BAD_ROW,
        column="owner_employee_id",
        value="SVC1",
        reason="no person in this file has this employee id",
    )


def test_manager_employee_id_not_in_the_file_is_refused(write_csv, refuse):
    path = write_csv("hr.csv", identity_rows(person(manager_employee_id="E404")))
    one(
        refuse(path, "identities"),
        row=IDENTITY_BAD_ROW,
        column="manager_employee_id",
        value="E404",
        reason="no identity in this file has this employee id",
    )


def test_identity_as_its_own_manager_is_refused(write_csv, refuse):
    path = write_csv("hr.csv", identity_rows(person(manager_employee_id="E5")))
    one(
        refuse(path, "identities"),
        row=IDENTITY_BAD_ROW,
        column="manager_employee_id",
        value="E5",
        reason="cannot be its own manager",
    )


def test_same_employee_id_twice_with_different_details_is_refused(write_csv, refuse):
    path = write_csv("hr.csv", identity_rows(person(employee_id="E4", email="dan2@example.com")))
    one(
        refuse(path, "identities"),
        row=IDENTITY_BAD_ROW,
        column="employee_id",
        value="E4",
        reason="also on row 6 with different details",
    )


def test_an_address_given_up_by_one_identity_can_go_to_a_new_one_without_employee_id(write_csv, accept):
    """Row 2 (E1) drops rita@example.com and row 7, with no employee id, takes it: that is a new identity (an
    e-mail-only row matches only an identity that has no employee id either), and importing again changes
    nothing. (Found by the property test: an earlier matching rewrote her e-mail on every run.)"""
    rows = identity_rows(person(employee_id="", email="rita@example.com", display_name="Rita R."))
    rows[1] = ("E1", "", *rows[1][2:])  # row 2: E1 with no e-mail
    path = write_csv("hr.csv", rows)
    accept(path, "identities")
    assert Identity.objects.get(employee_id="E1").email is None
    assert Identity.objects.get(email="rita@example.com").employee_id is None
    again = accept(write_csv("hr2.csv", rows), "identities")
    assert again.counts["identities"]["added"] == 0 and again.counts["identities"]["changed"] == 0


def test_a_new_identity_taking_the_email_of_an_existing_one_is_refused_naming_the_row(write_csv, refuse):
    # carol (E3) is absent, so she would be terminated, but she keeps her e-mail address.
    rows = [
        IDENTITY_HEADER,
        *[r for r in COMPANY_IDENTITIES if r[0] != "E3"],
        NEW_PERSON,
        person(email="carol@example.com"),
    ]
    problems = refuse(write_csv("hr.csv", rows), "identities")
    one(problems, row=IDENTITY_BAD_ROW - 1, column="email", value="carol@example.com", reason="e-mail")


def test_value_longer_than_the_column_is_refused(write_csv, refuse):
    path = write_csv("hr.csv", identity_rows(person(department="D" * 121)))
    one(
        refuse(path, "identities"),
        row=IDENTITY_BAD_ROW,
        column="department",
        reason="is longer than 120 characters",
    )


def test_invalid_email_is_refused(write_csv, refuse):
    path = write_csv("hr.csv", identity_rows(person(email="not an email")))
    one(
        refuse(path, "identities"),
        row=IDENTITY_BAD_ROW,
        column="email",
        value="not an email",
        reason="is not an e-mail address",
    )


def test_every_problem_in_the_file_is_reported_not_just_the_first(write_csv, refuse):
    rows = identity_rows(
        person(status="gone"),
        person(employee_id="E6", kind="bot"),
        person(employee_id="E7", termination_date="never", status="terminated"),
    )
    problems = refuse(write_csv("hr.csv", rows), "identities")
    assert [(p["row"], p["column"]) for p in problems] == [
        (7, "status"),
        (8, "owner_employee_id"),
        (9, "termination_date"),
    ]


# --- Size limit -------------------------------------------------------------------------------------------


def test_file_over_the_size_limit_is_refused_before_a_run_is_queued(company, write_csv):
    path = write_csv("erp.csv", access_rows())
    before = snapshot()
    with (
        override_settings(SOXGOV_IMPORT_MAX_BYTES=path.stat().st_size - 1),
        pytest.raises(ImportRefused) as info,
    ):
        run_file(path)
    assert (
        info.value.problems[0].reason == f"file is larger than the limit of {path.stat().st_size - 1} bytes"
    )
    assert snapshot() == before
    assert not ConnectorRun.objects.exists()


def test_file_at_exactly_the_size_limit_is_accepted(write_csv, accept):
    path = write_csv("erp.csv", access_rows())
    with override_settings(SOXGOV_IMPORT_MAX_BYTES=path.stat().st_size):
        accept(path)
    assert Account.objects.filter(account_id="newbie").exists()


def test_stored_file_grown_over_the_limit_is_refused_when_read(company, write_csv, refuse, import_store):
    """The limit is checked again when the stored copy is opened (a connector may point at a growing file)."""
    from entitlements import services
    from evidence.services import Actor

    path = write_csv("erp.csv", access_rows())
    run = services.run_create(kind="access", source=path, source_name=path.name, actor=Actor.system("tests"))
    before = snapshot()
    with override_settings(SOXGOV_IMPORT_MAX_BYTES=10):
        run = services.run_execute(run_id=run.pk)
    assert run.status == ConnectorRun.Status.FAILED
    assert "the limit is 10" in run.problems[0]["reason"]
    assert snapshot() == before


# --- Accepted variations ----------------------------------------------------------------------------------


def test_bom_crlf_and_quoted_fields_with_commas_and_newlines_are_accepted(write_csv, accept):
    rows = identity_rows(
        person(
            display_name='Builder, Eve "The Hammer"', title="Line one\r\nLine two", department="R&D, Europe"
        )
    )
    text = csv_text(rows, lineterminator="\r\n")
    assert '"Builder, Eve ""The Hammer"""' in text
    run = accept(write_csv("hr.csv", b"\xef\xbb\xbf" + text.encode()), "identities")
    eve = Identity.objects.get(employee_id="E5")
    assert (eve.display_name, eve.title, eve.department) == (
        'Builder, Eve "The Hammer"',
        "Line one\r\nLine two",
        "R&D, Europe",
    )
    assert run.counts["identities"] == {
        "added": 2,
        "removed": 0,
        "terminated_absent": 0,
        "changed": 0,
        "unchanged": 4,
    }
    assert run.warnings == []


def test_lf_and_crlf_files_import_the_same(write_csv, accept):
    accept(write_csv("a.csv", csv_text(access_rows(), lineterminator="\r\n")))
    again = accept(write_csv("b.csv", csv_text(access_rows(), lineterminator="\n")))
    assert again.counts["grants"] == {"added": 0, "removed": 0, "changed": 0, "unchanged": 4}
    assert again.counts["accounts"]["unchanged"] == 4


def test_header_names_are_case_insensitive_and_spaces_ignored(write_csv, accept):
    header = [
        "  Application",
        "ACCOUNT_ID ",
        " Account_Name ",
        "Employee_Id",
        "EMAIL",
        " account_status",
        "Last_Used_At",
        "Entitlement_ID",
        "entitlement_NAME",
        "Entitlement_Type ",
        " PRIVILEGED ",
    ]
    run = accept(write_csv("erp.csv", access_rows(header=header)))
    assert run.warnings == []
    assert run.counts["accounts"]["added"] == 1
    assert Account.objects.get(account_id="newbie").identity.employee_id == "E1"


def test_unknown_columns_are_ignored_with_a_warning(write_csv, accept, cmd):
    rows = [
        [*row, extra]
        for row, extra in zip(access_rows(), ["favourite_colour", "x", "y", "z", "w"], strict=True)
    ]
    rows[0].insert(0, "Notes")
    for row in rows[1:]:
        row.insert(0, "ignored text")
    outcome = cmd("import_access", str(write_csv("erp.csv", rows)))
    assert outcome.code == 0, outcome
    assert "warning: column 'Notes' is not used and was ignored" in outcome.err
    assert "warning: column 'favourite_colour' is not used and was ignored" in outcome.err
    assert Account.objects.get(account_id="newbie").name == ""
    run = ConnectorRun.objects.get()
    assert run.warnings == [
        "column 'Notes' is not used and was ignored",
        "column 'favourite_colour' is not used and was ignored",
    ]


def test_a_column_named_twice_is_refused(write_csv, refuse):
    header = [*ACCESS_HEADER[:-1], "Account_Id"]
    one(
        refuse(write_csv("erp.csv", access_rows(header=header))),
        row=1,
        column="Account_Id",
        reason="this column appears twice",
    )


def test_exact_duplicate_access_rows_are_merged_with_a_warning(write_csv, accept):
    run = accept(write_csv("erp.csv", access_rows(NEW_ACCOUNT, NEW_ACCOUNT)))
    assert run.warnings == ["row 7 repeats row 5 exactly (3 copies); merged"]
    assert Grant.objects.filter(account__account_id="newbie").count() == 1
    assert run.counts["grants"]["added"] == 1


def test_duplicates_are_exact_rows_including_an_account_without_entitlements(write_csv, accept):
    """An account listed twice with no entitlement repeats its row; a row naming the same grant with another
    account name does not (the check groups only keys on more than one row by every column)."""
    bare = access(
        account_id="solo", entitlement_id="", entitlement_name="", entitlement_type="", privileged=""
    )
    renamed = list(NEW_ACCOUNT)
    renamed[2] = "Newbie N."
    run = accept(write_csv("erp.csv", access_rows(bare, renamed, bare)))
    assert run.warnings == ["row 8 repeats row 6 exactly (2 copies); merged"]
    assert Grant.objects.filter(account__account_id="newbie").count() == 1
    assert not Grant.objects.filter(account__account_id="solo").exists()


def test_exact_duplicate_identity_rows_are_merged_with_a_warning(write_csv, accept):
    run = accept(write_csv("hr.csv", identity_rows(NEW_PERSON)), "identities")
    assert run.warnings == ["row 7 repeats row 6 exactly (2 copies); merged"]
    assert Identity.objects.filter(employee_id="E4").count() == 1
    assert run.counts["identities"]["added"] == 1


def test_blank_lines_and_short_rows_are_tolerated(write_csv, accept):
    text = csv_text(access_rows()) + "\n\nERP,short\n"
    accept(write_csv("erp.csv", text))
    short = Account.objects.get(account_id="short")
    assert (short.identity, short.status, short.grants.count()) == (None, "enabled", 0)


def test_one_account_named_by_employee_id_on_one_row_and_the_same_persons_email_on_another_is_accepted(
    write_csv, accept
):
    """Different keys for the same person are one claim, not two."""
    rows = access_rows(
        access(account_id="bob2", employee_id="E2", email="", entitlement_id="GL_POST"),
        access(account_id="bob2", employee_id="", email="bob@example.com", entitlement_id=""),
    )
    accept(write_csv("erp.csv", rows))
    assert Account.objects.get(account_id="bob2").identity.employee_id == "E2"


def test_a_new_hire_can_take_the_address_an_existing_person_gives_up_in_the_same_file(write_csv, accept):
    rows = identity_rows(person(employee_id="E9", email="rita@example.com", display_name="New Rita"))
    rows[1] = ("E1", "rita.old@example.com", *rows[1][2:])  # row 2: E1 moves to another address
    accept(write_csv("hr.csv", rows), "identities")
    assert Identity.objects.get(employee_id="E9").email == "rita@example.com"
    assert Identity.objects.get(employee_id="E1").email == "rita.old@example.com"


def test_linking_a_user_to_an_imported_identity_is_evidenced(write_csv, accept, django_user_model):
    from evidence.models import EvidenceEvent

    user = django_user_model.objects.create_user(username="eve", email="eve@example.com", password="x" * 12)
    assert user.identity is None
    accept(write_csv("hr.csv", identity_rows(person(email="eve@example.com"))), "identities")
    user.refresh_from_db()
    assert user.identity.employee_id == "E5"
    event = EvidenceEvent.objects.get(action="access.user.identity_changed", subject_id=str(user.pk))
    assert (event.payload_data["old"], event.payload_data["new"]["id"]) == (None, user.identity_id)
