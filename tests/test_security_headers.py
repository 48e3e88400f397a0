"""Browser hardening: the Content-Security-Policy and what it requires of the templates, Permissions-Policy,
``Cache-Control: no-store`` on everything that depends on who asks, and the idle and absolute session limits.

Time is moved by replacing ``django.utils.timezone.now`` (the ``clock`` fixture), never by sleeping.
"""

import datetime as dt
from html.parser import HTMLParser
from io import StringIO
from urllib.parse import urljoin, urlparse

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import Resolver404, resolve, reverse
from django.utils import timezone

from soxgov.middleware import BACKGROUND_HEADER
from soxgov.models import User

HTMX = {"HX-Request": "true"}
POLL = {**HTMX, BACKGROUND_HEADER: "poll"}
STATIC = "/static/soxgov/app.css"


@pytest.fixture
def clock(monkeypatch):
    """The time every ``timezone.now()`` call sees; ``clock.advance(minutes=31)`` moves it."""

    class Clock:
        now = timezone.now()

        def advance(self, **delta):
            self.now += dt.timedelta(**delta)

    clock = Clock()
    monkeypatch.setattr(timezone, "now", lambda: clock.now)
    return clock


def policy(response) -> dict[str, list[str]]:
    directives = {}
    for directive in response["Content-Security-Policy"].split(";"):
        name, *values = directive.split()
        directives[name] = values
    return directives


# --- Content-Security-Policy ------------------------------------------------------------------------------


def test_pages_carry_a_content_security_policy_without_inline_script_eval_or_inline_style(client, personas):
    client.force_login(personas["alice"])
    response = client.get(reverse("home"))
    assert response.status_code == 200
    assert policy(response) == {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
    header = response["Content-Security-Policy"]
    assert "unsafe-inline" not in header and "unsafe-eval" not in header


def test_the_login_page_carries_the_policy_too(client, db):
    response = client.get(reverse("login"))
    assert policy(response)["script-src"] == ["'self'"]


class PageAudit(HTMLParser):
    """What a page would need 'unsafe-inline' or 'unsafe-eval' for, and the links it offers."""

    def __init__(self):
        super().__init__()
        self.problems: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        where = f"<{tag} {' '.join(f'{k}={v!r}' for k, v in attrs.items())}>"[:160]
        # json_script's data blocks are not scripts: browsers neither run them nor apply script-src to them.
        if tag == "script" and not attrs.get("src") and attrs.get("type") != "application/json":
            self.problems.append(f"inline script: {where}")
        if tag == "style":
            self.problems.append(f"inline <style>: {where}")
        for name, value in attrs.items():
            if name.startswith("on") or name.startswith("hx-on"):
                self.problems.append(f"inline handler {name}: {where}")
            if name == "style":
                self.problems.append(f"style attribute: {where}")
            if (value or "").strip().lower().startswith(("javascript:", "js:")):
                self.problems.append(f"script in an attribute: {where}")
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])


def audit(response) -> PageAudit:
    page = PageAudit()
    page.feed(response.content.decode())
    return page


# Every main view that must be reached by following links from the home page (as an admin, in the demo company).
MAIN_VIEWS = {
    "home",
    "reviews:my_reviews",
    "reviews:campaign_list",
    "reviews:campaign_detail",
    "reviews:item_detail",
    "reviews:remediation_list",
    "reviews:notifications",
    "entitlements:identity_list",
    "entitlements:identity_detail",
    "entitlements:application_list",
    "entitlements:application_detail",
    "entitlements:account_list",
    "entitlements:account_detail",
    "entitlements:entitlement_list",
    "entitlements:entitlement_detail",
    "entitlements:run_list",
    "entitlements:run_detail",
    "sod:rule_list",
    "sod:rule_detail",
    "sod:violation_list",
    "sod:violation_detail",
    "sod:exception_list",
    "sod:exception_detail",
    "sod:dashboard",
    "evidence:event_list",
    "evidence:event_detail",
    "evidence:integrity",
}
# Not SOXGov's templates (tested on their own below), or not a page.
NOT_CRAWLED = ("/admin/", "/api/", "/static/", "/media/", "/logout/")


@pytest.fixture
def demo(db, django_capture_on_commit_callbacks):
    """The demo company (its SoD check runs on commit), plus an identity import held for approval."""
    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_demo", people=40, stdout=StringIO())
    with pytest.raises(SystemExit):  # held: it would end most of the demo's people
        call_command(
            "import_identities", "docs/examples/identities.csv", stdout=StringIO(), stderr=StringIO()
        )
    return User.objects.get(username="alice")


