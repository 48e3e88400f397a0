"""The web-API client every cloud and identity-provider source uses (entitlements/connectors/http.py), against a
real HTTP server on loopback that answers as providers do when they throttle, fail or refuse."""

import contextlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from entitlements.connectors.http import ApiClient, SourcePermissionDenied, retry_after_seconds
from entitlements.connectors.sources import SourceError, SourceTimeout, SourceUnreachable


class Provider:
    """A scripted provider: each path answers from a list of (status, headers, body), one per request, the last
    one repeated; every request is recorded with its headers."""

    def __init__(self):
        self.script: dict[str, list] = {}
        self.requests: list[tuple[str, dict]] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                provider.requests.append((self.path, dict(self.headers)))
                path = self.path.split("?")[0]
                answers = provider.script.get(path, [(404, {}, {"error": {"message": "no such path"}})])
                status, headers, body = answers.pop(0) if len(answers) > 1 else answers[0]
                if status == "sleep":
                    time.sleep(headers)
                    status, headers, body = 200, {}, {}
                payload = json.dumps(body).encode() if not isinstance(body, bytes) else body
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError):  # the client gave up waiting (the timeout test)
                    self.wfile.write(payload)

            def do_POST(self):
                provider.bodies.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                self.do_GET()

            def log_message(self, *args):
                pass

        self.bodies: list[bytes] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def provider():
    served = Provider()
    yield served
    served.close()


@pytest.fixture
def waits():
    return []


def client(provider, waits, **kw):
    kw.setdefault("retries", 3)
    return ApiClient(provider.base, sleep=waits.append, provider="Test IdP", **kw)


def test_a_429_is_waited_for_as_long_as_retry_after_says_then_read(provider, waits):
    provider.script["/users"] = [(429, {"Retry-After": "7"}, {}), (200, {}, {"value": [1, 2]})]
    assert client(provider, waits).get_json("/users") == {"value": [1, 2]}
    assert waits == [7.0]
    assert len(provider.requests) == 2


def test_rate_limit_headers_at_zero_wait_until_the_reset(provider, waits):
    reset = int(time.time()) + 30
    provider.script["/orgs/acme/members"] = [
        (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)}, {"message": "API rate limit"}),
        (200, {}, []),
    ]
    assert client(provider, waits).get_json("/orgs/acme/members") == []
    assert len(waits) == 1 and 25 <= waits[0] <= 31


def test_server_errors_are_retried_with_growing_jittered_backoff(provider, waits):
    provider.script["/groups"] = [(500, {}, {}), (502, {}, {}), (503, {}, {}), (200, {}, {"ok": True})]
    assert client(provider, waits).get_json("/groups") == {"ok": True}
    assert len(waits) == 3
    for attempt, waited in enumerate(waits):
        assert 2**attempt / 2 <= waited <= 2**attempt


def test_running_out_of_retries_is_transient_and_never_shows_the_query(provider, waits):
    provider.script["/users"] = [(503, {}, {})]
    with pytest.raises(SourceTimeout) as caught:
        client(provider, waits).get("/users", params={"$skiptoken": "SECRET-PAGING-TOKEN"})
    assert caught.value.transient
    assert "gave up after 4 tries" in str(caught.value)
    assert "SECRET-PAGING-TOKEN" not in str(caught.value) and "/users" in str(caught.value)
    assert len(provider.requests) == 4


def test_a_wait_longer_than_allowed_fails_at_once_instead_of_hanging(provider, waits):
    provider.script["/users"] = [(429, {"Retry-After": "3600"}, {})]
    with pytest.raises(SourceTimeout, match="asked to wait 3600 s, over 300 s"):
        client(provider, waits).get("/users")
    assert waits == []


def test_a_401_renews_the_credentials_once_then_is_an_authentication_failure(provider, waits):
    provider.script["/users"] = [(401, {}, {})]
    asked = []

    def authorize(renew):
        asked.append(renew)
        return {"Authorization": "Bearer TOKEN-VALUE"}

    with pytest.raises(SourceUnreachable, match=r"refused the credentials \(401") as caught:
        client(provider, waits, authorize=authorize).get("/users")
    assert asked == [False, True]
    assert "TOKEN-VALUE" not in str(caught.value)
    assert provider.requests[0][1]["Authorization"] == "Bearer TOKEN-VALUE"


