"""The connector framework with the SQL source: commands, pulls through the one pipeline, secrets.

The ERP is a real database (tests/connector_sources.py: a scratch schema on PostgreSQL, a SQLite file on SQLite)
that the source reads over its own connection.
"""

import json
import logging

import pytest
from cryptography.fernet import Fernet
from django.test import override_settings

from entitlements.connectors import secrets as secret_store
from entitlements.models import (
    Account,
    Application,
    Connector,
    ConnectorRun,
    ConnectorSecret,
    Grant,
    Identity,
)
from evidence.models import EvidenceEvent
from tests.connector_sources import SourceDatabase
from tests.imports.conftest import command
from tests.imports.conftest import snapshot as tables_snapshot

SECRET = "Pw-0f-the-ERP-reader!"


def snapshot() -> dict:
    """Identities, accounts, entitlements, grants and their history, and evidence other than the runs' own
    (a pull that changes nothing still records that it was queued, read its source and failed or was held)."""
    state = tables_snapshot()
    state["evidence"] = EvidenceEvent.objects.exclude(subject_type="entitlements.connectorrun").count()
    return state


@pytest.fixture(autouse=True)
def store(tmp_path):
    keys = [Fernet.generate_key().decode()]
    with override_settings(
        SOXGOV_IMPORT_DIR=tmp_path / "store",
        SOXGOV_SECRET_KEYS=keys,
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    ):
        yield tmp_path / "store"


@pytest.fixture
def erp(db, tmp_path, settings):
    source = SourceDatabase(tmp_path, settings)
    source.add_role("GL_POST", "Post journal", admin=True)
    source.add_role("AP_VIEW", "View payables")
    for n in range(1, 31):
        source.add_user(
            f"user{n:02}",
            employee_no=f"E{n:03}",
            email=f"user{n:02}@example.com",
            roles=["AP_VIEW", "GL_POST"] if n <= 5 else ["AP_VIEW"],
        )
    Application.objects.create(name="Ledger")
    yield source
    source.close()


def config_file(tmp_path, erp, **extra):
    path = tmp_path / "ledger.json"
    path.write_text(json.dumps(erp.config(**extra)))
    return path


def add(tmp_path, erp, *args, name="ledger-db", **extra):
    return command(
        "connector_add",
        "--name",
        name,
        "--kind",
        "sql",
        "--application",
        "Ledger",
        "--config",
        str(config_file(tmp_path, erp, **extra)),
        *args,
    )


def test_first_pull_change_and_the_removal_gate(erp, tmp_path):
    outcome = add(tmp_path, erp)
    assert outcome.code == 0, outcome
    assert "connector ledger-db (sql) created" in outcome.out

    first = command("connector_pull", "ledger-db")
    assert first.code == 0, first
    ledger = Application.objects.get(name="Ledger")
    assert Account.objects.filter(application=ledger).count() == 30
    assert Grant.objects.filter(account__application=ledger).count() == 35
    run = ConnectorRun.objects.get(connector__name="ledger-db")
    assert run.status == "applied" and run.rows_total == 35
    # The exact rows read are kept like an uploaded file's, under their SHA-256, and evidenced.
    stored = (tmp_path / "store" / f"{run.input_sha256}.csv").read_text()
    assert stored.splitlines()[0] == (
        "account_id,account_name,employee_id,account_status,entitlement_id,entitlement_name,privileged"
    )
    pulled = EvidenceEvent.objects.get(action="import.run.pulled", subject_id=str(run.pk))
    assert json.loads(pulled.payload)["access"]["rows"] == 35
    assert json.loads(pulled.payload)["access"]["input_sha256"] == run.input_sha256

    # The ERP changes: a role revoked, a user locked, a new hire.
    erp.revoke("user01", "GL_POST")
    erp.execute("UPDATE {s}users SET locked = 1 WHERE login = 'user02'")
    erp.add_user("user31", employee_no="E031", roles=["AP_VIEW"])
    second = command("connector_pull", "ledger-db")
    assert second.code == 0, second
    assert not Grant.objects.filter(
        account__account_id="user01", entitlement__entitlement_id="GL_POST"
    ).exists()
    assert Account.objects.get(application=ledger, account_id="user02").status == "disabled"
    assert Account.objects.filter(application=ledger, account_id="user31").exists()

    # Most users gone at the source (a broken view, a half-loaded table): held, nothing applied.
    erp.execute("DELETE FROM {s}user_roles WHERE login <> 'user03'")
    before = snapshot()
    held = command("connector_pull", "ledger-db")
    assert held.code == 3, held
    assert "held for approval" in held.err
    assert snapshot() == before


