"""Incremental pulls (entitlements/imports/incremental.py) must end exactly where a full re-read would.

Each case applies a base file, changes something (the file, the identities, or the data behind the pipeline's
back), applies a second file, and compares the outcome with the same sequence run with the incremental path
switched off: same status, same counts, same accounts, grants and entitlements.
"""

from __future__ import annotations

from contextlib import nullcontext
from unittest import mock

import pytest
from django.db import connection, transaction
from django.test import override_settings

from entitlements.imports import fastpath
from entitlements.models import Account, Application, ConnectorRun, Entitlement, Grant, Identity
from evidence.models import EvidenceEvent

from .conftest import ACCESS_HEADER, run_file

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the incremental path is part of the PostgreSQL fast path"
)

APPLIED = ConnectorRun.Status.APPLIED


def row(
    account,
    entitlement="",
    *,
    app="Ledger",
    emp="",
    email="",
    status="enabled",
    used="",
    name="",
    ent_name=None,
    kind="role",
    privileged="false",
):
    ent_name = ent_name if ent_name is not None else (f"{entitlement} name" if entitlement else "")
    return [
        app,
        account,
        name,
        emp,
        email,
        status,
        used,
        entitlement,
        ent_name,
        kind if entitlement else "",
        privileged if entitlement else "",
    ]


BASE = [
    row("ann", "GL_POST", emp="E1", used="2026-11-01T10:00:00Z"),
    row("ann", "GL_VIEW", emp="E1", used="2026-11-01T10:00:00Z"),
    row("bob", "GL_VIEW", email="bob@example.com"),
    row("carol", "AP_PAY", emp="E3", privileged="true"),
    row("ghost", "GL_VIEW", emp="X9", email="new.hire@example.com"),
    row("idle", emp="E1"),
    row("pay-ann", "PR_RUN", app="Payroll", emp="E1"),
]


def _state():
    accounts = sorted(
        Account.objects.values_list(
            "application__name",
            "account_id",
            "name",
            "identity__employee_id",
            "status",
            "privileged",
            "last_used_at",
        )
    )
    grants = sorted(
        Grant.objects.values_list(
            "account__application__name", "account__account_id", "entitlement__entitlement_id"
        )
    )
    entitlements = sorted(
        Entitlement.objects.values_list("application__name", "entitlement_id", "name", "kind", "privileged")
    )
    return accounts, grants, entitlements


def _digests():
    return sorted(Account.objects.values_list("application__name", "account_id", "pull_digest"))


def _rows_reread(run) -> int:
    event = EvidenceEvent.objects.get(action="import.run.applied", subject_id=str(run.pk))
    return event.payload_data["rows_reread"]


@pytest.fixture
def world(db):
    Application.objects.create(name="Ledger")
    Application.objects.create(name="Payroll")
    for emp, email in (("E1", "ann@example.com"), ("E2", "bob@example.com"), ("E3", "carol@example.com")):
        Identity.objects.create(employee_id=emp, email=email, display_name=emp)


def _sequence(write_csv, first_rows, second_rows, *, incremental: bool, between=None, row_by_row=False):
    """Apply two files in a savepoint that is rolled back; the second run's outcome and the data after it.

    ``row_by_row``: both files go through the Python path (entitlements/connectors/files.py), the reference.
    """
    python = mock.patch.object(fastpath, "stage_access", return_value=None) if row_by_row else nullcontext()
    with transaction.atomic(), override_settings(SOXGOV_IMPORT_INCREMENTAL=incremental), python:
        first = run_file(write_csv("first.csv", [list(ACCESS_HEADER), *first_rows]))
        assert first.status == APPLIED, first.problems
        if between:
            between()
        second = run_file(write_csv("second.csv", [list(ACCESS_HEADER), *second_rows]))
        outcome = (second.status, second.counts, second.problem_count, _state())
        reread = _rows_reread(second) if second.status == APPLIED else None
        digests = _digests()
        assert not (row_by_row and any(d for _, _, d in digests))  # no fast pull ran
        transaction.set_rollback(True)
    return outcome, reread, digests


