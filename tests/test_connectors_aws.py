"""The AWS source (entitlements/connectors/aws.py) against moto's server mode on loopback: IAM users, the root user,
roles, groups, managed and inline policies, the credential report, a second account reached by an assumed role,
IAM Identity Center, throttling, permission errors, and pulls through the one pipeline."""

from __future__ import annotations

import json

import pytest
from cryptography.fernet import Fernet
from django.test import override_settings

from entitlements.connectors.aws import AwsSource, document_privileged
from entitlements.connectors.http import SourcePermissionDenied
from entitlements.connectors.sources import SourceTimeout, SourceUnreachable, source_class
from entitlements.models import Account, Application, ConnectorRun, Entitlement, Grant, Identity
from evidence.models import EvidenceEvent
from tests.aws_server import HOME, KEY_ID, OTHER, SECRET_KEY, Moto, ThrottlingProxy
from tests.imports.conftest import command
from tests.imports.conftest import snapshot as tables_snapshot

pytest.importorskip("moto", reason="moto[server] is a dev dependency (pip install -e '.[dev]')")

ADMIN = "arn:aws:iam::aws:policy/AdministratorAccess"
READ_ONLY = "arn:aws:iam::aws:policy/ReadOnlyAccess"
SECRETS = {"access_key_id": KEY_ID, "secret_access_key": SECRET_KEY}


def policy(*statements) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action, resource="*") -> dict:
    return {"Effect": "Allow", "Action": action, "Resource": resource}


def trust(**principal) -> str:
    return policy({"Effect": "Allow", "Principal": principal, "Action": "sts:AssumeRole"})


@pytest.fixture(scope="module")
def moto_server():
    server = Moto()
    yield server
    server.stop()


@pytest.fixture
def moto(moto_server):
    moto_server.reset()
    yield moto_server
    moto_server.reset()


def seed(moto, iam=None) -> None:
    """A small AWS account: admins and readers, a policy allowing everything, an inline IAM write, a role
    assumable by a user and by EC2, a break-glass role, a user with neither password nor keys."""
    iam = iam or moto.client("iam")
    arn = lambda kind, name: f"arn:aws:iam::{HOME}:{kind}/{name}"  # noqa: E731
    for name, tags in (
        ("alice", [{"Key": "employee_id", "Value": "E001"}, {"Key": "email", "Value": "alice@example.com"}]),
        ("bob@example.com", [{"Key": "employee_id", "Value": "E002"}]),
        ("carol", []),
    ):
        iam.create_user(UserName=name, Tags=tags)
    iam.create_login_profile(UserName="alice", Password="Example-Passw0rd!")
    iam.create_access_key(UserName="bob@example.com")
    iam.create_group(GroupName="Admins")
    iam.attach_group_policy(GroupName="Admins", PolicyArn=ADMIN)
    iam.create_group(GroupName="Readers")
    billing = iam.create_policy(
        PolicyName="ReadBilling", PolicyDocument=policy(allow(["ce:Get*", "ce:List*"]))
    )
    iam.attach_group_policy(GroupName="Readers", PolicyArn=billing["Policy"]["Arn"])
    iam.add_user_to_group(GroupName="Admins", UserName="alice")
    iam.add_user_to_group(GroupName="Readers", UserName="bob@example.com")
    everything = iam.create_policy(PolicyName="StarStar", PolicyDocument=policy(allow("*")))
    iam.attach_user_policy(UserName="bob@example.com", PolicyArn=everything["Policy"]["Arn"])
    iam.put_user_policy(
        UserName="alice", PolicyName="tweak-users", PolicyDocument=policy(allow("iam:Put*", arn("user", "*")))
    )
    iam.create_role(
        RoleName="deploy",
        AssumeRolePolicyDocument=policy(
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"},
            {"Effect": "Allow", "Principal": {"AWS": arn("user", "alice")}, "Action": "sts:AssumeRole"},
        ),
        Tags=[{"Key": "owner", "Value": "E001"}],
    )
    deploy = iam.create_policy(PolicyName="DeployArtifacts", PolicyDocument=policy(allow("s3:PutObject")))
    iam.attach_role_policy(RoleName="deploy", PolicyArn=deploy["Policy"]["Arn"])
    iam.create_role(
        RoleName="break-glass", AssumeRolePolicyDocument=trust(AWS=arn("user", "bob@example.com"))
    )
    iam.attach_role_policy(RoleName="break-glass", PolicyArn=ADMIN)