def test_unreachable_source_exits_2_and_changes_nothing(erp, tmp_path):
    assert add(tmp_path, erp).code == 0
    assert command("connector_pull", "ledger-db").code == 0
    # The database moves away (SQLite: a file that is not there; PostgreSQL: a database that does not exist).
    url = (
        f"sqlite:///{tmp_path}/sources/gone/erp.sqlite3"
        if erp.vendor == "sqlite"
        else erp.url.rsplit("/", 1)[0] + "/soxgov_no_such_database"
    )
    config = tmp_path / "moved.json"
    config.write_text(json.dumps({**erp.config(), "url": url}))
    assert command("connector_add", "--name", "ledger-db", "--config", str(config)).code == 0
    before = snapshot()
    outcome = command("connector_pull", "ledger-db")
    assert outcome.code == 2, outcome
    assert "cannot connect" in outcome.err
    assert snapshot() == before
    run = ConnectorRun.objects.filter(connector__name="ledger-db").order_by("-pk").first()
    assert (run.status, run.failure) == ("failed", "unreachable")
    assert command("connector_test", "ledger-db").code == 2


def test_a_query_error_is_refused_with_the_databases_message(erp, tmp_path):
    assert add(tmp_path, erp, access_query="SELECT login AS account_id FROM no_such_table").code == 0
    outcome = command("connector_pull", "ledger-db")
    assert outcome.code == 1, outcome
    assert "no_such_table" in outcome.err
    run = ConnectorRun.objects.get(connector__name="ledger-db")
    assert (run.status, run.failure) == ("failed", "source")
    assert not Account.objects.filter(application__name="Ledger").exists()


def test_identities_are_applied_before_access(erp, tmp_path):
    assert add(tmp_path, erp, identities=True).code == 0
    outcome = command("connector_pull", "ledger-db")
    assert outcome.code == 0, outcome
    access_run = ConnectorRun.objects.get(connector__name="ledger-db", kind="access")
    identities_run = ConnectorRun.objects.get(connector__name="ledger-db", kind="identities")
    assert identities_run.parent == access_run
    assert identities_run.status == access_run.status == "applied"
    assert identities_run.rows_total == 30
    # The accounts found the people the same read produced.
    bob = Account.objects.get(application__name="Ledger", account_id="user07")
    assert bob.identity == Identity.objects.get(employee_id="E007")
    applied = list(
        EvidenceEvent.objects.filter(action="import.run.applied")
        .order_by("sequence")
        .values_list("subject_id", flat=True)
    )
    assert applied == [str(identities_run.pk), str(access_run.pk)]


def test_dry_run_prints_the_diff_and_changes_nothing(erp, tmp_path):
    assert add(tmp_path, erp).code == 0
    assert command("connector_pull", "ledger-db").code == 0
    erp.revoke("user04", "GL_POST")
    before = snapshot()
    runs = ConnectorRun.objects.count()
    outcome = command("connector_pull", "ledger-db", "--dry-run")
    assert outcome.code == 0, outcome
    assert "nothing was changed" in outcome.out
    grants = next(line for line in outcome.out.splitlines() if line.strip().startswith("grants:"))
    assert "1 removed" in grants and "0 added" in grants
    assert "access.grant.removed" in outcome.out and "user04" in outcome.out
    assert snapshot() == before
    assert ConnectorRun.objects.count() == runs


def test_a_dry_run_reads_its_source_before_its_transaction(erp, tmp_path, monkeypatch):
    """The read may take minutes; inside the dry run's transaction it would hold the evidence chain's lock (taken
    by the run's first event) and stall every other evidence write meanwhile."""
    from django.db import connection

    from entitlements import pulls

    assert add(tmp_path, erp).code == 0
    depth_at_start = len(connection.savepoint_ids)  # the test's own transaction, if any
    depths = []
    read = pulls.read_copies

    def spy(*args, **kwargs):
        depths.append(len(connection.savepoint_ids))
        return read(*args, **kwargs)

    monkeypatch.setattr(pulls, "read_copies", spy)
    outcome = command("connector_pull", "ledger-db", "--dry-run")
    assert outcome.code == 0, outcome
    assert depths == [depth_at_start]


