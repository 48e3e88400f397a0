"""The pipeline: idempotent runs, removals traced to the run in history and evidence, terminations instead of
deletions, the safety gate and its approval by a second admin, evidence for every transition, and the
access_changed signal after commit."""

from __future__ import annotations

import hashlib
import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.utils import timezone

from entitlements import services
from entitlements.models import Account, Application, Connector, ConnectorRun, Entitlement, Grant, Identity
from entitlements.signals import access_changed
from evidence.models import EvidenceEvent
from evidence.services import Actor
from soxgov import jobs, leases
from soxgov.roles import Role
from tests.conftest import other_session_holding
from tests.imports.conftest import (
    ACCESS_HEADER,
    COMPANY_ERP_ACCESS,
    COMPANY_IDENTITIES,
    IDENTITY_HEADER,
    access_state,
    changes,
    run_file,
    snapshot,
)

CHANGING_ERP = [
    ACCESS_HEADER,
    ["ERP", "bob", "", "E2", "", "enabled", "", "", "", "", ""],  # loses GL_POST, keeps the account
    ["ERP", "svc-ledger", "", "SVC1", "", "disabled", "", "GL_POST", "Post journal", "role", "false"],
    ["ERP", "svc-ledger", "", "SVC1", "", "disabled", "", "AP_APPROVE", "Approve payments", "role", "false"],
    ["ERP", "temp", "", "", "", "enabled", "", "GL_POST", "Post journal", "role", "false"],  # an orphan
]  # carol's account is absent: removed with its grant


def run_events(run) -> list[str]:
    return list(
        EvidenceEvent.objects.filter(subject_type="entitlements.connectorrun", subject_id=str(run.pk))
        .order_by("sequence")
        .values_list("action", flat=True)
    )


def change_events() -> int:
    return EvidenceEvent.objects.filter(action__startswith="access.").count()


def no_changes(run) -> bool:
    return changes(run) == {}


def history(model, run, kind):
    return set(
        model.history.filter(history_change_reason=f"connector run {run.pk}", history_type=kind).values_list(
            "id", flat=True
        )
    )


@pytest.fixture
def bert(make_user):
    return make_user("bert", Role.ADMIN)


@pytest.fixture
def ledger(db):
    """An application with 100 accounts, each holding one entitlement: 100 grants."""
    return make_application("Ledger", 100)


def make_application(name: str, grants: int) -> Application:
    now = timezone.now()
    app = Application.objects.create(name=name)
    role = Entitlement.objects.create(application=app, entitlement_id="USER", name="User")
    accounts = Account.objects.bulk_create(
        Account(application=app, account_id=f"u{n:04}", first_seen=now) for n in range(grants)
    )
    Grant.objects.bulk_create(Grant(account=a, entitlement=role, first_seen=now) for a in accounts)
    return app


def keep_rows(app: Application, keep: int) -> list[list[str]]:
    """An access file for ``app`` listing its first ``keep`` accounts (the rest would be removed)."""
    return [["application", "account_id", "entitlement_id", "entitlement_name"]] + [
        [app.name, f"u{n:04}", "USER", "User"] for n in range(keep)
    ]


# --- Idempotence ------------------------------------------------------------------------------------------


def test_importing_identical_access_content_twice_changes_nothing_the_second_time(company, write_csv):
    first = run_file(write_csv("erp-monday.csv", CHANGING_ERP))
    assert first.status == "applied" and not no_changes(first)
    state, events, accounts_and_grants = snapshot(), change_events(), access_state()

    second = run_file(write_csv("erp-tuesday.csv", CHANGING_ERP))

    assert second.status == "applied"
    assert second.input_sha256 == first.input_sha256
    assert second.counts == {
        "accounts": {"added": 0, "removed": 0, "changed": 0, "unchanged": 3},
        "entitlements": {"added": 0, "removed": 0, "changed": 0, "unchanged": 2},
        "grants": {"added": 0, "removed": 0, "changed": 0, "unchanged": 3},
    }
    assert change_events() == events  # no access.* evidence the second time
    assert run_events(second) == ["import.run.queued", "import.run.applied"]
    assert access_state() == accounts_and_grants
    after = snapshot()
    assert after.pop("evidence") == state.pop("evidence") + 1  # import.run.applied
    for model in (
        "Identity",
        "Entitlement",
        "HistoricalIdentity",
        "HistoricalAccount",
        "HistoricalGrant",
        "HistoricalEntitlement",
    ):
        assert after[f"entitlements.{model}"] == state[f"entitlements.{model}"], model
    # No history is tagged with the second run: its change digest is that of an empty change set.
    assert second.changes_sha256 == hashlib.sha256().hexdigest()


