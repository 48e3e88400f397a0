"""Microsoft Entra ID (Azure AD) through Microsoft Graph: users, service principals and managed identities as
accounts; groups, directory roles, PIM eligibilities and app role assignments as entitlements.

A token comes from msal (client credentials: an app registration with application permissions, its secret the
connector's ``client_secret``). Configuration::

    {"tenant_id": "00000000-0000-0000-0000-000000000000",
     "client_id": "11111111-1111-1111-1111-111111111111",
     "authority_host": "https://login.microsoftonline.com",   (optional; national clouds: login.microsoftonline.us ...)
     "graph_url": "https://graph.microsoft.com",              (optional; graph.microsoft.us, microsoftgraph.chinacloudapi.cn)
     "identities": false,             (optional: also feed identities: members with an employeeId, and the
                                       tenant's own service principals and managed identities with an owner)
     "full_pull_days": 7,             (optional: a delta pull in between; 0 = always a full pull)
     "privileged_groups": ["Finance Admins"],   (optional: names or object ids; groups holding a directory role
                                                  are privileged anyway)
     "app_role_assignments": true, "role_eligibilities": true,   (optional parts, on by default)
     "timeout_seconds": 30, "ca_file": "/etc/ssl/corp-proxy.pem"}  (optional)

Delta pulls. The pipeline replaces an application's grants with what a pull yields, so every pull must yield the
whole tenant. The source keeps a mirror of the tenant (users, groups and their direct members, as of a delta
link) in a SQLite file of its own under ``SOXGOV_IMPORT_DIR/state/``: a full pull rebuilds it and takes delta
links (``/users/delta``, ``/groups/delta``); a delta pull reads only what changed since and applies it to the
mirror. Delta links and mirror change in one SQLite transaction, committed only when everything was read, so a
pull that fails half way leaves both as they were. No mirror (a new worker host, a wiped volume), an expired
delta link (410) or a full pull older than ``full_pull_days``: a full pull. Service principals, directory roles,
app role assignments and eligibilities are read in full at every pull (Graph has no delta for all of them, and
they are few). Nested groups are resolved from the direct members (a group's members include its subgroups'
members), cycles included; app roles and directory roles given to a group reach its direct members, as in Entra.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
import re
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from entitlements.connectors.http import (
    ApiClient,
    SourceGone,
    SourcePermissionDenied,
    client_problems,
    tls_verify,
)
from entitlements.connectors.sources import Source, SourceError, SourceTimeout, SourceUnreachable

KEYS = {
    "tenant_id",
    "client_id",
    "authority_host",
    "graph_url",
    "identities",
    "full_pull_days",
    "privileged_groups",
    "app_role_assignments",
    "role_eligibilities",
    "timeout_seconds",
    "ca_file",
}
AUTHORITY = "https://login.microsoftonline.com"
GRAPH = "https://graph.microsoft.com"
PAGE = "999"  # the largest page Graph serves for users and groups
USER_FIELDS = "id,userPrincipalName,mail,displayName,accountEnabled,employeeId,userType,department,jobTitle"
GROUP_FIELDS = "id,displayName,isAssignableToRole,members"
PROGRESS_EVERY = 5000
# What each part needs (application permissions, admin-consented), and what is lost without it.
NEEDED = (
    ("User.Read.All", "users"),
    ("GroupMember.Read.All", "groups and their members"),
    ("Application.Read.All", "service principals, their owners and app role assignments"),
    ("RoleManagement.Read.Directory", "directory roles and PIM eligibilities"),
    ("AuditLog.Read.All", "last sign-ins (also needs Entra ID P1 or P2)"),
)
# A permission that includes another (Directory.Read.All reads users, groups, applications and roles).
INCLUDED_IN = {
    "User.Read.All": ("Directory.Read.All", "User.ReadWrite.All", "Directory.ReadWrite.All"),
    "GroupMember.Read.All": ("Group.Read.All", "Directory.Read.All", "Directory.ReadWrite.All"),
    "Application.Read.All": ("Directory.Read.All", "Application.ReadWrite.All", "Directory.ReadWrite.All"),
    "RoleManagement.Read.Directory": ("RoleManagement.Read.All", "Directory.Read.All"),
    "AuditLog.Read.All": (),
}
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_TENANT = re.compile(r"^[A-Za-z0-9.-]{1,253}$")  # a GUID or a verified domain (contoso.onmicrosoft.com)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS principals (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT, mail TEXT, display_name TEXT, enabled INTEGER,
    employee_id TEXT, user_type TEXT, department TEXT, title TEXT, manager_id TEXT, last_sign_in TEXT,
    app_id TEXT, sp_type TEXT, owner_id TEXT, tenant_owned INTEGER);
CREATE TABLE IF NOT EXISTS groups (id TEXT PRIMARY KEY, name TEXT, role_assignable INTEGER,
    privileged INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS members (group_id TEXT NOT NULL, member_id TEXT NOT NULL, member_type TEXT,
    PRIMARY KEY (group_id, member_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS members_member ON members (member_id);
CREATE TABLE IF NOT EXISTS assignments (principal_id TEXT NOT NULL, entitlement_id TEXT NOT NULL,
    name TEXT, type TEXT, privileged INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS assignments_principal ON assignments (principal_id);
"""


