"""A stand-in for GitHub's REST API on loopback, answering with payloads shaped as GitHub's reference describes.

It serves one organisation from tests/fixtures/github/org.json (a model the tests change between pulls):
members (``role=admin|member|all``), outside collaborators, teams with ``parent`` and members by role (child
teams' members included, as GitHub does), repositories, collaborators with ``permissions`` and ``role_name``
(``affiliation=all``), and app installations. Lists are paged with ``per_page``/``page`` and a ``Link``
header (``rel="next"``, ``rel="last"``); every answer carries ``x-ratelimit-*`` headers; a wrong token gets
401 ``Bad credentials``. ``faults`` script what GitHub does when it throttles or forbids.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from tests.web_sources import write_json

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "github" / "org.json"
LEVELS = {  # role_name -> permissions, as the collaborators endpoint reports them
    "read": {"pull": True, "triage": False, "push": False, "maintain": False, "admin": False},
    "triage": {"pull": True, "triage": True, "push": False, "maintain": False, "admin": False},
    "write": {"pull": True, "triage": True, "push": True, "maintain": False, "admin": False},
    "maintain": {"pull": True, "triage": True, "push": True, "maintain": True, "admin": False},
    "admin": {"pull": True, "triage": True, "push": True, "maintain": True, "admin": True},
}
DOCS = "https://docs.github.com/rest"


class GitHubStandIn:
    def __init__(self, token: str, *, app: tuple[int, int, bytes] | None = None):
        """``app``: (app id, installation id, the app's public key in PEM): the stand-in then also issues
        installation tokens for JWTs that key verifies, and accepts them as it accepts ``token``."""
        self.token = token
        self.app = app
        self.installation_tokens: list[str] = []
        self.org = json.loads(FIXTURE.read_text())
        self.faults: list = []
        self.requests: list[str] = []
        self.remaining = 5000
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                parts = urlsplit(self.path)
                path = unquote(parts.path).removeprefix("/api/v3")
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                stand_in.requests.append(self.path)
                for fault in list(stand_in.faults):
                    answer = fault(path, query)
                    if answer is not None:
                        stand_in.faults.remove(fault)
                        return self._send(*answer)
                if not stand_in.authorized(self.headers.get("Authorization", "")):
                    return self._send(
                        401, {}, {"message": "Bad credentials", "documentation_url": DOCS, "status": "401"}
                    )
                stand_in.remaining -= 1
                found = stand_in.route(path, query)
                if found is None:
                    return self._send(
                        404, {}, {"message": "Not Found", "documentation_url": DOCS, "status": "404"}
                    )
                body, listing = found
                headers = {}
                if listing is not None:
                    body, headers = stand_in.page(parts.path, query, body, listing)
                self._send(200, headers, body)

            def do_POST(self):
                path = urlsplit(self.path).path.removeprefix("/api/v3")
                stand_in.requests.append(f"POST {self.path}")
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                self._send(*stand_in.token_exchange(path, self.headers.get("Authorization", "")))

            def _send(self, status, headers, body):
                reset = int(time.time()) + 3600
                limits = {
                    "x-ratelimit-limit": "5000",
                    "x-ratelimit-remaining": str(max(stand_in.remaining, 0)),
                    "x-ratelimit-reset": str(reset),
                    "x-ratelimit-used": str(5000 - max(stand_in.remaining, 0)),
                    "x-ratelimit-resource": "core",
                    "x-github-api-version-selected": "2022-11-28",
                }
                write_json(self, status, {**limits, **headers}, body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.api_url = f"http://127.0.0.1:{self.server.server_port}/api/v3"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- credentials ----------------------------------------------------------------------------------------

    def authorized(self, header: str) -> bool:
        scheme, _, credential = header.partition(" ")
        return scheme == "Bearer" and (credential == self.token or credential in self.installation_tokens)

    def token_exchange(self, path: str, header: str) -> tuple[int, dict, dict]:
        """``POST /app/installations/{id}/access_tokens`` with the app's JWT: 201 with an installation token."""
        import jwt

        bad = (
            401,
            {},
            {"message": "A JSON web token could not be decoded", "documentation_url": DOCS, "status": "401"},
        )
        if self.app is None or path != f"/app/installations/{self.app[1]}/access_tokens":
            return 404, {}, {"message": "Not Found", "documentation_url": DOCS, "status": "404"}
        try:
            claims = jwt.decode(header.removeprefix("Bearer "), self.app[2], algorithms=["RS256"])
        except jwt.PyJWTError:
            return bad
        if claims.get("iss") != str(self.app[0]) or claims["exp"] - claims["iat"] > 600:
            return bad
        token = f"test-installation-{len(self.installation_tokens) + 1}"
        self.installation_tokens.append(token)
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 3600))
        permissions = {"members": "read", "administration": "read", "metadata": "read"}
        return (
            201,
            {},
            {
                "token": token,
                "expires_at": expires,
                "permissions": permissions,
                "repository_selection": "all",
            },
        )

    # --- the organisation's model ------------------------------------------------------------------------

    def user(self, login: str) -> dict:
        return copy.deepcopy(self.org["users"][login])

    def team_members(self, slug: str, role: str) -> list[str]:
        """The team's members by role, and (role member or all) its child teams' members, as GitHub lists them."""
        team = self.org["teams"][slug]
        logins = []
        if role in ("maintainer", "all"):
            logins += team["maintainers"]
        if role in ("member", "all"):
            logins += team["members"]
            for child_slug, child in self.org["teams"].items():
                if child.get("parent_slug") == slug:
                    logins += [m for m in self.team_members(child_slug, "all") if m not in logins]
        seen = []
        return [x for x in logins if not (x in seen or seen.append(x))]

    def team(self, slug: str) -> dict:
        team = {
            k: v
            for k, v in self.org["teams"][slug].items()
            if k not in ("maintainers", "members", "parent_slug")
        }
        parent = self.org["teams"][slug].get("parent_slug")
        if parent:
            team["parent"] = {k: v for k, v in self.team(parent).items() if k != "parent"}
        return team

    def route(self, path: str, query: dict) -> tuple[object, str | None] | None:
        """(body, listing) for a path; listing is the name of a list to page (None: not paged)."""
        name = self.org["organization"]["login"]
        org = f"/orgs/{name}"
        if path == org:
            return copy.deepcopy(self.org["organization"]), None
        if path == f"{org}/members":
            role = query.get("role", "all")
            logins = self.org["members"]
            if role == "admin":
                logins = [m for m in logins if m in self.org["owners"]]
            elif role == "member":
                logins = [m for m in logins if m not in self.org["owners"]]
            return [self.user(m) for m in logins], "list"
        if path == f"{org}/outside_collaborators":
            return [self.user(m) for m in self.org["outside_collaborators"]], "list"
        if path == f"{org}/teams":
            return [self.team(slug) for slug in self.org["teams"]], "list"
        match = re.fullmatch(rf"{org}/teams/([^/]+)/members", path)
        if match and match.group(1) in self.org["teams"]:
            return [self.user(m) for m in self.team_members(match.group(1), query.get("role", "all"))], "list"
        if path == f"{org}/repos":
            return [
                {k: v for k, v in repo.items() if k != "collaborators"}
                for repo in self.org["repositories"].values()
            ], "list"
        match = re.fullmatch(rf"/repos/{name}/([^/]+)/collaborators", path)
        if match and match.group(1) in self.org["repositories"]:
            out = []
            for login, level in self.org["repositories"][match.group(1)]["collaborators"].items():
                out.append({**self.user(login), "permissions": dict(LEVELS[level]), "role_name": level})
            return out, "list"
        if path == f"{org}/installations":
            return copy.deepcopy(self.org["installations"]), "installations"
        return None

    def page(self, raw_path: str, query: dict, items: list, listing: str) -> tuple[object, dict]:
        per_page = min(int(query.get("per_page", 30)), 100)
        page = int(query.get("page", 1))
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        links = []
        # GitHub sends next and last while there is a next page (and prev and first after the first page).
        if page < last:
            for rel, number in (("next", page + 1), ("last", last)):
                link_query = urlencode({**query, "page": number})
                links.append(
                    f'<http://127.0.0.1:{self.server.server_port}{raw_path}?{link_query}>; rel="{rel}"'
                )
        headers = {"Link": ", ".join(links)} if links else {}
        if listing == "installations":
            return {"total_count": len(items), "installations": chunk}, headers
        return chunk, headers


def throttle_once(path: str, *, page: str = "1", status: int = 429, seconds: int = 1):
    """GitHub's secondary rate limit (429, or 403 with Retry-After), or its primary one spent (403 with
    x-ratelimit-remaining 0 and the reset time), the first time ``path`` is asked for ``page``."""

    def fault(asked, query):
        if asked == path and query.get("page", "1") == page:
            if status == 429:
                headers = {"Retry-After": str(seconds)}
            else:
                headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + seconds)}
            body = {
                "message": "API rate limit exceeded for installation.",
                "documentation_url": DOCS,
                "status": str(status),
            }
            return status, headers, body
        return None

    return fault


def forbid(path: str):
    """A token without the permission: 403 ``Resource not accessible by personal access token``."""

    def fault(asked, query):
        if asked == path:
            return (
                403,
                {},
                {
                    "message": "Resource not accessible by personal access token",
                    "documentation_url": DOCS,
                    "status": "403",
                },
            )
        return None

    return fault
