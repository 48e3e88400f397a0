"""SCIM 2.0 source: the users and groups of any SCIM service provider (RFC 7643 / 7644), the long tail of SaaS.

Reading is two paged listings through ApiClient (timeouts, throttling, 401/403 in words): ``/Groups`` first, so
each user's groups are known when the user is read, then ``/Users``. A user is an account (``id`` the key,
``userName`` its name, ``active`` false: disabled); its groups (nested groups resolved, with cycle detection),
its ``roles`` and its ``entitlements`` (the multi-valued attributes of RFC 7643 4.1.2) are its entitlements.
The enterprise extension's ``employeeNumber`` (or ``externalId``, as configured) and the primary e-mail
correlate the account with a person; its ``manager`` names the person's manager when the source feeds
identities.

Paging is by index (RFC 7644 3.4.2.4): ``startIndex`` and ``count``. A provider may return fewer resources than
asked (many cap ``count``), so a short page ends the listing only when ``totalResults`` is reached or not given;
a page that repeats resources already read (a provider ignoring ``startIndex``) is an error rather than a loop.

Providers differ in small ways, kept in ``PROFILES``: the page size they accept, and whether a group listing
carries its members or only does when asked with ``attributes=members``.

The library: our own reading on ApiClient rather than scim2-client. scim2-client validates every resource
against pydantic models built from the schemas, which refuses the non-conforming payloads real providers send
(a missing ``schemas``, a ``members`` entry without ``$ref``), while SOXGov needs a handful of attributes read
leniently; and every call would have to bypass its own httpx handling to keep ApiClient's throttling and
messages. The tests use scim2-server, built on scim2-models, as the real provider.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from entitlements.connectors.http import (
    ApiClient,
    SourcePermissionDenied,
    client_option_problems,
    client_options,
    where,
)
from entitlements.connectors.sources import Source, SourceError

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"

#: Per-provider quirks. ``page_size``: ``count`` asked per page; ``group_members``: "inline" (a group listing
#: carries members, as RFC 7643 says by default) or "ask" (only with ``attributes=members``).
PROFILES: dict[str, dict] = {
    "generic": {"page_size": 200, "group_members": "inline"},
    # Providers that refuse or silently cut a count over 100.
    "page-cap-100": {"page_size": 100, "group_members": "inline"},
    # Providers whose group listing leaves members out (they are costly) unless asked for them.
    "members-on-request": {"page_size": 100, "group_members": "ask"},
}
EMPLOYEE_ID_ATTRIBUTES = ("employeeNumber", "externalId")
KEYS = {
    "url",
    "profile",
    "page_size",
    "employee_id_attribute",
    "privileged_groups",
    "privileged_roles",
    "privileged_entitlements",
    "identities",
    "timeout_seconds",
    "ca_file",
}
MAX_PAGE_SIZE = 1000
MAX_PAGES = 1_000_000  # a bound on any listing, should a provider never stop


@dataclass
class _User:
    id: str
    user_name: str
    employee_id: str
    email: str
    display_name: str
    enabled: bool
    manager_id: str = ""
    department: str = ""
    title: str = ""
    roles: list[tuple[str, str]] = field(default_factory=list)  # (value, display)
    entitlements: list[tuple[str, str]] = field(default_factory=list)


class ScimSource(Source):
    kind = "scim"
    secret_names = frozenset({"bearer_token", "username", "password"})

    @classmethod
    def validate(cls, config: object, secrets: set[str]) -> list[str]:
        if not isinstance(config, Mapping):
            return ["configuration: must be a JSON object with url"]
        problems = [f"{key}: is not a setting of a SCIM connector" for key in sorted(set(config) - KEYS)]
        problems += _url_problems(config.get("url"))
        profile = config.get("profile", "generic")
        if profile not in PROFILES:
            problems.append(f"profile: {profile!r} is not a profile (use one of {', '.join(PROFILES)})")
        page_size = config.get("page_size")
        if page_size is not None and (
            isinstance(page_size, bool)
            or not isinstance(page_size, int)
            or not 1 <= page_size <= MAX_PAGE_SIZE
        ):
            problems.append(f"page_size: must be a whole number from 1 to {MAX_PAGE_SIZE}")
        attribute = config.get("employee_id_attribute", "employeeNumber")
        if attribute not in EMPLOYEE_ID_ATTRIBUTES:
            problems.append(f"employee_id_attribute: use {' or '.join(EMPLOYEE_ID_ATTRIBUTES)}")
        for key in ("privileged_groups", "privileged_roles", "privileged_entitlements"):
            value = config.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
                problems.append(f"{key}: must be a list of names")
        if not isinstance(config.get("identities", False), bool):
            problems.append("identities: must be true or false")
        problems += client_option_problems(config)
        problems += [
            f"secrets: {name!r} is not a secret of a SCIM connector"
            for name in sorted(secrets - cls.secret_names)
        ]
        basic = {"username", "password"} & secrets
        if "bearer_token" in secrets and basic:
            problems.append("secrets: give bearer_token or username and password, not both")
        elif basic and basic != {"username", "password"}:
            problems.append("secrets: basic authentication needs both username and password")
        elif not secrets & cls.secret_names:
            problems.append("secrets: give bearer_token (or username and password for basic authentication)")
        return problems

    def __init__(self, config, secrets, *, progress=None):
        super().__init__(config, secrets, progress=progress)
        profile = PROFILES[config.get("profile", "generic")]
        self.page_size = int(config.get("page_size") or profile["page_size"])
        self.group_members = profile["group_members"]
        self.employee_id_attribute = config.get("employee_id_attribute", "employeeNumber")
        self.privileged = {
            key: {v.strip().lower() for v in config.get(f"privileged_{key}", [])}
            for key in ("groups", "roles", "entitlements")
        }
        self._api: ApiClient | None = None
        self._read = 0

    @property
    def feeds_identities(self) -> bool:
        return bool(self.config.get("identities"))

    @property
    def api(self) -> ApiClient:
        if self._api is None:
            self._api = ApiClient(
                self.config["url"],
                authorize=self._authorize,
                **client_options(self.config),
                provider="the SCIM service provider",
            )
        return self._api

    def _authorize(self, renew: bool) -> dict[str, str]:
        # A static token cannot be renewed: a 401 after the retry is a refused credential (exit 2).
        headers = {"Accept": "application/scim+json, application/json"}
        if self.secrets.get("bearer_token"):
            headers["Authorization"] = f"Bearer {self.secrets['bearer_token']}"
        elif self.secrets.get("username"):
            pair = f"{self.secrets['username']}:{self.secrets.get('password', '')}".encode()
            headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"
        return headers

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None

    # --- Reading ----------------------------------------------------------------------------------------------

    def resources(self, endpoint: str, params: Mapping | None = None) -> Iterator[dict]:
        """Every resource of a listing, page by page (``startIndex``/``count``)."""
        start, seen = 1, set()
        for _page in range(MAX_PAGES):
            body = self.api.get_json(
                endpoint, {**(params or {}), "startIndex": start, "count": self.page_size}
            )
            resources = body.get("Resources", []) if isinstance(body, dict) else None
            if not isinstance(resources, list) or not all(isinstance(r, dict) for r in resources):
                raise SourceError(
                    f"the SCIM service provider's answer at {where(self.api.url(endpoint))} is not a "
                    "ListResponse (no Resources list)"
                )
            total = body.get("totalResults")
            for resource in resources:
                key = str(resource.get("id") or "")
                if not key:
                    raise SourceError(f"a resource of {endpoint} has no id (at startIndex {start})")
                if key in seen:
                    raise SourceError(
                        f"{endpoint}: the provider returned {key!r} again at startIndex {start}: it does not page "
                        "by startIndex, so the listing cannot be read whole"
                    )
                seen.add(key)
                yield resource
            self._read += len(resources)
            self.progress(read=self._read)
            start += len(resources)
            if not resources:
                return
            if isinstance(total, int) and not isinstance(total, bool):
                if start - 1 >= total:
                    return
                # A short page before totalResults: the provider capped count; go on from where it stopped.
            elif len(resources) < self.page_size:
                return
        raise SourceError(f"{endpoint}: more than {MAX_PAGES} pages; the provider does not stop paging")

    def _groups(self) -> tuple[dict[str, tuple[str, bool]], dict[str, list[str]]]:
        """Groups by id -> (name, privileged), and each user's groups (nested groups resolved)."""
        params = {"attributes": "displayName,externalId,members"} if self.group_members == "ask" else None
        names: dict[str, tuple[str, bool]] = {}
        users_of: dict[str, list[str]] = {}
        children: dict[str, list[str]] = {}
        for group in self.resources("/Groups", params):
            gid = str(group["id"])
            name = str(group.get("displayName") or gid)
            privileged = bool({gid.lower(), name.lower()} & self.privileged["groups"])
            names[gid] = (name, privileged)
            direct, nested = [], []
            for member in group.get("members") or []:
                if not isinstance(member, dict) or not member.get("value"):
                    continue
                ref = str(member.get("$ref") or "")
                if str(member.get("type") or "").lower() == "group" or "/Groups/" in ref:
                    nested.append(str(member["value"]))
                else:
                    direct.append(str(member["value"]))
            users_of[gid] = direct
            if nested:
                children[gid] = nested
        # A group's members are its own and those of every group nested in it, however deep; a cycle ends
        # where a group was already visited.
        groups_of: dict[str, list[str]] = {}
        for gid in names:
            members = set(users_of.get(gid, ()))
            if gid in children:
                visited, stack = {gid}, list(children[gid])
                while stack:
                    inner = stack.pop()
                    if inner in visited:
                        continue
                    visited.add(inner)
                    members.update(users_of.get(inner, ()))
                    stack.extend(children.get(inner, ()))
            for uid in members:
                groups_of.setdefault(uid, []).append(gid)
        return names, groups_of

    def _users(self) -> Iterator[_User]:
        for resource in self.resources("/Users"):
            yield self._user(resource)

    def _user(self, resource: dict) -> _User:
        enterprise = resource.get(ENTERPRISE) if isinstance(resource.get(ENTERPRISE), dict) else {}
        if self.employee_id_attribute == "externalId":
            employee_id = resource.get("externalId")
        else:
            employee_id = enterprise.get("employeeNumber")
        manager = enterprise.get("manager")
        name = resource.get("name") if isinstance(resource.get("name"), dict) else {}
        return _User(
            id=str(resource["id"]),
            user_name=_text(resource.get("userName")),
            employee_id=_text(employee_id),
            email=_primary(resource.get("emails")),
            display_name=_text(resource.get("displayName") or name.get("formatted")),
            enabled=resource.get("active") is not False,
            manager_id=_text(manager.get("value")) if isinstance(manager, dict) else "",
            department=_text(enterprise.get("department")),
            title=_text(resource.get("title")),
            roles=_values(resource.get("roles")),
            entitlements=_values(resource.get("entitlements")),
        )

    def access(self) -> Iterator[dict[str, str]]:
        groups, groups_of = self._groups()
        names: dict[str, str] = {}  # one name per role or entitlement, whatever each user's copy says
        for user in self._users():
            rows = 0
            for gid in sorted(groups_of.get(user.id, ())):
                name, privileged = groups[gid]
                yield _access(user, f"group:{gid}", name, "group", privileged)
                rows += 1
            for attribute, kind, label in (
                ("roles", "role", "role"),
                ("entitlements", "permission", "entitlement"),
            ):
                for value, display in getattr(user, attribute):
                    key = f"{label}:{value}"
                    name = names.setdefault(key, display or value)
                    yield _access(user, key, name, kind, value.lower() in self.privileged[attribute])
                    rows += 1
            if not rows:
                yield _access(user, "", "", "", False)

    def identities(self) -> Iterator[dict[str, str]]:
        """One identity per employee id among active users (an inactive user yields none, so SOXGov marks the
        person terminated as an identities file leaving them out would); the manager when they are one too."""
        chosen: dict[str, _User] = {}
        employee_of: dict[str, str] = {}
        for user in self._users():
            if not user.employee_id or not user.enabled:
                continue
            employee_of[user.id] = user.employee_id
            held = chosen.get(user.employee_id)
            if held is None or (len(user.user_name), user.user_name) < (len(held.user_name), held.user_name):
                chosen[user.employee_id] = user
        for employee_id, user in chosen.items():
            manager = employee_of.get(user.manager_id, "")
            yield {
                "employee_id": employee_id,
                "email": user.email,
                "display_name": user.display_name,
                "department": user.department,
                "title": user.title,
                "manager_employee_id": manager if manager != employee_id else "",
                "status": "active",
                "kind": "human",
            }

    def permissions(self) -> list[str]:
        """What the provider says it supports (/ServiceProviderConfig), whether its schemas carry what SOXGov
        reads (/Schemas), and whether Users and Groups may be listed."""
        lines = []
        try:
            config = self.api.get_json("/ServiceProviderConfig")
            schemes = [
                s.get("name") or s.get("type")
                for s in config.get("authenticationSchemes") or []
                if isinstance(s, dict)
            ]
            lines.append(
                "service provider: authentication "
                + (", ".join(str(s) for s in schemes) or "not described")
                + f"; filter {'supported' if (config.get('filter') or {}).get('supported') else 'not supported'}"
            )
        except SourcePermissionDenied as exc:
            lines.append(f"missing: reading /ServiceProviderConfig ({exc})")
        except SourceError as exc:
            if not _status_of(exc, (404, 501)):
                raise
            lines.append("the provider does not serve /ServiceProviderConfig (optional for reading)")
        lines += self._schema_lines()
        for endpoint, what in (("/Users", "accounts"), ("/Groups", "group memberships")):
            try:
                body = self.api.get_json(endpoint, {"startIndex": 1, "count": 1})
                lines.append(f"may read {endpoint} ({body.get('totalResults', '?')} resources)")
            except SourcePermissionDenied:
                lines.append(f"missing: permission to list {endpoint}, so {what} are not read")
        return lines

    def _schema_lines(self) -> list[str]:
        try:
            body = self.api.get_json("/Schemas")
        except SourcePermissionDenied:
            return ["missing: reading /Schemas (the pull does not need it)"]
        except SourceError as exc:
            if not _status_of(exc, (404, 501)):
                raise
            return ["the provider does not serve /Schemas; attributes are read where present"]
        schemas = body.get("Resources", body) if isinstance(body, dict) else body
        by_id = {s.get("id"): s for s in schemas if isinstance(s, dict)} if isinstance(schemas, list) else {}
        lines = []
        user = by_id.get(CORE_USER)
        declared = {a.get("name") for a in (user or {}).get("attributes", []) if isinstance(a, dict)}
        for attribute in ("roles", "entitlements"):
            if user is not None and attribute not in declared:
                lines.append(f"the User schema has no {attribute}: none are read")
        if ENTERPRISE not in by_id and self.employee_id_attribute == "employeeNumber":
            lines.append(
                "missing: the enterprise user extension, so employee numbers and managers are not read "
                "(accounts are matched by e-mail; or set employee_id_attribute to externalId)"
            )
        return lines or ["schemas: User (roles, entitlements) and the enterprise extension are declared"]