def _compare(write_csv, second_rows, *, between=None, first_rows=BASE):
    """The incremental pull, the fast path's full pull and the row-by-row path's pull end alike; the first two
    also leave the same digests on the accounts, so the next pull skips the same accounts after either."""
    incremental, reread, digests = _sequence(
        write_csv, first_rows, second_rows, incremental=True, between=between
    )
    full, full_reread, full_digests = _sequence(
        write_csv, first_rows, second_rows, incremental=False, between=between
    )
    assert incremental == full
    assert digests == full_digests
    python, _, _ = _sequence(
        write_csv, first_rows, second_rows, incremental=False, between=between, row_by_row=True
    )
    assert full == python
    return incremental, reread, full_reread


def test_an_unchanged_file_rereads_nothing_and_changes_nothing(world, write_csv):
    (status, counts, _, _), reread, full_reread = _compare(write_csv, BASE)
    assert status == APPLIED
    assert reread == 0 and full_reread == len(BASE)
    assert all(
        counts[what]["added"] == counts[what]["removed"] == counts[what]["changed"] == 0 for what in counts
    )
    assert counts["grants"]["unchanged"] == 6 and counts["accounts"]["unchanged"] == 6


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda rows: rows[:1] + rows[2:], id="grant-removed"),
        pytest.param(
            lambda rows: [*rows, row("bob", "AP_PAY", email="bob@example.com", privileged="true")],
            id="grant-added-raises-privileged",
        ),
        pytest.param(lambda rows: [r for r in rows if r[1] != "carol"], id="account-removed"),
        pytest.param(
            lambda rows: [*rows, row("dave", "GL_NEW", emp="E2")], id="account-and-entitlement-added"
        ),
        pytest.param(
            lambda rows: [[*r[:5], "disabled", *r[6:]] if r[1] == "bob" else r for r in rows],
            id="account-disabled",
        ),
        pytest.param(
            lambda rows: [[*r[:3], "E2", *r[4:]] if r[1] == "ann" else r for r in rows], id="account-relinked"
        ),
        pytest.param(
            lambda rows: [[*r[:6], "2026-11-20 08:00:00", *r[7:]] if r[1] == "ann" else r for r in rows],
            id="last-used-moved",
        ),
        pytest.param(
            # One account re-read for three reasons at once: its details, its last_used_at and its grants
            # (apply() writes them in one UPDATE).
            lambda rows: [
                *(
                    [*r[:2], "Ann A", r[3], r[4], "disabled", "2026-11-21T07:00:00Z", *r[7:]]
                    if r[1] == "ann"
                    else r
                    for r in rows
                ),
                row("ann", "AP_PAY", name="Ann A", emp="E1", status="disabled", used="2026-11-21T07:00:00Z"),
            ],
            id="account-renamed-disabled-last-used-moved-and-grant-added",
        ),
        pytest.param(
            lambda rows: [[*r[:8], "Read the ledger", *r[9:]] if r[7] == "GL_VIEW" else r for r in rows],
            id="entitlement-renamed-everywhere-rereads-all",
        ),
        pytest.param(
            lambda rows: [[*r[:8], "Read the ledger", *r[9:]] if r[1] == "bob" else r for r in rows],
            id="entitlement-renamed-on-one-row-is-refused",
        ),
        pytest.param(lambda rows: [*rows, rows[0]], id="exact-duplicate-row"),
        pytest.param(
            lambda rows: [*rows, row("dave", "GL_POST", emp="E2", ent_name="")],
            id="entitlement-name-left-empty-on-a-new-row-is-refused",
        ),
        pytest.param(
            lambda rows: [[" Ledger ", " ann ", *r[2:]] if r[1] == "ann" else r for r in rows],
            id="whitespace-around-keys",
        ),
        pytest.param(
            lambda rows: [[*r[:1], "bob", *r[2:]] if r[1] == "ghost" else r for r in rows],
            id="account-claimed-by-two-people-is-refused",
        ),
        pytest.param(
            lambda rows: [r for r in rows if r[0] != "Payroll"], id="application-left-out-is-untouched"
        ),
        pytest.param(
            lambda rows: [r for r in rows if r[1] in ("ann", "pay-ann")], id="most-grants-removed-is-held"
        ),
        pytest.param(
            lambda rows: [[*r[:6], "2026-02-30", *r[7:]] if r[1] == "ann" else r for r in rows],
            id="impossible-date-is-refused",
        ),
        pytest.param(
            lambda rows: [[*r[:6], "yesterday", *r[7:]] if r[1] == "ann" else r for r in rows],
            id="last-used-not-a-date-is-refused",
        ),
        pytest.param(
            lambda rows: [
                [*r[:6], "2026-11-25", *r[7:]] if r[7] == "GL_VIEW" and r[1] == "ann" else r for r in rows
            ],
            id="last-used-differs-between-rows",
        ),
        pytest.param(
            lambda rows: [[r[0], "bob\x1f", *r[2:]] if r[1] == "bob" else r for r in rows],
            id="account-key-with-a-trailing-separator-python-strips",
        ),
        pytest.param(
            lambda rows: [[*r[:5], "D\u0130SABLED", *r[6:]] if r[1] == "bob" else r for r in rows],
            id="status-python-lowers-otherwise-is-refused",
        ),
        pytest.param(
            lambda rows: [[*r[:8], "  ", *r[9:]] if r[1] == "bob" else r for r in rows],
            id="entitlement-name-of-spaces-is-refused",
        ),
        pytest.param(
            lambda rows: [[*r[:8], "\t", *r[9:]] if r[1] == "bob" else r for r in rows],
            id="entitlement-name-of-a-tab-is-refused",
        ),
        pytest.param(
            lambda rows: [[*r[:8], " GL_VIEW name", *r[9:]] if r[1] == "bob" else r for r in rows],
            id="entitlement-name-with-a-leading-space",
        ),
        pytest.param(
            lambda rows: [[*r[:8], "\u00a0GL_VIEW name", *r[9:]] if r[1] == "bob" else r for r in rows],
            id="entitlement-name-with-a-leading-non-ascii-space-rereads-all",
        ),
        pytest.param(
            lambda rows: [
                [*r[:8], {"GL_POST": "GL_VIEW name", "GL_VIEW": "GL_POST name"}[r[7]], *r[9:]]
                if r[1] == "ann"
                else r
                for r in rows
            ],
            id="entitlement-names-swapped-between-an-accounts-rows-is-refused",
        ),
        pytest.param(
            lambda rows: [[*r[:2], "enabled", r[3], r[4], "", *r[6:]] if r[1] == "bob" else r for r in rows],
            id="cell-moved-to-another-column",
        ),
        pytest.param(
            lambda rows: [[*r[:6], "", *r[7:]] if r[1] == "ann" else r for r in rows],
            id="last-used-emptied",
        ),
        pytest.param(
            lambda rows: [[*r[:6], "2026-11-20", *r[7:]] if r[1] == "ann" else r for r in rows],
            id="last-used-date-only",
        ),
        pytest.param(
            lambda rows: [
                [*r[:6], " 2026-11-20 08:00:00.123456 +02:00", *r[7:]] if r[1] == "ann" else r for r in rows
            ],
            id="last-used-microseconds-and-zone",
        ),
        pytest.param(
            lambda rows: [
                [*r[:6], "2026-11-20T08:00", *r[7:]] if r[1] in ("ann", "bob", "carol") else r for r in rows
            ],
            id="last-used-moved-on-several-accounts-to-one-value",
        ),
        pytest.param(
            lambda rows: [[*r[:6], "yesterday", *r[7:]] if r[1] in ("ann", "bob") else r for r in rows],
            id="last-used-invalid-on-a-clean-and-a-changed-account-is-refused",
        ),
        pytest.param(
            lambda rows: [
                [*r[:5], "disabled", "2026-11-31", *r[7:]]
                if r[1] == "bob"
                else [*r[:6], "2026-11-31", *r[7:]]
                if r[1] == "ann"
                else r
                for r in rows
            ],
            id="last-used-impossible-on-a-clean-and-a-changed-account-is-refused",
        ),
        pytest.param(
            lambda rows: [[*r[:6], "2026-11-20T24:00:00", *r[7:]] if r[1] == "ann" else r for r in rows],
            id="last-used-hour-24-is-refused",
        ),
        pytest.param(
            lambda rows: [[*r[:6], "2026-11-20T23:59:60Z", *r[7:]] if r[1] == "ann" else r for r in rows],
            id="last-used-second-60-is-refused",
        ),
    ],
)
def test_a_changed_file_ends_where_a_full_reread_ends(world, write_csv, change, request, settings):
    case = request.node.callspec.id
    if case.endswith("-held"):
        settings.SOXGOV_DELETION_THRESHOLD_COUNT = 0  # so that the gate holds at this file's size
    second = change([list(r) for r in BASE])
    (status, _counts, _problems, _), reread, _ = _compare(write_csv, second)
    expected = {"refused": ConnectorRun.Status.FAILED, "held": ConnectorRun.Status.HELD}.get(
        case.rsplit("-", 1)[-1], APPLIED
    )
    assert status == expected
    if case.endswith("-rereads-all"):  # clean accounts hold the entitlement too: the full path decides
        assert reread == len(second)
    elif status == APPLIED:
        assert reread < len(second), "the unchanged accounts should not have been re-read"


