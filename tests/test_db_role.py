"""The application's PostgreSQL role (``db_app_role``): it cannot switch off the append-only triggers nor change an
evidence event, and everything the application does still works as it.

Roles are cluster-wide, so the role is named after this test database; each test creates it inside its own
transaction (CREATE ROLE is transactional in PostgreSQL), so the rollback at its end drops it again. ``SET ROLE``
makes the test's connection that role, as the web, the workers and beat are in production.
"""

import datetime as dt
import io
from contextlib import contextmanager

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from entitlements import services as imports
from entitlements.models import ConnectorRun, Grant
from evidence.checkpoints import checkpoint_create
from evidence.checks import connection_cannot_bypass_the_triggers
from evidence.models import ChainVerification, Checkpoint, EvidenceEvent
from evidence.selectors import chain_verify
from evidence.services import Actor, Subject, event_record, verification_request
from evidence.triggers import TABLE
from reviews import services as reviews
from reviews.models import Campaign, ReviewItem
from soxgov.roles import Role

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="database roles are PostgreSQL's"),
]

ACTOR = Actor.system("tests")
ACCESS_FILE = (
    "application,account_id,account_name,employee_id,email,account_status,last_used_at,entitlement_id,"
    "entitlement_name,entitlement_type,privileged\n"
    "ERP,bob,,E2,,enabled,,GL_POST,Post journal,role,true\n"
    "ERP,bob,,E2,,enabled,,AP_APPROVE,Approve payments,role,false\n"
    "ERP,svc-ledger,,SVC1,,disabled,,GL_POST,Post journal,role,true\n"
    "ERP,temp,,,,enabled,,GL_POST,Post journal,role,true\n"
)


def scalar(sql: str, params=()):
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def execute(sql: str, params=None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def grant_role(role: str) -> str:
    out = io.StringIO()
    call_command("db_app_role", "--role", role, stdout=out)
    return out.getvalue()


@pytest.fixture
def app_role(db) -> str:
    role = f"{connection.settings_dict['NAME']}_app"[:63]
    grant_role(role)
    return role


@contextmanager
def connected_as(role: str):
    execute(f"SET ROLE {connection.ops.quote_name(role)}")
    try:
        yield
    finally:
        if (
            not connection.needs_rollback
        ):  # else the rollback at the test's end resets it, and shows the error
            execute("RESET ROLE")


def refusal(sql: str) -> str:
    """The error PostgreSQL gives for ``sql``; a savepoint keeps the test's transaction usable."""
    with pytest.raises(DatabaseError) as caught, transaction.atomic():
        execute(sql)
    return str(caught.value)


# --- The command ------------------------------------------------------------------------------------------


def test_the_role_is_no_superuser_owns_nothing_and_may_only_read_and_insert_evidence(app_role):
    attributes = scalar(
        "SELECT ARRAY[rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls] "
        "FROM pg_roles WHERE rolname = %s",
        [app_role],
    )
    assert attributes == [True, False, False, False, False, False]
    assert scalar("SELECT count(*) FROM pg_class WHERE relowner = %s::regrole", [app_role]) == 0
    privileges = {
        privilege: scalar("SELECT has_table_privilege(%s, %s, %s)", [app_role, TABLE, privilege])
        for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "TRIGGER", "REFERENCES")
    }
    assert privileges == {
        "SELECT": True,
        "INSERT": True,
        "UPDATE": False,
        "DELETE": False,
        "TRUNCATE": False,
        "TRIGGER": False,
        "REFERENCES": False,
    }
    grants = Grant._meta.db_table
    assert scalar("SELECT has_table_privilege(%s, %s, 'UPDATE, DELETE')", [app_role, grants])
    assert not scalar("SELECT has_table_privilege(%s, %s, 'TRUNCATE')", [app_role, grants])
    assert scalar("SELECT has_database_privilege(%s, current_database(), 'CONNECT, TEMPORARY')", [app_role])
    assert not scalar("SELECT has_database_privilege(%s, current_database(), 'CREATE')", [app_role])
    event = EvidenceEvent.objects.get(action="db.app_role.granted")
    assert (event.actor_name, event.subject_id) == ("system:db_app_role", app_role)
    assert event.payload_data["append_only"] == [TABLE] and event.payload_data["created"] is True


def test_running_it_again_after_a_migration_covers_new_tables_and_takes_back_a_hand_made_grant(app_role):
    # What a later migration does (as the owner): a new table; and what a careless DBA might do.
    execute("CREATE TABLE soxgov_later_thing (id bigint PRIMARY KEY)")
    assert scalar("SELECT has_table_privilege(%s, 'soxgov_later_thing', 'INSERT, UPDATE')", [app_role])
    execute(f"GRANT UPDATE, DELETE, TRUNCATE ON {TABLE} TO {app_role}")

    out = grant_role(app_role)

    assert f"role {app_role}: exists" in out
    assert f"{TABLE} (append-only): SELECT, INSERT only" in out
    assert not scalar("SELECT has_table_privilege(%s, %s, 'UPDATE, DELETE, TRUNCATE')", [app_role, TABLE])
    assert scalar("SELECT has_table_privilege(%s, 'soxgov_later_thing', 'INSERT, UPDATE')", [app_role])
    assert EvidenceEvent.objects.filter(action="db.app_role.granted").count() == 2


