"""LDAP and Active Directory source: accounts, groups (nested groups resolved) and, optionally, identities.

Built on python-ldap (the OpenLDAP client library; maintained, speaks StartTLS, LDAPS and the paged-results
control natively). Reading is two paged searches under ``base_dn``: the users, then the groups. Group members
(``member``, ``uniqueMember``, ``memberUid``, AD's ``primaryGroupID``) are turned into a graph over small
integers and expanded here, with cycle detection, so a user in an inner group is granted every outer group on
every directory alike. AD's in-chain matching rule would cost one search per group; one read of all groups
costs one paged search whatever the nesting.

Rows are the file formats' columns (files.py); directory data that cannot be a valid row is left out rather
than refusing the whole pull: a manager or owner outside the read set is left empty, and a non-human account
without a resolvable owner gets no identity row (its account then shows as an orphan, the control failure it is).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
import socket
import uuid
from array import array
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import ldap
import ldap.dn
from ldap.controls import SimplePagedResultsControl

from entitlements.connectors.sources import Source, SourceError, SourceTimeout, SourceUnreachable

FLAVOURS = ("openldap", "active_directory")
ATTRIBUTE_KEYS = (
    "account_name",
    "employee_id",
    "email",
    "manager",
    "department",
    "title",
    "display_name",
    "owner",
)
DEFAULTS = {
    "openldap": {
        "user_filter": "(|(objectClass=person)(objectClass=posixAccount)(objectClass=account))",
        "group_filter": "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))",
        "account_id_attribute": "entryUUID",
        "attributes": {
            "account_name": "uid",
            "employee_id": "employeeNumber",
            "email": "mail",
            "manager": "manager",
            "department": "departmentNumber",
            "title": "title",
            "display_name": "displayName",
            "owner": "owner",
        },
    },
    "active_directory": {
        # Computers and (group) managed service accounts are users in AD's schema, so one filter reads them all.
        "user_filter": "(objectClass=user)",
        "group_filter": "(objectClass=group)",
        "account_id_attribute": "objectGUID",
        "attributes": {
            "account_name": "sAMAccountName",
            "employee_id": "employeeID",
            "email": "mail",
            "manager": "manager",
            "department": "department",
            "title": "title",
            "display_name": "displayName",
            "owner": "managedBy",
        },
    },
}
KEYS = {
    "url",
    "start_tls",
    "ca_file",
    "bind_dn",
    "base_dn",
    "flavour",
    "user_filter",
    "group_filter",
    "service_filter",
    "account_id_attribute",
    "attributes",
    "privileged_groups",
    "identities",
    "page_size",
    "timeout",
}
AD_PAGE_LIMIT = 1000  # AD's MaxPageSize: larger pages are silently cut to 1,000
DEFAULT_PAGE_SIZE = 1000
DEFAULT_TIMEOUT = 30
# Domain Admins, Schema Admins, Enterprise Admins: matched by RID, because their names are localised.
AD_ADMIN_RIDS = frozenset({512, 518, 519})
AD_ACCOUNT_DISABLED = 0x2  # userAccountControl ACCOUNTDISABLE
# ppolicy's value for an account an administrator locked (other values are temporary lockouts after failures).
OPENLDAP_LOCKED_FOREVER = "000001010000Z"
FILETIME_EPOCH = dt.datetime(1601, 1, 1, tzinfo=dt.UTC)
ATTRIBUTE_NAME = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|\d+(?:\.\d+)+)$")
PAGED = "1.2.840.113556.1.4.319"
UNIQUE_MEMBER_UID = re.compile(r"#'[01]*'B$")


def _problems_of_filter(key: str, value: object) -> list[str]:
    if not isinstance(value, str) or not value.strip():
        return [f"{key}: must be an LDAP filter such as (objectClass=person)"]
    text = value.strip()
    depth = 0
    for char in text:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            break
    if not (text.startswith("(") and text.endswith(")")) or depth != 0:
        return [f"{key}: {value!r} is not an LDAP filter (it must be wrapped in balanced parentheses)"]
    return []


def _is_dn(value: str) -> bool:
    return "=" in value and ldap.dn.is_dn(value)


def _validate_url(url: object, start_tls: object) -> list[str]:
    if not isinstance(url, str) or not url:
        return ["url: is required (ldap://host:389 or ldaps://host:636)"]
    match = re.fullmatch(r"(ldaps?)://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?/?", url)
    if not match:
        return [
            f"url: {url!r} must be ldap://host[:port] or ldaps://host[:port] (no path; the base goes in base_dn)"
        ]
    problems = []
    if match.group(3) and not 0 < int(match.group(3)) < 65536:
        problems.append(f"url: port {match.group(3)} is not a TCP port")
    if match.group(1) == "ldaps" and start_tls is True:
        problems.append("start_tls: not with ldaps:// (the connection is already TLS)")
    return problems


@dataclass(slots=True)
class _Account:
    account_id: str
    account_name: str
    employee_id: str
    email: str
    status: str
    last_used_at: str
    kind: str
    display_name: str = ""
    department: str = ""
    title: str = ""
    manager_dn: str = ""
    owner_dn: str = ""
    primary_group_rid: int | None = None


@dataclass(slots=True)
class _Group:
    entitlement_id: str
    name: str
    privileged: bool
    members: array = field(default_factory=lambda: array("q"))
    rid: int | None = None


class LdapSource(Source):
    kind = "ldap"
    secret_names = frozenset({"bind_password"})

    # ---- configuration ---------------------------------------------------------------------------------
    @classmethod
    def validate(cls, config: object, secrets: set[str]) -> list[str]:
        if not isinstance(config, Mapping):
            return ["configuration: must be a JSON object"]
        problems = [f"{key}: is not a setting of an LDAP connector" for key in sorted(set(config) - KEYS)]
        problems += [
            f"secrets: {name!r} is not a secret of an LDAP connector (use bind_password)"
            for name in sorted(secrets - cls.secret_names)
        ]
        flavour = config.get("flavour")
        if flavour not in FLAVOURS:
            problems.append(f"flavour: must be one of {', '.join(FLAVOURS)} (got {flavour!r})")
        problems += _validate_url(config.get("url"), config.get("start_tls"))
        for key in ("start_tls", "identities"):
            if key in config and not isinstance(config[key], bool):
                problems.append(f"{key}: must be true or false")
        if "ca_file" in config and (
            not isinstance(config["ca_file"], str) or not config["ca_file"].startswith("/")
        ):
            problems.append("ca_file: must be the absolute path of a PEM file of CA certificates")
        bind_dn = config.get("bind_dn")
        if bind_dn is not None:
            ad_names = (
                flavour == "active_directory"
                and isinstance(bind_dn, str)
                and ("@" in bind_dn or "\\" in bind_dn)
            )
            if not isinstance(bind_dn, str) or not (ad_names or _is_dn(bind_dn)):
                problems.append(f"bind_dn: {bind_dn!r} is not a DN (Active Directory also takes user@domain)")
            if "bind_password" not in secrets:
                problems.append(
                    "secrets: bind_password is required with bind_dn (an empty password binds anonymously)"
                )
        elif "bind_password" in secrets:
            problems.append("bind_dn: is required when the secret bind_password is given")
        base_dn = config.get("base_dn")
        if not isinstance(base_dn, str) or not base_dn or not _is_dn(base_dn):
            problems.append(f"base_dn: {base_dn!r} is not a DN such as dc=example,dc=com")
        for key in ("user_filter", "group_filter", "service_filter"):
            if key in config:
                problems += _problems_of_filter(key, config[key])
        if "account_id_attribute" in config and not (
            isinstance(config["account_id_attribute"], str)
            and ATTRIBUTE_NAME.match(config["account_id_attribute"])
        ):
            problems.append(
                f"account_id_attribute: {config['account_id_attribute']!r} is not an attribute name"
            )
        attributes = config.get("attributes", {})
        if not isinstance(attributes, Mapping):
            problems.append(
                f"attributes: must be an object mapping {', '.join(ATTRIBUTE_KEYS)} to attribute names"
            )
        else:
            for key, value in attributes.items():
                if key not in ATTRIBUTE_KEYS:
                    problems.append(f"attributes.{key}: unknown (use {', '.join(ATTRIBUTE_KEYS)})")
                elif not isinstance(value, str) or not ATTRIBUTE_NAME.match(value):
                    problems.append(f"attributes.{key}: {value!r} is not an attribute name")
        groups = config.get("privileged_groups", [])
        if not isinstance(groups, list) or not all(isinstance(g, str) and g.strip() for g in groups):
            problems.append("privileged_groups: must be a list of group DNs or names")
        else:
            problems += [
                f"privileged_groups: {g!r} looks like a DN but is not one"
                for g in groups
                if "=" in g and not _is_dn(g)
            ]
        page_size = config.get("page_size", DEFAULT_PAGE_SIZE)
        if not isinstance(page_size, int) or isinstance(page_size, bool) or page_size < 1:
            problems.append(f"page_size: must be a whole number of at least 1 (got {page_size!r})")
        elif flavour == "active_directory" and page_size > AD_PAGE_LIMIT:
            problems.append(f"page_size: Active Directory returns at most {AD_PAGE_LIMIT} entries a page")
        timeout = config.get("timeout", DEFAULT_TIMEOUT)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 1 <= timeout <= 3600:
            problems.append(f"timeout: must be seconds between 1 and 3600 (got {timeout!r})")
        return problems

    def __init__(self, config, secrets, *, progress=None):
        super().__init__(config, secrets, progress=progress)
        flavour = config["flavour"]
        defaults = DEFAULTS[flavour]
        self.ad = flavour == "active_directory"
        self.base_dn = config["base_dn"]
        self.user_filter = config.get("user_filter", defaults["user_filter"])
        self.group_filter = config.get("group_filter", defaults["group_filter"])
        self.service_filter = config.get("service_filter")
        self.id_attribute = config.get("account_id_attribute", defaults["account_id_attribute"])
        self.attributes = {**defaults["attributes"], **config.get("attributes", {})}
        self.page_size = config.get("page_size", DEFAULT_PAGE_SIZE)
        self.timeout = config.get("timeout", DEFAULT_TIMEOUT)
        named = [g.strip() for g in config.get("privileged_groups", [])]
        self.privileged_dns = {_dn_key(g) for g in named if "=" in g}
        self.privileged_names = {g.lower() for g in named if "=" not in g}
        self._conn = None
        self._accounts: list[_Account] | None = None
        self._nodes: dict[str, int] = {}
        self.pages_read = 0
        self.entries_read = 0

    @property
    def feeds_identities(self) -> bool:
        return bool(self.config.get("identities", False))

    # ---- connection and searches -----------------------------------------------------------------------
    def _connection(self):
        if self._conn is not None:
            return self._conn
        url = self.config["url"]
        try:
            conn = ldap.initialize(url)
            conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
            # AD answers with references to its other partitions (DomainDnsZones, Configuration): not followed.
            conn.set_option(ldap.OPT_REFERRALS, 0)
            conn.set_option(ldap.OPT_NETWORK_TIMEOUT, self.timeout)
            conn.set_option(ldap.OPT_TIMEOUT, self.timeout)
            if url.startswith("ldaps://") or self.config.get("start_tls"):
                conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
                if self.config.get("ca_file"):
                    conn.set_option(ldap.OPT_X_TLS_CACERTFILE, self.config["ca_file"])
                # Last: builds this connection's TLS context from the options above.
                conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
            if self.config.get("start_tls"):
                conn.start_tls_s()
            bind_dn = self.config.get("bind_dn")
            if bind_dn:
                password = self.secrets.get("bind_password") or ""
                if not password:
                    # An empty password is an unauthenticated bind: it "succeeds" and then reads nothing.
                    raise SourceUnreachable(
                        f"authentication failed for {bind_dn}: the bind_password secret is empty"
                    )
                conn.simple_bind_s(bind_dn, password)
        except ldap.LDAPError as exc:
            if (
                isinstance(exc, ldap.SERVER_DOWN)
                and url.startswith("ldaps://")
                and _tcp_answers(url, self.timeout)
            ):
                # libldap reports a refused certificate on ldaps:// as "can't contact": the port answered, so
                # it was the TLS handshake, and retrying will not help.
                raise SourceUnreachable(
                    f"connecting to {url}: the TLS handshake failed (is the server's certificate issued for this "
                    "host name and signed by a CA in ca_file?)"
                ) from None
            raise self._error(exc, f"connecting to {url}") from None
        self._conn = conn
        return conn

    def _error(self, exc: Exception, during: str, *, what: str = "") -> SourceError:
        """A SourceError for an LDAP failure; the server's own words are kept, the password is never known here."""
        info = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
        detail = "; ".join(str(info[k]) for k in ("desc", "info") if info.get(k)) or exc.__class__.__name__
        bind_dn = self.config.get("bind_dn") or "anonymous"
        if isinstance(exc, ldap.INVALID_CREDENTIALS):
            return SourceUnreachable(f"authentication failed for {bind_dn} ({during})")
        if isinstance(exc, ldap.TIMEOUT):
            return SourceTimeout(f"{during}: no answer within {self.timeout} s")
        if isinstance(exc, ldap.SERVER_DOWN | ldap.CONNECT_ERROR):
            error = SourceUnreachable(f"{during}: {detail}")
            error.transient = not isinstance(
                exc, ldap.CONNECT_ERROR
            )  # a TLS failure does not heal by retrying
            return error
        if isinstance(
            exc, ldap.STRONG_AUTH_REQUIRED | ldap.CONFIDENTIALITY_REQUIRED | ldap.INAPPROPRIATE_AUTH
        ):
            return SourceUnreachable(
                f"authentication failed for {bind_dn}: the server requires a protected connection "
                f"(use ldaps:// or start_tls): {detail}"
            )
        if isinstance(exc, ldap.NO_SUCH_OBJECT):
            return SourceError(f"base_dn: {self.base_dn!r} does not exist on the server ({during})")
        if isinstance(exc, ldap.FILTER_ERROR):
            return SourceError(f"{what}: the server refused the filter ({detail})")
        if isinstance(exc, ldap.INVALID_DN_SYNTAX):
            return SourceError(f"base_dn: {self.base_dn!r} is not a DN the server accepts ({detail})")
        if isinstance(exc, ldap.SIZELIMIT_EXCEEDED | ldap.ADMINLIMIT_EXCEEDED):
            return SourceError(f"{during}: the server's size limit was reached; lower page_size ({detail})")
        if isinstance(exc, ldap.INSUFFICIENT_ACCESS):
            return SourceError(f"{during}: {bind_dn} may not read this ({detail})")
        return SourceError(f"{during}: {detail}")

    def _search(self, filterstr: str, attrs: list[str], what: str) -> Iterator[tuple[str, dict]]:
        """Every entry under base_dn matching the filter, one page at a time (the simple paged results control)."""
        conn = self._connection()
        control = SimplePagedResultsControl(True, size=self.page_size, cookie=b"")
        during = f"searching {self.base_dn} with {what}"
        while True:
            try:
                msgid = conn.search_ext(
                    self.base_dn,
                    ldap.SCOPE_SUBTREE,
                    filterstr,
                    attrs,
                    serverctrls=[control],
                    timeout=self.timeout,
                )
            except ldap.LDAPError as exc:
                raise self._error(exc, during, what=what) from None
            self.pages_read += 1
            while True:
                # One entry at a time (all=0), so a page of large groups is never in memory whole.
                try:
                    kind, data, _, controls = conn.result3(msgid, all=0, timeout=self.timeout)
                except ldap.LDAPError as exc:
                    with contextlib.suppress(ldap.LDAPError):
                        conn.abandon(msgid)
                    raise self._error(exc, during, what=what) from None
                if kind == ldap.RES_SEARCH_RESULT:
                    break
                for dn, entry in data:
                    if (
                        dn is not None and kind == ldap.RES_SEARCH_ENTRY
                    ):  # references (AD's partitions) are skipped
                        self.entries_read += 1
                        yield dn, entry
            self.progress(read=self.entries_read)
            cookie = next((c.cookie for c in controls if c.controlType == PAGED), b"")
            if not cookie:
                return
            control.cookie = cookie

    def _ranged(self, dn: str, entry: dict, attribute: str) -> list[bytes]:
        """All values of a multi-valued attribute AD sends in ranges (``member;range=0-1499``)."""
        values = []
        prefix = attribute.lower() + ";range="
        while True:
            ranged = next(((k, v) for k, v in entry.items() if k.lower().startswith(prefix)), None)
            if ranged is None:
                return values
            key, chunk = ranged
            values.extend(chunk)
            end = key.rsplit("-", 1)[1]
            if end == "*":
                return values
            try:
                found = self._conn.search_ext_s(
                    dn,
                    ldap.SCOPE_BASE,
                    "(objectClass=*)",
                    [f"{attribute};range={int(end) + 1}-*"],
                    timeout=self.timeout,
                )
            except ldap.LDAPError as exc:
                raise self._error(exc, f"reading the members of {dn}") from None
            entry = found[0][1] if found else {}

    # ---- reading -----------------------------------------------------------------------------------------
    def _node(self, dn: str) -> int:
        nodes = self._nodes
        found = nodes.get(dn.lower())
        if found is None:
            key = _dn_key(dn)
            found = nodes.get(key)
            if found is None:
                found = nodes[key] = len(nodes)
        return found

    def _account_id(self, dn: str, values: dict) -> str:
        raw = values.get(self.id_attribute.lower())
        if not raw:
            raise SourceError(f"account_id_attribute: {self.id_attribute} is missing on {dn}")
        if self.id_attribute.lower() == "objectguid" and len(raw[0]) == 16:
            return str(uuid.UUID(bytes_le=raw[0]))
        return raw[0].decode("utf-8", "replace")

    def _accounts_read(self) -> list[_Account]:
        """The users, in directory order; node i is account i. Read once per pull."""
        if self._accounts is not None:
            return self._accounts
        a = self.attributes
        names = {k: a[k].lower() for k in ATTRIBUTE_KEYS}
        identities = self.feeds_identities
        wanted = ATTRIBUTE_KEYS if identities else ("account_name", "employee_id", "email")
        attrs = [self.id_attribute, *(a[k] for k in wanted), "cn", "objectClass"]
        if self.ad:
            attrs += ["userAccountControl", "lastLogonTimestamp", "primaryGroupID"]
        else:
            attrs += ["pwdAccountLockedTime", "authTimestamp", "pwdLastSuccess"]
        services = set()
        if self.service_filter:
            services = {
                _dn_key(dn)
                for dn, _ in self._search(
                    f"(&{self.user_filter}{self.service_filter})", ["1.1"], "service_filter"
                )
            }
        accounts: list[_Account] = []
        for dn, entry in self._search(self.user_filter, attrs, "user_filter"):
            values = {k.lower(): v for k, v in entry.items()}

            def text(name, values=values):
                found = values.get(name)
                return found[0].decode("utf-8", "replace").strip() if found else ""

            classes = {c.decode().lower() for c in values.get("objectclass", ())}
            if self.ad:
                status = (
                    "disabled" if int(text("useraccountcontrol") or 0) & AD_ACCOUNT_DISABLED else "enabled"
                )
                last_used = _from_filetime(text("lastlogontimestamp"))
                rid = text("primarygroupid")
            else:
                status = "disabled" if text("pwdaccountlockedtime") == OPENLDAP_LOCKED_FOREVER else "enabled"
                last_used = max(
                    _from_generalized(text("authtimestamp")), _from_generalized(text("pwdlastsuccess"))
                )
                rid = ""
            node = self._node(dn)
            if node != len(accounts):  # an entry the server sent twice is read once
                continue
            if classes & {"msds-groupmanagedserviceaccount", "msds-managedserviceaccount"}:
                kind = "service"
            elif "computer" in classes or "device" in classes:
                kind = "system"
            elif _dn_key(dn) in services:
                kind = "service"
            else:
                kind = "human"
            account = _Account(
                account_id=self._account_id(dn, values),
                account_name=text(names["account_name"]) or text("cn"),
                employee_id=text(names["employee_id"]),
                email=text(names["email"]),
                status=status,
                last_used_at=last_used,
                kind=kind,
                primary_group_rid=int(rid) if rid.isdigit() else None,
            )
            if identities:  # kept only when needed: 100k accounts' worth of text is most of a pull's memory
                account.display_name = text(names["display_name"]) or text("cn")
                account.department = text(names["department"])
                account.title = text(names["title"])
                account.manager_dn = text(names["manager"])
                account.owner_dn = text(names["owner"])
            accounts.append(account)
        self._accounts = accounts
        return accounts

    def _groups_read(self) -> dict[int, _Group]:
        accounts = self._accounts_read()
        by_name: dict[str, int] | None = None  # posixGroup memberUid -> account, built on first use
        attrs = [self.id_attribute, "cn", "member", "uniqueMember", "memberUid", "objectSid", "adminCount"]
        groups: dict[int, _Group] = {}
        for dn, entry in self._search(self.group_filter, attrs, "group_filter"):
            values = {k.lower(): v for k, v in entry.items()}
            name = values["cn"][0].decode("utf-8", "replace") if values.get("cn") else dn
            rid = _rid(values.get("objectsid", [b""])[0])
            privileged = (
                _dn_key(dn) in self.privileged_dns
                or name.lower() in self.privileged_names
                or (self.ad and (rid in AD_ADMIN_RIDS or values.get("admincount", [b"0"])[0] == b"1"))
            )
            group = _Group(self._account_id(dn, values), name, privileged, rid=rid)
            members = group.members
            member_dns = values.get("member", [])
            if self.ad:
                member_dns = member_dns + self._ranged(dn, entry, "member")
            for raw in member_dns:
                members.append(self._node(raw.decode("utf-8", "replace")))
            for raw in values.get("uniquemember", []):
                # nameAndOptionalUID: the DN may carry a bit-string UID, cn=x,dc=y#'0101'B
                members.append(self._node(UNIQUE_MEMBER_UID.sub("", raw.decode("utf-8", "replace"))))
            if values.get("memberuid"):
                if by_name is None:
                    by_name = {acc.account_name.lower(): i for i, acc in enumerate(accounts)}
                for raw in values["memberuid"]:
                    found = by_name.get(raw.decode("utf-8", "replace").lower())
                    if found is not None:
                        members.append(found)
            node = self._node(dn)
            if node < len(accounts):
                continue  # an entry matched by both filters is an account, not a group
            groups[node] = group
        if self.ad:  # the primary group (Domain Users) is not in its member attribute
            by_rid = {g.rid: node for node, g in groups.items() if g.rid is not None}
            for i, acc in enumerate(accounts):
                node = by_rid.get(acc.primary_group_rid)
                if node is not None:
                    groups[node].members.append(i)
        return groups

    # ---- rows -------------------------------------------------------------------------------------------
    def identities(self) -> Iterator[dict[str, str]]:
        accounts = self._accounts_read()
        # One person may hold several accounts (jdoe and adm-jdoe share an employee id): one identity row, from
        # an enabled account, the one with the shortest name (admin accounts add a prefix or suffix), whatever
        # order the server sends them in.
        chosen: dict[str, _Account] = {}
        for acc in accounts:
            key = acc.employee_id or acc.email.lower()
            if (
                acc.kind == "human"
                and key
                and (key not in chosen or _preferred(acc) < _preferred(chosen[key]))
            ):
                chosen[key] = acc
        # A manager or owner is named by the employee id of a person who gets an identity row here (the import
        # refuses references to people outside the file); any of that person's accounts resolves to them.
        employee_of_dn = {
            dn: accounts[node].employee_id
            for dn, node in self._nodes.items()
            if node < len(accounts)
            and accounts[node].kind == "human"
            and accounts[node].employee_id in chosen
        }

        def employee(dn: str) -> str:
            if not dn:
                return ""
            return employee_of_dn.get(dn.lower()) or employee_of_dn.get(_dn_key(dn), "")

        for acc in chosen.values():
            yield _identity(acc, acc.employee_id, "", employee(acc.manager_dn))
        keys = set(chosen)
        for acc in accounts:
            if acc.kind == "human":
                continue
            key = acc.employee_id or acc.account_name
            owner = employee(acc.owner_dn) or employee(acc.manager_dn)
            if not owner or key in keys:
                continue  # no owner in the directory: no identity; the account is an orphan
            keys.add(key)
            yield _identity(acc, key, owner, "")

    def access(self) -> Iterator[dict[str, str]]:
        accounts = self._accounts_read()
        groups = self._groups_read()
        count = len(accounts)
        granted = bytearray(count)
        for node, users in _effective_members(groups, count):
            group = groups[node]
            privileged = "true" if group.privileged else "false"
            for i in users:
                granted[i] = 1
                yield _access(accounts[i], group.entitlement_id, group.name, privileged)
        for i, acc in enumerate(accounts):
            if not granted[i]:
                yield _access(acc, "", "", "")

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(ldap.LDAPError):  # the connection is gone either way
                self._conn.unbind_s()
            self._conn = None