def test_connector_test_counts_and_changes_nothing(erp, tmp_path):
    assert add(tmp_path, erp, identities=True).code == 0
    before = snapshot()
    outcome = command("connector_test", "ledger-db")
    assert outcome.code == 0, outcome
    assert "30 accounts, 2 entitlements, 35 grants, 30 identities" in outcome.out
    assert "access: account_id=user01" in outcome.out
    assert snapshot() == before
    assert not ConnectorRun.objects.exists()


def test_connector_add_names_every_problem_and_saves_nothing(erp, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"url": "postgresql://reader:pw@db/erp", "acces_query": "SELECT 1"}))
    events = EvidenceEvent.objects.count()
    outcome = command(
        "connector_add",
        "--name",
        "bad",
        "--kind",
        "sql",
        "--config",
        str(bad),
        "--secret",
        "pasword=env:X",
        "--cron",
        "every night",
    )
    assert outcome.code == 1
    for problem in (
        "cron: Use five fields",
        "application: A source connector feeds an application",
        "configuration: acces_query: is not a setting of a SQL connector",
        "configuration: url: must not contain a password",
        "configuration: access_query: is required",
        "secrets: secrets: 'pasword' is not a secret of a SQL connector",
    ):
        assert problem in outcome.err, outcome.err
    assert not Connector.objects.exists()
    assert EvidenceEvent.objects.count() == events
    missing = command(
        "connector_add", "--name", "x", "--kind", "sql", "--config", str(tmp_path / "nope.json")
    )
    assert missing.code == 1 and "nope.json: No such file" in missing.err


def test_raising_a_threshold_is_only_proposed(erp, tmp_path, make_user):
    from soxgov.roles import Role

    alice = make_user("alice", Role.ADMIN)
    assert add(tmp_path, erp).code == 0
    no_user = command("connector_add", "--name", "ledger-db", "--deletion-threshold-percent", "90")
    assert no_user.code == 1 and "--user" in no_user.err
    raised = command(
        "connector_add", "--name", "ledger-db", "--deletion-threshold-percent", "90", "--user", "alice"
    )
    assert raised.code == 0, raised
    assert "proposed as change" in raised.out
    connector = Connector.objects.get(name="ledger-db")
    assert connector.deletion_threshold_percent == 10  # still the default: a second admin must approve
    lowered = command(
        "connector_add", "--name", "ledger-db", "--deletion-threshold-count", "5", "--user", "alice"
    )
    assert lowered.code == 0
    connector.refresh_from_db()
    assert connector.deletion_threshold_count == 5
    assert alice.pk


def test_secrets_stay_secret(erp, tmp_path, monkeypatch, caplog):
    """A literal secret (read from stdin, stored encrypted) and a reference: the value shows up nowhere."""
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO(SECRET + "\n"))
    caplog.set_level(logging.DEBUG)
    assert add(tmp_path, erp, "--secret", "password=-").code == 0
    secret = ConnectorSecret.objects.get(connector__name="ledger-db", name="password")
    assert secret.kind == "encrypted" and SECRET not in secret.ciphertext
    assert secret_store.reveal(secret) == SECRET
    outcomes = [command("connector_pull", "ledger-db"), command("connector_test", "ledger-db")]
    # A password the server refuses (PostgreSQL) / a file that is not there: the error names neither.
    config = tmp_path / "moved.json"
    url = (
        f"sqlite:///{tmp_path}/sources/gone.sqlite3"
        if erp.vendor == "sqlite"
        else erp.url.replace("@", "x@", 1)
    )
    config.write_text(json.dumps({**erp.config(), "url": url}))
    outcomes.append(command("connector_add", "--name", "ledger-db", "--config", str(config)))
    outcomes.append(command("connector_pull", "ledger-db"))
    assert outcomes[-1].code == 2
    for outcome in outcomes:
        assert SECRET not in outcome.out + outcome.err
    for event in EvidenceEvent.objects.all():
        assert SECRET not in event.payload
    changed = EvidenceEvent.objects.filter(action="config.connector.created").get()
    assert json.loads(changed.payload)["secrets_changed"] == ["password"]
    for run in ConnectorRun.objects.all():
        assert SECRET not in run.error + json.dumps(run.problems)
    assert SECRET not in caplog.text


