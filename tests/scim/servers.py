"""A real SCIM 2.0 service provider for the SCIM connector tests, and a small proxy in front of it.

``ScimServer`` runs the ``scim2-server`` command (the python-scim project's reference server, from PyPI) on
127.0.0.1 on a free port, in memory, with a bearer token of its own: a wrong token is refused by the server
itself. ``seed`` loads tests/fixtures/scim/tenant.json through its API (POST /Users, POST /Groups), as a
provisioning client would, and the tests change it the same way (PATCH, POST) between pulls.

``Proxy`` forwards to it and plays what one real provider does that the reference server does not: answering
429 with Retry-After, 403 for a token without a scope, capping ``count``, leaving group members out unless
asked for them.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from tests.web_sources import write_json

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "scim" / "tenant.json"
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
START_TIMEOUT = 30


def scim2_server_missing() -> str | None:
    if _command() is None:
        return "the scim2-server command is not installed (pip install -e '.[dev]' brings it)"
    return None


def _command() -> str | None:
    beside = Path(sys.executable).parent / "scim2-server"
    return str(beside) if beside.exists() else shutil.which("scim2-server")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ScimServer:
    """``start()``, use ``url`` and ``token``, ``stop()``. Resources live in the server's memory only."""

    def __init__(self):
        self.token = "scim-test-" + secrets.token_urlsafe(16)
        self.port = 0
        self.process: subprocess.Popen | None = None
        self.ids: dict[str, str] = {}  # userName or group displayName -> the server's id
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 (open for the server's life; stop() closes it)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v2"

    def start(self) -> ScimServer:
        for _attempt in range(3):  # a port taken between probing and binding: try another
            self.port = free_port()
            self.process = subprocess.Popen(
                [
                    _command(),
                    "--hostname",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--bearer-token",
                    self.token,
                ],
                stdout=subprocess.DEVNULL,
                stderr=self.log,  # a file, not a pipe: a request log nobody reads must never block the server
            )
            if self._wait_ready():
                self.http = httpx.Client(
                    base_url=self.url,
                    headers={
                        "Authorization": f"Bearer {self.token}",
                        "Content-Type": "application/scim+json",
                    },
                    timeout=10,
                )
                return self
        raise RuntimeError(f"scim2-server did not start: {self._stderr()}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with contextlib.suppress(httpx.TransportError):
                answer = httpx.get(
                    f"{self.url}/ServiceProviderConfig",
                    headers={"Authorization": f"Bearer {self.token}"},
                    timeout=2,
                )
                if answer.status_code == 200:
                    return True
            time.sleep(0.1)
        self._end_process()
        return False

    def _stderr(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-2000:]

    def stop(self) -> None:
        self._end_process()
        if getattr(self, "http", None) is not None:
            self.http.close()
        self.log.close()

    def _end_process(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)

    # --- the provisioning client's side -----------------------------------------------------------------

    def _send(self, method: str, path: str, body: dict | None = None) -> dict:
        answer = self.http.request(method, path, content=json.dumps(body) if body is not None else None)
        if answer.status_code >= 300:
            raise AssertionError(f"{method} {path}: {answer.status_code} {answer.text[:500]}")
        return answer.json() if answer.content else {}

    def add_user(self, spec: dict) -> str:
        spec = dict(spec)
        body = {"schemas": [CORE_USER], "userName": spec.pop("userName")}
        enterprise = {}
        for key in ("employeeNumber", "department"):
            if key in spec:
                enterprise[key] = spec.pop(key)
        if "manager" in spec:
            enterprise["manager"] = {"value": self.ids[spec.pop("manager")]}
        if enterprise:
            body["schemas"].append(ENTERPRISE)
            body[ENTERPRISE] = enterprise
        body.update(spec)
        created = self._send("POST", "/Users", body)
        self.ids[body["userName"]] = created["id"]
        return created["id"]

    def add_group(self, name: str, members: list[str]) -> str:
        created = self._send(
            "POST",
            "/Groups",
            {"schemas": [CORE_GROUP], "displayName": name, "members": [self.member(m) for m in members]},
        )
        self.ids[name] = created["id"]
        return created["id"]

    def member(self, name: str) -> dict:
        if name.startswith("group:"):
            return {"value": self.ids[name.removeprefix("group:")], "type": "Group"}
        return {"value": self.ids[name], "type": "User"}

    def patch(self, kind: str, name: str, *operations: dict) -> None:
        self._send(
            "PATCH", f"/{kind}/{self.ids[name]}", {"schemas": [PATCH_OP], "Operations": list(operations)}
        )

    def remove_member(self, group: str, member: str) -> None:
        value = self.member(member)["value"]
        self.patch("Groups", group, {"op": "remove", "path": f'members[value eq "{value}"]'})

    def add_member(self, group: str, member: str) -> None:
        self.patch("Groups", group, {"op": "add", "path": "members", "value": [self.member(member)]})

    def deactivate(self, user: str) -> None:
        self.patch("Users", user, {"op": "replace", "path": "active", "value": False})

    def delete(self, kind: str, name: str) -> None:
        self._send("DELETE", f"/{kind}/{self.ids.pop(name)}")

    def wipe(self) -> None:
        """Delete every resource, so the next test seeds a fresh tenant on the same server."""
        for kind in ("Groups", "Users"):
            listed = self._send("GET", f"/{kind}?count=1000")
            for resource in listed.get("Resources", []):
                self._send("DELETE", f"/{kind}/{resource['id']}")
        self.ids.clear()

    def seed(self) -> ScimServer:
        tenant = json.loads(FIXTURE.read_text())
        # Managers first, so a report can name them.
        for spec in sorted(tenant["users"], key=lambda u: "manager" in u):
            self.add_user(spec)
        pending = list(tenant["groups"])
        while pending:  # a group nesting another comes after it
            for group in list(pending):
                inner = [m.removeprefix("group:") for m in group["members"] if m.startswith("group:")]
                if all(name in self.ids for name in inner):
                    self.add_group(group["displayName"], group["members"])
                    pending.remove(group)
        return self


class Proxy:
    """Forwards GETs to ``upstream`` and records them. ``faults``: functions (path, query) -> (status,
    headers, body) or None, consulted in order for each request, each firing once when it answers. ``cap``:
    the largest ``count`` passed on. ``hide_members``: /Groups answers lose ``members`` unless asked for them."""

    def __init__(self, upstream: str, *, cap: int | None = None, hide_members: bool = False):
        self.upstream = upstream.rstrip("/")
        self.cap = cap
        self.hide_members = hide_members
        self.faults: list = []
        self.requests: list[str] = []
        proxy = self
        client = httpx.Client(timeout=10)
        self._client = client

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                parts = urlsplit(self.path)
                path = parts.path.removeprefix("/v2")
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                proxy.requests.append(self.path)
                for fault in list(proxy.faults):
                    answer = fault(path, query)
                    if answer is not None:
                        proxy.faults.remove(fault)
                        return self._answer(*answer)
                if proxy.cap and "count" in query:
                    query["count"] = str(min(int(query["count"]), proxy.cap))
                forwarded = client.get(
                    f"{proxy.upstream}{path}" + (f"?{urlencode(query)}" if query else ""),
                    headers={
                        k: v for k, v in self.headers.items() if k.lower() in ("authorization", "accept")
                    },
                )
                body = forwarded.json() if forwarded.content else {}
                if proxy.hide_members and path == "/Groups" and "members" not in query.get("attributes", ""):
                    for resource in body.get("Resources", []):
                        resource.pop("members", None)
                self._answer(forwarded.status_code, {}, body)

            def _answer(self, status, headers, body):
                write_json(self, status, headers, body, content_type="application/scim+json")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v2"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._client.close()


def throttle_once(path: str, *, start_index: str = "1", retry_after: str = "1"):
    """A fault: the provider answers 429 with Retry-After the first time ``path`` is asked from ``start_index``."""

    def fault(asked, query):
        if asked == path and query.get("startIndex") == start_index:
            return 429, {"Retry-After": retry_after}, _error(429, "Too many requests")
        return None

    return fault


def forbid(path: str):
    """A fault: the token may not read ``path`` (403, as a provider answers for a missing scope)."""

    def fault(asked, query):
        if asked == path:
            return 403, {}, _error(403, "The token lacks the scope to read groups")
        return None

    return fault


def _error(status: int, detail: str) -> dict:
    return {
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "status": str(status),
        "detail": detail,
    }