def test_importing_identical_identities_twice_changes_nothing_the_second_time(company, write_csv):
    rows = [
        IDENTITY_HEADER,
        *COMPANY_IDENTITIES[:3],
        ["E4", "dan@example.com", "Dan New", "", "", "E2", "leave", "", "human", ""],
    ]
    first = run_file(write_csv("hr.csv", rows), kind="identities")
    assert first.counts["identities"] == {
        "added": 1,
        "removed": 0,
        "terminated_absent": 1,
        "changed": 0,
        "unchanged": 3,
    }
    state, events = snapshot(), change_events()

    second = run_file(write_csv("hr2.csv", rows), kind="identities")

    assert second.status == "applied" and no_changes(second), second.counts
    assert second.counts["identities"]["unchanged"] == 4
    assert change_events() == events
    after = snapshot()
    assert after.pop("evidence") == state.pop("evidence") + 1
    assert after == state


def test_run_execute_on_an_applied_run_returns_it_unchanged_and_writes_nothing(company, write_csv):
    run = run_file(write_csv("erp.csv", CHANGING_ERP))
    state = snapshot()
    all_events = EvidenceEvent.objects.count()

    again = services.run_execute(run_id=run.pk)

    assert again.pk == run.pk
    assert (again.status, again.finished_at, again.counts, again.changes_sha256) == (
        run.status,
        run.finished_at,
        run.counts,
        run.changes_sha256,
    )
    assert EvidenceEvent.objects.count() == all_events
    assert snapshot() == state


@pytest.mark.parametrize("status", ["held", "failed", "rejected", "cancelled"])
def test_run_execute_does_nothing_to_a_run_that_is_not_queued_or_approved(company, write_csv, status):
    run = services.run_create(
        kind="access",
        source=write_csv("erp.csv", [ACCESS_HEADER]),
        source_name="erp.csv",
        actor=Actor.system("tests"),
        application=company["applications"]["erp"],
    )
    ConnectorRun.objects.filter(pk=run.pk).update(status=status)
    state, all_events = snapshot(), EvidenceEvent.objects.count()

    again = services.run_execute(run_id=run.pk)

    assert again.status == status
    assert EvidenceEvent.objects.count() == all_events
    assert snapshot() == state


@pytest.mark.postgres
def test_run_execute_leaves_alone_a_running_run_whose_worker_is_alive(company, write_csv, erp_rows):
    """A second delivery of a run's message while a live worker executes it (its lease is held) does nothing."""
    if connection.vendor != "postgresql":
        pytest.skip("leases are PostgreSQL advisory locks")
    run = services.run_create(
        kind="access",
        source=write_csv("erp.csv", erp_rows),
        source_name="erp.csv",
        actor=Actor.system("tests"),
        application=company["applications"]["erp"],
        send=False,
    )
    ConnectorRun.objects.filter(pk=run.pk).update(status="running")
    state, all_events = snapshot(), EvidenceEvent.objects.count()
    with other_session_holding(leases.Kind.RUN, run.pk):
        again = services.run_execute(run_id=run.pk)
    assert again.status == "running"
    assert EvidenceEvent.objects.count() == all_events
    assert snapshot() == state