def _preferred(acc: _Account) -> tuple:
    return (acc.status != "enabled", len(acc.account_name), acc.account_name)


def _identity(acc: _Account, employee_id: str, owner: str, manager: str) -> dict[str, str]:
    return {
        "employee_id": employee_id,
        "email": acc.email,
        "display_name": acc.display_name,
        "department": acc.department,
        "title": acc.title,
        "manager_employee_id": manager if manager != employee_id else "",
        "status": "active",
        "termination_date": "",
        "kind": acc.kind,
        "owner_employee_id": owner,
    }


def _access(acc: _Account, entitlement_id: str, name: str, privileged: str) -> dict[str, str]:
    return {
        "account_id": acc.account_id,
        "account_name": acc.account_name,
        "employee_id": acc.employee_id or (acc.account_name if acc.kind != "human" else ""),
        "email": acc.email,
        "account_status": acc.status,
        "last_used_at": acc.last_used_at,
        "entitlement_id": entitlement_id,
        "entitlement_name": name,
        "entitlement_type": "group" if entitlement_id else "",
        "privileged": privileged,
    }


def _effective_members(groups: dict[int, _Group], accounts: int) -> Iterator[tuple[int, Iterator[int]]]:
    """(group node, its accounts) with nested groups expanded; groups in a cycle share their members.

    Tarjan's strongly connected components, iteratively (nesting can be deeper than Python's recursion limit):
    components come out children first, so each one's account set is its own members plus its children's.
    Groups without nested groups keep their member array as is, so a flat directory costs no sets.
    """
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    resolved: dict[int, frozenset[int] | array] = {}

    def children(node: int) -> list[int]:
        return [m for m in groups[node].members if m >= accounts and m in groups]

    for root in groups:
        if root in index:
            continue
        work = [(root, iter(children(root)))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, pending = work[-1]
            advanced = False
            for child in pending:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(children(child))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] != index[node]:
                continue
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            nested = [c for g in component for c in children(g) if c not in component]
            if len(component) == 1 and not nested:
                members = groups[node].members
                flat = all(m < accounts for m in members) and len(set(members)) == len(members)
                resolved[node] = members if flat else frozenset(m for m in members if m < accounts)
            else:
                users = {m for g in component for m in groups[g].members if m < accounts}
                for child in nested:
                    users.update(resolved[child])
                frozen = frozenset(users)
                for g in component:
                    resolved[g] = frozen
    for node in groups:
        yield node, resolved[node]


