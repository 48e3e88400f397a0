"""Shared fixtures. Personas make permission tests read like sentences:

alice the admin, rita the reviewer, oscar the control owner, audrey the auditor, mallory who has no role.
"""

import contextlib
import datetime as dt

import pytest
from django.db import connection
from django.utils import timezone

from evidence import triggers
from soxgov.roles import Role


def create_user(username, *roles, email=None, **extra):
    """A user with the conftest password and ``roles`` (admins are staff too)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    user = get_user_model().objects.create_user(
        username=username,
        email=email or f"{username}@example.com",
        password="correct horse battery",
        **extra,
    )
    user.groups.set(Group.objects.filter(name__in=[r.value for r in roles]))
    if Role.ADMIN in roles:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    return user


# Servers the session starts once per test process (each pytest-xdist worker is one): the tests that use one go to
# the same worker (`make test` runs --dist loadgroup), so each is started once per run, not once per worker.
# Samba provisions a domain controller (10-45 s); MariaDB initialises a data directory.
SERVER_GROUPS = {
    "samba": "directories",
    "slapd": "directories",
    "mariadb_server": "mariadb",
    "erp_server": "mariadb",
    "scim_process": "scim",
}


def pytest_collection_modifyitems(config, items):
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        if item.get_closest_marker("xdist_group"):
            continue
        group = next((SERVER_GROUPS[name] for name in item.fixturenames if name in SERVER_GROUPS), None)
        if group is None and item.path.parent.name == "faults":
            group = f"faults-{item.path.stem}"  # a Redis and a Celery worker per module
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))


@pytest.fixture
def make_user(db):
    return create_user


@pytest.fixture
def make_person(make_user):
    """make_user for someone SOXGov knows as a person: an identity with the user's e-mail comes first, so the
    user is linked to it. Answering a case (a violation, an exception, a remediation) needs one."""
    from entitlements.models import Identity

    def make(username, *roles, email=None, **extra):
        email = email or f"{username}@example.com"
        if not Identity.objects.filter(email__iexact=email).exists():
            Identity.objects.create(employee_id=f"U-{username}", email=email, display_name=username.title())
        return make_user(username, *roles, email=email, **extra)

    return make


@pytest.fixture
def company(db):
    """A tiny company: a manager, her report, a service account she owns, two applications, grants."""
    return build_company()


def build_company() -> dict:
    from entitlements.models import Account, Application, Entitlement, Grant, Identity

    now = timezone.now()
    rita = Identity.objects.create(employee_id="E1", email="rita@example.com", display_name="Rita Reviewer")
    bob = Identity.objects.create(
        employee_id="E2", email="bob@example.com", display_name="Bob Builder", manager=rita
    )
    carol = Identity.objects.create(employee_id="E3", email="carol@example.com", display_name="Carol Other")
    bot = Identity.objects.create(
        employee_id="SVC1", display_name="ledger-sync", kind=Identity.Kind.SERVICE, owner=rita
    )
    erp = Application.objects.create(name="ERP", sox_in_scope=True, criticality="critical", owner=carol)
    crm = Application.objects.create(name="CRM", owner=rita)
    post = Entitlement.objects.create(
        application=erp, entitlement_id="GL_POST", name="Post journal", privileged=True
    )
    view = Entitlement.objects.create(application=crm, entitlement_id="CRM_VIEW", name="View customers")
    accounts = {
        "bob_erp": Account.objects.create(application=erp, account_id="bob", identity=bob, first_seen=now),
        "carol_erp": Account.objects.create(
            application=erp, account_id="carol", identity=carol, first_seen=now
        ),
        "bot_erp": Account.objects.create(
            application=erp, account_id="svc-ledger", identity=bot, first_seen=now
        ),
        "orphan_crm": Account.objects.create(application=crm, account_id="ghost", first_seen=now),
    }
    for account, entitlement in [
        (accounts["bob_erp"], post),
        (accounts["carol_erp"], post),
        (accounts["bot_erp"], post),
        (accounts["orphan_crm"], view),
    ]:
        Grant.objects.create(account=account, entitlement=entitlement, first_seen=now)
    return {
        "identities": {"rita": rita, "bob": bob, "carol": carol, "bot": bot},
        "applications": {"erp": erp, "crm": crm},
        "entitlements": {"post": post, "view": view},
        "accounts": accounts,
        "today": timezone.localdate(),
        "yesterday": timezone.localdate() - dt.timedelta(days=1),
    }


@pytest.fixture
def personas(db, company):
    """Users for each role; rita's user is linked (by e-mail) to the identity Rita Reviewer."""
    return build_personas()


def build_personas() -> dict:
    return {
        "alice": create_user("alice", Role.ADMIN),
        "rita": create_user("rita", Role.REVIEWER, email="rita@example.com"),
        "oscar": create_user("oscar", Role.CONTROL_OWNER),
        "audrey": create_user("audrey", Role.AUDITOR),
        "mallory": create_user("mallory"),
    }


@pytest.fixture
def committed_db(transactional_db):
    """A database whose writes really commit (for threads and a real Celery worker).

    Django empties every table between such tests, but the evidence table refuses DELETE and a non-empty
    TRUNCATE. So afterwards we do what a DBA would: disable the triggers, empty the table, restore them.
    """
    yield
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"ALTER TABLE {triggers.TABLE} DISABLE TRIGGER USER")
            cursor.execute(f"DELETE FROM {triggers.TABLE}")
            cursor.execute(f"ALTER TABLE {triggers.TABLE} ENABLE TRIGGER USER")
        else:
            for statement in triggers.SQLITE_REMOVE:
                cursor.execute(statement)
            cursor.execute(f"DELETE FROM {triggers.TABLE}")
            for statement in triggers.SQLITE_INSTALL:
                cursor.execute(statement)


