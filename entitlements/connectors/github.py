"""GitHub organisation source: who may change the code that runs the financial systems (change management).

Read through the REST API with ApiClient (``Link: rel="next"`` paging at 100 a page, ``x-ratelimit-*`` and
``Retry-After`` honoured, 403 in words), from github.com or a GitHub Enterprise Server (``api_url``):

- members (``/orgs/{org}/members``, owners from ``?role=admin``) and outside collaborators: accounts, keyed by
  GitHub's numeric user id (a login can be renamed), named by login, matched to a person by the e-mail the
  payload gives (an organisation's verified-domain e-mail on GitHub Enterprise; otherwise none, and the
  account is matched through ``people``, a login -> employee id mapping, or stays an orphan);
- the organisation role: ``org:owner`` (privileged) or ``org:member``; ``org:outside-collaborator``;
- teams (``/orgs/{org}/teams``, members by role): ``team:{slug}`` and ``team:{slug}:maintainer``; a member of a
  child team is a member of every parent team (GitHub grants the parent's repositories to them), resolved here
  whether or not the server already lists them;
- repository permissions (``/repos/{org}/{repo}/collaborators?affiliation=all``: direct, through teams and as
  owner): ``repo:{name}:admin`` (privileged), ``repo:{name}:maintain`` and ``repo:{name}:write``; read and triage
  are not access to change code and are left out;
- GitHub App installations (``/orgs/{org}/installations``) and bot accounts (``type: Bot``) as non-human
  accounts: an app installation's account is ``app:{slug}`` with its write and admin permissions as
  entitlements; each is linked to the non-human identity named in ``non_human`` (slug or login -> that
  identity's employee id, whose owner the identities feed records), or brought by this connector as its own
  non-human identity when ``owners`` names its owning person (slug or login -> that person's employee id; kind
  ``service`` for an App, ``bot`` for a bot, employee id ``github:{org}/app:{slug}`` or ``github:{org}/{user id}``),
  else it is an orphan to be owned. The connector's identities pull is the truth for those identities only
  (entitlements/imports/identities.py): an App uninstalled ends its identity; people are never touched.

Credentials, either: the secret ``token``, a fine-grained personal access token (or a classic one) with read
access to the organisation's members, administration (installations) and repository metadata; or a GitHub App
installed on the organisation with those permissions: ``app_id`` and ``installation_id`` in the configuration
and the secret ``private_key`` (PEM). The app signs a short JWT with its key (PyJWT, RS256) and exchanges it for
an installation token (``POST /app/installations/{id}/access_tokens``), renewed before it expires or after a 401.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit

from entitlements.connectors.http import (
    ApiClient,
    SourcePermissionDenied,
    client_option_problems,
    client_options,
)
from entitlements.connectors.sources import Source, SourceError, SourceUnreachable

DEFAULT_API = "https://api.github.com"
KEYS = {"organization", "api_url", "repositories", "people", "non_human", "owners", "timeout_seconds", "ca_file",
        "app_id", "installation_id"}  # fmt: skip
RENEW_BEFORE = 300  # seconds before an installation token expires that a new one is asked for
PAGE = 100
REPOSITORY_LEVELS = ("admin", "maintain", "write")  # strongest first; "write" is the API's "push"
#: App permissions whose write access is administration of the organisation or its repositories.
PRIVILEGED_APP_PERMISSIONS = {"administration", "organization_administration", "members", "secrets",
                              "organization_secrets", "environments", "workflows"}  # fmt: skip
API_VERSION = "2022-11-28"


@dataclass
class _Account:
    id: str
    login: str
    email: str = ""
    kind: str = "human"  # human, bot or app
    entitlements: dict[str, tuple[str, bool]] = field(default_factory=dict)  # id -> (name, privileged)


class GitHubSource(Source):
    kind = "github"
    secret_names = frozenset({"token", "private_key"})
    identities_scope = "non_human"  # its Apps and bots only; people come from the identities feed

    @classmethod
    def validate(cls, config: object, secrets: set[str]) -> list[str]:
        if not isinstance(config, Mapping):
            return ["configuration: must be a JSON object with organization"]
        problems = [f"{key}: is not a setting of a GitHub connector" for key in sorted(set(config) - KEYS)]
        org = config.get("organization")
        if not isinstance(org, str) or not org.strip() or "/" in org or " " in org:
            problems.append("organization: is required, the organisation's login, e.g. example-org")
        api_url = config.get("api_url", DEFAULT_API)
        parts = urlsplit(api_url) if isinstance(api_url, str) else None
        if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
            problems.append(
                "api_url: must be an http(s) URL, e.g. https://api.github.com or https://ghe.example.com/api/v3"
            )
        elif parts.username or parts.password or parts.query:
            problems.append("api_url: must not contain credentials or a query")
        repositories = config.get("repositories", [])
        if not isinstance(repositories, list) or not all(isinstance(r, str) and r for r in repositories):
            problems.append("repositories: must be a list of repository names (empty: every repository)")
        for key in ("people", "non_human", "owners"):
            mapping = config.get(key, {})
            if not isinstance(mapping, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) and k and v for k, v in mapping.items()
            ):
                problems.append(f"{key}: must map logins (or app:slug) to employee ids")
        both = _keys(config.get("non_human")) & _keys(config.get("owners"))
        for login in sorted(both):
            problems.append(
                f"owners: {login} is also in non_human: an App or bot is either an identity the identities feed "
                "holds (non_human) or this connector's own, owned by the person named here (owners), not both"
            )
        problems += client_option_problems(config)
        problems += [
            f"secrets: {name!r} is not a secret of a GitHub connector"
            for name in sorted(secrets - cls.secret_names)
        ]
        app = [key for key in ("app_id", "installation_id") if key in config]
        for key in app:
            value = config[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{key}: must be the GitHub App's number (a whole number)")
        if "token" in secrets and (app or "private_key" in secrets):
            problems.append("secrets: give token, or app_id, installation_id and private_key, not both")
        elif app or "private_key" in secrets:
            missing = [key for key in ("app_id", "installation_id") if key not in config]
            missing += ["secret private_key"] if "private_key" not in secrets else []
            if missing:
                problems.append(f"secrets: a GitHub App also needs {', '.join(missing)}")
        elif "token" not in secrets:
            problems.append(
                "secrets: 'token' is required (a fine-grained personal access token), or a GitHub App's private_key"
            )
        return problems

    def __init__(self, config, secrets, *, progress=None):
        super().__init__(config, secrets, progress=progress)
        self.org = config["organization"]
        self.people = {k.lower(): v for k, v in (config.get("people") or {}).items()}
        self.non_human = {k.lower(): v for k, v in (config.get("non_human") or {}).items()}
        self.owners = {k.lower(): v for k, v in (config.get("owners") or {}).items()}
        self._accounts: dict[str, _Account] | None = None  # read once for identities() and access()
        self.repositories = {r.lower() for r in config.get("repositories") or []}
        self._api: ApiClient | None = None
        self._read = 0
        self._installation_token: tuple[str, float] | None = None  # (token, expires at, epoch seconds)

    @property
    def api(self) -> ApiClient:
        if self._api is None:
            self._api = ApiClient(
                self.config.get("api_url") or DEFAULT_API,
                authorize=self._authorize,
                **client_options(self.config),
                provider="GitHub",
            )
        return self._api

    def _authorize(self, renew: bool) -> dict[str, str]:
        token = self.secrets.get("token")
        if token is None:  # a GitHub App: an installation token, renewed before it expires or after a 401
            held = self._installation_token
            if renew or held is None or held[1] - time.time() < RENEW_BEFORE:
                self._installation_token = held = self._installation_token_new()
            token = held[0]
        return _headers(token)

    def _installation_token_new(self) -> tuple[str, float]:
        import jwt

        now = int(time.time())
        claims = {
            "iat": now - 60,
            "exp": now + 540,
            "iss": str(self.config["app_id"]),
        }  # GitHub allows 10 min
        try:
            assertion = jwt.encode(claims, self.secrets.get("private_key", ""), algorithm="RS256")
        except (ValueError, TypeError, jwt.PyJWTError):
            raise SourceUnreachable(
                "secret 'private_key' is not the GitHub App's private key (an RSA key in PEM form)"
            ) from None
        installation = int(self.config["installation_id"])
        body = self.api.post_json(
            f"/app/installations/{installation}/access_tokens", headers=_headers(assertion)
        )
        token, expires = (
            (body.get("token"), body.get("expires_at")) if isinstance(body, dict) else (None, None)
        )
        try:
            expires_at = dt.datetime.fromisoformat(str(expires).replace("Z", "+00:00")).timestamp()
        except ValueError:
            expires_at = time.time() + 3600  # GitHub's installation tokens live an hour
        if not isinstance(token, str) or not token:
            raise SourceError(f"GitHub gave no installation token for installation {installation}")
        return token, expires_at

    def close(self) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None

    # --- Reading ----------------------------------------------------------------------------------------------

    def _list(self, path: str, params: Mapping | None = None, *, key: str | None = None) -> Iterator[dict]:
        """Every item of a listing paged by Link headers; ``key`` names the list inside an object answer."""
        for response in self.api.pages_by_link(path, {**(params or {}), "per_page": PAGE}):
            try:
                body = response.json()
            except ValueError:
                raise SourceError(f"GitHub answered with something that is not JSON at {path}") from None
            items = body.get(key) if key and isinstance(body, dict) else body
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise SourceError(f"GitHub's answer at {path} is not a list{f' of {key}' if key else ''}")
            self._read += len(items)
            self.progress(read=self._read)
            yield from items

    def _account(self, accounts: dict[str, _Account], user: dict) -> _Account:
        key = str(user.get("id") or "")
        login = str(user.get("login") or "")
        if not key or not login:
            raise SourceError(f"a GitHub user in organisation {self.org} has no id or login")
        if key not in accounts:
            accounts[key] = _Account(
                id=key,
                login=login,
                email=str(user.get("email") or ""),
                kind="bot" if user.get("type") == "Bot" else "human",
            )
        return accounts[key]

    def _read_all(self) -> dict[str, _Account]:
        org = quote(self.org, safe="")
        accounts: dict[str, _Account] = {}
        owners = {str(u.get("id")) for u in self._list(f"/orgs/{org}/members", {"role": "admin"})}
        for user in self._list(f"/orgs/{org}/members", {"role": "all"}):
            account = self._account(accounts, user)
            if account.id in owners:
                account.entitlements["org:owner"] = ("Organisation owner", True)
            else:
                account.entitlements["org:member"] = ("Organisation member", False)
        for user in self._list(f"/orgs/{org}/outside_collaborators"):
            self._account(accounts, user).entitlements["org:outside-collaborator"] = (
                "Outside collaborator",
                False,
            )
        self._teams(org, accounts)
        self._repositories(org, accounts)
        self._installations(org, accounts)
        return accounts

    def _teams(self, org: str, accounts: dict[str, _Account]) -> None:
        teams = [t for t in self._list(f"/orgs/{org}/teams") if t.get("slug")]
        names = {str(t["slug"]): str(t.get("name") or t["slug"]) for t in teams}
        parent_of = {str(t["slug"]): str((t.get("parent") or {}).get("slug") or "") for t in teams}
        for slug in names:
            ancestors, current = [], parent_of.get(slug, "")
            while current and current != slug and current not in ancestors:  # a cycle cannot occur; guarded
                ancestors.append(current)
                current = parent_of.get(current, "")
            for role in ("maintainer", "member"):
                for user in self._list(f"/orgs/{org}/teams/{quote(slug, safe='')}/members", {"role": role}):
                    held = self._account(accounts, user).entitlements
                    if role == "maintainer":
                        held[f"team:{slug}:maintainer"] = (f"{names[slug]} (maintainer)", False)
                    else:
                        held[f"team:{slug}"] = (names[slug], False)
                    # A member of a child team is a member of every team above it.
                    for ancestor in ancestors:
                        held.setdefault(f"team:{ancestor}", (names.get(ancestor, ancestor), False))

    def _repositories(self, org: str, accounts: dict[str, _Account]) -> None:
        for repo in self._list(f"/orgs/{org}/repos", {"type": "all"}):
            name = str(repo.get("name") or "")
            if not name or (self.repositories and name.lower() not in self.repositories):
                continue
            path = f"/repos/{org}/{quote(name, safe='')}/collaborators"
            for user in self._list(path, {"affiliation": "all"}):
                level = _repository_level(user)
                if level is None:
                    continue
                account = self._account(accounts, user)
                account.entitlements[f"repo:{name}:{level}"] = (f"{name} ({level})", level == "admin")

    def _installations(self, org: str, accounts: dict[str, _Account]) -> None:
        for installation in self._list(f"/orgs/{org}/installations", key="installations"):
            slug = str(installation.get("app_slug") or installation.get("app_id") or "")
            if not slug:
                continue
            account = accounts.setdefault(f"app:{slug}", _Account(id=f"app:{slug}", login=slug, kind="app"))
            permissions = installation.get("permissions") or {}
            for permission, level in sorted(permissions.items()):
                if level in ("write", "admin"):
                    privileged = permission in PRIVILEGED_APP_PERMISSIONS
                    account.entitlements[f"app-permission:{permission}:{level}"] = (
                        f"App permission {permission}: {level}",
                        privileged,
                    )
            if installation.get("repository_selection") == "all":
                account.entitlements["app:all-repositories"] = ("App installed on every repository", False)

    @property
    def feeds_identities(self) -> bool:
        return bool(self.owners)

    def _accounts_read(self) -> dict[str, _Account]:
        if self._accounts is None:
            self._accounts = self._read_all()
        return self._accounts

    def identities(self) -> Iterator[dict[str, str]]:
        """The Apps and bots ``owners`` names, as this connector's own non-human identities."""
        if not self.owners:
            return
        named = set(self.owners)
        for account in self._accounts_read().values():
            key = _mapping_key(account)
            if key not in self.owners:
                continue
            named.discard(key)
            if account.kind == "human":
                raise SourceError(
                    f"owners: {account.login} is a person's GitHub account, not an App or a bot; people come "
                    "from the identities feed (map their logins in people)"
                )
            what = "GitHub App installed on" if account.kind == "app" else "GitHub bot account in"
            yield {
                "employee_id": self._own_id(account),
                "display_name": f"{account.login} ({what} {self.org})"[:200],
                "title": f"{what} {self.org}"[:120],
                "status": "active",
                "kind": "service" if account.kind == "app" else "bot",
                "owner_employee_id": self.owners[key][:64],
            }
        # An App or bot named but not found is simply not there (uninstalled): its identity, if any, ends.

    def access(self) -> Iterator[dict[str, str]]:
        for account in self._accounts_read().values():
            employee_id = self._employee_id(account)
            rows = sorted(account.entitlements.items())
            if not rows:
                yield self._row(account, employee_id, "", ("", False))
            for entitlement_id, held in rows:
                yield self._row(account, employee_id, entitlement_id, held)

    def _own_id(self, account: _Account) -> str:
        """The employee id of an App's or bot's identity this connector brings: stable, and one per organisation
        (the same App installed in two organisations is two installations, owned apart)."""
        key = f"github:{self.org.lower()}/{account.id}"
        return key if len(key) <= 64 else "github:" + hashlib.sha256(key.encode()).hexdigest()[:57]

    def _employee_id(self, account: _Account) -> str:
        if account.kind == "human":
            return self.people.get(account.login.lower(), "")
        key = _mapping_key(account)
        if key in self.non_human:
            return self.non_human[key]
        return self._own_id(account) if key in self.owners else ""

    @staticmethod
    def _row(
        account: _Account, employee_id: str, entitlement_id: str, held: tuple[str, bool]
    ) -> dict[str, str]:
        name, privileged = held
        kind = (
            "role"
            if entitlement_id.startswith("org:")
            else "group"
            if entitlement_id.startswith("team:")
            else "permission"
        )
        return {
            "account_id": account.id,
            "account_name": account.login,
            "employee_id": employee_id,
            "email": account.email if account.kind == "human" else "",
            "account_status": "enabled",
            "entitlement_id": entitlement_id,
            "entitlement_name": name,
            "entitlement_type": kind if entitlement_id else "",
            "privileged": "true" if privileged else "false",
        }

    def permissions(self) -> list[str]:
        """What the token may read, one line per listing the pull needs; a 403 names what to grant."""
        org = quote(self.org, safe="")
        lines = []
        response = self.api.get(f"/orgs/{org}")
        scopes = response.headers.get("x-oauth-scopes")
        if scopes is not None:
            lines.append(f"classic token scopes: {scopes or '(none)'}")
        checks = (
            (f"/orgs/{org}/members", "members (organisation Members: read)"),
            (f"/orgs/{org}/outside_collaborators", "outside collaborators (organisation Members: read)"),
            (f"/orgs/{org}/teams", "teams (organisation Members: read)"),
            (f"/orgs/{org}/repos", "repositories (repository Metadata: read)"),
            (f"/orgs/{org}/installations", "app installations (organisation Administration: read)"),
        )
        for path, what in checks:
            try:
                self.api.get(path, {"per_page": 1})
                lines.append(f"may read {what}")
            except SourcePermissionDenied:
                lines.append(f"missing: {what}")
        return lines


def _keys(mapping) -> set[str]:
    return {k.lower() for k in mapping if isinstance(k, str)} if isinstance(mapping, Mapping) else set()


def _mapping_key(account: _Account) -> str:
    """How people, non_human and owners name an account: ``app:{slug}`` for an App, else the login."""
    return f"app:{account.login}".lower() if account.kind == "app" else account.login.lower()


def _headers(credential: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {credential}",
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": API_VERSION,
    }


def _repository_level(user: dict) -> str | None:
    """The strongest of admin, maintain and write a collaborator holds, from ``role_name`` or ``permissions``."""
    role = str(user.get("role_name") or "").lower()
    if role in REPOSITORY_LEVELS:
        return role
    if role == "push":
        return "write"
    permissions = user.get("permissions") or {}
    for level, flag in (("admin", "admin"), ("maintain", "maintain"), ("write", "push")):
        if permissions.get(flag):
            return level
    return None