def _tcp_answers(url: str, timeout: float) -> bool:
    """Whether the host and port of an ldap(s):// URL accept a TCP connection."""
    match = re.fullmatch(r"ldaps?://\[?([^\]/]+?)\]?(?::(\d+))?/?", url)
    if not match:
        return False
    port = int(match.group(2) or (636 if url.startswith("ldaps://") else 389))
    try:
        socket.create_connection((match.group(1), port), timeout=min(timeout, 5)).close()
    except OSError:
        return False
    return True


def _dn_key(dn: str) -> str:
    """A DN in one spelling (case, spaces and escapes normalised) for comparing member values with entries."""
    try:
        return ldap.dn.dn2str(ldap.dn.str2dn(dn)).lower()
    except ldap.DECODING_ERROR:
        return dn.strip().lower()


def _rid(sid: bytes) -> int | None:
    """The last sub-authority (the RID) of a binary objectSid."""
    if len(sid) < 12 or len(sid) != 8 + 4 * sid[1]:
        return None
    return int.from_bytes(sid[-4:], "little")


def _from_filetime(value: str) -> str:
    """AD's lastLogonTimestamp (100 ns ticks since 1601) as ISO 8601 UTC; empty when never."""
    if not value.isdigit() or int(value) == 0 or int(value) >= 0x7FFFFFFFFFFFFFFF:
        return ""
    return (FILETIME_EPOCH + dt.timedelta(microseconds=int(value) // 10)).replace(microsecond=0).isoformat()


def _from_generalized(value: str) -> str:
    """LDAP GeneralizedTime (20261207194800Z, fractions allowed) as ISO 8601 UTC; empty when absent."""
    match = re.fullmatch(r"(\d{14})(?:[.,]\d+)?Z", value)
    if not match:
        return ""
    moment = dt.datetime.strptime(match.group(1), "%Y%m%d%H%M%S").replace(tzinfo=dt.UTC)
    return moment.isoformat()