def test_a_new_digest_version_rereads_every_row_once(world, write_csv, monkeypatch):
    """A release that changes what staging makes of an unchanged file raises DIGEST_VERSION: the next pull
    re-reads every row (and ends as a full pull ends), the one after skips again."""
    from entitlements.imports import incremental as pulls

    rows = [list(ACCESS_HEADER), *BASE]
    with override_settings(SOXGOV_IMPORT_INCREMENTAL=True):
        assert run_file(write_csv("first.csv", rows)).status == APPLIED
        before = (_state(), _digests())
        monkeypatch.setattr(pulls, "DIGEST_VERSION", pulls.DIGEST_VERSION + 1)
        second = run_file(write_csv("second.csv", rows))
        third = run_file(write_csv("third.csv", rows))
    assert second.status == APPLIED and _rows_reread(second) == len(BASE)
    assert _state() == before[0]
    assert all(new != old for (_, _, new), (_, _, old) in zip(_digests(), before[1], strict=True))
    assert third.status == APPLIED and _rows_reread(third) == 0


def test_a_new_digest_version_puts_right_what_an_earlier_release_staged_wrongly(
    world, write_csv, monkeypatch
):
    """What the version is for: values an earlier release cut (here a name that lost its "v", as version 1 did
    on PostgreSQL) are staged again and corrected, not skipped as clean."""
    from entitlements.imports import incremental as pulls

    rows = [list(ACCESS_HEADER), *[[*r[:2], "Viv", *r[3:]] if r[1] == "bob" else r for r in BASE]]
    with override_settings(SOXGOV_IMPORT_INCREMENTAL=True):
        assert run_file(write_csv("first.csv", rows)).status == APPLIED
        Account.objects.filter(account_id="bob").update(name="Vi")  # as version 1 stored it; digest kept
        assert _rows_reread(run_file(write_csv("same.csv", rows))) == 0  # same version: skipped, left wrong
        assert Account.objects.get(account_id="bob").name == "Vi"
        monkeypatch.setattr(pulls, "DIGEST_VERSION", pulls.DIGEST_VERSION + 1)
        upgraded = run_file(write_csv("upgraded.csv", rows))
    assert upgraded.status == APPLIED and upgraded.counts["accounts"]["changed"] == 1
    assert Account.objects.get(account_id="bob").name == "Viv"