def test_secret_references_and_missing_keys(erp, tmp_path, monkeypatch):
    import io

    monkeypatch.setenv("LEDGER_DB_PASSWORD", SECRET)
    monkeypatch.setattr("sys.stdin", io.StringIO(SECRET + "\n"))
    with override_settings(SOXGOV_SECRET_KEYS=[]):
        literal = add(tmp_path, erp, "--secret", "password=-")
        assert literal.code == 1 and "SOXGOV_SECRET_KEYS is not set" in literal.err
        assert add(tmp_path, erp, "--secret", "password=env:LEDGER_DB_PASSWORD").code == 0
    secret = ConnectorSecret.objects.get(connector__name="ledger-db")
    assert (secret.kind, secret.ciphertext) == ("env", "")
    assert secret_store.reveal(secret) == SECRET
    monkeypatch.delenv("LEDGER_DB_PASSWORD")
    outcome = command("connector_pull", "ledger-db")
    assert outcome.code == 2
    assert "environment variable LEDGER_DB_PASSWORD is not set" in outcome.err
    relative = command("connector_add", "--name", "ledger-db", "--secret", "password=file:secret.txt")
    assert relative.code == 1 and "file: needs an absolute path" in relative.err


def test_rotation_re_encrypts_with_the_first_key(erp, tmp_path, monkeypatch):
    import io

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    with override_settings(SOXGOV_SECRET_KEYS=[old]):
        monkeypatch.setattr("sys.stdin", io.StringIO(SECRET + "\n"))
        assert add(tmp_path, erp, "--secret", "password=-").code == 0
    before = ConnectorSecret.objects.get().ciphertext
    with override_settings(SOXGOV_SECRET_KEYS=[new, old]):
        outcome = command("connector_secrets_rotate")
        assert outcome.code == 0 and "1 secret(s) re-encrypted" in outcome.out
    secret = ConnectorSecret.objects.get()
    assert secret.ciphertext != before
    with override_settings(SOXGOV_SECRET_KEYS=[new]):
        assert secret_store.reveal(secret) == SECRET
    with (
        override_settings(SOXGOV_SECRET_KEYS=[old]),
        pytest.raises(secret_store.SourceUnreachable, match="cannot be decrypted"),
    ):
        secret_store.reveal(secret)
    rotated = EvidenceEvent.objects.get(action="config.connector.secrets.rotated")
    assert json.loads(rotated.payload) == {"secrets": 1, "connectors": ["ledger-db"]}


def test_a_manual_identities_upload_takes_a_stricter_source_connectors_thresholds(erp, tmp_path, make_user):
    """A source that feeds identities guards them against a hand upload as an identities file connector does."""
    from soxgov.roles import Role

    make_user("alice", Role.ADMIN)
    assert add(tmp_path, erp, identities=True).code == 0
    assert command("connector_pull", "ledger-db").code == 0
    stricter = ("--deletion-threshold-percent", "1", "--deletion-threshold-count", "1", "--user", "alice")
    assert command("connector_add", "--name", "ledger-db", *stricter).code == 0
    upload = tmp_path / "people.csv"
    upload.write_text("employee_id,display_name\n" + "".join(f"E{n:03},User {n}\n" for n in range(1, 28)))
    held = command("import_identities", str(upload))
    assert held.code == 3, held  # 3 of 30 absent: over 1% and 1 (the defaults, 10% and 20, would apply it)
    assert "would terminate 3 of 30" in held.err


def test_dry_run_of_a_file_connector(db, tmp_path, settings):
    """--dry-run serves every kind: a file connector's file is read, diffed and rolled back too."""
    settings.SOXGOV_CONNECTOR_FILE_ROOTS = [tmp_path]
    Application.objects.create(name="Ledger")
    export = tmp_path / "ledger.csv"
    export.write_text("account_id,entitlement_id\nbob,GL_POST\n")
    config = tmp_path / "file.json"
    config.write_text(json.dumps({"path": str(export)}))
    args = (
        "--name",
        "ledger-file",
        "--kind",
        "access_file",
        "--application",
        "Ledger",
        "--config",
        str(config),
    )
    assert command("connector_add", *args).code == 0
    before = snapshot()
    outcome = command("connector_pull", "ledger-file", "--dry-run")
    assert outcome.code == 0, outcome
    assert "access.grant.added" in outcome.out
    assert snapshot() == before and not ConnectorRun.objects.exists()