def read(url, config=None, secrets=None, what="access"):
    source = AwsSource({"endpoint_url": url, **(config or {})}, SECRETS if secrets is None else secrets)
    try:
        return list(getattr(source, what)())
    finally:
        source.close()


def grants_of(rows) -> dict[str, dict[str, str]]:
    """account id -> {entitlement id: privileged}."""
    out: dict[str, dict[str, str]] = {}
    for row in rows:
        out.setdefault(row["account_id"], {})
        if row["entitlement_id"]:
            out[row["account_id"]][row["entitlement_id"]] = row["privileged"]
    return out


# --- Configuration --------------------------------------------------------------------------------------------


def test_the_kind_is_registered():
    assert source_class("aws") is AwsSource


def test_validate_names_every_problem():
    problems = AwsSource.validate(
        {
            "region": "mars",
            "endpoint_url": "ftp://x",
            "accounts": [{"account_id": "12", "role_arn": "arn:aws:iam::111122223333:role/R"}, "x"],
            "organizations": True,
            "identity_center": {"instance": "x"},
            "privileged_policies": "AdministratorAccess",
            "identities": "yes",
            "max_attempts": 0,
            "colour": "blue",
        },
        {"access_key_id", "token"},
    )
    assert problems == [
        "colour: is not a setting of an AWS connector",
        "region: must be an AWS region such as us-east-1 or us-gov-west-1",
        "endpoint_url: must be an http(s) URL, e.g. https://iam.us-gov.amazonaws.com",
        "accounts: give a list of accounts or organizations: true, not both",
        "role_name: organizations needs the name of the role to assume in each account",
        "accounts[0].account_id: must be the 12-digit AWS account id (as text)",
        "accounts[1]: must be an object with account_id and role_arn",
        "identity_center.instance: is not a setting (use instance_arn, identity_store_id, region)",
        'privileged_policies: must be a list of policy names, e.g. ["BillingFullAccess"]',
        "identities: must be true or false",
        "max_attempts: must be a whole number from 1 to 20",
        "secrets: 'token' is not a secret of an AWS connector",
        "secrets: give both access_key_id and secret_access_key, or neither (the default credential chain)",
    ]
    assert AwsSource.validate({}, set()) == []  # the default chain, the credentials' own account
    assert AwsSource.validate({"region": "us-gov-west-1"}, {"access_key_id", "secret_access_key"}) == []
    mismatch = AwsSource.validate(
        {"accounts": [{"account_id": OTHER, "role_arn": f"arn:aws:iam::{HOME}:role/R"}]}, set()
    )
    assert mismatch == [f"accounts[0].role_arn: is a role of {HOME}, not of {OTHER}"]


def test_what_makes_a_policy_privileged():
    assert document_privileged(policy(allow("*")))
    assert document_privileged({"Statement": allow("iam:*", "arn:aws:iam::123456789012:user/x")})
    assert document_privileged(policy(allow(["s3:GetObject", "iam:Attach*"])))
    assert document_privileged(policy({"Effect": "Allow", "NotAction": "iam:*", "Resource": "*"}))
    assert not document_privileged(policy(allow(["iam:Get*", "iam:List*", "s3:*"])))
    assert not document_privileged(policy({"Effect": "Deny", "Action": "*", "Resource": "*"}))
    assert not document_privileged(None)


# --- Reading --------------------------------------------------------------------------------------------------