def test_no_page_needs_inline_script_inline_handlers_or_style_attributes(client, demo):
    """Walks every SOXGov view reachable from the home page as an admin (each view once, as a page and as an
    htmx fragment) and reads the HTML: what CSP would block must not be there at all."""
    client.force_login(demo)
    queue, seen, problems = ["/"], set(), []
    while queue:
        url = queue.pop(0)
        path = urlparse(url).path
        try:
            match = resolve(path)
        except Resolver404:
            continue
        if match.view_name in seen or path.startswith(NOT_CRAWLED):
            continue
        seen.add(match.view_name)
        for headers in ({}, HTMX):
            response = client.get(url, headers=headers)
            if response.status_code != 200 or not response["Content-Type"].startswith("text/html"):
                continue
            assert "Content-Security-Policy" in response, url
            page = audit(response)
            problems += [f"{url} {'(htmx) ' if headers else ''}{p}" for p in page.problems]
            queue += [urljoin(url, href) for href in page.links if not urlparse(href).netloc]
    assert problems == []
    assert MAIN_VIEWS - seen == set(), "the walk did not reach these views"


def test_the_audit_finds_what_the_policy_would_block():
    # The walk above proves something only if the audit sees these.
    class Response:
        content = (
            b'<script>alert(1)</script><script src="/static/x.js"></script>'
            b'<script type="application/json" id="d">{}</script>'
            b'<button onclick="go()">x</button><div style="color:red" hx-on:click="x()"></div>'
            b'<a href="javascript:void(0)">y</a><style>p{}</style><div hx-vals="js:{a: 1}"></div>'
        )

    problems = audit(Response).problems
    assert [p.split(":")[0] for p in problems] == [
        "inline script",
        "inline handler onclick",
        "style attribute",
        "inline handler hx-on",
        "script in an attribute",
        "inline <style>",
        "script in an attribute",
    ]


def test_htmx_is_configured_to_need_neither_eval_nor_inline_styles(client, personas):
    client.force_login(personas["alice"])
    content = client.get(reverse("home")).content.decode()
    assert (
        """<meta name="htmx-config" content='{"allowEval": false, "allowScriptTags": false, """
        """"includeIndicatorStyles": false}'>"""
    ) in content


def test_api_docs_load_swagger_ui_and_its_start_up_script_from_urls_the_policy_allows(client, personas):
    client.force_login(personas["rita"])
    response = client.get(reverse("api_docs"))
    assert response.status_code == 200
    assert policy(response)["script-src"] == ["'self'"]
    page = audit(response)
    assert page.problems == []
    scripts = [
        dict(attrs)["src"]
        for tag, attrs in _tags(response.content.decode())
        if tag == "script" and dict(attrs).get("src")
    ]
    assert len(scripts) == 3 and all(src.startswith("/") for src in scripts), scripts
    start_up = client.get(scripts[-1])
    assert start_up.status_code == 200
    assert start_up["Content-Type"].startswith("application/javascript")
    assert b"SwaggerUIBundle(" in start_up.content
    # Swagger UI must not send the schema's address to swagger.io's validator.
    assert b'"validatorUrl": null' in start_up.content


def _tags(html: str) -> list[tuple[str, list]]:
    tags = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            tags.append((tag, attrs))

    Collect().feed(html)
    return tags


def test_only_the_browsable_api_may_use_inline_style_and_its_script_stays_strict(client, personas):
    client.force_login(personas["alice"])
    browsable = client.get(reverse("identity-list"), headers={"Accept": "text/html"})
    assert browsable["Content-Type"].startswith("text/html")
    assert policy(browsable)["style-src"] == ["'self'", "'unsafe-inline'"]
    assert policy(browsable)["script-src"] == ["'self'"]
    as_json = client.get(reverse("identity-list"))
    assert policy(as_json)["style-src"] == ["'self'"]
    assert policy(client.get(reverse("api_docs")))["style-src"] == ["'self'"]


def test_django_admin_pages_send_the_policy_and_need_no_inline_script(client, personas):
    client.force_login(personas["alice"])
    for url in (
        reverse("admin:index"),
        reverse("admin:entitlements_application_changelist"),
        reverse("admin:entitlements_application_add"),
        reverse("admin:django_celery_beat_periodictask_add"),
    ):
        response = client.get(url)
        assert response.status_code == 200, url
        assert policy(response)["script-src"] == ["'self'"], url
        scripts = [p for p in audit(response).problems if p.startswith(("inline script", "inline handler"))]
        assert scripts == [], url


# --- Permissions-Policy and Cache-Control -----------------------------------------------------------------


def test_pages_and_the_api_switch_off_browser_features_soxgov_never_uses(client, personas):
    client.force_login(personas["alice"])
    for response in (client.get(reverse("home")), client.get(reverse("identity-list"))):
        features = dict(item.split("=") for item in response["Permissions-Policy"].split(", "))
        for feature in ("camera", "microphone", "geolocation", "payment", "usb"):
            assert features[feature] == "()"


@pytest.fixture
def token(personas):
    from evidence.services import Actor
    from soxgov.tokens import token_create

    return token_create(actor=Actor.system("tests"), user=personas["audrey"], reason="tests")[1]