def test_a_new_hire_claims_an_orphan_account_without_the_file_changing(world, write_csv):
    def hire():
        Identity.objects.create(employee_id="E4", email="new.hire@example.com", display_name="New hire")

    (_, counts, _, (accounts, _, _)), reread, _ = _compare(write_csv, BASE, between=hire)
    assert ("Ledger", "ghost", "", "E4", "enabled", False, None) in accounts
    assert counts["accounts"]["changed"] == 1
    assert 0 < reread < len(BASE)


def test_a_new_hire_claims_an_orphan_account_by_an_email_with_a_non_ascii_capital(world, write_csv):
    """The summary lowers the e-mail as staging does: lowered in the C collation, "jÜrgen" stayed itself and
    the orphan account looked clean, where a full re-read links it to the new hire (found by a second read)."""
    rows = [*BASE, row("jurgen", "GL_VIEW", email="jÜrgen@example.com")]

    def hire():
        Identity.objects.create(employee_id="E5", email="jürgen@example.com", display_name="Jürgen")

    (_, counts, _, (accounts, _, _)), reread, _ = _compare(write_csv, rows, between=hire, first_rows=rows)
    assert [a[3] for a in accounts if a[1] == "jurgen"] == ["E5"]
    assert counts["accounts"]["changed"] == 1
    assert 0 < reread < len(rows)


