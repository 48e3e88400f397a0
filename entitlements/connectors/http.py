"""One HTTP client for the sources that read web APIs (Entra ID, Okta, SCIM, GitHub): timeouts on every call,
throttling honoured, transient failures retried with backoff and jitter, and errors that an admin can act on
without ever showing a credential or a paging token.

A provider that asks us to slow down (429, or 503 with ``Retry-After``; Okta's and GitHub's rate-limit headers
at zero) is waited for as long as it says, up to ``max_wait`` seconds per wait; timeouts, resets and 5xx are
retried after 1, 2, 4 ... seconds with jitter. When ``retries`` run out the call raises SourceTimeout (transient):
the pull's durable job tries again later, and when its attempts run out the run fails with nothing applied.
"""

from __future__ import annotations

import email.utils
import random
import ssl
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from entitlements.connectors.sources import SourceError, SourceTimeout, SourceUnreachable


class SourcePermissionDenied(SourceError):
    """The credentials work but may not read something (403): the message names what, for the admin to grant."""


class SourceGone(SourceError):
    """410 Gone: a paging or sync token the provider no longer honours (an expired Graph delta link): the
    caller starts again from a full read."""


def where(url: str | httpx.URL) -> str:
    """A URL fit for a message or a log line: scheme, host and path, never the query (paging tokens, keys)."""
    parts = urlsplit(str(url))
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def tls_verify(ca_file: str | None) -> bool | ssl.SSLContext:
    """What ``verify`` takes for a configured CA bundle (a TLS-inspecting proxy's, a private cloud's): the
    system's trust store when none is given."""
    return ssl.create_default_context(cafile=ca_file) if ca_file else True


def client_problems(config, *, flags: tuple[str, ...] = ()) -> list[str]:
    """Problems with the settings every web-API source shares: ``timeout_seconds`` (1 to 600), ``ca_file`` (a
    readable PEM bundle) and the true/false ``flags`` named."""
    problems = [
        f"{key}: must be true or false"
        for key in flags
        if config.get(key) is not None and not isinstance(config.get(key), bool)
    ]
    timeout = config.get("timeout_seconds")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= 600
    ):
        problems.append("timeout_seconds: must be a whole number of seconds from 1 to 600")
    ca_file = config.get("ca_file")
    if ca_file is not None and (not isinstance(ca_file, str) or not Path(ca_file).is_file()):
        problems.append("ca_file: must be the path of a readable CA bundle (PEM)")
    return problems


def retry_after_seconds(response: httpx.Response, *, now: float | None = None) -> float | None:
    """How long the provider asked us to wait, from ``Retry-After`` (seconds or an HTTP date) or the
    rate-limit reset headers (Okta ``X-Rate-Limit-Reset``, GitHub ``X-RateLimit-Reset``: epoch seconds) when
    the remaining allowance is zero. None: the response does not say."""
    now = time.time() if now is None else now
    header = response.headers.get("retry-after")
    if header:
        header = header.strip()
        if header.isdigit():
            return float(header)
        parsed = email.utils.parsedate_to_datetime(header) if header else None
        if parsed is not None:
            return max(0.0, parsed.timestamp() - now)
    for remaining, reset in (
        ("x-rate-limit-remaining", "x-rate-limit-reset"),  # Okta
        ("x-ratelimit-remaining", "x-ratelimit-reset"),  # GitHub
    ):
        if response.headers.get(remaining, "").strip() == "0" and response.headers.get(reset, "").isdigit():
            return max(0.0, float(response.headers[reset]) - now)
    return None


MAX_TIMEOUT = 600


def client_option_problems(config: Mapping) -> list[str]:
    """Problems with the settings every web-API source may take: ``timeout_seconds`` (per call) and
    ``ca_file`` (a PEM bundle for a provider behind a private CA)."""
    problems = []
    timeout = config.get("timeout_seconds")
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int) or not 1 <= timeout <= MAX_TIMEOUT
    ):
        problems.append(f"timeout_seconds: must be a whole number of seconds from 1 to {MAX_TIMEOUT}")
    ca_file = config.get("ca_file")
    if ca_file is not None and (not isinstance(ca_file, str) or not ca_file.startswith("/")):
        problems.append("ca_file: must be an absolute path to a PEM file")
    return problems


def client_options(config: Mapping) -> dict:
    """ApiClient's keyword arguments for those settings (30 s and the system's CAs by default)."""
    return {"timeout": float(config.get("timeout_seconds") or 30), "verify": config.get("ca_file") or True}