def test_a_running_run_whose_worker_died_is_restarted_and_applied_once(company, write_csv, erp_rows):
    run = services.run_create(
        kind="access",
        source=write_csv("erp.csv", CHANGING_ERP),
        source_name="erp.csv",
        actor=Actor.system("tests"),
        application=company["applications"]["erp"],
        send=False,
    )
    # What a worker killed mid-run leaves: the run claimed, its transaction rolled back, its lease gone.
    ConnectorRun.objects.filter(pk=run.pk).update(status="running", started_at=timezone.now())

    again = services.run_execute(run_id=run.pk)

    assert again.status == "applied"
    actions = list(
        EvidenceEvent.objects.filter(subject_type="entitlements.connectorrun", subject_id=str(run.pk))
        .order_by("sequence")
        .values_list("action", flat=True)
    )
    assert actions == ["import.run.queued", "import.run.restarted", "import.run.applied"]
    assert services.run_execute(run_id=run.pk).status == "applied"  # and once only


# --- Removals, additions and changes are traceable to the run -----------------------------------------------


def test_removed_grants_and_accounts_are_in_history_and_evidence_tagged_with_the_run(
    personas, company, write_csv
):
    accounts = company["accounts"]
    bob_grant = Grant.objects.get(account=accounts["bob_erp"])
    carol_grant = Grant.objects.get(account=accounts["carol_erp"])

    run = run_file(write_csv("erp.csv", CHANGING_ERP), user=personas["alice"])

    assert run.status == "applied"
    assert run.counts["grants"] == {"added": 2, "removed": 2, "changed": 0, "unchanged": 1}
    assert not Grant.objects.filter(pk__in=[bob_grant.pk, carol_grant.pk]).exists()
    assert not Account.objects.filter(pk=accounts["carol_erp"].pk).exists()
    assert Account.objects.filter(pk=accounts["bob_erp"].pk).exists()

    assert history(Grant, run, "-") == {bob_grant.pk, carol_grant.pk}
    assert history(Account, run, "-") == {accounts["carol_erp"].pk}
    removed = Grant.history.filter(history_change_reason=f"connector run {run.pk}", history_type="-")
    assert {(h.account_id, h.entitlement_id) for h in removed} == {
        (bob_grant.account_id, bob_grant.entitlement_id),
        (carol_grant.account_id, carol_grant.entitlement_id),
    }
    assert {h.history_user_id for h in removed} == {personas["alice"].pk}

    grant_events = EvidenceEvent.objects.filter(action="access.grant.removed")
    assert {e.subject_id for e in grant_events} == {str(bob_grant.pk), str(carol_grant.pk)}
    payloads = {e.subject_id: json.loads(e.payload) for e in grant_events}
    assert payloads[str(carol_grant.pk)] == {
        "application": "ERP",
        "account": "carol",
        "entitlement": "GL_POST",
        "run": run.pk,
    }
    [account_event] = EvidenceEvent.objects.filter(action="access.account.removed")
    assert account_event.subject_id == str(accounts["carol_erp"].pk)
    assert json.loads(account_event.payload)["run"] == run.pk


def test_added_and_changed_objects_are_in_history_and_evidence_tagged_with_the_run(company, write_csv):
    run = run_file(write_csv("erp.csv", CHANGING_ERP))

    temp = Account.objects.get(account_id="temp")
    approve = Entitlement.objects.get(entitlement_id="AP_APPROVE")
    new_grants = set(Grant.objects.filter(first_seen__gte=run.started_at).values_list("pk", flat=True))
    assert len(new_grants) == 2
    assert history(Account, run, "+") == {temp.pk}
    assert history(Account, run, "~") == {company["accounts"]["bot_erp"].pk}  # enabled -> disabled
    assert history(Entitlement, run, "+") == {approve.pk}
    assert history(Grant, run, "+") == new_grants
    assert {e.subject_id for e in EvidenceEvent.objects.filter(action="access.grant.added")} == {
        str(pk) for pk in new_grants
    }
    assert EvidenceEvent.objects.filter(action="access.account.added", subject_id=str(temp.pk)).exists()
    assert EvidenceEvent.objects.filter(
        action="access.account.changed", subject_id=str(company["accounts"]["bot_erp"].pk)
    ).exists()
    assert EvidenceEvent.objects.filter(
        action="access.entitlement.added", subject_id=str(approve.pk)
    ).exists()

    applied = EvidenceEvent.objects.get(action="import.run.applied", subject_id=str(run.pk))
    payload = json.loads(applied.payload)
    assert payload["history_change_reason"] == f"connector run {run.pk}"
    assert (
        payload["changes_sha256"]
        == run.changes_sha256
        == services._changes_digest(
            f"connector run {run.pk}", dict.fromkeys((Entitlement, Account, Grant), 0)
        )
    )
    assert payload["counts"] == run.counts