def test_a_grant_deleted_behind_the_pipeline_comes_back(world, write_csv):
    def delete_behind():
        grant = Grant.objects.get(account__account_id="ann", entitlement__entitlement_id="GL_POST")
        grant.delete()  # through the ORM, as the admin does: simple-history records it

    (_, counts, _, (_, grants, _)), _, _ = _compare(write_csv, BASE, between=delete_behind)
    assert ("Ledger", "ann", "GL_POST") in grants
    assert counts["grants"]["added"] == 1


def test_an_account_edited_behind_the_pipeline_is_put_back(world, write_csv):
    def edit_behind():
        account = Account.objects.get(account_id="carol")
        account.status = Account.Status.DISABLED
        account.save()

    (_, counts, _, (accounts, _, _)), _, _ = _compare(write_csv, BASE, between=edit_behind)
    assert [a[4] for a in accounts if a[1] == "carol"] == ["enabled"]
    assert counts["accounts"]["changed"] == 1


def test_a_pull_after_a_row_by_row_pull_rereads_everything(world, write_csv, write_xlsx):
    """The row-by-row path (XLSX here) leaves no digests, so the next CSV pull cannot trust any account."""
    with override_settings(SOXGOV_IMPORT_INCREMENTAL=True):
        assert run_file(write_xlsx("first.xlsx", [list(ACCESS_HEADER), *BASE])).status == APPLIED
        assert not Account.objects.exclude(pull_digest=None).exists()
        second = run_file(write_csv("second.csv", [list(ACCESS_HEADER), *BASE]))
    assert second.status == APPLIED and _rows_reread(second) == len(BASE)
    assert Account.objects.filter(pull_digest=None).count() == 0


def test_back_to_back_pulls_skip_each_others_history(world, write_csv, settings):
    """A pull's own history is not an edit outside pulls: the pull after it still re-reads nothing."""
    settings.SOXGOV_IMPORT_INCREMENTAL = True
    changed = [r for r in BASE if r[1] != "bob"]
    runs = [
        run_file(write_csv(f"{n}.csv", [list(ACCESS_HEADER), *rows]))
        for n, rows in enumerate((BASE, changed, changed, BASE))
    ]
    assert [r.status for r in runs] == [APPLIED] * 4
    assert [_rows_reread(r) for r in runs] == [len(BASE), 0, 0, 1]
    assert runs[1].counts["accounts"]["removed"] == 1 and runs[3].counts["accounts"]["added"] == 1