def _status_of(exc: SourceError, statuses: tuple[int, ...]) -> bool:
    return any(f"answered {status} " in str(exc) for status in statuses)


def _url_problems(url: object) -> list[str]:
    if not isinstance(url, str) or not url.strip():
        return ["url: is required, the SCIM base URL, e.g. https://app.example.com/scim/v2"]
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return [f"url: {url!r} is not an http(s) URL with a host"]
    problems = []
    if parts.username or parts.password:
        problems.append("url: must not contain credentials; give them as secrets")
    if parts.query or parts.fragment:
        problems.append("url: must not have a query or a fragment (the base URL only)")
    return problems


def _text(value) -> str:
    return str(value).strip() if value is not None and not isinstance(value, dict | list) else ""


def _primary(emails) -> str:
    """The primary e-mail, else the work one, else the first."""
    if not isinstance(emails, list):
        return ""
    entries = [e for e in emails if isinstance(e, dict) and e.get("value")]
    for pick in (lambda e: e.get("primary") is True, lambda e: e.get("type") == "work", lambda e: True):
        for entry in entries:
            if pick(entry):
                return _text(entry["value"])
    return ""


def _values(items) -> list[tuple[str, str]]:
    """(value, display) of a multi-valued attribute (roles, entitlements), once each."""
    out, seen = [], set()
    for item in items if isinstance(items, list) else []:
        value = _text(item.get("value")) if isinstance(item, dict) else _text(item)
        if value and value not in seen:
            seen.add(value)
            out.append((value, _text(item.get("display")) if isinstance(item, dict) else ""))
    return out


def _access(user: _User, entitlement_id: str, name: str, kind: str, privileged: bool) -> dict[str, str]:
    return {
        "account_id": user.id,
        "account_name": user.user_name,
        "employee_id": user.employee_id,
        "email": user.email,
        "account_status": "enabled" if user.enabled else "disabled",
        "entitlement_id": entitlement_id,
        "entitlement_name": name,
        "entitlement_type": kind,
        "privileged": "true" if privileged else "false",
    }