def test_an_access_file_is_the_truth_only_for_the_applications_it_names(company, write_csv):
    crm_only = [
        ["application", "account_id", "entitlement_id", "entitlement_name"],
        ["CRM", "ghost", "CRM_VIEW", "View customers"],
        ["CRM", "new", "CRM_VIEW", "View customers"],
    ]
    run = run_file(write_csv("crm.csv", crm_only))
    assert run.status == "applied"
    assert Grant.objects.filter(account__application__name="ERP").count() == 3
    assert Grant.objects.filter(account__application__name="CRM").count() == 2


def test_empty_strings_are_stored_as_empty_not_null(company, write_csv):
    """On PostgreSQL the stage is loaded with COPY, where an unquoted empty field would mean NULL."""
    rows = [
        IDENTITY_HEADER,
        *COMPANY_IDENTITIES,
        ["E4", "", "Dan New", "", "", "", "active", "", "human", ""],
    ]
    run = run_file(write_csv("hr.csv", rows), kind="identities")
    assert run.status == "applied", run.problems
    dan = Identity.objects.get(employee_id="E4")
    assert (dan.department, dan.title, dan.email) == ("", "", None)


def test_clearing_a_department_applies(company, write_csv):
    Identity.objects.filter(employee_id="E3").update(department="Finance", title="Clerk")
    run = run_file(write_csv("hr.csv", [IDENTITY_HEADER, *COMPANY_IDENTITIES]), kind="identities")
    assert run.counts["identities"]["changed"] == 1, run.counts
    carol = Identity.objects.get(employee_id="E3")
    assert (carol.department, carol.title) == ("", "")


def test_two_people_swapping_email_addresses_in_one_file_applies(company, write_csv):
    rows = [IDENTITY_HEADER, *(list(r) for r in COMPANY_IDENTITIES)]
    rows[1][1], rows[2][1] = rows[2][1], rows[1][1]
    run = run_file(write_csv("hr.csv", rows), kind="identities")
    assert run.status == "applied", run.problems
    assert Identity.objects.get(employee_id="E1").email == "bob@example.com"


# --- Identities: absent means terminated, never deleted -----------------------------------------------------


def test_identities_absent_from_the_file_are_terminated_not_deleted(company, write_csv):
    carol = company["identities"]["carol"]
    rows = [IDENTITY_HEADER, *[r for r in COMPANY_IDENTITIES if r[0] != "E3"]]

    run = run_file(write_csv("hr.csv", rows), kind="identities")

    assert run.status == "applied"
    assert run.counts["identities"]["terminated_absent"] == 1
    carol.refresh_from_db()
    assert (carol.status, carol.termination_date) == ("terminated", timezone.localdate())
    assert Identity.objects.count() == 4
    assert Account.objects.filter(identity=carol).exists()  # her accounts stay, for review as leaver access
    assert history(Identity, run, "~") == {carol.pk}
    [event] = EvidenceEvent.objects.filter(action="access.identity.terminated")
    assert event.subject_id == str(carol.pk)
    assert json.loads(event.payload)["reason"] == "absent from the identities file"


def test_an_already_terminated_identity_absent_again_is_left_alone(company, write_csv):
    carol = company["identities"]["carol"]
    Identity.objects.filter(pk=carol.pk).update(status="terminated", termination_date="2020-01-31")
    rows = [IDENTITY_HEADER, *[r for r in COMPANY_IDENTITIES if r[0] != "E3"]]

    run = run_file(write_csv("hr.csv", rows), kind="identities")

    assert no_changes(run), run.counts
    carol.refresh_from_db()
    assert str(carol.termination_date) == "2020-01-31"
    assert history(Identity, run, "~") == set()


def test_a_terminated_identity_back_in_the_file_is_active_again(company, write_csv):
    Identity.objects.filter(employee_id="E3").update(status="terminated", termination_date="2020-01-31")
    run = run_file(write_csv("hr.csv", [IDENTITY_HEADER, *COMPANY_IDENTITIES]), kind="identities")
    assert run.counts["identities"]["changed"] == 1
    carol = Identity.objects.get(employee_id="E3")
    assert (carol.status, carol.termination_date) == ("active", None)