@pytest.fixture(autouse=True)
def _celery_eager_unless_worker_test(request):
    """Run Celery tasks in-process, as the embedded default does, even when REDIS_URL is set for the suite.

    Only tests marked ``worker`` talk to the real broker and worker.
    """
    from soxgov.celery import app

    if request.node.get_closest_marker("worker"):
        yield
        return
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


FAST_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """PBKDF2 at Django's iterations costs about 0.4 s of CPU per password, and most tests make users: the
    suite took three times as long. Tests of hashing itself set their own hashers."""
    settings.PASSWORD_HASHERS = FAST_HASHERS


@pytest.fixture(autouse=True)
def _private_checkpoint_dir(settings, tmp_path):
    """Each test writes its external checkpoints to its own directory (they are files, not rolled back)."""
    settings.SOXGOV_CHECKPOINT_DIR = tmp_path / "checkpoints"


@pytest.fixture(scope="session")
def session_signing_key() -> bytes:
    """One Ed25519 private key (PEM) for the whole run: tests run with DEBUG off (pytest-django), where
    SOXGov signs only with a configured key."""
    from evidence.signing import new_private_key_pem

    return new_private_key_pem()


@pytest.fixture(autouse=True)
def _configured_signing_key(settings, session_signing_key, tmp_path):
    settings.SOXGOV_SIGNING_KEY = session_signing_key
    settings.SOXGOV_SIGNING_RETIRED_PUBLIC_KEYS = []
    settings.SOXGOV_SIGNING_GENERATED_KEY_FILE = tmp_path / "signing" / "ed25519-key.pem"


@pytest.fixture(scope="module")
def module_transaction(django_db_setup, django_db_blocker, session_signing_key, tmp_path_factory):
    """A transaction open from the module's first test that asks for it to the module's end, then rolled back:
    Django's setUpTestData for pytest. Rows written in it are there for each test, whose own transaction (``db``)
    is a savepoint inside it and rolls back to it, so a test's writes still never reach the next test; building
    a rich fixture once per module instead of once per test saves most of such a module's time.

    Yields a context manager under which a module-scoped fixture writes its rows with what the autouse fixtures
    give a test (database access, the fast hasher, the signing key, private directories, eager Celery). A
    module using it must not mix in transactional tests, which need to commit.
    """
    from django.db import transaction
    from django.test import override_settings

    from soxgov.celery import app

    directory = tmp_path_factory.mktemp("module-data")

    @contextlib.contextmanager
    def writing():
        previous = app.conf.task_always_eager
        app.conf.task_always_eager = True
        try:
            with (
                django_db_blocker.unblock(),
                override_settings(
                    PASSWORD_HASHERS=FAST_HASHERS,
                    SOXGOV_SIGNING_KEY=session_signing_key,
                    SOXGOV_SIGNING_RETIRED_PUBLIC_KEYS=[],
                    SOXGOV_SIGNING_GENERATED_KEY_FILE=directory / "signing" / "ed25519-key.pem",
                    SOXGOV_CHECKPOINT_DIR=directory / "checkpoints",
                ),
            ):
                yield
        finally:
            app.conf.task_always_eager = previous

    with django_db_blocker.unblock():
        atomic = transaction.atomic()
        atomic.__enter__()
    try:
        yield writing
    finally:
        with django_db_blocker.unblock():
            transaction.set_rollback(True)
            atomic.__exit__(None, None, None)


@contextlib.contextmanager
def other_session_holding(kind, pk):
    """A second database session (a live worker, as far as leases go) holding the lease ``(kind, pk)``."""
    import psycopg2

    params = connection.get_connection_params()
    other = psycopg2.connect(**params)
    try:
        other.autocommit = True
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", [int(kind), int(pk)])
        yield
    finally:
        other.close()


@pytest.fixture(scope="session")
def slapd(tmp_path_factory):
    """A real OpenLDAP slapd for the session on a free loopback port, loaded from tests/fixtures/ldap/openldap.ldif
    (StartTLS and ldaps:// too, with a CA of its own). Tests that change it put it back."""
    from tests import ldap_servers

    if not ldap_servers.slapd_available():
        pytest.skip("OpenLDAP's slapd is not installed (Debian: apt-get install slapd)")
    directory = ldap_servers.start_slapd(
        tmp_path_factory.mktemp("slapd"), ldap_servers.FIXTURES / "openldap.ldif", tls=True
    )
    yield directory
    directory.stop()


@pytest.fixture(scope="session")
def samba(tmp_path_factory):
    """A real Samba AD DC for the session (provisioned, about 10 s), loaded from tests/fixtures/ldap/samba-ad.ldif,
    on a loopback address of its own. Ben signs in once, so the DC records his lastLogonTimestamp."""
    from tests import ldap_servers

    if not ldap_servers.samba_available():
        pytest.skip("Samba is not installed (Debian: apt-get install samba samba-ad-dc winbind krb5-user)")
    directory = ldap_servers.start_samba(
        tmp_path_factory.mktemp("samba") / "dc", ldap_servers.FIXTURES / "samba-ad.ldif"
    )
    import ldap

    conn = ldap.initialize(directory.url)
    conn.simple_bind_s("bokoro@soxtest.local", "Ben-Pass-2026!")
    conn.unbind_s()
    yield directory
    directory.stop()
