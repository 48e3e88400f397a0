"""The AWS source: IAM (users, the root user, roles, groups, managed and inline policies) in one or many AWS
accounts, and IAM Identity Center (users, groups, permission sets per account, account assignments), read with
boto3. Configuration::

    {"region": "us-east-1",
     "accounts": [{"account_id": "111122223333", "role_arn": "arn:aws:iam::111122223333:role/SOXGovRead",
                   "external_id": "soxgov"}],             (optional: else the credentials' own account)
     "organizations": true, "role_name": "SOXGovRead",   (instead of accounts: every active account of the org)
     "identity_center": {"instance_arn": "...", "identity_store_id": "d-..."},   (optional; {} finds the instance)
     "owner_tag": "owner", "employee_id_tag": "employee_id", "email_tag": "email",
     "privileged_policies": ["BillingFullAccess"], "identities": false,
     "endpoint_url": "https://...", "timeout_seconds": 30, "max_attempts": 10}

Secrets ``access_key_id`` and ``secret_access_key`` (and ``session_token`` for temporary keys), or none: then
boto3's default chain finds the credentials (an instance or task role, the environment).

One account's IAM is read with iam:GetAccountAuthorizationDetails (paged; users with their groups and policies,
roles with their trust policies, tags and last use, groups, and the managed policies' documents), so a pull costs
a few calls per account rather than one per user. Last use and console / key status come from the credential
report. Every call has connect and read timeouts; throttling is retried by botocore's "adaptive" mode (backoff
with jitter and a client-side rate limit); a call that runs out of attempts raises SourceTimeout.

Rows name the AWS account in ids ("123456789012:user/alice", "123456789012:policy/AdministratorAccess"), so one
connector (one application) may hold many accounts. See docs/connectors-aws.md for the mapping.
"""

from __future__ import annotations

import csv
import datetime as dt
import fnmatch
import io
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from entitlements.connectors.http import SourcePermissionDenied
from entitlements.connectors.sources import Source, SourceError, SourceTimeout, SourceUnreachable

KEYS = {
    "region",
    "endpoint_url",
    "accounts",
    "organizations",
    "role_name",
    "external_id",
    "identity_center",
    "owner_tag",
    "employee_id_tag",
    "email_tag",
    "privileged_policies",
    "identities",
    "timeout_seconds",
    "max_attempts",
    "credential_report_wait_seconds",
}
ACCOUNT_KEYS = {"account_id", "role_arn", "external_id"}
IDENTITY_CENTER_KEYS = {"instance_arn", "identity_store_id", "region"}
ACCOUNT_ID = re.compile(r"^\d{12}$")
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/[\w+=,.@/-]{1,512}$")
ROLE_NAME = re.compile(r"^[\w+=,.@-]{1,64}$")
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
MAX_TIMEOUT = 3600
SESSION_NAME = "soxgov-pull"
# AWS managed policies that are privileged: everything, IAM write (privilege escalation: whoever may change IAM may
# grant themselves anything), the organisation, or everything but IAM. Customer managed and inline policies are
# judged by their documents (document_privileged).
PRIVILEGED_POLICY_NAMES = frozenset(
    {"AdministratorAccess", "IAMFullAccess", "AWSOrganizationsFullAccess", "PowerUserAccess"}
)
LOCAL = ["User", "Role", "Group", "LocalManagedPolicy"]  # what GetAccountAuthorizationDetails returns
# Representative IAM write actions: a statement whose action pattern matches any of them may change IAM.
IAM_WRITE_ACTIONS = (
    "iam:createuser",
    "iam:createaccesskey",
    "iam:createloginprofile",
    "iam:updateloginprofile",
    "iam:addusertogroup",
    "iam:attachuserpolicy",
    "iam:attachrolepolicy",
    "iam:attachgrouppolicy",
    "iam:putuserpolicy",
    "iam:putrolepolicy",
    "iam:putgrouppolicy",
    "iam:createpolicyversion",
    "iam:setdefaultpolicyversion",
    "iam:updateassumerolepolicy",
    "iam:createrole",
    "iam:passrole",
    "iam:deleteuser",
    "iam:tagrole",
)
# Error codes that mean "these credentials are not valid" (not "valid but not allowed").
REFUSED_CODES = {
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "UnrecognizedClientException",
    "InvalidAccessKeyId",
    "ExpiredToken",
    "ExpiredTokenException",
    "AuthFailure",
    "InvalidToken",
}
DENIED_CODES = {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError"}
THROTTLED_CODES = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "SlowDown",
    "RequestThrottled",
    "RequestThrottledException",
}
REPORT_NOT_READY = {"ReportNotPresent", "ReportExpired", "ReportInProgress", "ReportNotReady"}
NOT_A_DATE = {"", "N/A", "no_information", "not_supported"}
PROGRESS_EVERY = 1000
ROW_COLUMNS = ("account_id", "account_name", "employee_id", "email", "account_status", "last_used_at")