def test_a_403_names_what_may_not_be_read_with_the_providers_message(provider, waits):
    provider.script["/auditLogs/signIns"] = [
        (403, {}, {"error": {"code": "Authorization_RequestDenied", "message": "Needs AuditLog.Read.All"}})
    ]
    with pytest.raises(SourcePermissionDenied) as caught:
        client(provider, waits).get("/auditLogs/signIns")
    assert "/auditLogs/signIns (403): Needs AuditLog.Read.All" in str(caught.value)
    assert not caught.value.transient


def test_other_client_errors_are_not_retried(provider, waits):
    provider.script["/nothing"] = [(400, {}, {"errorSummary": "Invalid filter"})]
    with pytest.raises(SourceError, match=r"answered 400 .*: Invalid filter"):
        client(provider, waits).get("/nothing")
    assert len(provider.requests) == 1


def test_pages_follow_link_next_until_the_last(provider, waits):
    base = provider.base
    provider.script["/api/v1/users"] = [
        (200, {"Link": f'<{base}/api/v1/users?after=2&limit=2>; rel="next"'}, [1, 2]),
        (200, {"Link": f'<{base}/api/v1/users?after=4&limit=2>; rel="next"'}, [3, 4]),
        (200, {"Link": f'<{base}/api/v1/users?limit=2>; rel="self"'}, [5]),
    ]
    pages = [r.json() for r in client(provider, waits).pages_by_link("/api/v1/users", params={"limit": 2})]
    assert pages == [[1, 2], [3, 4], [5]]
    assert [path for path, _ in provider.requests] == [
        "/api/v1/users?limit=2",
        "/api/v1/users?after=2&limit=2",
        "/api/v1/users?after=4&limit=2",
    ]


def test_a_closed_port_is_unreachable_and_transient(waits):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    api = ApiClient(f"http://127.0.0.1:{port}", sleep=waits.append, retries=1, provider="Test IdP")
    with pytest.raises(SourceTimeout, match=r"cannot reach Test IdP at http://127\.0\.0\.1:.*ConnectError"):
        api.get("/users")
    assert len(waits) == 1


def test_a_provider_slower_than_the_timeout_is_retried_then_given_up(provider, waits):
    provider.script["/slow"] = [("sleep", 1.0, None)]
    with pytest.raises(SourceTimeout, match="did not answer in time"):
        client(provider, waits, timeout=0.2, retries=1).get("/slow")


def test_retry_after_as_an_http_date():
    import httpx

    later = time.time() + 120
    response = httpx.Response(
        429, headers={"Retry-After": time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(later))}
    )
    assert 115 <= retry_after_seconds(response) <= 121
    assert retry_after_seconds(httpx.Response(429)) is None


def test_post_json_sends_its_own_credential_and_a_401_is_refused_at_once(provider, waits):
    """A credential exchange (a GitHub App's installation token): the caller's headers, not authorize()'s."""
    provider.script["/app/installations/7/access_tokens"] = [
        (503, {}, {}),
        (201, {}, {"token": "issued", "expires_at": "2030-01-01T00:00:00Z"}),
    ]
    api = client(provider, waits, authorize=lambda renew: {"Authorization": "Bearer NOT-THIS"})
    answer = api.post_json(
        "/app/installations/7/access_tokens", {"x": 1}, headers={"Authorization": "Bearer JWT"}
    )
    assert answer["token"] == "issued"
    assert [h["Authorization"] for _, h in provider.requests] == ["Bearer JWT", "Bearer JWT"]
    assert json.loads(provider.bodies[0]) == {"x": 1}
    assert len(waits) == 1  # the 503 was retried

    provider.script["/refused"] = [(401, {}, {"message": "A JSON web token could not be decoded"})]
    with pytest.raises(SourceUnreachable, match=r"refused the credentials \(401"):
        api.post_json("/refused", headers={"Authorization": "Bearer JWT"})
    assert len([p for p, _ in provider.requests if p == "/refused"]) == 1