class ApiClient:
    """A JSON API client bound to one provider. ``authorize`` returns the headers that carry the credentials
    (called again after a 401, so an expired token can be renewed once)."""

    def __init__(
        self,
        base_url: str,
        *,
        authorize: Callable[[bool], Mapping[str, str]] = lambda renew: {},
        timeout: float = 30.0,
        retries: int = 5,
        max_wait: float = 300.0,
        verify: bool | str | ssl.SSLContext = True,
        sleep: Callable[[float], None] = time.sleep,
        provider: str = "the provider",
    ):
        self.base_url = base_url.rstrip("/")
        self.authorize = authorize
        self.retries = retries
        self.max_wait = max_wait
        self.sleep = sleep
        self.provider = provider
        self.waited = 0.0  # seconds spent waiting for throttling, for the pull's report
        self.http = httpx.Client(timeout=timeout, verify=verify, follow_redirects=False)

    def close(self) -> None:
        self.http.close()

    def url(self, path_or_url: str) -> str:
        return path_or_url if "://" in path_or_url else f"{self.base_url}/{path_or_url.lstrip('/')}"

    def get(self, path_or_url: str, params: Mapping | None = None) -> httpx.Response:
        """GET with retries; the response is a 2xx. Raises SourceUnreachable, SourceTimeout,
        SourcePermissionDenied or SourceError naming the URL without its query."""
        return self._send("GET", path_or_url, params=params)

    def post_json(self, path_or_url: str, body: Mapping | None = None, *, headers: Mapping[str, str]):
        """POST a JSON body and return the answer's JSON, with the same timeouts, retries and errors as ``get``.
        For a credential exchange (a GitHub App's installation token): ``headers`` carry that exchange's own
        credential instead of ``authorize``'s, and a 401 is refused at once."""
        return self._json(self._send("POST", path_or_url, body=body or {}, headers=headers))

    def _send(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping | None = None,
        body: Mapping | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        url = self.url(path_or_url)
        renewed = headers is not None  # the caller's own credential cannot be renewed here
        for attempt in range(self.retries + 1):
            try:
                response = self.http.request(
                    method,
                    url,
                    params=params,
                    json=body,
                    headers=dict(headers) if headers is not None else dict(self.authorize(renewed)),
                )
            except httpx.TimeoutException:
                failure = f"{self.provider} did not answer in time ({where(url)})"
                delay = self._backoff(attempt)
            except httpx.TransportError as exc:
                failure = f"cannot reach {self.provider} at {where(url)}: {type(exc).__name__}"
                delay = self._backoff(attempt)
            else:
                status = response.status_code
                if status < 300:
                    return response
                if status == 401 and not renewed:
                    renewed = True
                    continue
                if status == 401:
                    raise SourceUnreachable(f"{self.provider} refused the credentials (401 at {where(url)})")
                if status == 403 and retry_after_seconds(response) is None:
                    raise SourcePermissionDenied(
                        f"{self.provider} denied reading {where(url)} (403){_detail(response)}: "
                        "grant the connector's credentials the permission the README names for it"
                    )
                if status == 410:
                    raise SourceGone(
                        f"{self.provider} no longer serves {where(url)} (410){_detail(response)}"
                    )
                if status in (429, 403) or (status >= 500 and status != 501):
                    asked = retry_after_seconds(response)
                    failure = f"{self.provider} answered {status} at {where(url)}"
                    if asked is not None and asked > self.max_wait:
                        raise SourceTimeout(
                            f"{failure} and asked to wait {asked:.0f} s, over {self.max_wait:.0f} s"
                        )
                    delay = asked if asked is not None else self._backoff(attempt)
                else:
                    raise SourceError(f"{self.provider} answered {status} at {where(url)}{_detail(response)}")
            if attempt == self.retries:
                break
            self.waited += delay
            self.sleep(delay)
        raise SourceTimeout(f"{failure}; gave up after {self.retries + 1} tries")

    def get_json(self, path_or_url: str, params: Mapping | None = None):
        return self._json(self.get(path_or_url, params))

    def _json(self, response: httpx.Response):
        try:
            return response.json()
        except ValueError:
            raise SourceError(
                f"{self.provider} answered with something that is not JSON at {where(response.url)}"
            ) from None

    def pages_by_link(self, path_or_url: str, params: Mapping | None = None) -> Iterator[httpx.Response]:
        """Each page of a list paged by ``Link: <...>; rel="next"`` headers (Okta, GitHub)."""
        url: str | None = path_or_url
        while url:
            response = self.get(url, params)
            yield response
            params = None  # the next link carries the query
            url = response.links.get("next", {}).get("url")

    @staticmethod
    def _backoff(attempt: int) -> float:
        """1, 2, 4 ... seconds, capped at 60, with full jitter on the upper half so retries do not align."""
        base = min(60.0, 2.0**attempt)
        return base / 2 + random.uniform(0, base / 2)


def _detail(response: httpx.Response) -> str:
    """The provider's own error message, short, when it gives one in the usual JSON shapes."""
    try:
        body = response.json()
    except ValueError:
        return ""
    message = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):  # Microsoft Graph
            message = error.get("message")
        message = message or body.get("errorSummary") or body.get("message") or body.get("detail")
    return f": {str(message)[:300]}" if message else ""