def test_reads_users_root_roles_groups_and_policies(moto):
    seed(moto)
    rows = read(moto.url)
    grants = grants_of(rows)
    assert grants[f"{HOME}:root"] == {f"{HOME}:root": "true"}
    assert grants[f"{HOME}:user/alice"] == {
        f"{HOME}:group/Admins": "true",  # AdministratorAccess attached to the group
        f"{HOME}:user/alice/inline-policy/tweak-users": "true",  # IAM write
        f"{HOME}:role/deploy": "false",  # alice may assume deploy (its trust policy names her)
    }
    assert grants[f"{HOME}:user/bob@example.com"] == {
        f"{HOME}:group/Readers": "false",
        f"{HOME}:policy/StarStar": "true",  # "*" on "*"
        f"{HOME}:role/break-glass": "true",
    }
    assert grants[f"{HOME}:user/carol"] == {}  # an account all the same
    assert grants[f"{HOME}:role/deploy"] == {f"{HOME}:policy/DeployArtifacts": "false"}
    assert grants[f"{HOME}:role/break-glass"] == {f"{HOME}:policy/AdministratorAccess": "true"}
    by_account = {row["account_id"]: row for row in rows}
    alice, bob, carol = (by_account[f"{HOME}:user/{n}"] for n in ("alice", "bob@example.com", "carol"))
    assert (alice["employee_id"], alice["email"], alice["account_status"]) == (
        "E001",
        "alice@example.com",
        "enabled",
    )
    # No e-mail tag: a user name that is an address is one. An active key: enabled.
    assert (bob["employee_id"], bob["email"], bob["account_status"]) == ("E002", "bob@example.com", "enabled")
    # No console password and no active key: still an account, disabled.
    assert carol["account_status"] == "disabled"
    names = {row["entitlement_id"]: (row["entitlement_name"], row["entitlement_type"]) for row in rows}
    assert names[f"{HOME}:group/Admins"] == ("Admins", "group")
    assert names[f"{HOME}:policy/AdministratorAccess"] == ("AdministratorAccess (AWS managed)", "permission")
    assert names[f"{HOME}:role/break-glass"] == ("assume role break-glass", "role")


def test_non_human_identities_when_asked(moto):
    seed(moto)
    assert read(moto.url, {"identities": True}, what="identities") == [
        {
            "employee_id": moto.client("iam").get_role(RoleName="deploy")["Role"]["RoleId"],
            "display_name": f"deploy ({HOME})",
            "title": f"AWS role assumable by arn:aws:iam::{HOME}:user/alice, ec2.amazonaws.com",
            "status": "active",
            "kind": "service",
            "owner_employee_id": "E001",
        }
    ]  # break-glass has no owner tag: no identity, its account stays an orphan
    assert read(moto.url, what="identities") == []


def test_last_used_from_the_credential_report(moto):
    seed(moto)
    source = AwsSource({"endpoint_url": moto.url}, SECRETS)
    iam = source._client(source._base_session(), "iam")
    report = source._credential_report(iam, HOME)
    source.close()
    assert {"alice", "bob@example.com", "carol"} <= set(report)  # (moto's report has no root user line)
    assert (report["alice"]["password_enabled"], report["carol"]["password_enabled"]) == ("true", "false")
    line = {
        "password_last_used": "2026-11-02T08:00:00+00:00",
        "access_key_1_last_used_date": "2026-11-30T17:45:00+00:00",
        "access_key_2_last_used_date": "N/A",
    }
    from entitlements.connectors.aws import _latest, _user_status

    assert _latest(line) == "2026-11-30T17:45:00+00:00"
    assert _latest({"password_last_used": "no_information"}) == ""
    assert _user_status({"password_enabled": "false", "access_key_1_active": "false"}) == "disabled"
    assert _user_status({"password_enabled": "false", "access_key_2_active": "true"}) == "enabled"


