"""Okta: users (deprovisioned ones included) as accounts; groups, app assignments and admin roles as entitlements.

Read with an API token (``Authorization: SSWS``) of a read-only administrator, the connector's secret
``api_token``. Configuration::

    {"org_url": "https://example.okta.com",
     "identities": false,              (optional: also feed identities from users with an employeeNumber)
     "apps": true, "admin_roles": true,  (optional parts, on by default)
     "timeout_seconds": 30, "ca_file": "/etc/ssl/corp-proxy.pem"}   (optional)

Lists are paged by ``Link: <...>; rel="next"`` headers at 200 a page; Okta's ``X-Rate-Limit-*`` headers are
honoured by the API client (a 429 waits until ``X-Rate-Limit-Reset``). OAuth 2.0 service apps (private key JWT)
are not supported yet: use an API token.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from urllib.parse import urlsplit

from entitlements.connectors.http import ApiClient, SourcePermissionDenied, client_problems, tls_verify
from entitlements.connectors.sources import Source, SourceError

KEYS = {"org_url", "identities", "apps", "admin_roles", "timeout_seconds", "ca_file"}
PAGE = "200"
DISABLED = {"SUSPENDED", "DEPROVISIONED"}
PROGRESS_EVERY = 5000
READS = (  # what the token must read, by path prefix
    ("/api/v1/users", "users"),
    ("/api/v1/groups", "groups and their members"),
    ("/api/v1/apps", "app assignments"),
    ("/api/v1/iam/", "admin role assignments"),
)


class OktaSource(Source):
    kind = "okta"
    secret_names = frozenset({"api_token"})

    @classmethod
    def validate(cls, config: object, secrets: set[str]) -> list[str]:
        if not isinstance(config, Mapping):
            return ["configuration: must be a JSON object with org_url"]
        problems = [f"{key}: is not a setting of an Okta connector" for key in sorted(set(config) - KEYS)]
        url = config.get("org_url")
        parts = urlsplit(url) if isinstance(url, str) else None
        if parts is None or parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/"):
            problems.append("org_url: is required, the org's https:// address, e.g. https://example.okta.com")
        problems += client_problems(config, flags=("identities", "apps", "admin_roles"))
        if "api_token" not in secrets:
            problems.append("secrets: 'api_token' is required (an API token of a read-only administrator)")
        problems += [
            f"secrets: {name!r} is not a secret of an Okta connector"
            for name in sorted(secrets - cls.secret_names)
        ]
        return problems

    def __init__(self, config, secrets, *, progress=None):
        super().__init__(config, secrets, progress=progress)
        self._api: ApiClient | None = None
        self._users: dict[str, tuple] | None = None
        self._read = 0

    @property
    def feeds_identities(self) -> bool:
        return bool(self.config.get("identities", False))

    @property
    def api(self) -> ApiClient:
        if self._api is None:
            self._api = ApiClient(
                self.config["org_url"].rstrip("/"),
                authorize=lambda renew: {
                    "Authorization": f"SSWS {self.secrets.get('api_token', '')}",
                    "Accept": "application/json",
                },
                timeout=float(self.config.get("timeout_seconds") or 30),
                verify=tls_verify(self.config.get("ca_file")),
                provider="Okta",
            )
        return self._api

    def _get_json(self, path: str, params: Mapping | None):
        try:
            return self.api.get_json(path, params)
        except SourcePermissionDenied as exc:
            raise SourcePermissionDenied(f"{exc}; missing: {_permission_for(path)}") from None

    def _list(self, path: str, params: Mapping | None = None) -> Iterator[dict]:
        pages = self.api.pages_by_link(path, {"limit": PAGE, **(params or {})})
        while True:
            try:
                response = next(pages, None)
            except SourcePermissionDenied as exc:
                raise SourcePermissionDenied(f"{exc}; missing: {_permission_for(path)}") from None
            if response is None:
                return
            try:
                items = response.json()
            except ValueError:
                raise SourceError(f"Okta answered with something that is not JSON at {path}") from None
            if not isinstance(items, list):
                raise SourceError(f"Okta answered {path} with something that is not a list")
            yield from items

    def permissions(self) -> list[str]:
        lines = []
        for path, what in READS:
            try:
                self.api.get(path, {"limit": "1"})
                lines.append(f"may read {what}")
            except SourcePermissionDenied:
                lines.append(f"missing: {_permission_for(path)}")
        return lines

    # --- Reading ------------------------------------------------------------------------------------------------

    def _users_read(self) -> dict[str, tuple]:
        """id -> (login, email, employee number, status, last login, display name, department, title, manager)"""
        if self._users is None:
            users: dict[str, tuple] = {}
            # The plain list leaves deprovisioned users out; a search brings them (their accounts still exist).
            for params in ({}, {"search": 'status eq "DEPROVISIONED"'}):
                for user in self._list("/api/v1/users", params):
                    profile = user.get("profile") or {}
                    if not user.get("id"):
                        raise SourceError("Okta sent a user without an id")
                    name = " ".join(p for p in (profile.get("firstName"), profile.get("lastName")) if p)
                    users[user["id"]] = (
                        profile.get("login") or "",
                        profile.get("email") or "",
                        profile.get("employeeNumber") or "",
                        user.get("status") or "",
                        user.get("lastLogin") or "",
                        profile.get("displayName") or name,
                        profile.get("department") or "",
                        profile.get("title") or "",
                        profile.get("managerId") or "",
                    )
                    self._count()
            self._users = users
        return self._users

    def _grants(self) -> Iterator[tuple[str, str, str, str, bool]]:
        """(user id, entitlement id, name, type, privileged) for every membership, assignment and role."""
        for group in self._list("/api/v1/groups"):
            gid = group.get("id")
            name = (group.get("profile") or {}).get("name") or gid
            for member in self._list(f"/api/v1/groups/{gid}/users"):
                yield member.get("id"), f"group:{gid}", name, "group", False
                self._count()
        if self.config.get("apps", True):
            for app in self._list("/api/v1/apps"):
                aid = app.get("id")
                for assigned in self._list(f"/api/v1/apps/{aid}/users"):
                    yield assigned.get("id"), f"app:{aid}", app.get("label") or aid, "permission", False
                    self._count()
        if self.config.get("admin_roles", True):
            for assignee in self._assignees():
                for role in self._list(f"/api/v1/users/{assignee}/roles"):
                    if role.get("status", "ACTIVE") != "ACTIVE":
                        continue
                    kind = role.get("type") or "CUSTOM"
                    key = kind if kind != "CUSTOM" else f"CUSTOM:{role.get('role') or role.get('label')}"
                    yield assignee, f"role:{key}", role.get("label") or kind, "role", True

    def _assignees(self) -> Iterator[str]:
        """Users holding an admin role (directly or through a group): Okta pages this list in the body."""
        url: str | None = "/api/v1/iam/assignees/users"
        params: dict | None = {"limit": PAGE}
        while url:
            body = self._get_json(url, params)
            params = None
            for item in body.get("value", []) if isinstance(body, dict) else []:
                if item.get("id"):
                    yield item["id"]
            url = (
                ((body.get("_links") or {}).get("next") or {}).get("href") if isinstance(body, dict) else None
            )

    def _count(self) -> None:
        self._read += 1
        if self._read % PROGRESS_EVERY == 0:
            self.progress(read=self._read)

    # --- Rows ---------------------------------------------------------------------------------------------------

    def access(self) -> Iterator[dict[str, str]]:
        users = self._users_read()
        granted: set[str] = set()
        seen: set[tuple[str, str]] = set()
        for uid, eid, name, etype, privileged in self._grants():
            user = users.get(uid)
            if (
                user is None or (uid, eid) in seen
            ):  # a group's member that is not a user, or twice (group + user)
                continue
            seen.add((uid, eid))
            granted.add(uid)
            yield _row(uid, user, eid, name, etype, "true" if privileged else "false")
        for uid, user in users.items():
            if uid not in granted:
                yield _row(uid, user, "", "", "", "")
        self.progress(read=self._read)

    def identities(self) -> Iterator[dict[str, str]]:
        users = self._users_read()
        by_key = {}
        for uid, user in users.items():
            if user[2]:
                by_key[uid] = by_key[user[0].lower()] = by_key[user[2]] = user[2]
        seen = set()
        for user in users.values():
            _, email, employee, status, _, name, department, title, manager = user
            if not employee or employee in seen:
                continue
            seen.add(employee)
            boss = by_key.get(manager) or by_key.get(manager.lower(), "")
            yield {
                "employee_id": employee,
                "email": email,
                "display_name": name,
                "department": department,
                "title": title,
                "manager_employee_id": boss if boss != employee else "",
                "status": "terminated" if status == "DEPROVISIONED" else "active",
                "termination_date": "",
                "kind": "human",
                "owner_employee_id": "",
            }

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None


def _permission_for(path: str) -> str:
    what = (
        "admin role assignments"
        if path.rstrip("/").endswith("/roles")
        else next((what for prefix, what in READS if path.startswith(prefix)), "it")
    )
    return (
        f"the token may not read {what}; use a token created by a Read-Only Administrator "
        "(an API token acts with its creator's admin role)"
    )


def _row(uid: str, user: tuple, eid: str, name: str, etype: str, privileged: str) -> dict[str, str]:
    login, email, employee, status, last_login, *_ = user
    return {
        "account_id": uid,
        "account_name": login,
        "employee_id": employee,
        "email": email,
        "account_status": "disabled" if status in DISABLED else "enabled",
        "last_used_at": last_login,
        "entitlement_id": eid,
        "entitlement_name": name,
        "entitlement_type": etype,
        "privileged": privileged,
    }