def test_terminated_without_a_date_gets_today(company, write_csv):
    rows = [
        IDENTITY_HEADER,
        *COMPANY_IDENTITIES[:2],
        ["E3", "carol@example.com", "Carol Other", "", "", "", "terminated", "", "human", ""],
        COMPANY_IDENTITIES[3],
    ]
    run_file(write_csv("hr.csv", rows), kind="identities")
    assert Identity.objects.get(employee_id="E3").termination_date == timezone.localdate()


# --- The safety gate ----------------------------------------------------------------------------------------


def test_removing_over_10_percent_and_over_20_grants_holds_the_run_with_nothing_applied(ledger, write_csv):
    before = snapshot()

    run = run_file(write_csv("ledger.csv", keep_rows(ledger, 79)))

    assert run.status == ConnectorRun.Status.HELD
    assert run.held_reason == (
        "Ledger: would remove 21 of 100 grants (21.0%), over the threshold of 10% and 20 grants; "
        "Ledger: would remove 21 of 100 accounts (21.0%), over the threshold of 10% and 20 accounts"
    )
    assert run.counts["grants"]["removed"] == 21
    assert run.rows_total == 79
    after = snapshot()
    assert after.pop("evidence") == before.pop("evidence") + 1
    assert after == before
    assert run_events(run) == ["import.run.queued", "import.run.held"]


def test_removing_exactly_20_grants_is_not_held(ledger, write_csv):
    run = run_file(write_csv("ledger.csv", keep_rows(ledger, 80)))
    assert run.status == "applied"
    assert Grant.objects.filter(account__application=ledger).count() == 80


def test_removing_over_20_grants_but_under_10_percent_is_not_held(db, write_csv):
    big = make_application("Big", 300)
    run = run_file(write_csv("big.csv", keep_rows(big, 275)))
    assert run.status == "applied", run.held_reason
    assert run.counts["grants"]["removed"] == 25


def test_the_gate_is_per_application(ledger, write_csv):
    small = make_application("Small", 10)
    # All of Ledger and one of Small's ten grants: 90% of Small goes, but that is not over 20 grants.
    rows = [*keep_rows(ledger, 100), [small.name, "u0000", "USER", "User"]]
    assert run_file(write_csv("both.csv", rows)).status == "applied"

    rows = [*keep_rows(ledger, 50), [small.name, "u0000", "USER", "User"]]
    run = run_file(write_csv("both2.csv", rows))
    assert run.status == "held"
    assert run.held_reason.startswith("Ledger: would remove 50 of 100 grants")
    assert "Small" not in run.held_reason


def test_a_connector_has_its_own_thresholds(ledger, write_csv):
    lenient = Connector.objects.create(
        name="ledger feed",
        kind="access_file",
        application=ledger,
        deletion_threshold_percent=50,
        deletion_threshold_count=5,
    )
    path = write_csv("ledger.csv", keep_rows(ledger, 70))
    run = services.run_create(
        kind="access",
        source=path,
        source_name=path.name,
        actor=Actor.system("tests"),
        application=ledger,
        connector=lenient,
    )
    assert services.run_execute(run_id=run.pk).status == "applied"

    strict = Connector.objects.create(
        name="strict feed",
        kind="access_file",
        application=ledger,
        deletion_threshold_percent=5,
        deletion_threshold_count=2,
    )
    run = services.run_create(
        kind="access",
        source=write_csv("l2.csv", keep_rows(ledger, 66)),
        source_name="l2",
        actor=Actor.system("tests"),
        application=ledger,
        connector=strict,
    )
    run = services.run_execute(run_id=run.pk)
    assert run.status == "held"
    assert "over the threshold of 5% and 2 grants" in run.held_reason


def test_an_empty_access_file_for_an_application_with_grants_is_held(company, write_csv):
    before = snapshot()
    run = run_file(write_csv("erp.csv", [ACCESS_HEADER]), application=company["applications"]["erp"])
    assert run.status == "held"
    assert run.held_reason == "ERP: the file has no rows for it, but it has 3 accounts and 3 grants"
    after = snapshot()
    assert after.pop("evidence") == before.pop("evidence") + 1
    assert after == before