def test_an_entitlement_edited_behind_the_pipeline_makes_the_pull_reread_everything(world, write_csv):
    def rename_behind():
        entitlement = Entitlement.objects.get(entitlement_id="GL_VIEW")
        entitlement.name = "Renamed by hand"
        entitlement.save()

    (_, counts, _, (_, _, entitlements)), reread, _ = _compare(write_csv, BASE, between=rename_behind)
    assert ("Ledger", "GL_VIEW", "GL_VIEW name", "role", False) in entitlements
    assert counts["entitlements"]["changed"] == 1 and reread == len(BASE)


def test_an_unknown_application_name_is_refused_even_when_the_run_names_one(world, write_csv):
    """The run's application fills empty cells only: a clean-looking account under a wrong name is refused."""
    ledger = Application.objects.get(name="Ledger")
    base = [["", *r[1:]] for r in BASE if r[0] == "Ledger"]
    second = [["Nowhere", *r[1:]] if r[1] == "bob" else r for r in base]
    outcomes = []
    for incremental in (True, False):
        with transaction.atomic(), override_settings(SOXGOV_IMPORT_INCREMENTAL=incremental):
            first = run_file(write_csv("first.csv", [list(ACCESS_HEADER), *base]), application=ledger)
            assert first.status == APPLIED, first.problems
            run = run_file(write_csv("second.csv", [list(ACCESS_HEADER), *second]), application=ledger)
            outcomes.append((run.status, run.problem_count, _state()))
            transaction.set_rollback(True)
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] == ConnectorRun.Status.FAILED and outcomes[0][1] == 1


def test_a_new_row_naming_an_entitlement_the_other_rows_leave_unnamed_is_refused(world, write_csv):
    unnamed = [[*r[:8], "", *r[9:]] if r[7] == "GL_VIEW" else r for r in BASE]
    second = [*unnamed, row("dave", "GL_VIEW", emp="E2", ent_name="GL_VIEW name")]
    (status, _, problems, _), _, _ = _compare(write_csv, second, first_rows=unnamed)
    assert status == ConnectorRun.Status.FAILED and problems == 1


@pytest.mark.parametrize("incremental", [True, False])
def test_one_account_under_two_spellings_is_merged_on_a_first_pull(world, write_csv, settings, incremental):
    """Keys that differ only in spaces are one account: never two digests for it (found in review)."""
    settings.SOXGOV_IMPORT_INCREMENTAL = incremental
    rows = [*BASE, row("ann ", "AP_PAY", emp="E1", used="2026-11-01T10:00:00Z")]
    for name in ("first.csv", "second.csv"):
        run = run_file(write_csv(name, [list(ACCESS_HEADER), *rows]))
        assert run.status == APPLIED, run.error
    assert Account.objects.filter(account_id="ann").get().pull_digest is None
    assert Grant.objects.filter(account__account_id="ann").count() == 3


@pytest.mark.parametrize(
    "spelling, default",
    [
        pytest.param("LEDGER", None, id="application-in-capitals"),
        pytest.param(" Ledger", None, id="application-with-a-space"),
        pytest.param("", "Ledger", id="empty-application-cell-and-the-runs-application"),
    ],
)
def test_one_account_under_two_application_spellings_is_never_clean(
    world, write_csv, settings, spelling, default
):
    """Two raw groups of one account through the application cell: the account gets no digest, so every pull
    re-reads it, as with keys that differ in spaces."""
    settings.SOXGOV_IMPORT_INCREMENTAL = True
    rows = [*BASE, row("ann", "AP_PAY", app=spelling, emp="E1", used="2026-11-01T10:00:00Z")]
    application = Application.objects.get(name=default) if default else None
    runs = [
        run_file(write_csv(name, [list(ACCESS_HEADER), *rows]), application=application)
        for name in ("first.csv", "second.csv")
    ]
    assert [r.status for r in runs] == [APPLIED, APPLIED], runs[0].error
    assert Account.objects.get(application__name="Ledger", account_id="ann").pull_digest is None
    assert Grant.objects.filter(account__application__name="Ledger", account__account_id="ann").count() == 3
    assert _rows_reread(runs[1]) == 3  # ann's three rows, under both spellings