def test_the_owner_itself_or_a_role_that_owns_a_table_is_refused(db):
    owner = scalar("SELECT current_user")
    with pytest.raises(CommandError, match="is the role running this command"):
        grant_role(owner)

    role = f"{connection.settings_dict['NAME']}_own"[:63]
    execute(f"CREATE ROLE {role}")
    execute(f"CREATE TABLE soxgov_owned_thing (id bigint) ; ALTER TABLE soxgov_owned_thing OWNER TO {role}")
    with pytest.raises(CommandError, match=f"{role} owns soxgov_owned_thing: .*REASSIGN OWNED BY {role}"):
        grant_role(role)
    assert not EvidenceEvent.objects.filter(action="db.app_role.granted").exists()


def test_a_bad_role_name_is_refused_naming_it(db):
    with pytest.raises(CommandError, match=r"role name 'App; DROP'"):
        grant_role("App; DROP")


# --- The role cannot switch off the triggers or change evidence --------------------------------------------


def test_the_app_role_cannot_disable_the_triggers_nor_skip_them_nor_change_an_event(app_role):
    event_record(actor=ACTOR, action="tests.thing.recorded", subject=Subject("tests.thing", "1", "thing"))
    with connected_as(app_role):
        assert "must be owner of table" in refusal(f"ALTER TABLE {TABLE} DISABLE TRIGGER ALL")
        assert "must be owner of table" in refusal(f"ALTER TABLE {TABLE} DISABLE TRIGGER USER")
        assert 'permission denied to set parameter "session_replication_role"' in refusal(
            "SET session_replication_role = replica"
        )
        assert "must be owner of" in refusal("DROP TRIGGER evidence_refuse_update_delete ON " + TABLE)
        # Nor can it replace the trigger function (no CREATE on the schema, PostgreSQL 15's default; nor owner).
        replaced = refusal(
            "CREATE OR REPLACE FUNCTION soxgov_evidence_refuse_change() RETURNS trigger AS "
            "$$ BEGIN RETURN NEW; END $$ LANGUAGE plpgsql"
        )
        assert "permission denied for schema" in replaced or "must be owner of function" in replaced
        for statement in (
            f"UPDATE {TABLE} SET payload = '{{}}'",
            f"DELETE FROM {TABLE}",
            f"TRUNCATE {TABLE}",
        ):
            assert f"permission denied for table {TABLE}" in refusal(statement), statement
        assert scalar("SELECT current_setting('session_replication_role')") == "origin"
    assert EvidenceEvent.objects.count() == 2  # the event and the command's own; nothing changed


# --- Everything the application does works as that role ---------------------------------------------------


def test_an_import_a_review_a_checkpoint_and_a_verification_work_as_the_app_role(
    app_role, company, make_user, make_person, settings, tmp_path, django_capture_on_commit_callbacks
):
    settings.SOXGOV_IMPORT_DIR = tmp_path / "store"
    # Every pull takes the bulk path, which would drop and re-add the grant table's foreign keys: only the
    # owner may, so as the app role it keeps them instead.
    settings.SOXGOV_IMPORT_BULK_GRANTS = 1
    path = tmp_path / "erp.csv"
    path.write_text(ACCESS_FILE)
    alice = make_user("alice", Role.ADMIN)
    rita = make_user("rita", Role.REVIEWER, email="rita@example.com")
    vic = make_person("vic", Role.REVIEWER)
    with connected_as(app_role):
        assert scalar("SELECT current_user") == app_role

        run = imports.run_create(kind="access", source=path, source_name=path.name, actor=ACTOR)
        run = imports.run_execute(run_id=run.pk)
        assert run.status == ConnectorRun.Status.APPLIED, run.error
        assert run.counts["grants"]["added"] == 2
        assert Grant.objects.filter(
            account__account_id="bob", entitlement__entitlement_id="AP_APPROVE"
        ).exists()

        today = timezone.localdate()
        campaign = Campaign.objects.create(
            name="Q4",
            start_on=today,
            due_on=today + dt.timedelta(days=14),
            created_by=alice,
            fallback_reviewer=vic,
        )
        campaign.applications.set([company["applications"]["erp"]])
        reviews.campaign_launch(campaign_id=campaign.pk, user=alice)
        bot = ReviewItem.objects.get(campaign=campaign, account_key="svc-ledger")
        assert reviews.decide(item_ids=[bot.pk], user=rita, certify=False, comment="retired") == 1

        assert checkpoint_create(reason=Checkpoint.Reason.MANUAL, actor=ACTOR) is not None
        with django_capture_on_commit_callbacks(execute=True):
            verification = verification_request(actor=ACTOR)
        verification.refresh_from_db()
        assert verification.status == ChainVerification.Status.INTACT, verification.detail

        out = io.StringIO()
        call_command(
            "export_evidence_pack",
            "--campaign",
            str(campaign.pk),
            "--out",
            str(tmp_path / "p.zip"),
            stdout=out,
        )
        assert (tmp_path / "p.zip").stat().st_size > 0
    assert chain_verify().intact
    assert EvidenceEvent.objects.filter(action="review.item.revoked").exists()


# --- The deploy check -------------------------------------------------------------------------------------


def test_the_deploy_check_warns_about_a_superuser_connection_and_not_about_the_app_role(app_role):
    warnings = connection_cannot_bypass_the_triggers(None)
    assert [w.id for w in warnings] and {w.id for w in warnings} == {"soxgov.W002"}
    assert any("is a superuser" in w.msg for w in warnings)
    with connected_as(app_role):
        assert connection_cannot_bypass_the_triggers(None) == []