def test_a_second_account_through_an_assumed_role(moto):
    seed(moto)
    other = moto.in_account(OTHER, "iam")
    other.create_user(UserName="dave", Tags=[{"Key": "employee_id", "Value": "E004"}])
    other.create_group(GroupName="Auditors")
    other.attach_group_policy(GroupName="Auditors", PolicyArn=READ_ONLY)
    other.add_user_to_group(GroupName="Auditors", UserName="dave")
    config = {
        "accounts": [
            {"account_id": HOME},
            {
                "account_id": OTHER,
                "role_arn": f"arn:aws:iam::{OTHER}:role/SOXGovRead",
                "external_id": "soxgov",
            },
        ]
    }
    grants = grants_of(read(moto.url, config))
    assert grants[f"{OTHER}:user/dave"] == {f"{OTHER}:group/Auditors": "false"}
    assert f"{HOME}:user/alice" in grants and f"{OTHER}:root" in grants
    assert f"{OTHER}:user/alice" not in grants  # each account's own users
    wrong = {"accounts": [{"account_id": OTHER}]}
    with pytest.raises(Exception, match=f"{OTHER} has no role_arn and the credentials are of {HOME}"):
        read(moto.url, wrong)


def test_identity_center_users_groups_and_assignments(moto):
    admin, store = moto.client("sso-admin"), moto.client("identitystore")
    instance = admin.list_instances()["Instances"][0]
    instance_arn, store_id = instance["InstanceArn"], instance["IdentityStoreId"]
    erin = store.create_user(
        IdentityStoreId=store_id,
        UserName="erin",
        DisplayName="Erin Example",
        Name={"GivenName": "Erin", "FamilyName": "Example"},
        Emails=[{"Value": "erin@example.com", "Primary": True}],
    )["UserId"]
    frank = store.create_user(
        IdentityStoreId=store_id,
        UserName="frank",
        DisplayName="Frank",
        Name={"GivenName": "F", "FamilyName": "X"},
    )["UserId"]
    finance = store.create_group(IdentityStoreId=store_id, DisplayName="Finance")["GroupId"]
    store.create_group_membership(IdentityStoreId=store_id, GroupId=finance, MemberId={"UserId": frank})
    admins = admin.create_permission_set(InstanceArn=instance_arn, Name="Admins")["PermissionSet"][
        "PermissionSetArn"
    ]
    admin.attach_managed_policy_to_permission_set(
        InstanceArn=instance_arn, PermissionSetArn=admins, ManagedPolicyArn=ADMIN
    )
    readers = admin.create_permission_set(InstanceArn=instance_arn, Name="Readers")["PermissionSet"][
        "PermissionSetArn"
    ]
    admin.put_inline_policy_to_permission_set(
        InstanceArn=instance_arn, PermissionSetArn=readers, InlinePolicy=policy(allow("s3:Get*"))
    )
    for permission_set, principal_type, principal in ((admins, "USER", erin), (readers, "GROUP", finance)):
        admin.provision_permission_set(
            InstanceArn=instance_arn, PermissionSetArn=permission_set, TargetType="AWS_ACCOUNT", TargetId=HOME
        )
        admin.create_account_assignment(
            InstanceArn=instance_arn,
            TargetId=HOME,
            TargetType="AWS_ACCOUNT",
            PermissionSetArn=permission_set,
            PrincipalType=principal_type,
            PrincipalId=principal,
        )
    rows = [
        row
        for row in read(moto.url, {"identity_center": {}})
        if row["account_id"].startswith("identity-center:")
    ]
    grants = grants_of(rows)
    assert grants[f"identity-center:user/{erin}"] == {f"{HOME}:permission-set/Admins": "true"}
    # The group's assignment is each member's access.
    assert grants[f"identity-center:user/{frank}"] == {
        "identity-center:group/Finance": "false",
        f"{HOME}:permission-set/Readers": "false",
    }
    emails = {row["account_name"]: row["email"] for row in rows}
    assert emails == {"erin": "erin@example.com", "frank": ""}


# --- Failures ---------------------------------------------------------------------------------------------------


def test_throttling_mid_pull_is_retried(moto):
    seed(moto)
    proxy = ThrottlingProxy(moto.url, "GetAccountAuthorizationDetails", throttle=2)
    try:
        rows = read(moto.url, {"endpoint_url": proxy.url, "max_attempts": 5})
    finally:
        proxy.stop()
    assert proxy.throttled == 2
    assert grants_of(rows)[f"{HOME}:user/alice"][f"{HOME}:group/Admins"] == "true"


