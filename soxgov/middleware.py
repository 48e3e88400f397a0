"""Request and response rules that hold for every page: sign-in, session lifetime, security headers."""

from csp.constants import UNSAFE_INLINE
from csp.middleware import CSPMiddleware, PolicyParts
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.middleware import LoginRequiredMiddleware as DjangoLoginRequiredMiddleware
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django_htmx.http import HttpResponseClientRedirect
from rest_framework.renderers import BrowsableAPIRenderer

# A request the user did not make (the progress bars' polling) sends this header; see SessionTimeoutMiddleware.
BACKGROUND_HEADER = "SOXGov-Background"
SESSION_STARTED = "soxgov_session_started"
SESSION_LAST_ACTIVITY = "soxgov_session_last_activity"
# Activity is written to the session at most this often, so an active user costs one session save a minute rather
# than one per request; the idle limit is therefore exact to within this many seconds.
ACTIVITY_RESOLUTION_SECONDS = 60


def is_htmx(request) -> bool:
    # Read from the header: HtmxMiddleware sits below the middleware that ask.
    return request.headers.get("HX-Request") == "true"


class LoginRequiredMiddleware(DjangoLoginRequiredMiddleware):
    """Every page needs a signed-in user unless marked ``login_not_required``.

    The API is left to DRF, which authenticates tokens after this middleware runs and answers 401/403
    instead of redirecting to the login page. An htmx request (a filter, the pager, a progress poll) is sent
    to the login page as a whole-page navigation, not a login form swapped into a table.
    """

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.path_info.startswith("/api/"):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)

    def handle_no_permission(self, request, view_func):
        response = super().handle_no_permission(request, view_func)
        if is_htmx(request):
            return HttpResponseClientRedirect(response["Location"])
        return response


def session_started(sender, request, user, **kwargs):
    """``user_logged_in`` receiver: a password typed now restarts both clocks."""
    now = timezone.now().timestamp()
    request.session[SESSION_STARTED] = now
    request.session[SESSION_LAST_ACTIVITY] = now


class SessionTimeoutMiddleware:
    """Signs out a browser session idle for ``SOXGOV_SESSION_IDLE_MINUTES`` or older than
    ``SOXGOV_SESSION_MAX_HOURS``; the request then goes on anonymous, so a page redirects to the login page and the
    API answers as DRF does for no credentials. Token-authenticated API calls have no session and are untouched.

    Requests marked with the ``SOXGov-Background`` header (polling the user did not trigger) are checked but do
    not count as activity: a progress bar left open does not keep an unattended session alive, and once the
    session has ended the poll takes the whole page to the login screen.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.user.is_authenticated:
            self.check(request)
        return self.get_response(request)

    def check(self, request) -> None:
        session = request.session
        now = timezone.now().timestamp()
        # A session from before this middleware existed starts its clocks now.
        started = session.setdefault(SESSION_STARTED, now)
        last_activity = session.setdefault(SESSION_LAST_ACTIVITY, now)
        if now - started > settings.SOXGOV_SESSION_MAX_HOURS * 3600:
            reason = f"You were signed out {settings.SOXGOV_SESSION_MAX_HOURS} hours after signing in."
        elif now - last_activity > settings.SOXGOV_SESSION_IDLE_MINUTES * 60:
            reason = (
                f"You were signed out after {settings.SOXGOV_SESSION_IDLE_MINUTES} minutes without activity."
            )
        else:
            background = BACKGROUND_HEADER in request.headers
            if not background and now - last_activity >= ACTIVITY_RESOLUTION_SECONDS:
                session[SESSION_LAST_ACTIVITY] = now
            return
        logout(request)
        if not request.path_info.startswith("/api/"):
            messages.info(request, f"{reason} Please log in again.")


class NoStoreMiddleware:
    """``Cache-Control: no-store`` on every response that depends on who asks: a signed-in user (session or
    token), a request with credentials, or a response that varies on the session cookie. Access data must not
    stay in a browser's or a proxy's cache after the user leaves. Static files never get here (WhiteNoise
    answers them above this middleware) and stay cacheable.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if (
            (user is not None and user.is_authenticated)
            or "Authorization" in request.headers
            or _varies_on(response, "Cookie", "Authorization")
        ):
            add_never_cache_headers(response)
        return response


def _varies_on(response, *headers: str) -> bool:
    vary = {h.strip().lower() for h in response.get("Vary", "").split(",")}
    return any(h.lower() in vary for h in headers)


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's policy (settings.CONTENT_SECURITY_POLICY), with one exception: DRF's browsable API is a
    third-party page that styles itself inline (a Pygments ``<style>`` element, ``style=""`` attributes), so its HTML
    answers also allow inline style. Its script stays as strict as everywhere else.

    With single sign-on, the log-out form's answer redirects to the identity provider's end-session endpoint,
    and Chromium applies form-action to a form's redirects too: the issuer's origin is added there.
    """

    def get_policy_parts(self, request, response, report_only=False) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if isinstance(getattr(response, "accepted_renderer", None), BrowsableAPIRenderer):
            parts.update = {**(parts.update or {}), "style-src": [UNSAFE_INLINE]}
        if settings.SOXGOV_OIDC_ISSUER:
            from soxgov.sso import issuer_origin

            parts.update = {**(parts.update or {}), "form-action": [issuer_origin()]}
        return parts