def _sequence_with(
    write_csv, header, first_rows, second_rows, *, incremental: bool, application=None, between=None
):
    """As _sequence, with a header of the test's choosing and, optionally, the run's application."""
    keep = [ACCESS_HEADER.index(name) for name in header]
    with transaction.atomic(), override_settings(SOXGOV_IMPORT_INCREMENTAL=incremental):
        app = Application.objects.get(name=application) if application else None
        for n, rows in enumerate((first_rows, second_rows)):
            content = [list(header), *([r[i] for i in keep] for r in rows)]
            run = run_file(write_csv(f"{n}.csv", content), application=app)
            if n == 0:
                assert run.status == APPLIED, run.problems
                if between:
                    between()
        outcome = (run.status, run.counts, run.problem_count, _state())
        reread = _rows_reread(run) if run.status == APPLIED else None
        transaction.set_rollback(True)
    return outcome, reread


@pytest.mark.parametrize(
    "drop, application",
    [
        pytest.param(("last_used_at",), None, id="no-last-used-column"),
        pytest.param(("application",), "Ledger", id="no-application-column"),
        pytest.param(("application", "last_used_at", "email"), "Ledger", id="neither-nor-email"),
    ],
)
def test_a_file_without_optional_columns_ends_where_a_full_reread_ends(world, write_csv, drop, application):
    header = [name for name in ACCESS_HEADER if name not in drop]
    base = [r for r in BASE if r[0] == "Ledger"] if application else BASE
    second = [[*r[:5], "disabled", *r[6:]] if r[1] == "bob" else r for r in base if r[1] != "carol"]
    second.append(row("dave", "GL_POST", emp="E2"))
    outcomes = [
        _sequence_with(write_csv, header, base, rows, incremental=incremental, application=application)
        for rows in (base, second)
        for incremental in (True, False)
    ]
    (same, same_reread), (same_full, _), (changed, changed_reread), (changed_full, _) = outcomes
    assert same == same_full and changed == changed_full
    assert same[0] == changed[0] == APPLIED
    assert same_reread == 0
    assert 0 < changed_reread < len(second)
    accounts = len({(r[0], r[1]) for r in base})
    assert changed[1]["accounts"] == {"added": 1, "removed": 1, "changed": 1, "unchanged": accounts - 2}


def test_an_identity_whose_email_changes_unlinks_its_account_without_the_file_changing(world, write_csv):
    def change_email():
        identity = Identity.objects.get(employee_id="E2")
        identity.email = "robert@example.com"
        identity.save()

    (_, counts, _, (accounts, _, _)), reread, _ = _compare(write_csv, BASE, between=change_email)
    assert [a[3] for a in accounts if a[1] == "bob"] == [None]
    assert counts["accounts"]["changed"] == 1
    assert reread == 1


def test_the_pull_after_a_fallback_to_full_rereads_nothing(world, write_csv, settings):
    """A pull that went incremental, then read everything (a rename that clean accounts share), leaves digests
    that let the next identical pull re-read nothing."""
    settings.SOXGOV_IMPORT_INCREMENTAL = True
    renamed = [[*r[:8], "Read the ledger", *r[9:]] if r[7] == "GL_VIEW" else r for r in BASE]
    runs = [
        run_file(write_csv(f"{n}.csv", [list(ACCESS_HEADER), *rows]))
        for n, rows in enumerate((BASE, renamed, renamed))
    ]
    assert [r.status for r in runs] == [APPLIED] * 3
    assert [_rows_reread(r) for r in runs] == [len(BASE), len(BASE), 0]
    assert runs[1].counts["entitlements"]["changed"] == 1
    assert all(v == 0 for counts in runs[2].counts.values() for k, v in counts.items() if k != "unchanged")
    assert runs[2].counts["grants"]["unchanged"] == 6