def test_throttling_that_does_not_end_gives_up_transiently(moto):
    seed(moto)
    proxy = ThrottlingProxy(moto.url, "GetAccountAuthorizationDetails", throttle=None)
    try:
        with pytest.raises(SourceTimeout) as caught:
            read(moto.url, {"endpoint_url": proxy.url, "max_attempts": 2})
    finally:
        proxy.stop()
    assert proxy.throttled == 2  # max_attempts (in all), then no more calls
    assert caught.value.transient
    assert str(caught.value) == (
        f"AWS kept throttling iam:GetAccountAuthorizationDetails in {HOME} (Throttling); gave up after 2 attempts"
    )


def restricted_user(moto, name: str, actions: list[str]) -> dict[str, str]:
    iam = moto.client("iam")
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="soxgov-read", PolicyDocument=policy(allow(actions)))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}


def test_permissions_say_what_is_missing(moto):
    seed(moto)
    reader = restricted_user(
        moto, "soxgov-reader", ["iam:GetAccountAuthorizationDetails", "sts:GetCallerIdentity"]
    )
    nobody = restricted_user(moto, "soxgov-nobody", ["sts:GetCallerIdentity"])
    moto.auth(0)
    source = AwsSource({"endpoint_url": moto.url}, reader)
    try:
        lines = source.permissions()
        rows = list(source.access())
    finally:
        source.close()
    assert lines == [
        f"signed in as arn:aws:iam::{HOME}:user/soxgov-reader (account {HOME})",
        f"may read IAM users, groups, roles and policies of {HOME} (iam:GetAccountAuthorizationDetails in {HOME})",
        f"access denied on iam:GenerateCredentialReport or iam:GetCredentialReport in {HOME}: "
        "last used dates are not read, and console / key status is not known",
    ]
    assert grants_of(rows)[f"{HOME}:user/alice"][f"{HOME}:group/Admins"] == "true"  # the rest is read
    assert {row["last_used_at"] for row in rows} == {""}
    with pytest.raises(SourcePermissionDenied) as caught:
        read(moto.url, secrets=nobody)
    assert str(caught.value) == (
        f"access denied on iam:GetAccountAuthorizationDetails in {HOME}: grant it to the connector's "
        "credentials (README, AWS connector)"
    )
    with pytest.raises(SourceUnreachable, match="AWS refused the credentials"):
        read(moto.url, secrets={**reader, "secret_access_key": "not-the-key"})


# --- Through the pipeline ---------------------------------------------------------------------------------------


@pytest.fixture
def store(tmp_path):
    # A small account: the gate's count threshold scaled down with it (over 10% and over 3 grants).
    with override_settings(
        SOXGOV_IMPORT_DIR=tmp_path / "store",
        SOXGOV_SECRET_KEYS=[Fernet.generate_key().decode()],
        SOXGOV_DELETION_THRESHOLD_COUNT=3,
    ):
        yield tmp_path / "store"


def snapshot() -> dict:
    state = tables_snapshot()
    state["evidence"] = EvidenceEvent.objects.exclude(subject_type="entitlements.connectorrun").count()
    return state


def add(tmp_path, monkeypatch, url, **config) -> None:
    monkeypatch.setenv("AWS_TEST_READER_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_TEST_READER_SECRET", SECRET_KEY)
    path = tmp_path / "aws.json"
    path.write_text(json.dumps({"region": "us-east-1", "endpoint_url": url, **config}))
    outcome = command(
        "connector_add",
        "--name",
        "aws-prod",
        "--kind",
        "aws",
        "--application",
        "AWS",
        "--config",
        str(path),
        "--secret",
        "access_key_id=env:AWS_TEST_READER_KEY_ID",
        "--secret",
        "secret_access_key=env:AWS_TEST_READER_SECRET",
    )
    assert outcome.code == 0, outcome