def test_every_answer_that_depends_on_who_asks_is_no_store(client, personas, token):
    client.force_login(personas["alice"])
    responses = {
        "page": client.get(reverse("entitlements:identity_list")),
        "htmx fragment": client.get(reverse("entitlements:identity_list"), headers=HTMX),
        "api with a session": client.get(reverse("identity-list")),
        "api docs": client.get(reverse("api_docs")),
    }
    responses["api with a token"] = Client().get(
        reverse("identity-list"), headers={"Authorization": f"Token {token}"}
    )
    # Anonymous, but the page varies on the session cookie (and carries a CSRF token).
    responses["login page"] = Client().get(reverse("login"))
    for what, response in responses.items():
        assert response.status_code == 200, what
        assert "no-store" in response["Cache-Control"], what
        assert "private" in response["Cache-Control"], what


def test_static_files_stay_cacheable_and_carry_no_page_headers(client, personas):
    client.force_login(personas["alice"])
    response = client.get(STATIC)
    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")
    assert "Content-Security-Policy" not in response
    assert "Permissions-Policy" not in response


# --- Session limits -------------------------------------------------------------------------------------


def login_page(response) -> str:
    assert response.status_code == 302, response.status_code
    return response["Location"]


def test_a_session_idle_longer_than_the_limit_is_signed_out_and_sent_to_the_login_page(
    client, personas, clock
):
    client.force_login(personas["rita"])
    assert client.get(reverse("reviews:my_reviews")).status_code == 200
    clock.advance(minutes=31)
    response = client.get(reverse("reviews:my_reviews"))
    assert login_page(response) == f"{reverse('login')}?next={reverse('reviews:my_reviews')}"
    follow = client.get(response["Location"])
    assert "You were signed out after 30 minutes without activity." in follow.content.decode()
    assert "_auth_user_id" not in client.session
    # Signed out for good: going back does not find the session again.
    assert client.get(reverse("home")).status_code == 302


def test_activity_within_the_idle_limit_keeps_the_session(client, personas, clock):
    client.force_login(personas["rita"])
    for _ in range(4):
        clock.advance(minutes=25)
        assert client.get(reverse("home")).status_code == 200


def test_polling_the_user_did_not_trigger_does_not_keep_a_session_alive(client, personas, clock):
    client.force_login(personas["alice"])
    for _ in range(29):
        clock.advance(minutes=1)
        assert client.get(reverse("entitlements:run_list"), headers=POLL).status_code == 200
    clock.advance(minutes=2)
    response = client.get(reverse("entitlements:run_list"), headers=POLL)
    # An htmx request is sent to the login page as a whole page, not as a fragment swapped into the table.
    assert response.status_code == 200
    assert response["HX-Redirect"] == f"{reverse('login')}?next={reverse('entitlements:run_list')}"
    assert "_auth_user_id" not in client.session


def test_the_idle_limit_is_read_from_the_settings(client, personas, clock, settings):
    settings.SOXGOV_SESSION_IDLE_MINUTES = 5
    client.force_login(personas["rita"])
    clock.advance(minutes=6)
    assert login_page(client.get(reverse("home"))).startswith(reverse("login"))


def test_an_active_session_ends_at_the_absolute_limit(client, personas, clock):
    client.force_login(personas["rita"])
    elapsed = dt.timedelta()
    while elapsed < dt.timedelta(hours=11, minutes=50):
        clock.advance(minutes=20)
        elapsed += dt.timedelta(minutes=20)
        assert client.get(reverse("home")).status_code == 200, elapsed
    clock.advance(minutes=15)
    response = client.get(reverse("home"))
    assert login_page(response).startswith(reverse("login"))
    assert (
        "You were signed out 12 hours after signing in." in client.get(response["Location"]).content.decode()
    )


def test_signing_in_again_restarts_the_absolute_clock(client, personas, clock):
    client.force_login(personas["rita"])
    for _ in range(35):
        clock.advance(minutes=20)
        assert client.get(reverse("home")).status_code == 200
    # 11 h 40 min in: a password typed now gives another 12 hours.
    client.force_login(personas["rita"])
    for _ in range(3):
        clock.advance(minutes=20)
        assert client.get(reverse("home")).status_code == 200


def test_an_expired_session_on_the_api_is_answered_as_drf_answers_no_credentials(
    client, personas, clock, token
):
    client.force_login(personas["audrey"])
    assert client.get(reverse("identity-list")).status_code == 200
    clock.advance(minutes=31)
    response = client.get(reverse("identity-list"))
    assert response.status_code == 403
    assert response.json() == {"detail": "Authentication credentials were not provided."}
    # A token has no session to expire.
    assert (
        Client().get(reverse("identity-list"), headers={"Authorization": f"Token {token}"}).status_code == 200
    )