def test_an_empty_access_file_for_an_application_without_grants_is_applied(db, write_csv):
    empty = Application.objects.create(name="Fresh")
    run = run_file(write_csv("fresh.csv", [["account_id"]]), application=empty)
    assert run.status == "applied"


def test_terminating_over_the_threshold_of_identities_holds_the_run(company, write_csv):
    Identity.objects.bulk_create(Identity(employee_id=f"X{n:03}", display_name=f"X {n}") for n in range(21))
    before = snapshot()
    run = run_file(write_csv("hr.csv", [IDENTITY_HEADER, *COMPANY_IDENTITIES]), kind="identities")
    assert run.status == "held"
    assert run.held_reason.startswith("would terminate 21 of 25 active identities")
    after = snapshot()
    assert after.pop("evidence") == before.pop("evidence") + 1
    assert after == before


# --- Approval by a second admin -----------------------------------------------------------------------------


@pytest.fixture
def held(personas, ledger, write_csv):
    run = run_file(write_csv("ledger.csv", keep_rows(ledger, 50)), user=personas["alice"])
    assert run.status == "held"
    return run


def test_a_held_run_approved_by_a_second_admin_applies(held, bert, ledger):
    services.run_approve(run_id=held.pk, user=bert, reason="Ledger cleanup", enqueue=False)
    run = services.run_execute(run_id=held.pk)

    assert run.status == "applied"
    assert Grant.objects.filter(account__application=ledger).count() == 50
    assert run.counts["grants"]["removed"] == 50
    assert run_events(run) == [
        "import.run.queued",
        "import.run.held",
        "import.run.approved",
        "import.run.applied",
    ]
    approved = EvidenceEvent.objects.get(action="import.run.approved", subject_id=str(run.pk))
    assert approved.actor_user_id == bert.pk
    assert json.loads(approved.payload)["reason"] == "Ledger cleanup"
    assert (
        json.loads(EvidenceEvent.objects.get(action="import.run.applied", subject_id=str(run.pk)).payload)[
            "approved"
        ]
        is True
    )


def test_approval_re_diffs_against_current_data(held, bert, ledger):
    """A grant added while the run waited is not in the file, so the approved run removes it too."""
    extra = Account.objects.create(application=ledger, account_id="late", first_seen=timezone.now())
    Grant.objects.create(
        account=extra,
        entitlement=Entitlement.objects.get(application=ledger),
        first_seen=timezone.now(),
    )
    services.run_approve(run_id=held.pk, user=bert, enqueue=False)
    run = services.run_execute(run_id=held.pk)
    assert run.counts["grants"]["removed"] == 51
    assert not Account.objects.filter(account_id="late").exists()