@pytest.mark.django_db
def test_pulls_first_a_change_and_the_removal_gate(moto, store, tmp_path, monkeypatch):
    seed(moto)
    Application.objects.create(name="AWS")
    Identity.objects.create(employee_id="E001", email="alice@example.com", display_name="Alice")
    add(tmp_path, monkeypatch, moto.url)
    tested = command("connector_test", "aws-prod")
    assert tested.code == 0, tested
    assert "permissions: may read the credential report of 123456789012" in tested.out
    first = command("connector_pull", "aws-prod")
    assert first.code == 0, first
    aws = Application.objects.get(name="AWS")
    accounts = set(Account.objects.filter(application=aws).values_list("account_id", flat=True))
    assert accounts == {
        f"{HOME}:root",
        f"{HOME}:user/alice",
        f"{HOME}:user/bob@example.com",
        f"{HOME}:user/carol",
        f"{HOME}:role/deploy",
        f"{HOME}:role/break-glass",
    }
    alice = Account.objects.get(application=aws, account_id=f"{HOME}:user/alice")
    assert alice.identity.employee_id == "E001"
    assert Entitlement.objects.get(
        application=aws, entitlement_id=f"{HOME}:policy/AdministratorAccess"
    ).privileged
    assert Account.objects.get(application=aws, account_id=f"{HOME}:user/carol").status == "disabled"

    # AWS changes: bob leaves Readers, carol is deleted, a new role appears.
    iam = moto.client("iam")
    iam.remove_user_from_group(GroupName="Readers", UserName="bob@example.com")
    iam.delete_user(UserName="carol")
    iam.create_role(RoleName="reporting", AssumeRolePolicyDocument=trust(Service="lambda.amazonaws.com"))
    iam.attach_role_policy(RoleName="reporting", PolicyArn=READ_ONLY)
    second = command("connector_pull", "aws-prod")
    assert second.code == 0, second
    assert not Grant.objects.filter(
        account__account_id=f"{HOME}:user/bob@example.com",
        entitlement__entitlement_id=f"{HOME}:group/Readers",
    ).exists()
    assert not Account.objects.filter(application=aws, account_id=f"{HOME}:user/carol").exists()
    assert Grant.objects.filter(
        account__account_id=f"{HOME}:role/reporting",
        entitlement__entitlement_id=f"{HOME}:policy/ReadOnlyAccess",
    ).exists()

    # IAM reads empty but for the root user (the wrong account's keys, a half-migrated account): held, nothing
    # applied.
    moto.reset()
    before = snapshot()
    held = command("connector_pull", "aws-prod")
    assert held.code == 3, held
    assert "held for approval" in held.err
    assert snapshot() == before


@pytest.mark.django_db
def test_refused_credentials_exit_2_and_stay_secret(moto, store, tmp_path, monkeypatch):
    seed(moto)
    Application.objects.create(name="AWS")
    add(tmp_path, monkeypatch, moto.url)
    assert command("connector_pull", "aws-prod").code == 0
    reader = restricted_user(moto, "soxgov-reader", ["iam:GetAccountAuthorizationDetails"])
    monkeypatch.setenv("AWS_TEST_READER_KEY_ID", reader["access_key_id"])
    monkeypatch.setenv("AWS_TEST_READER_SECRET", "Wrong-Secret-Key-Value-0123456789")
    moto.auth(0)
    before = snapshot()
    outcome = command("connector_pull", "aws-prod")
    assert outcome.code == 2, outcome
    assert "AWS refused the credentials" in outcome.err
    assert snapshot() == before
    run = ConnectorRun.objects.filter(connector__name="aws-prod").order_by("-pk").first()
    assert (run.status, run.failure) == ("failed", "unreachable")
    tested = command("connector_test", "aws-prod")
    assert tested.code == 2
    for text in (outcome.out, outcome.err, tested.out, tested.err, run.error):
        assert SECRET_KEY not in text and "Wrong-Secret-Key-Value" not in text
    for event in EvidenceEvent.objects.all():
        assert SECRET_KEY not in event.payload and "Wrong-Secret-Key-Value" not in event.payload