def _is_text(value) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _whole(value, low: int, high: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and low <= value <= high


class AwsSource(Source):
    kind = "aws"
    secret_names = frozenset({"access_key_id", "secret_access_key", "session_token"})
    identities_scope = "non_human"  # its roles only; people come from the identities feed

    # --- Configuration ------------------------------------------------------------------------------------

    @classmethod
    def validate(cls, config: object, secrets: set[str]) -> list[str]:
        if not isinstance(config, Mapping):
            return ['configuration: must be a JSON object, e.g. {"region": "us-east-1"}']
        problems = [f"{key}: is not a setting of an AWS connector" for key in sorted(set(config) - KEYS)]
        region = config.get("region")
        if region is not None and (not isinstance(region, str) or not REGION.match(region)):
            problems.append("region: must be an AWS region such as us-east-1 or us-gov-west-1")
        endpoint = config.get("endpoint_url")
        if endpoint is not None:
            parts = urlsplit(endpoint) if isinstance(endpoint, str) else None
            if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
                problems.append("endpoint_url: must be an http(s) URL, e.g. https://iam.us-gov.amazonaws.com")
            elif parts.username or parts.password or parts.query:
                problems.append("endpoint_url: must carry no user, password or query")
        problems += _validate_accounts(config)
        center = config.get("identity_center")
        if center is not None:
            if not isinstance(center, Mapping):
                problems.append(
                    'identity_center: must be an object, e.g. {} or {"instance_arn": "arn:aws:sso:::instance/ssoins-..."}'
                )
            else:
                problems += [
                    f"identity_center.{key}: is not a setting (use instance_arn, identity_store_id, region)"
                    for key in sorted(set(center) - IDENTITY_CENTER_KEYS)
                ]
                arn = center.get("instance_arn")
                if arn is not None and (not _is_text(arn) or not arn.startswith("arn:aws")):
                    problems.append(
                        "identity_center.instance_arn: must be an ARN, arn:aws:sso:::instance/ssoins-..."
                    )
                store = center.get("identity_store_id")
                if store is not None and not _is_text(store):
                    problems.append("identity_center.identity_store_id: must be an id such as d-1234567890")
                center_region = center.get("region")
                if center_region is not None and (
                    not isinstance(center_region, str) or not REGION.match(center_region)
                ):
                    problems.append("identity_center.region: must be an AWS region such as eu-west-1")
        for key in ("owner_tag", "employee_id_tag", "email_tag"):
            value = config.get(key)
            if value is not None and (not _is_text(value) or len(value) > 128):
                problems.append(f"{key}: must be a tag key (1 to 128 characters)")
        names = config.get("privileged_policies")
        if names is not None and (not isinstance(names, list) or not all(_is_text(name) for name in names)):
            problems.append('privileged_policies: must be a list of policy names, e.g. ["BillingFullAccess"]')
        for key in ("identities", "organizations"):
            if key in config and not isinstance(config[key], bool):
                problems.append(f"{key}: must be true or false")
        for key, low, high in (
            ("timeout_seconds", 1, MAX_TIMEOUT),
            ("max_attempts", 1, 20),
            ("credential_report_wait_seconds", 0, MAX_TIMEOUT),
        ):
            value = config.get(key)
            if value is not None and not _whole(value, low, high):
                problems.append(f"{key}: must be a whole number from {low} to {high}")
        given = set(secrets)
        problems += [
            f"secrets: {name!r} is not a secret of an AWS connector"
            for name in sorted(given - cls.secret_names)
        ]
        keys = {"access_key_id", "secret_access_key"} & given
        if len(keys) == 1:
            problems.append(
                "secrets: give both access_key_id and secret_access_key, or neither (the default credential chain)"
            )
        if "session_token" in given and not keys:
            problems.append("secrets: session_token goes with access_key_id and secret_access_key")
        return problems

    def __init__(self, config, secrets, *, progress=None):
        super().__init__(config, secrets, progress=progress)
        self._base = None  # boto3 Session of the connector's own credentials
        self._caller: dict | None = None
        self._sessions: dict[str, object] = {}
        self._read = 0
        self._reports: dict[str, dict[str, dict[str, str]] | None] = {}
        self._snapshots: dict[str, _AccountSnapshot] = {}  # read once for identities() and access()
        self._center: _IdentityCenterSnapshot | None = None

    @property
    def feeds_identities(self) -> bool:
        return bool(self.config.get("identities", False))

    @property
    def timeout(self) -> int:
        return int(self.config.get("timeout_seconds") or 30)

    # --- Sessions and clients ------------------------------------------------------------------------------

    def _botocore_config(self):
        from botocore.config import Config

        return Config(
            connect_timeout=self.timeout,
            read_timeout=self.timeout,
            retries={"mode": "adaptive", "total_max_attempts": int(self.config.get("max_attempts") or 10)},
            user_agent_extra="soxgov",
        )

    def _session(self, **credentials):
        import boto3

        return boto3.session.Session(region_name=self.config.get("region") or "us-east-1", **credentials)

    def _base_session(self):
        if self._base is None:
            credentials = {}
            if self.secrets.get("access_key_id"):
                credentials = {
                    "aws_access_key_id": self.secrets["access_key_id"],
                    "aws_secret_access_key": self.secrets.get("secret_access_key", ""),
                    "aws_session_token": self.secrets.get("session_token") or None,
                }
            self._base = self._session(**credentials)
        return self._base

    def _client(self, session, service: str, region: str | None = None):
        return session.client(
            service,
            endpoint_url=self.config.get("endpoint_url") or None,
            region_name=region or self.config.get("region") or "us-east-1",
            config=self._botocore_config(),
        )

    def _call(self, what: str, function: Callable, /, **kwargs):
        """One AWS call, its errors in words (``what`` is the action, e.g. iam:GetAccountAuthorizationDetails
        in 123456789012)."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectionClosedError,
            ConnectTimeoutError,
            EndpointConnectionError,
            NoCredentialsError,
            PartialCredentialsError,
            ReadTimeoutError,
        )

        try:
            return function(**kwargs)
        except ClientError as exc:
            raise self._client_error(what, exc) from None
        except (NoCredentialsError, PartialCredentialsError):
            raise SourceUnreachable(
                "no AWS credentials: give the secrets access_key_id and secret_access_key, or run where the "
                "default credential chain finds some (an instance or task role)"
            ) from None
        except (ConnectTimeoutError, ReadTimeoutError):
            raise SourceTimeout(f"AWS did not answer {what} within {self.timeout} s") from None
        except (EndpointConnectionError, ConnectionClosedError) as exc:
            raise SourceUnreachable(f"cannot reach AWS for {what}: {self._scrub(str(exc))}") from None
        except BotoCoreError as exc:
            raise SourceError(f"{what} failed: {type(exc).__name__}: {self._scrub(str(exc))}") from None

    def _client_error(self, what: str, exc) -> SourceError:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = self._scrub(str(error.get("Message", ""))[:300])
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in REFUSED_CODES:
            return SourceUnreachable(f"AWS refused the credentials ({code}) at {what}: {message}")
        if code in DENIED_CODES:
            return SourcePermissionDenied(
                f"access denied on {what}: grant it to the connector's credentials (README, AWS connector)"
            )
        if code in THROTTLED_CODES or status == 429:
            attempts = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
            return SourceTimeout(f"AWS kept throttling {what} ({code}); gave up after {attempts} attempts")
        if status is not None and status >= 500:
            return SourceTimeout(f"AWS answered {status} ({code}) at {what}: {message}")
        return SourceError(f"{what} failed: {code}: {message}")

    def _scrub(self, message: str) -> str:
        for name in ("secret_access_key", "session_token"):
            value = self.secrets.get(name)
            if value:
                message = message.replace(value, "***")
        return message

    def _pages(self, what: str, client, operation: str, key: str, **kwargs) -> Iterator:
        """Every item under ``key`` of every page of a paged operation, each page one bounded call."""
        pages = iter(client.get_paginator(operation).paginate(**kwargs))
        while (page := self._call(what, lambda: next(pages, None))) is not None:
            yield from page.get(key, [])

    # --- Accounts to read -----------------------------------------------------------------------------------

    def caller(self) -> dict:
        """Who the credentials are: sts:GetCallerIdentity (needs no permission)."""
        if self._caller is None:
            sts = self._client(self._base_session(), "sts")
            self._caller = self._call("sts:GetCallerIdentity", sts.get_caller_identity)
        return self._caller

    def _partition(self) -> str:
        return self.caller()["Arn"].split(":")[1]

    def targets(self) -> list[dict]:
        """The AWS accounts to read: [{account_id, role_arn (None: own credentials), external_id}]."""
        own = self.caller()["Account"]
        configured = self.config.get("accounts")
        if configured:
            return [
                {
                    "account_id": entry["account_id"],
                    "role_arn": entry.get("role_arn"),
                    "external_id": entry.get("external_id") or self.config.get("external_id"),
                }
                for entry in configured
            ]
        if self.config.get("organizations"):
            organizations = self._client(self._base_session(), "organizations")
            listed = self._pages("organizations:ListAccounts", organizations, "list_accounts", "Accounts")
            role_name = self.config["role_name"]
            return [
                {
                    "account_id": account["Id"],
                    "role_arn": None
                    if account["Id"] == own
                    else f"arn:{self._partition()}:iam::{account['Id']}:role/{role_name}",
                    "external_id": self.config.get("external_id"),
                }
                for account in sorted(listed, key=lambda a: a["Id"])
                if account.get("Status", "ACTIVE") == "ACTIVE"
            ]
        return [{"account_id": own, "role_arn": None, "external_id": None}]

    def _account_session(self, target: dict):
        account_id = target["account_id"]
        if account_id in self._sessions:
            return self._sessions[account_id]
        if not target["role_arn"]:
            own = self.caller()["Account"]
            if own != account_id:
                raise SourceError(
                    f"accounts: {account_id} has no role_arn and the credentials are of {own}: "
                    "give the role to assume in it"
                )
            session = self._base_session()
        else:
            sts = self._client(self._base_session(), "sts")
            kwargs = {"RoleArn": target["role_arn"], "RoleSessionName": SESSION_NAME, "DurationSeconds": 3600}
            if target.get("external_id"):
                kwargs["ExternalId"] = target["external_id"]
            credentials = self._call(f"sts:AssumeRole into {account_id}", sts.assume_role, **kwargs)[
                "Credentials"
            ]
            session = self._session(
                aws_access_key_id=credentials["AccessKeyId"],
                aws_secret_access_key=credentials["SecretAccessKey"],
                aws_session_token=credentials["SessionToken"],
            )
        self._sessions[account_id] = session
        return session

    # --- Reading --------------------------------------------------------------------------------------------

    def access(self) -> Iterator[dict[str, str]]:
        for target in self.targets():
            snapshot = self._account(target)
            yield from self._counted(snapshot.access_rows())
        if self.config.get("identity_center") is not None:
            yield from self._counted(self._identity_center().access_rows())
        self.progress(read=self._read)

    def identities(self) -> Iterator[dict[str, str]]:
        if not self.feeds_identities:
            return
        for target in self.targets():
            yield from self._account(target).identity_rows()

    def _counted(self, rows: Iterator[dict[str, str]]) -> Iterator[dict[str, str]]:
        for row in rows:
            self._read += 1
            if self._read % PROGRESS_EVERY == 0:
                self.progress(read=self._read)
            yield row

    def _account(self, target: dict) -> _AccountSnapshot:
        account_id = target["account_id"]
        if account_id in self._snapshots:
            return self._snapshots[account_id]
        iam = self._client(self._account_session(target), "iam")
        what = f"iam:GetAccountAuthorizationDetails in {account_id}"
        snapshot = _AccountSnapshot(account_id, self)
        # AWS managed policies are left out: their documents are the same in every account (and many), and the
        # privileged ones are known by name (PRIVILEGED_POLICY_NAMES, privileged_policies).
        pages = iter(iam.get_paginator("get_account_authorization_details").paginate(Filter=LOCAL))
        while (page := self._call(what, lambda: next(pages, None))) is not None:
            snapshot.users += page.get("UserDetailList", [])
            snapshot.groups += page.get("GroupDetailList", [])
            snapshot.roles += page.get("RoleDetailList", [])
            for policy in page.get("Policies", []):
                snapshot.policies[policy["Arn"]] = policy
        snapshot.report = self._credential_report(iam, account_id)
        if self.feeds_identities:  # kept for access(); otherwise one account at a time is in memory
            self._snapshots[account_id] = snapshot
        return snapshot

    def _credential_report(self, iam, account_id: str) -> dict[str, dict[str, str]] | None:
        """The credential report by user name ("<root_account>" for the root user), None when the credentials
        may not generate or read it (the pull goes on without last-used dates; permissions() says so)."""
        if account_id in self._reports:
            return self._reports[account_id]
        wait = self.config.get("credential_report_wait_seconds")
        deadline = time.monotonic() + (60 if wait is None else wait)
        report, pause = None, 0.5
        try:
            while True:
                state = self._call(
                    f"iam:GenerateCredentialReport in {account_id}", iam.generate_credential_report
                ).get("State")
                if state == "COMPLETE":
                    try:
                        content = self._call(
                            f"iam:GetCredentialReport in {account_id}", iam.get_credential_report
                        )["Content"]
                        break
                    except SourceError as exc:
                        if not any(code in str(exc) for code in REPORT_NOT_READY):
                            raise
                if time.monotonic() >= deadline:
                    raise SourceTimeout(
                        f"the credential report of {account_id} was not ready within "
                        f"{wait if wait is not None else 60} s (credential_report_wait_seconds)"
                    )
                time.sleep(pause)  # AWS generates a report in seconds; ask again, a little later each time
                pause = min(pause * 2, 5.0)
            text = content.decode("utf-8") if isinstance(content, bytes) else str(content)
            report = {row["user"]: row for row in csv.DictReader(io.StringIO(text))}
        except SourcePermissionDenied:
            pass  # permissions() says so; the pull goes on without last-used dates
        self._reports[account_id] = report
        return report

    def _identity_center(self) -> _IdentityCenterSnapshot:
        if self._center is None:
            self._center = self._read_identity_center()
        return self._center

    def _read_identity_center(self) -> _IdentityCenterSnapshot:
        settings = self.config.get("identity_center") or {}
        session = self._base_session()
        region = settings.get("region")
        admin = self._client(session, "sso-admin", region)
        store = self._client(session, "identitystore", region)
        instance_arn, store_id = settings.get("instance_arn"), settings.get("identity_store_id")
        if not instance_arn or not store_id:
            instances = list(self._pages("sso:ListInstances", admin, "list_instances", "Instances"))
            found = [i for i in instances if not instance_arn or i["InstanceArn"] == instance_arn]
            if not found:
                raise SourceError(
                    "identity_center: no IAM Identity Center instance found"
                    + (f" with instance_arn {instance_arn}" if instance_arn else " for these credentials")
                )
            instance_arn, store_id = (
                instance_arn or found[0]["InstanceArn"],
                store_id or found[0]["IdentityStoreId"],
            )
        center = _IdentityCenterSnapshot(self)
        for user in self._pages(
            "identitystore:ListUsers", store, "list_users", "Users", IdentityStoreId=store_id
        ):
            center.users[user["UserId"]] = user
        for group in self._pages(
            "identitystore:ListGroups", store, "list_groups", "Groups", IdentityStoreId=store_id
        ):
            center.groups[group["GroupId"]] = group
            center.members[group["GroupId"]] = [
                m["MemberId"]["UserId"]
                for m in self._pages(
                    "identitystore:ListGroupMemberships",
                    store,
                    "list_group_memberships",
                    "GroupMemberships",
                    IdentityStoreId=store_id,
                    GroupId=group["GroupId"],
                )
                if "UserId" in m.get("MemberId", {})
            ]
        for arn in self._pages(
            "sso:ListPermissionSets",
            admin,
            "list_permission_sets",
            "PermissionSets",
            InstanceArn=instance_arn,
        ):
            at = {"InstanceArn": instance_arn, "PermissionSetArn": arn}
            described = self._call("sso:DescribePermissionSet", admin.describe_permission_set, **at)
            managed = self._pages(
                "sso:ListManagedPoliciesInPermissionSet",
                admin,
                "list_managed_policies_in_permission_set",
                "AttachedManagedPolicies",
                **at,
            )
            names = [policy["Name"] for policy in managed]
            inline = self._call(
                "sso:GetInlinePolicyForPermissionSet", admin.get_inline_policy_for_permission_set, **at
            ).get("InlinePolicy")
            name = described["PermissionSet"]["Name"]
            privileged = any(self.privileged_name(n) for n in names) or document_privileged(inline)
            accounts = self._pages(
                "sso:ListAccountsForProvisionedPermissionSet",
                admin,
                "list_accounts_for_provisioned_permission_set",
                "AccountIds",
                **at,
            )
            for account_id in sorted(accounts):
                for assignment in self._pages(
                    "sso:ListAccountAssignments",
                    admin,
                    "list_account_assignments",
                    "AccountAssignments",
                    InstanceArn=instance_arn,
                    AccountId=account_id,
                    PermissionSetArn=arn,
                ):
                    center.assignments.append(
                        (account_id, name, privileged, assignment["PrincipalType"], assignment["PrincipalId"])
                    )
        return center

    def privileged_name(self, policy_name: str) -> bool:
        return policy_name in PRIVILEGED_POLICY_NAMES or policy_name in (
            self.config.get("privileged_policies") or ()
        )

    # --- What the credentials may read -------------------------------------------------------------------

    def permissions(self) -> list[str]:
        """One line per thing checked: what may be read, and what is denied with what is then not read."""
        lines = []
        caller = self.caller()  # refused credentials raise here: nothing else can be checked
        lines.append(f"signed in as {caller['Arn']} (account {caller['Account']})")
        try:
            targets = self.targets()
        except SourcePermissionDenied:
            return [
                *lines,
                "access denied on organizations:ListAccounts: the organisation's accounts cannot be listed "
                "(grant it in the management account, or list the accounts in the configuration)",
            ]
        for target in targets:
            account_id = target["account_id"]
            try:
                session = self._account_session(target)
            except SourcePermissionDenied:
                lines.append(
                    f"access denied on sts:AssumeRole of {target['role_arn']}: account {account_id} is not read "
                    "(its trust policy must name these credentials"
                    + (" and the external id" if target.get("external_id") else "")
                    + ")"
                )
                continue
            iam = self._client(session, "iam")
            what = f"iam:GetAccountAuthorizationDetails in {account_id}"
            try:
                self._call(what, iam.get_account_authorization_details, Filter=["User"], MaxItems=1)
                lines.append(f"may read IAM users, groups, roles and policies of {account_id} ({what})")
            except SourcePermissionDenied:
                lines.append(f"access denied on {what}: users, groups, roles and policies are not read")
            if self._credential_report(iam, account_id) is None:
                lines.append(
                    f"access denied on iam:GenerateCredentialReport or iam:GetCredentialReport in {account_id}: "
                    "last used dates are not read, and console / key status is not known"
                )
            else:
                lines.append(f"may read the credential report of {account_id} (last used dates)")
        if self.config.get("identity_center") is not None:
            try:
                center = self._identity_center()
                lines.append(
                    f"may read IAM Identity Center: {len(center.users)} users, {len(center.groups)} groups, "
                    f"{len(center.assignments)} account assignments"
                )
            except SourcePermissionDenied as exc:
                lines.append(f"{exc}: Identity Center users, groups and permission sets are not read")
        return lines


# --- Snapshots: one account's IAM, and Identity Center, as rows ---------------------------------------------


@dataclass
class _AccountSnapshot:
    account_id: str
    source: AwsSource
    users: list = field(default_factory=list)
    groups: list = field(default_factory=list)
    roles: list = field(default_factory=list)
    policies: dict = field(default_factory=dict)  # ARN -> ManagedPolicyDetail
    report: dict | None = None
    _aws_names: set | None = None

    def _tag(self, entity: dict, key: str) -> str:
        wanted = (
            self.source.config.get(key)
            or {"owner_tag": "owner", "employee_id_tag": "employee_id", "email_tag": "email"}[key]
        ).lower()
        for tag in entity.get("Tags") or []:
            if str(tag.get("Key", "")).lower() == wanted:
                return str(tag.get("Value", "")).strip()
        return ""

    # Entitlement ids and privilege --------------------------------------------------------------------------

    def _policy_id(self, arn: str) -> tuple[str, str]:
        """(entitlement id, name) of a managed policy: "<account>:policy/<name>" for AWS managed ones (as the
        console shows them), "<account>:policy<path><name>" for the account's own."""
        resource = arn.split(":", 5)[5]  # policy/path/Name
        owner = arn.split(":")[4]
        name = resource.rsplit("/", 1)[-1]
        if owner == "aws":
            return f"{self.account_id}:policy/{name}", f"{name} (AWS managed)"
        path_name = resource[len("policy") :]
        if path_name == f"/{name}" and name in self._aws_managed_names():
            return f"{self.account_id}:customer-policy/{name}", f"{name} (customer managed)"
        return f"{self.account_id}:policy{path_name}", f"{name} (customer managed)"

    def _aws_managed_names(self) -> set[str]:
        """Names of the AWS managed policies attached anywhere in the account."""
        if self._aws_names is None:
            self._aws_names = {
                attached["PolicyArn"].rsplit("/", 1)[-1]
                for entity in (*self.users, *self.groups, *self.roles)
                for attached in entity.get("AttachedManagedPolicies") or []
                if attached["PolicyArn"].split(":")[4] == "aws"
            }
        return self._aws_names

    def _policy_privileged(self, arn: str) -> bool:
        name = arn.rsplit("/", 1)[-1]
        if self.source.privileged_name(name):
            return True
        policy = self.policies.get(arn)
        if not policy:
            return False
        default = policy.get("DefaultVersionId")
        for version in policy.get("PolicyVersionList") or []:
            if version.get("IsDefaultVersion") or version.get("VersionId") == default:
                return document_privileged(version.get("Document"))
        return False

    def _policy_rows(self, entity: dict, kind: str, name: str) -> Iterator[tuple[str, str, str, bool]]:
        """(entitlement id, name, type, privileged) for each policy attached to a user or role."""
        for attached in entity.get("AttachedManagedPolicies") or []:
            entitlement_id, label = self._policy_id(attached["PolicyArn"])
            yield entitlement_id, label, "permission", self._policy_privileged(attached["PolicyArn"])
        for inline in entity.get(f"{kind.title()}PolicyList") or []:
            policy_name = inline["PolicyName"]
            yield (
                f"{self.account_id}:{kind}/{name}/inline-policy/{policy_name}",
                f"{policy_name} (inline in {kind} {name})",
                "permission",
                document_privileged(inline.get("PolicyDocument")),
            )

    def _group_privileged(self) -> dict[str, bool]:
        return {
            group["GroupName"]: any(
                self._policy_privileged(p["PolicyArn"]) for p in group.get("AttachedManagedPolicies") or []
            )
            or any(document_privileged(p.get("PolicyDocument")) for p in group.get("GroupPolicyList") or [])
            for group in self.groups
        }

    def _trusted(self, role: dict) -> list[str]:
        """The principals a role's trust policy lets assume it (ARNs, services, federated providers)."""
        found = []
        for statement in _statements(role.get("AssumeRolePolicyDocument")):
            if statement.get("Effect") != "Allow":
                continue
            principal = statement.get("Principal")
            if principal == "*":
                found.append("*")
                continue
            for values in (principal or {}).values():
                found += [values] if isinstance(values, str) else list(values)
        return sorted(set(found))

    # Rows ---------------------------------------------------------------------------------------------------

    def access_rows(self) -> Iterator[dict[str, str]]:
        a = self.account_id
        group_privileged = self._group_privileged()
        report = self.report or {}
        role_arns = {role["Arn"]: role for role in self.roles}
        user_arns = {user["Arn"]: user for user in self.users}
        assumable: dict[str, list[dict]] = {}  # principal ARN -> roles it may assume
        for role in self.roles:
            for principal in self._trusted(role):
                if principal in role_arns or principal in user_arns:
                    assumable.setdefault(principal, []).append(role)

        def role_grants(arn: str) -> Iterator[tuple[str, str, str, bool]]:
            for role in assumable.get(arn, []):
                yield (
                    f"{a}:role/{role['RoleName']}",
                    f"assume role {role['RoleName']}",
                    "role",
                    self._role_privileged(role),
                )

        root = report.get("<root_account>", {})
        yield from _rows(
            {
                "account_id": f"{a}:root",
                "account_name": f"root user of {a}",
                "account_status": "enabled",
                "last_used_at": _latest(root),
            },
            [(f"{a}:root", "root user (every action on every resource)", "role", True)],
        )
        for user in sorted(self.users, key=lambda u: u["UserName"]):
            name = user["UserName"]
            line = report.get(name)
            email = self._tag(user, "email_tag") or (name if _looks_like_email(name) else "")
            account = {
                "account_id": f"{a}:user/{name}",
                "account_name": name,
                "employee_id": self._tag(user, "employee_id_tag")[:64],
                "email": email.lower() if _looks_like_email(email) else "",
                "account_status": _user_status(line),
                "last_used_at": _latest(line or {}),
            }
            grants = [
                (f"{a}:group/{group}", group, "group", group_privileged.get(group, False))
                for group in sorted(user.get("GroupList") or [])
            ]
            grants += list(self._policy_rows(user, "user", name))
            grants += list(role_grants(user["Arn"]))
            yield from _rows(account, grants)
        for role in sorted(self.roles, key=lambda r: r["RoleName"]):
            name = role["RoleName"]
            last_used = (role.get("RoleLastUsed") or {}).get("LastUsedDate")
            account = {
                "account_id": f"{a}:role/{name}",
                "account_name": name,
                "employee_id": (
                    self._tag(role, "employee_id_tag") or (role["RoleId"] if self._brings(role) else "")
                )[:64],
                "account_status": "enabled",
                "last_used_at": _iso(last_used),
            }
            grants = list(self._policy_rows(role, "role", name)) + list(role_grants(role["Arn"]))
            yield from _rows(account, grants)

    def _role_privileged(self, role: dict) -> bool:
        return any(privileged for *_, privileged in self._policy_rows(role, "role", role["RoleName"]))

    def _brings(self, role: dict) -> bool:
        """Whether this connector brings the role as its own non-human identity: it is asked to, the role names an
        owner, and no employee id tag links it to an identity the identities feed already holds."""
        return (
            self.source.feeds_identities
            and bool(self._tag(role, "owner_tag"))
            and not self._tag(role, "employee_id_tag")
        )

    def identity_rows(self) -> Iterator[dict[str, str]]:
        """Roles as non-human identities (kind service, keyed by the role's id) owned by the person their owner
        tag names. A role without an owner tag gets no identity: its account stays an orphan, the control failure
        it is. A role with an employee id tag is the identities feed's, its account linked to that identity."""
        for role in sorted(self.roles, key=lambda r: r["RoleName"]):
            if not self._brings(role):
                continue
            owner = self._tag(role, "owner_tag")
            trusted = ", ".join(self._trusted(role)) or "nobody"
            yield {
                "employee_id": role["RoleId"][:64],
                "display_name": f"{role['RoleName']} ({self.account_id})"[:200],
                "title": f"AWS role assumable by {trusted}"[:120],
                "status": "active",
                "kind": "service",
                "owner_employee_id": owner[:64],
            }


@dataclass
class _IdentityCenterSnapshot:
    source: AwsSource
    users: dict = field(default_factory=dict)  # UserId -> user
    groups: dict = field(default_factory=dict)  # GroupId -> group
    members: dict = field(default_factory=dict)  # GroupId -> [UserId]
    assignments: list = field(default_factory=list)  # (account, permission set, privileged, type, principal)

    def access_rows(self) -> Iterator[dict[str, str]]:
        grants: dict[str, list[tuple[str, str, str, bool]]] = {user_id: [] for user_id in self.users}
        for group_id, members in self.members.items():
            name = self.groups[group_id].get("DisplayName") or group_id
            for user_id in members:
                grants.setdefault(user_id, []).append((f"identity-center:group/{name}", name, "group", False))
        for account_id, permission_set, privileged, principal_type, principal_id in self.assignments:
            entitlement = (
                f"{account_id}:permission-set/{permission_set}",
                f"{permission_set} in {account_id} (Identity Center)",
                "role",
                privileged,
            )
            # A group's assignment is every member's access: expanded, as a reviewer must see it per person.
            users = [principal_id] if principal_type == "USER" else self.members.get(principal_id, [])
            for user_id in users:
                grants.setdefault(user_id, []).append(entitlement)
        for user_id in sorted(grants, key=lambda u: self.users.get(u, {}).get("UserName", u)):
            user = self.users.get(user_id)
            if user is None:
                continue  # an assignment to a user deleted meanwhile
            emails = user.get("Emails") or []
            primary = next((e for e in emails if e.get("Primary")), emails[0] if emails else {})
            email = str(primary.get("Value", ""))
            yield from _rows(
                {
                    "account_id": f"identity-center:user/{user_id}",
                    "account_name": user.get("UserName") or user_id,
                    "email": email.lower() if _looks_like_email(email) else "",
                    "account_status": "enabled",
                },
                sorted(set(grants[user_id])),
            )


# --- Helpers ----------------------------------------------------------------------------------------------


def _rows(account: dict[str, str], grants: list[tuple[str, str, str, bool]]) -> Iterator[dict[str, str]]:
    """One row per grant; an account without any still gets one row (it exists, and is reviewed)."""
    # Every row has every column: the pull's CSV takes its header from the first row.
    base = {key: account.get(key) or "" for key in ROW_COLUMNS}
    if not grants:
        yield {
            **base,
            "entitlement_id": "",
            "entitlement_name": "",
            "entitlement_type": "",
            "privileged": "false",
        }
        return
    seen = set()
    for entitlement_id, name, kind, privileged in grants:
        if entitlement_id in seen:
            continue
        seen.add(entitlement_id)
        yield {
            **base,
            "entitlement_id": entitlement_id[:255],
            "entitlement_name": name[:255],
            "entitlement_type": kind,
            "privileged": "true" if privileged else "false",
        }


def _statements(document) -> list[dict]:
    if document is None:
        return []
    if isinstance(document, str):
        try:
            document = json.loads(unquote(document) if document.startswith("%") else document)
        except ValueError:
            try:
                document = json.loads(unquote(document))
            except ValueError:
                return []
    statements = document.get("Statement", []) if isinstance(document, Mapping) else []
    return (
        [statements] if isinstance(statements, Mapping) else [s for s in statements if isinstance(s, Mapping)]
    )


def _as_list(value) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def document_privileged(document) -> bool:
    """Whether a policy document allows everything ("*" on "*"), any IAM write action, or anything but a list
    (an Allow with NotAction, which grants every action not named)."""
    for statement in _statements(document):
        if statement.get("Effect") != "Allow":
            continue
        if "NotAction" in statement:
            return True
        for pattern in (a.lower() for a in _as_list(statement.get("Action"))):
            if pattern == "*" or pattern == "iam:*":
                return True
            if pattern.startswith("iam:") and any(fnmatch.fnmatchcase(a, pattern) for a in IAM_WRITE_ACTIONS):
                return True
    return False


def _validate_accounts(config: Mapping) -> list[str]:
    problems = []
    accounts, organizations = config.get("accounts"), config.get("organizations")
    if accounts is not None and organizations:
        problems.append("accounts: give a list of accounts or organizations: true, not both")
    if organizations:
        role_name = config.get("role_name")
        if not isinstance(role_name, str) or not ROLE_NAME.match(role_name):
            problems.append("role_name: organizations needs the name of the role to assume in each account")
    elif "role_name" in config:
        problems.append("role_name: only used with organizations: true")
    external = config.get("external_id")
    if external is not None and (not _is_text(external) or len(external) > 1224):
        problems.append("external_id: must be text (2 to 1224 characters)")
    if accounts is None:
        return problems
    if not isinstance(accounts, list) or not accounts:
        return [
            *problems,
            'accounts: must be a list of {"account_id": "123456789012", "role_arn": "arn:aws:iam::..."}',
        ]
    seen = set()
    for n, entry in enumerate(accounts):
        where = f"accounts[{n}]"
        if not isinstance(entry, Mapping):
            problems.append(f"{where}: must be an object with account_id and role_arn")
            continue
        problems += [f"{where}.{key}: is not a setting" for key in sorted(set(entry) - ACCOUNT_KEYS)]
        account_id = entry.get("account_id")
        if not isinstance(account_id, str) or not ACCOUNT_ID.match(account_id):
            problems.append(f"{where}.account_id: must be the 12-digit AWS account id (as text)")
        elif account_id in seen:
            problems.append(f"{where}.account_id: {account_id} is listed twice")
        seen.add(account_id)
        role_arn = entry.get("role_arn")
        if role_arn is not None:
            matched = ROLE_ARN.match(role_arn) if isinstance(role_arn, str) else None
            if not matched:
                problems.append(f"{where}.role_arn: must be a role ARN, arn:aws:iam::123456789012:role/NAME")
            elif (
                isinstance(account_id, str)
                and ACCOUNT_ID.match(account_id)
                and matched.group(1) != account_id
            ):
                problems.append(f"{where}.role_arn: is a role of {matched.group(1)}, not of {account_id}")
        external = entry.get("external_id")
        if external is not None and not _is_text(external):
            problems.append(f"{where}.external_id: must be text")
    return problems


def _looks_like_email(value: str) -> bool:
    return "@" in value and " " not in value and len(value) <= 254 and "." in value.rsplit("@", 1)[-1]


def _iso(value) -> str:
    if value is None or (isinstance(value, str) and value.strip() in NOT_A_DATE):
        return ""
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()
    return str(value).strip()


def _latest(line: Mapping[str, str]) -> str:
    """The last use of a user: the latest of console sign-in and either access key's last use."""
    dates = []
    for key in ("password_last_used", "access_key_1_last_used_date", "access_key_2_last_used_date"):
        value = _iso(line.get(key))
        if value:
            try:
                dates.append(dt.datetime.fromisoformat(value.replace("Z", "+00:00")))
            except ValueError:
                continue
    if not dates:
        return ""
    latest = max(d if d.tzinfo else d.replace(tzinfo=dt.UTC) for d in dates)
    return latest.isoformat()


def _user_status(line: Mapping[str, str] | None) -> str:
    """Enabled while the user can sign in (a console password) or call AWS (an active access key); a user with
    neither is still an account (it can be given them back at any moment), disabled. Without the credential
    report nothing is known: enabled."""
    if line is None:
        return "enabled"
    usable = (
        line.get("password_enabled") == "true"
        or line.get("access_key_1_active") == "true"
        or line.get("access_key_2_active") == "true"
    )
    return "enabled" if usable else "disabled"