def test_an_application_cell_python_lowers_otherwise_is_refused(world, write_csv):
    """'B\u0130LLING' is no application's name to Python (U+0130 lowers to 'i' and a combining dot); PostgreSQL
    lowers it to 'billing'. The clean accounts' rows are never validated, only their group's lookup."""
    Application.objects.create(name="Billing")
    base = [row("ann", "BI_RUN", app="Billing", emp="E1"), row("bob", "BI_RUN", app="Billing", emp="E2")]
    second = [["B\u0130LLING", *r[1:]] for r in base]
    (status, _, problems, _), _, _ = _compare(write_csv, second, first_rows=base)
    assert status == ConnectorRun.Status.FAILED and problems == 2


def test_an_identity_whose_employee_id_changes_unlinks_its_accounts_without_the_file_changing(
    world, write_csv
):
    """The file still names E1, which no identity holds any more: ann's accounts become orphans, as a full
    re-read makes them, although their rows did not change."""

    def change_employee_id():
        identity = Identity.objects.get(employee_id="E1")
        identity.employee_id = "E7"
        identity.save()

    (_, counts, _, (accounts, _, _)), reread, _ = _compare(write_csv, BASE, between=change_employee_id)
    assert {a[1]: a[3] for a in accounts if a[1] in ("ann", "idle", "pay-ann")} == {
        "ann": None,
        "idle": None,
        "pay-ann": None,
    }
    assert counts["accounts"]["changed"] == 3
    assert reread == 4


def test_a_deleted_identity_leaves_its_account_an_orphan_in_every_path(world, write_csv):
    """Deleting the identity unlinks the account there and then (on_delete, without account history); the pull
    agrees and re-reads nothing: carol's group resolves to no one, as the account now says."""
    (_, counts, _, (accounts, _, _)), reread, _ = _compare(
        write_csv, BASE, between=lambda: Identity.objects.get(employee_id="E3").delete()
    )
    assert [a[3] for a in accounts if a[1] == "carol"] == [None]
    assert counts["accounts"]["changed"] == 0
    assert reread == 0


def test_an_identity_change_that_moves_no_link_rereads_nothing(world, write_csv):
    """A changed identity that every group still resolves as before leaves every account clean."""

    def rename():
        identity = Identity.objects.get(employee_id="E2")
        identity.display_name = "Robert"
        identity.save()

    (status, counts, _, _), reread, _ = _compare(write_csv, BASE, between=rename)
    assert status == APPLIED
    assert reread == 0
    assert all(v == 0 for c in counts.values() for k, v in c.items() if k != "unchanged")


def test_a_new_identity_with_the_employee_id_a_row_names_takes_an_account_linked_by_email(world, write_csv):
    """The row names employee id X9 (no one's) and ann's e-mail, so the account links to ann by e-mail; once an
    identity holds X9 the employee id wins, although neither the file nor ann changed."""
    base = [*BASE, row("eve", "GL_VIEW", emp="X9", email="ann@example.com")]

    def hire():
        Identity.objects.create(employee_id="X9", email="eve@example.com", display_name="Eve")

    (_, counts, _, (accounts, _, _)), reread, _ = _compare(write_csv, base, between=hire, first_rows=base)
    assert {a[1]: a[3] for a in accounts if a[1] in ("eve", "ghost")} == {"eve": "X9", "ghost": "X9"}
    assert counts["accounts"]["changed"] == 2
    assert reread == 2


def test_the_account_table_leaves_room_in_its_pages_for_pulls_to_update_accounts_in_place(db):
    """Migration 0008: pulls rewrite last_used_at and the digest of many accounts; with room in the page
    PostgreSQL updates them without touching the table's indexes."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE relname = %s", [Account._meta.db_table])
        (options,) = cursor.fetchone()
    assert "fillfactor=85" in (options or [])