def test_approving_enqueues_the_run_which_applies_after_commit(
    held, bert, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        services.run_approve(run_id=held.pk, user=bert)
        assert ConnectorRun.objects.get(pk=held.pk).status == "approved"
    assert ConnectorRun.objects.get(pk=held.pk).status == "applied"


def test_the_admin_who_started_a_run_cannot_approve_or_reject_it(held, personas):
    state = snapshot()
    for decide in (services.run_approve, services.run_reject):
        with pytest.raises(PermissionDenied, match="cannot also approve or reject"):
            decide(run_id=held.pk, user=personas["alice"])
    assert ConnectorRun.objects.get(pk=held.pk).status == "held"
    assert snapshot() == state


@pytest.mark.parametrize("who", ["rita", "oscar", "audrey", "mallory"])
def test_a_non_admin_cannot_approve_or_reject(held, personas, who):
    state = snapshot()
    for decide in (services.run_approve, services.run_reject):
        with pytest.raises(PermissionDenied, match="only an admin"):
            decide(run_id=held.pk, user=personas[who])
    assert ConnectorRun.objects.get(pk=held.pk).status == "held"
    assert snapshot() == state


def test_an_inactive_admin_cannot_approve(held, bert):
    bert.is_active = False
    bert.save()
    with pytest.raises(PermissionDenied):
        services.run_approve(run_id=held.pk, user=bert, enqueue=False)


def test_a_rejected_run_applies_nothing_and_cannot_be_approved_later(held, bert, ledger):
    state = snapshot()

    run = services.run_reject(run_id=held.pk, user=bert, reason="truncated export")

    assert run.status == "rejected"
    assert services.run_execute(run_id=held.pk).status == "rejected"
    after = snapshot()
    assert after.pop("evidence") == state.pop("evidence") + 1
    assert after == state
    assert run_events(run) == ["import.run.queued", "import.run.held", "import.run.rejected"]
    with pytest.raises(ValidationError, match="is rejected, not held for approval"):
        services.run_approve(run_id=held.pk, user=bert, enqueue=False)


def test_only_held_runs_can_be_approved(company, bert, write_csv):
    run = run_file(write_csv("erp.csv", CHANGING_ERP))
    with pytest.raises(ValidationError, match="is applied, not held for approval"):
        services.run_approve(run_id=run.pk, user=bert, enqueue=False)


# --- Evidence for every transition --------------------------------------------------------------------------


def test_every_transition_writes_evidence_and_the_chain_stays_intact(personas, bert, ledger, write_csv, cmd):
    refused = run_file(
        write_csv("bad.csv", [["account_id", "account_status"], ["x", "??"]]), application=ledger
    )
    held_then_rejected = run_file(write_csv("l1.csv", keep_rows(ledger, 10)), user=personas["alice"])
    services.run_reject(run_id=held_then_rejected.pk, user=bert)
    held_then_approved = run_file(write_csv("l2.csv", keep_rows(ledger, 20)), user=personas["alice"])
    services.run_approve(run_id=held_then_approved.pk, user=bert, enqueue=False)
    services.run_execute(run_id=held_then_approved.pk)
    applied = run_file(write_csv("l3.csv", keep_rows(ledger, 20)))

    assert run_events(refused) == ["import.run.queued", "import.run.refused"]
    assert run_events(held_then_rejected) == ["import.run.queued", "import.run.held", "import.run.rejected"]
    assert run_events(held_then_approved) == [
        "import.run.queued",
        "import.run.held",
        "import.run.approved",
        "import.run.applied",
    ]
    assert run_events(applied) == ["import.run.queued", "import.run.applied"]
    refusal = json.loads(EvidenceEvent.objects.get(action="import.run.refused").payload)
    assert refusal["problem_count"] == 1
    assert "bad.csv, row 2, column account_status" in refusal["first_problems"][0]

    outcome = cmd("verify_evidence")
    assert outcome.code == 0, outcome
    assert outcome.out.startswith(f"intact: {EvidenceEvent.objects.count()} events")


# --- access_changed -----------------------------------------------------------------------------------------


@pytest.fixture
def announcements():
    received = []

    def receiver(sender, run, identity_ids, **kwargs):
        received.append((run.pk, identity_ids))

    access_changed.connect(receiver, weak=False)
    yield received
    access_changed.disconnect(receiver)


def test_access_changed_is_sent_in_the_runs_transaction_and_its_follow_ups_commit_with_it(
    company, write_csv, announcements
):
    people = company["identities"]
    run = run_file(write_csv("erp.csv", CHANGING_ERP))
    # bob lost GL_POST, the service account gained AP_APPROVE (and was disabled), carol's account went away;
    # the new "temp" account is an orphan, and rita's access did not change.
    changed = sorted([people["bob"].pk, people["bot"].pk, people["carol"].pk])
    assert announcements == [(run.pk, changed)]
    follow_ups = {job.task: job.args for job in jobs.of(run).exclude(task="entitlements.execute_run")}
    erp = company["applications"]["erp"].pk
    assert follow_ups == {
        "sod.check_after_import": [run.pk, changed, [erp]],
        "reviews.verify_remediation": [run.pk, [erp]],
    }


def test_a_refused_run_rolls_back_its_follow_ups_with_its_changes(company, write_csv, announcements):
    """The follow-ups are recorded in the run's transaction: a run whose apply fails leaves none behind."""
    from django.db import IntegrityError

    from entitlements.imports import access

    real_apply = access.apply

    def apply_then_fail(**kwargs):
        real_apply(**kwargs)
        raise IntegrityError("simulated failure after the changes were written")

    access.apply = apply_then_fail
    try:
        with pytest.raises(IntegrityError):
            run_file(write_csv("erp.csv", CHANGING_ERP))
    finally:
        access.apply = real_apply
    run = ConnectorRun.objects.latest("pk")
    assert run.status == "failed"
    assert "simulated failure" in run.error
    assert list(jobs.of(run).values_list("task", flat=True)) == ["entitlements.execute_run"]


def test_access_changed_names_both_people_when_an_account_moves(
    company, write_csv, announcements, django_capture_on_commit_callbacks
):
    people = company["identities"]
    rows = [ACCESS_HEADER, *COMPANY_ERP_ACCESS]
    rows[2] = ["ERP", "carol", "", "E1", "", "enabled", "", "GL_POST", "Post journal", "role", "false"]
    with django_capture_on_commit_callbacks(execute=True):
        run = run_file(write_csv("erp.csv", rows))
    assert announcements == [(run.pk, sorted([people["rita"].pk, people["carol"].pk]))]


def test_access_changed_names_nobody_when_nothing_changed(
    company, write_csv, erp_rows, announcements, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        run = run_file(write_csv("erp.csv", erp_rows))
    assert announcements == [(run.pk, [])]


def test_access_changed_is_not_sent_for_held_or_refused_runs(
    company, write_csv, announcements, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        held = run_file(write_csv("erp.csv", [ACCESS_HEADER]), application=company["applications"]["erp"])
        refused = run_file(
            write_csv("bad.csv", [["account_id", "privileged"], ["x", "perhaps"]]),
            application=company["applications"]["erp"],
        )
    assert (held.status, refused.status) == ("held", "failed")
    assert callbacks == [] and announcements == []


def test_removing_many_accounts_without_grants_is_held_too(ledger, write_csv):
    """Accounts holding nothing would slip past a gate that only counts grants."""
    now = timezone.now()
    Account.objects.bulk_create(
        Account(application=ledger, account_id=f"idle{n:03}", first_seen=now) for n in range(30)
    )
    run = run_file(write_csv("ledger.csv", keep_rows(ledger, 100)))
    assert run.status == ConnectorRun.Status.HELD
    assert "would remove 30 of 130 accounts" in run.held_reason
    assert Account.objects.filter(account_id__startswith="idle").count() == 30


def test_new_accounts_are_numbered_in_file_order_and_new_entitlements_in_key_order(db, write_csv):
    """The same file gives the same ids on every database and whichever plan the database picks: accounts
    in the order the file first names them, entitlements by key."""
    Application.objects.create(name="ERP")
    keys = ["zed", "amy", "mia", "bob", "kim", "ann", "lee", "dan"]
    rows = [ACCESS_HEADER]
    for n, key in enumerate(keys):
        for entitlement in (f"R{(7 * n) % 5}", f"Q{n % 3}"):
            rows.append(["ERP", key, "", "", "", "enabled", "", entitlement, entitlement, "role", "false"])
    run = run_file(write_csv("order.csv", rows))
    assert run.status == ConnectorRun.Status.APPLIED, run.problems
    assert list(Account.objects.order_by("pk").values_list("account_id", flat=True)) == keys
    entitlements = list(Entitlement.objects.order_by("pk").values_list("entitlement_id", flat=True))
    assert entitlements == sorted(entitlements)


def test_one_person_with_two_admin_accounts_cannot_decide_the_run_they_started(held, make_user):
    # alice (who started the run) is the identity E9 by her e-mail; alice-2 by her link.
    me = Identity.objects.create(employee_id="E9", email="alice@example.com", display_name="Alice Admin")
    alice_2 = make_user("alice-2", Role.ADMIN, identity=me)
    state = snapshot()
    for decide in (services.run_approve, services.run_reject):
        with pytest.raises(PermissionDenied, match=r"alice-2 and alice are the same person \(identity E9\)"):
            decide(run_id=held.pk, user=alice_2)
    assert ConnectorRun.objects.get(pk=held.pk).status == "held"
    assert snapshot() == state