def _https(value, key: str, problems: list[str]) -> None:
    if value is None:
        return
    parts = urlsplit(value) if isinstance(value, str) else None
    if (
        parts is None
        or parts.scheme != "https"
        or not parts.hostname
        or parts.query
        or parts.path not in ("", "/")
    ):
        problems.append(f"{key}: must be an https:// address without a path, e.g. {GRAPH}")


class EntraSource(Source):
    kind = "entra"
    secret_names = frozenset({"client_secret"})

    @classmethod
    def validate(cls, config: object, secrets: set[str]) -> list[str]:
        if not isinstance(config, Mapping):
            return ["configuration: must be a JSON object with tenant_id and client_id"]
        problems = [f"{key}: is not a setting of an Entra ID connector" for key in sorted(set(config) - KEYS)]
        tenant = config.get("tenant_id")
        if not isinstance(tenant, str) or not _TENANT.match(tenant):
            problems.append(
                "tenant_id: is required (the directory's id, a GUID, or its .onmicrosoft.com domain)"
            )
        client = config.get("client_id")
        if not isinstance(client, str) or not _GUID.match(client):
            problems.append("client_id: is required (the app registration's application id, a GUID)")
        _https(config.get("authority_host"), "authority_host", problems)
        _https(config.get("graph_url"), "graph_url", problems)
        problems += client_problems(
            config, flags=("identities", "app_role_assignments", "role_eligibilities")
        )
        days = config.get("full_pull_days")
        if days is not None and (isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 90):
            problems.append("full_pull_days: must be a whole number of days from 0 (always full) to 90")
        groups = config.get("privileged_groups")
        if groups is not None and (
            not isinstance(groups, list) or not all(isinstance(g, str) and g.strip() for g in groups)
        ):
            problems.append("privileged_groups: must be a list of group names or object ids")
        if "client_secret" not in secrets:
            problems.append("secrets: 'client_secret' is required (the app registration's client secret)")
        problems += [
            f"secrets: {name!r} is not a secret of an Entra ID connector"
            for name in sorted(secrets - cls.secret_names)
        ]
        return problems

    def __init__(self, config, secrets, *, progress=None, state_dir: Path | None = None, now=None):
        super().__init__(config, secrets, progress=progress)
        self.graph_url = (config.get("graph_url") or GRAPH).rstrip("/")
        self.authority = f"{(config.get('authority_host') or AUTHORITY).rstrip('/')}/{config['tenant_id']}"
        self._now = now or (lambda: dt.datetime.now(dt.UTC))
        self._state_dir = state_dir
        self._token: str | None = None
        self._msal = None
        self._api: ApiClient | None = None
        self._db: sqlite3.Connection | None = None
        self._read = 0
        self.sign_ins_readable: bool | None = None  # None: not asked yet
        self.pulled = ""  # "full" or "delta", once read

    @property
    def feeds_identities(self) -> bool:
        return bool(self.config.get("identities", False))

    # --- Credentials -------------------------------------------------------------------------------------------

    def _access_token(self, renew: bool) -> str:
        if self._token and not renew:
            return self._token
        import requests

        try:
            result = self._sign_in().acquire_token_for_client(
                scopes=[f"{self.graph_url}/.default"], **({"force_refresh": True} if renew else {})
            )
        except requests.Timeout:
            raise SourceTimeout(f"the sign-in service at {self.authority} did not answer in time") from None
        except (requests.RequestException, ValueError) as exc:
            # msal raises ValueError when the authority's metadata cannot be read (a wrong host or tenant).
            raise SourceUnreachable(
                f"cannot sign in at {self.authority}: {type(exc).__name__}: {self._scrub(str(exc))}"
            ) from None
        if "access_token" not in result:
            description = self._scrub(str(result.get("error_description") or ""))
            raise SourceUnreachable(
                f"Entra ID refused the credentials of client {self.config['client_id']} at {self.authority}: "
                f"{result.get('error', 'no token')}{': ' + description if description else ''}"
            )
        self._token = result["access_token"]
        return self._token

    def _sign_in(self):
        """The msal client; it reads the authority's OpenID metadata when made (so inside the caller's try)."""
        if self._msal is None:
            import functools

            import msal
            import requests

            # msal's own session would let REQUESTS_CA_BUNDLE override a configured CA file: ours passes it (and
            # the timeout) with every request; proxies still come from the environment.
            session = requests.Session()
            ca_file = self.config.get("ca_file")
            session.request = functools.partial(
                session.request,
                timeout=int(self.config.get("timeout_seconds") or 30),
                **({"verify": ca_file} if ca_file else {}),
            )
            self._msal = msal.ConfidentialClientApplication(
                self.config["client_id"],
                client_credential=self.secrets.get("client_secret", ""),
                authority=self.authority,
                instance_discovery=False,  # national clouds and private hosts: no call to the public cloud
                http_client=session,
            )
        return self._msal

    def _scrub(self, message: str) -> str:
        """The first line of a message, the secret masked should a service ever echo it."""
        secret = self.secrets.get("client_secret")
        line = _first_line(message)
        return line.replace(secret, "***") if secret else line

    @property
    def api(self) -> ApiClient:
        if self._api is None:
            self._api = ApiClient(
                f"{self.graph_url}/v1.0",
                authorize=lambda renew: {"Authorization": f"Bearer {self._access_token(renew)}"},
                timeout=float(self.config.get("timeout_seconds") or 30),
                verify=tls_verify(self.config.get("ca_file")),
                provider="Microsoft Graph",
            )
        return self._api

    def _claims(self) -> dict:
        """The access token's claims, read (not verified: Graph verifies it) to say what it grants."""
        token = self._access_token(False)
        try:
            payload = token.split(".")[1]
            claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (IndexError, ValueError):
            return {}
        return claims if isinstance(claims, dict) else {}

    def granted(self) -> set[str] | None:
        """The application permissions in the token (its ``roles`` claim); None if the token does not say."""
        roles = self._claims().get("roles")
        return set(roles) if isinstance(roles, list) else None

    def permissions(self) -> list[str]:
        lines = []
        granted = self.granted()
        if granted is None:
            lines.append("the token does not list its permissions; the README names the ones to grant")
        else:
            for permission, reads in NEEDED:
                holder = next((p for p in (permission, *INCLUDED_IN[permission]) if p in granted), None)
                if holder:
                    lines.append(f"may read {reads} ({holder})")
                else:
                    lines.append(
                        f"missing: {permission} (application permission, admin consent), so not {reads}"
                    )
        if self._sign_ins_probe():
            lines.append("last sign-ins: readable")
        else:
            lines.append(
                "last sign-ins: not readable (needs AuditLog.Read.All and Entra ID P1 or P2), "
                "so last_used_at stays empty"
            )
        return lines

    def _sign_ins_probe(self) -> bool:
        if self.sign_ins_readable is None:
            try:
                self.api.get_json("users", {"$select": "id,signInActivity", "$top": "1"})
                self.sign_ins_readable = True
            except SourcePermissionDenied:
                self.sign_ins_readable = False
        return self.sign_ins_readable

    # --- The mirror ---------------------------------------------------------------------------------------------

    def _mirror_path(self) -> Path:
        if self._state_dir is None:
            from django.conf import settings

            self._state_dir = Path(settings.SOXGOV_IMPORT_DIR) / "state"
        key = f"{self.graph_url}|{self.config['tenant_id'].lower()}|{self.config['client_id'].lower()}"
        return Path(self._state_dir) / f"entra-{hashlib.sha256(key.encode()).hexdigest()[:24]}.sqlite3"

    def _mirror(self) -> sqlite3.Connection:
        if self._db is None:
            path = self._mirror_path()
            path.parent.mkdir(parents=True, exist_ok=True)
            # Autocommit mode, transactions written out: a second pull of the same tenant waits for the first.
            db = sqlite3.connect(path, timeout=600, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            self._db = db
        return self._db

    def _meta(self, key: str) -> str | None:
        row = self._mirror().execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self._mirror().execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def _full_due(self) -> bool:
        if not (self._meta("users_delta") and self._meta("groups_delta") and self._meta("full_at")):
            return True
        days = self.config.get("full_pull_days", 7)
        if days == 0:
            return True
        last = dt.datetime.fromisoformat(self._meta("full_at"))
        return self._now() - last >= dt.timedelta(days=days)

    def refresh(self) -> None:
        """Bring the mirror up to the tenant: a delta pull when a recent full pull left delta links, else a full
        pull. Everything is read inside one write transaction, committed at the end."""
        if self.pulled:
            return
        db = self._mirror()
        db.execute("BEGIN IMMEDIATE")
        try:
            started = self._now()
            full = self._full_due()
            if not full:
                try:
                    self._delta(started)
                except SourceGone:  # the delta link expired: start again from the whole tenant
                    db.execute("ROLLBACK")
                    db.execute("BEGIN IMMEDIATE")
                    full = True
            if full:
                self._full(started)
            self._others()
            self._mark_privileged()
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self.pulled = "full" if full else "delta"

    def _full(self, started: dt.datetime) -> None:
        db = self._mirror()
        # Delta links first: a change made while the tenant is read is read again at the next delta pull.
        users_link = self._latest_delta("users/delta", {"$select": USER_FIELDS, "$expand": "manager"})
        db.execute("DELETE FROM principals WHERE kind = 'user'")
        db.execute("DELETE FROM groups")
        db.execute("DELETE FROM members")
        sign_ins = self._sign_ins_probe()
        select = USER_FIELDS + (",signInActivity" if sign_ins else "")
        params = {"$select": select, "$expand": "manager($select=id,employeeId)", "$top": PAGE}
        for body in self._pages("users", params):
            for user in body.get("value", []):
                self._user_upsert(user)
        # The initial round of /groups/delta is every group with all its members, and ends with a delta link.
        groups_link = self._groups_delta("groups/delta", {"$select": GROUP_FIELDS})
        self._set_meta("users_delta", users_link)
        self._set_meta("groups_delta", groups_link)
        self._set_meta("full_at", started.isoformat())
        self._set_meta("sign_ins_at", started.isoformat())

    def _delta(self, started: dt.datetime) -> None:
        users_link = None
        for body in self._pages(self._meta("users_delta")):
            for user in body.get("value", []):
                if "@removed" in user:
                    self._principal_remove(user["id"])
                else:
                    self._user_upsert(user, partial=True)
            users_link = body.get("@odata.deltaLink") or users_link
        groups_link = self._groups_delta(self._meta("groups_delta"), None)
        if not users_link:
            raise SourceError("Microsoft Graph ended the users delta without a delta link")
        # Sign-ins are not part of a delta: ask for the users who signed in since the last pull (a day of margin
        # for sign-ins Graph records late).
        if self._sign_ins_probe():
            since = dt.datetime.fromisoformat(self._meta("sign_ins_at") or started.isoformat())
            since = (since - dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            params = {
                "$select": "id,signInActivity",
                "$filter": f"signInActivity/lastSignInDateTime ge {since}",
                "$top": PAGE,
            }
            for body in self._pages("users", params):
                for user in body.get("value", []):
                    self._mirror().execute(
                        "UPDATE principals SET last_sign_in = ? WHERE id = ?",
                        (_sign_in(user), user.get("id")),
                    )
            self._set_meta("sign_ins_at", started.isoformat())
        self._set_meta("users_delta", users_link)
        self._set_meta("groups_delta", groups_link)

    def _latest_delta(self, path: str, params: dict) -> str:
        link = None
        for body in self._pages(path, {**params, "$deltatoken": "latest"}):
            link = body.get("@odata.deltaLink") or link
        if not link:
            raise SourceError(f"Microsoft Graph gave no delta link for {path}")
        return link

    def _groups_delta(self, url: str, params: dict | None) -> str:
        db = self._mirror()
        link = None
        for body in self._pages(url, params):
            for group in body.get("value", []):
                gid = group.get("id")
                if not gid:
                    raise SourceError("Microsoft Graph sent a group without an id")
                if "@removed" in group:
                    db.execute("DELETE FROM groups WHERE id = ?", (gid,))
                    db.execute("DELETE FROM members WHERE group_id = ? OR member_id = ?", (gid, gid))
                    continue
                db.execute("INSERT OR IGNORE INTO groups (id) VALUES (?)", (gid,))
                if "displayName" in group:
                    db.execute("UPDATE groups SET name = ? WHERE id = ?", (group["displayName"], gid))
                if "isAssignableToRole" in group:
                    db.execute(
                        "UPDATE groups SET role_assignable = ? WHERE id = ?",
                        (int(bool(group["isAssignableToRole"])), gid),
                    )
                added, removed = [], []
                for member in group.get("members@delta", []):
                    kind = (member.get("@odata.type") or "").rsplit(".", 1)[-1]
                    (removed if "@removed" in member else added).append((gid, member.get("id"), kind))
                db.executemany(
                    "DELETE FROM members WHERE group_id = ? AND member_id = ?", [r[:2] for r in removed]
                )
                db.executemany("INSERT OR REPLACE INTO members VALUES (?, ?, ?)", added)
                self._count()
            link = body.get("@odata.deltaLink") or link
        if not link:
            raise SourceError("Microsoft Graph ended the groups delta without a delta link")
        return link

    def _user_upsert(self, user: Mapping, *, partial: bool = False) -> None:
        uid = user.get("id")
        if not uid:
            raise SourceError("Microsoft Graph sent a user without an id")
        fields = {
            "name": user.get("userPrincipalName"),
            "mail": user.get("mail"),
            "display_name": user.get("displayName"),
            "enabled": None if user.get("accountEnabled") is None else int(bool(user["accountEnabled"])),
            "employee_id": user.get("employeeId"),
            "user_type": user.get("userType"),
            "department": user.get("department"),
            "title": user.get("jobTitle"),
        }
        wire = {
            "name": "userPrincipalName",
            "mail": "mail",
            "display_name": "displayName",
            "enabled": "accountEnabled",
            "employee_id": "employeeId",
            "user_type": "userType",
            "department": "department",
            "title": "jobTitle",
        }
        if "manager" in user:  # /users with $expand=manager: the manager object, or absent when none
            fields["manager_id"], wire["manager_id"] = (user.get("manager") or {}).get("id"), "manager"
        elif "manager@delta" in user:  # a delta: the manager set or removed
            changes = user["manager@delta"] or [{}]
            latest = changes[-1]
            fields["manager_id"] = None if "@removed" in latest else latest.get("id")
            wire["manager_id"] = "manager@delta"
        elif not partial:
            fields["manager_id"], wire["manager_id"] = None, "id"
        if "signInActivity" in user:
            fields["last_sign_in"], wire["last_sign_in"] = _sign_in(user), "signInActivity"
        # A delta carries only what changed: a property it leaves out keeps its value.
        present = {k: v for k, v in fields.items() if not partial or wire[k] in user}
        db = self._mirror()
        db.execute("INSERT OR IGNORE INTO principals (id, kind) VALUES (?, 'user')", (uid,))
        if present:
            assignments = ", ".join(f"{name} = ?" for name in present)
            db.execute(f"UPDATE principals SET {assignments} WHERE id = ?", (*present.values(), uid))
        self._count()

    def _principal_remove(self, pid: str) -> None:
        db = self._mirror()
        db.execute("DELETE FROM principals WHERE id = ?", (pid,))
        db.execute("DELETE FROM members WHERE member_id = ?", (pid,))

    def _others(self) -> None:
        """Service principals (with owners), directory roles, eligibilities and app role assignments: read in
        full at every pull."""
        db = self._mirror()
        db.execute("DELETE FROM principals WHERE kind = 'sp'")
        db.execute("DELETE FROM assignments")
        tenant = self._tenant_guid()
        fields = "id,appId,displayName,accountEnabled,servicePrincipalType,appOwnerOrganizationId,appRoles"
        app_roles: dict[str, tuple[str, dict[str, str]]] = {}
        sps = []
        for body in self._pages("servicePrincipals", {"$select": fields, "$top": PAGE}):
            for sp in body.get("value", []):
                if not sp.get("id"):
                    raise SourceError("Microsoft Graph sent a service principal without an id")
                roles = {
                    r.get("id"): r.get("displayName") or r.get("value") or r.get("id")
                    for r in sp.get("appRoles") or []
                }
                app_roles[sp["id"]] = (sp.get("displayName") or sp["id"], roles)
                own = sp.get("servicePrincipalType") == "ManagedIdentity" or (
                    tenant is not None and (sp.get("appOwnerOrganizationId") or "").lower() == tenant
                )
                sps.append((sp, own))
        for sp, own in sps:
            owner = self._owner(sp["id"]) if own else None
            db.execute(
                "INSERT OR REPLACE INTO principals (id, kind, name, display_name, enabled, app_id, sp_type, "
                "owner_id, tenant_owned) VALUES (?, 'sp', ?, ?, ?, ?, ?, ?, ?)",
                (
                    sp["id"],
                    sp.get("displayName"),
                    sp.get("displayName"),
                    int(sp.get("accountEnabled", True) is not False),
                    sp.get("appId"),
                    sp.get("servicePrincipalType"),
                    owner,
                    int(own),
                ),
            )
            self._count()
        definitions = {
            d["id"]: d.get("displayName") or d["id"]
            for body in self._pages("roleManagement/directory/roleDefinitions", {"$select": "id,displayName"})
            for d in body.get("value", [])
            if d.get("id")
        }
        rows = []
        for body in self._pages("roleManagement/directory/roleAssignments", None):
            for a in body.get("value", []):
                role = a.get("roleDefinitionId")
                scope = a.get("directoryScopeId") or "/"
                name = definitions.get(role, role)
                eid, label = (
                    (f"role:{role}", name) if scope == "/" else (f"role:{role}@{scope}", f"{name} ({scope})")
                )
                rows.append((a.get("principalId"), eid, label, "role", 1))
        if self.config.get("role_eligibilities", True):
            for body in self._pages("roleManagement/directory/roleEligibilitySchedules", None):
                for a in body.get("value", []):
                    if (a.get("status") or "Provisioned") != "Provisioned":
                        continue
                    role = a.get("roleDefinitionId")
                    name = definitions.get(role, role)
                    rows.append((a.get("principalId"), f"eligible:{role}", f"{name} (eligible)", "role", 1))
        if self.config.get("app_role_assignments", True):
            for sp_id, (app, roles) in app_roles.items():
                for body in self._pages(f"servicePrincipals/{sp_id}/appRoleAssignedTo", {"$top": PAGE}):
                    for a in body.get("value", []):
                        role = a.get("appRoleId") or "00000000-0000-0000-0000-000000000000"
                        label = roles.get(role) or "Default access"
                        rows.append(
                            (a.get("principalId"), f"app:{sp_id}/{role}", f"{app}: {label}", "permission", 0)
                        )
        db.executemany("INSERT INTO assignments VALUES (?, ?, ?, ?, ?)", [r for r in rows if r[0]])

    def _tenant_guid(self) -> str | None:
        """The directory's id: configured, or (a domain configured) the token's ``tid`` claim."""
        tenant = self.config["tenant_id"].lower()
        if _GUID.match(tenant):
            return tenant
        tid = self._claims().get("tid")
        return tid.lower() if isinstance(tid, str) else None

    def _owner(self, sp_id: str) -> str | None:
        """The first owner that is a person (the accountable one); an application owner does not count."""
        for body in self._pages(f"servicePrincipals/{sp_id}/owners", {"$select": "id"}):
            for owner in body.get("value", []):
                if (owner.get("@odata.type") or "").endswith(".user") and owner.get("id"):
                    return owner["id"]
        return None

    def _mark_privileged(self) -> None:
        names = [g.strip().lower() for g in self.config.get("privileged_groups") or []]
        db = self._mirror()
        db.execute("UPDATE groups SET privileged = 0")
        db.execute(
            "UPDATE groups SET privileged = 1 WHERE id IN (SELECT principal_id FROM assignments WHERE type = 'role')"
        )
        db.executemany(
            "UPDATE groups SET privileged = 1 WHERE lower(id) = ? OR lower(name) = ?", [(n, n) for n in names]
        )

    def _pages(self, url: str, params: Mapping | None = None) -> Iterator[dict]:
        """Each page of a Graph list, following ``@odata.nextLink`` (which carries the query)."""
        next_url: str | None = url
        while next_url:
            try:
                body = self.api.get_json(next_url, params)
            except SourcePermissionDenied as exc:
                raise SourcePermissionDenied(f"{exc}; missing: {_permission_for(next_url)}") from None
            if not isinstance(body, dict):
                raise SourceError("Microsoft Graph answered with something that is not a list")
            for link in (body.get("@odata.nextLink"), body.get("@odata.deltaLink")):
                if link and urlsplit(link).netloc != urlsplit(self.graph_url).netloc:
                    # The bearer token goes only to Graph, whatever a page says.
                    raise SourceError(
                        f"Microsoft Graph sent a link to another host ({urlsplit(link).netloc})"
                    )
            yield body
            params = None
            next_url = body.get("@odata.nextLink")

    def _count(self) -> None:
        self._read += 1
        if self._read % PROGRESS_EVERY == 0:
            self.progress(read=self._read)

    # --- Rows ---------------------------------------------------------------------------------------------------

    def access(self) -> Iterator[dict[str, str]]:
        self.refresh()
        db = self._mirror()
        query = """
        WITH RECURSIVE effective(g, m) AS (
            SELECT group_id, member_id FROM members
            UNION
            SELECT e.g, mm.member_id FROM effective e JOIN members mm ON mm.group_id = e.m
        ),
        held(principal, entitlement, name, type, privileged) AS (
            SELECT e.m, g.id, g.name, 'group', g.privileged FROM effective e JOIN groups g ON g.id = e.g
            UNION
            SELECT principal_id, entitlement_id, name, type, privileged FROM assignments
            UNION
            SELECT mm.member_id, a.entitlement_id, a.name, a.type, a.privileged
            FROM assignments a JOIN members mm ON mm.group_id = a.principal_id
        )
        SELECT p.id, p.kind, p.name, p.mail, p.employee_id, p.enabled, p.last_sign_in, p.app_id,
               h.entitlement, h.name, h.type, h.privileged
        FROM held h JOIN principals p ON p.id = h.principal
        UNION ALL
        SELECT p.id, p.kind, p.name, p.mail, p.employee_id, p.enabled, p.last_sign_in, p.app_id,
               '', '', '', 0
        FROM principals p
        WHERE (p.kind = 'user' OR p.tenant_owned = 1)
          AND NOT EXISTS (
              -- CROSS JOIN keeps the order: this principal's memberships first (an IN over every group
              -- would probe each group for each principal)
              SELECT 1 FROM members m CROSS JOIN groups g ON g.id = m.group_id WHERE m.member_id = p.id
          )
          AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.principal_id = p.id)
        """
        for pid, kind, name, mail, employee, enabled, last, app_id, eid, ename, etype, priv in db.execute(
            query
        ):
            yield {
                "account_id": pid,
                "account_name": name or pid,
                "employee_id": (employee or "") if kind == "user" else f"entra-sp:{app_id or pid}",
                "email": mail or "",
                "account_status": "disabled" if enabled == 0 else "enabled",
                "last_used_at": last or "",
                "entitlement_id": eid,
                "entitlement_name": ename or "",
                "entitlement_type": etype or "",
                "privileged": ("true" if priv else "false") if eid else "",
            }
        self.progress(read=self._read)

    def identities(self) -> Iterator[dict[str, str]]:
        """Members with an employee id (guests are accounts without a person here), then the tenant's own
        service principals and managed identities whose owner is one of those people."""
        self.refresh()
        db = self._mirror()
        people = """
        SELECT u.employee_id, u.mail, u.display_name, u.department, u.title, m.employee_id
        FROM principals u LEFT JOIN principals m ON m.id = u.manager_id AND m.kind = 'user'
            AND m.user_type IS NOT 'Guest' AND coalesce(m.employee_id, '') <> ''
        WHERE u.kind = 'user' AND u.user_type IS NOT 'Guest' AND coalesce(u.employee_id, '') <> ''
        ORDER BY u.employee_id, u.enabled DESC, length(u.name)
        """
        seen: set[str] = set()
        for employee, mail, name, department, title, manager in db.execute(people):
            if employee in seen:  # one person, two accounts (an admin account): the enabled, shorter one
                continue
            seen.add(employee)
            yield {
                "employee_id": employee,
                "email": mail or "",
                "display_name": name or "",
                "department": department or "",
                "title": title or "",
                "manager_employee_id": manager if manager and manager != employee else "",
                "status": "active",
                "termination_date": "",
                "kind": "human",
                "owner_employee_id": "",
            }
        services = """
        SELECT s.id, s.app_id, s.display_name, s.sp_type, o.employee_id
        FROM principals s JOIN principals o ON o.id = s.owner_id AND o.kind = 'user'
        WHERE s.kind = 'sp' AND s.tenant_owned = 1 AND coalesce(o.employee_id, '') <> ''
        ORDER BY s.id
        """
        for pid, app_id, name, sp_type, owner in db.execute(services):
            if owner not in seen:
                continue  # the owner is not a person of this tenant's identities: the account stays an orphan
            yield {
                "employee_id": f"entra-sp:{app_id or pid}",
                "email": "",
                "display_name": name or "",
                "department": "",
                "title": "Managed identity" if sp_type == "ManagedIdentity" else "Service principal",
                "manager_employee_id": "",
                "status": "active",
                "termination_date": "",
                "kind": "system" if sp_type == "ManagedIdentity" else "service",
                "owner_employee_id": owner,
            }

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None


def _permission_for(url: str) -> str:
    """The application permission that reads a Graph path, for an admin to grant."""
    path = urlsplit(url).path if "://" in url else "/" + url
    for part, (permission, reads) in (
        ("/roleManagement/", NEEDED[3]),
        ("/servicePrincipals", NEEDED[2]),
        ("/groups", NEEDED[1]),
        ("/users", NEEDED[0]),
    ):
        if part in path:
            return f"{permission} (application permission, admin consent) to read {reads}"
    return "Directory.Read.All (application permission, admin consent)"


def _sign_in(user: Mapping) -> str:
    activity = user.get("signInActivity") or {}
    return activity.get("lastSignInDateTime") or ""


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0][:300] if text.strip() else ""