@pytest.mark.django_db
def test_a_pull_that_runs_out_of_retries_applies_nothing(moto, store, tmp_path, monkeypatch):
    seed(moto)
    Application.objects.create(name="AWS")
    proxy = ThrottlingProxy(moto.url, "GetAccountAuthorizationDetails", throttle=None)
    try:
        add(tmp_path, monkeypatch, proxy.url, max_attempts=2)
        before = snapshot()
        outcome = command("connector_pull", "aws-prod")
    finally:
        proxy.stop()
    assert outcome.code == 2, outcome
    assert snapshot() == before
    assert not Account.objects.exists()


@pytest.mark.django_db
def test_roles_become_the_connectors_own_identities_and_end_when_deleted(moto, store, tmp_path, monkeypatch):
    """With ``identities`` the pull is the truth for the roles' identities it brought, and for nothing else."""
    seed(moto)
    iam = moto.client("iam")
    iam.create_role(
        RoleName="etl",
        AssumeRolePolicyDocument=trust(Service="glue.amazonaws.com"),
        Tags=[{"Key": "owner", "Value": "E001"}, {"Key": "employee_id", "Value": "SVC-ETL"}],
    )
    Application.objects.create(name="AWS")
    alice = Identity.objects.create(employee_id="E001", email="alice@example.com", display_name="Alice")
    payroll = Identity.objects.create(employee_id="E777", display_name="Hana Payroll")  # in no AWS listing
    etl = Identity.objects.create(employee_id="SVC-ETL", display_name="ETL", kind="service", owner=alice)
    add(tmp_path, monkeypatch, moto.url, identities=True)

    first = command("connector_pull", "aws-prod")

    assert first.code == 0, first
    role_id = iam.get_role(RoleName="deploy")["Role"]["RoleId"]
    deploy = Identity.objects.get(employee_id=role_id)
    assert (deploy.kind, deploy.owner, deploy.connector.name) == ("service", alice, "aws-prod")
    assert Account.objects.get(account_id=f"{HOME}:role/deploy").identity == deploy
    # An employee id tag links the role to the feed's identity: linked, not brought, not re-owned.
    etl.refresh_from_db()
    assert (etl.connector, etl.owner) == (None, alice)
    assert Account.objects.get(account_id=f"{HOME}:role/etl").identity == etl
    assert Account.objects.get(account_id=f"{HOME}:role/break-glass").identity is None

    iam.detach_role_policy(RoleName="deploy", PolicyArn=f"arn:aws:iam::{HOME}:policy/DeployArtifacts")
    iam.delete_role(RoleName="deploy")
    second = command("connector_pull", "aws-prod")

    assert second.code == 0, second
    deploy.refresh_from_db()
    assert deploy.status == "terminated"
    ended = EvidenceEvent.objects.get(action="access.identity.terminated", subject_id=str(deploy.pk))
    assert ended.payload_data["reason"] == "absent from the pull of connector aws-prod"
    for person in (alice, payroll, etl):
        person.refresh_from_db()
        assert person.status == "active", person


@pytest.mark.django_db
def test_a_role_cannot_take_over_a_persons_identity(moto, store, tmp_path, monkeypatch):
    seed(moto)
    role_id = moto.client("iam").get_role(RoleName="deploy")["Role"]["RoleId"]
    Application.objects.create(name="AWS")
    Identity.objects.create(employee_id="E001", email="alice@example.com", display_name="Alice")
    Identity.objects.create(employee_id=role_id, display_name="Mallory Person")
    add(tmp_path, monkeypatch, moto.url, identities=True)
    before = snapshot()

    refused = command("connector_pull", "aws-prod")

    assert refused.code == 1, refused
    taken = "is the employee id of Mallory Person (a person); connector aws-prod may not take it over"
    assert f"column employee_id: {taken} (value '{role_id}')" in refused.err
    assert snapshot() == before
