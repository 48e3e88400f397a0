"""Single sign-on with OpenID Connect: the authorization code flow with PKCE, through mozilla-django-oidc.

mozilla-django-oidc does the flow (state, nonce and PKCE verifier kept per attempt in the session, the code
exchanged at the token endpoint, the ID token's signature checked against the provider's JWKS). What SOXGov adds:

- Discovery: the endpoints come from ``<issuer>/.well-known/openid-configuration``, read on first use and kept
  for the process (a failed read is not kept, so the next sign-in tries again); the document must name the
  configured issuer.
- The ID token's audience (our client id), issuer and expiry are checked too; the library skips the audience.
- Who the person is in SOXGov, their roles and identity link: soxgov/sso_users.py (shared with SAML).
- Every refused sign-in is evidenced as ``access.login.failed`` with the reason; a successful one is evidenced by
  soxgov/signin.py like any other.
"""

import threading
from urllib.parse import urlencode, urlsplit

import jwt
import requests
from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from evidence.services import Actor
from soxgov.models import User
from soxgov.signin import failed_sign_in_record
from soxgov.sso_users import Person, SignInRefused, groups_of, mapped_roles, sso_sign_in

_discovered: dict[str, dict] = {}
_discovery_lock = threading.Lock()


class SsoUnavailable(Exception):
    """The identity provider cannot be used now (discovery failed, or SSO is not configured right)."""


def sso_enabled() -> bool:
    return bool(settings.SOXGOV_OIDC_ISSUER)


def provider() -> dict:
    """The issuer's discovery document (read once per process and issuer)."""
    issuer = settings.SOXGOV_OIDC_ISSUER
    if not issuer:
        raise SsoUnavailable("single sign-on is not configured (SOXGOV_OIDC_ISSUER is empty)")
    with _discovery_lock:
        if issuer not in _discovered:
            _discovered[issuer] = _discover(issuer)
        return _discovered[issuer]


def _discover(issuer: str) -> dict:
    url = f"{issuer}/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=settings.SOXGOV_OIDC_TIMEOUT_SECONDS)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise SsoUnavailable(
            f"the identity provider's discovery document {url} could not be read: {exc}"
        ) from None
    if not isinstance(document, dict) or str(document.get("issuer", "")).rstrip("/") != issuer:
        named = document.get("issuer") if isinstance(document, dict) else None
        raise SsoUnavailable(f"{url} names the issuer {named!r}, not SOXGOV_OIDC_ISSUER={issuer!r}")
    missing = [
        key for key in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not document.get(key)
    ]
    if missing:
        raise SsoUnavailable(f"{url} lacks {', '.join(missing)}")
    return document


def issuer_origin() -> str:
    parts = urlsplit(settings.SOXGOV_OIDC_ISSUER)
    return f"{parts.scheme}://{parts.netloc}"


# mozilla-django-oidc reads its settings by name; these come from SOXGov's own (read at call time, so a test's
# override applies) or from discovery.
_FROM_SOXGOV = {
    "OIDC_RP_CLIENT_ID": "SOXGOV_OIDC_CLIENT_ID",
    "OIDC_RP_CLIENT_SECRET": "SOXGOV_OIDC_CLIENT_SECRET",
    "OIDC_RP_SCOPES": "SOXGOV_OIDC_SCOPES",
    "OIDC_TIMEOUT": "SOXGOV_OIDC_TIMEOUT_SECONDS",
}
_FROM_DISCOVERY = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}


def oidc_setting(name: str, *default):
    if name == "OIDC_TOKEN_USE_BASIC_AUTH":
        # The client authenticates as the provider prefers: HTTP Basic unless it only takes the secret in the body.
        methods = provider().get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        return "client_secret_basic" in methods
    if name in _FROM_SOXGOV:
        return getattr(settings, _FROM_SOXGOV[name])
    if name in _FROM_DISCOVERY:
        return provider().get(_FROM_DISCOVERY[name])
    return import_from_settings(name, *default)


def _setting_property(name: str):
    return property(lambda self: oidc_setting(name))


class OidcBackend(OIDCAuthenticationBackend):
    """Authenticates only the callback of a flow this browser started (the callback view passes its nonce);
    a password form that carries ``?code=&state=`` in its URL never gets here, so no code is exchanged
    without the state and nonce checks."""

    get_settings = staticmethod(oidc_setting)
    OIDC_OP_TOKEN_ENDPOINT = _setting_property("OIDC_OP_TOKEN_ENDPOINT")
    OIDC_OP_USER_ENDPOINT = _setting_property("OIDC_OP_USER_ENDPOINT")
    OIDC_OP_JWKS_ENDPOINT = _setting_property("OIDC_OP_JWKS_ENDPOINT")
    OIDC_RP_CLIENT_ID = _setting_property("OIDC_RP_CLIENT_ID")
    OIDC_RP_CLIENT_SECRET = _setting_property("OIDC_RP_CLIENT_SECRET")
    OIDC_RP_SIGN_ALGO = "RS256"
    OIDC_RP_IDP_SIGN_KEY = None

    def __init__(self, *args, **kwargs):
        # The library's __init__ reads every endpoint; Django builds a backend for each request's session user,
        # which must not need the provider. Endpoints are read when a sign-in needs them (the properties).
        self.UserModel = User

    def authenticate(self, request, nonce=None, code_verifier=None, **kwargs):
        if request is None or not nonce or not sso_enabled():
            return None
        return super().authenticate(request, nonce=nonce, code_verifier=code_verifier)

    def _verify_jws(self, payload, key):
        header = jwt.get_unverified_header(payload)
        if header.get("alg") != self.OIDC_RP_SIGN_ALGO:
            raise SuspiciousOperation(
                f"the ID token is signed with {header.get('alg')!r}, not {self.OIDC_RP_SIGN_ALGO}"
            )
        try:
            return jwt.decode(
                payload,
                key,
                algorithms=[self.OIDC_RP_SIGN_ALGO],
                audience=settings.SOXGOV_OIDC_CLIENT_ID,
                issuer=provider()["issuer"],
                options={"require": ["exp", "iat", "iss", "aud", "sub"]},
                leeway=60,
            )
        except jwt.InvalidTokenError as exc:
            raise SuspiciousOperation(f"the ID token was refused: {exc}") from None

    def retrieve_matching_jwk(self, token):
        """The provider's signing key for ``token``: the one its ``kid`` names, or the only one it has. (The
        library insists on a ``kid``, which OIDC leaves out where a provider has one key.)"""
        header = jwt.get_unverified_header(token)
        response = requests.get(self.OIDC_OP_JWKS_ENDPOINT, timeout=settings.SOXGOV_OIDC_TIMEOUT_SECONDS)
        response.raise_for_status()
        keys = [
            key
            for key in response.json().get("keys", [])
            if key.get("use", "sig") == "sig" and key.get("alg", header.get("alg")) == header.get("alg")
        ]
        if "kid" in header:
            keys = [key for key in keys if key.get("kid") == header["kid"]]
        if len(keys) != 1:
            raise SuspiciousOperation(
                f"the provider's JWKS has {len(keys)} signing keys for this ID token (kid {header.get('kid')!r})"
            )
        return jwt.PyJWK(keys[0])

    def get_userinfo(self, access_token, id_token, payload):
        """The ID token's claims, with the userinfo endpoint's added where the provider has one (Keycloak and
        Okta send groups there); the userinfo must be about the same subject (OIDC Core 5.3.2)."""
        claims = dict(payload)
        if self.OIDC_OP_USER_ENDPOINT:
            info = super().get_userinfo(access_token, id_token, payload)
            if info.get("sub") != payload.get("sub"):
                raise SuspiciousOperation(
                    "the userinfo endpoint answered for another subject than the ID token"
                )
            claims.update(info)
        return claims

    def get_or_create_user(self, access_token, id_token, payload):
        return oidc_sign_in(self.get_userinfo(access_token, id_token, payload))

    def verify_claims(self, claims):
        return bool(claims.get("sub"))


def person_from_claims(claims: dict) -> Person:
    if not claims.get("sub"):
        raise SuspiciousOperation("the ID token has no subject (sub)")
    return Person(
        subject=f"{provider()['issuer']}#{claims['sub']}",
        username=str(claims.get("preferred_username") or claims.get("email") or claims["sub"]),
        groups=groups_of(claims.get(settings.SOXGOV_OIDC_GROUPS_CLAIM)),
        email=str(claims.get("email") or ""),
        email_verified=claims.get("email_verified") is not False,
        first_name=str(claims.get("given_name") or ""),
        last_name=str(claims.get("family_name") or ""),
        employee_id=str(claims.get(settings.SOXGOV_OIDC_EMPLOYEE_ID_CLAIM) or ""),
    )


def oidc_sign_in(claims: dict) -> User:
    person = person_from_claims(claims)
    return sso_sign_in(
        person,
        roles=mapped_roles(person.groups, settings.SOXGOV_OIDC_ROLE_MAP),
        actor=Actor.system(f"oidc:{urlsplit(settings.SOXGOV_OIDC_ISSUER).netloc}"),
    )


def provider_logout_url(request) -> str:
    """RP-initiated logout: the provider's end-session endpoint (when it has one) with our ID token as the hint,
    back to the login page afterwards. mozilla-django-oidc calls this before it ends the Django session."""
    after = request.build_absolute_uri(reverse(settings.LOGOUT_REDIRECT_URL))
    endpoint = None
    if sso_enabled() and request.session.get("oidc_id_token"):
        try:
            endpoint = provider().get("end_session_endpoint")
        except SsoUnavailable:
            endpoint = None
    if not endpoint:
        return after
    query = {
        "id_token_hint": request.session["oidc_id_token"],
        "post_logout_redirect_uri": after,
        "client_id": settings.SOXGOV_OIDC_CLIENT_ID,
    }
    return f"{endpoint}?{urlencode(query)}"


class SsoStartView(OIDCAuthenticationRequestView):
    """``/oidc/authenticate/``: off to the provider's authorization endpoint (with state, nonce and PKCE)."""

    get_settings = staticmethod(oidc_setting)

    def __init__(self, *args, **kwargs):
        super(OIDCAuthenticationRequestView, self).__init__(*args, **kwargs)
        self.OIDC_RP_CLIENT_ID = settings.SOXGOV_OIDC_CLIENT_ID

    def get(self, request):
        if not sso_enabled():
            raise Http404("single sign-on is not configured")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = provider()["authorization_endpoint"]
        except SsoUnavailable as exc:
            return render(request, "registration/sso_refused.html", {"message": str(exc)}, status=503)
        return super().get(request)


class SsoCallbackView(OIDCAuthenticationCallbackView):
    """``/oidc/callback/``: the provider sends the browser back here with a code; a refusal of any kind is
    evidenced and shown, never a bare error page."""

    get_settings = staticmethod(oidc_setting)

    def get(self, request):
        if not sso_enabled():
            raise Http404("single sign-on is not configured")
        self.refusal = None
        try:
            return super().get(request)
        except SignInRefused as exc:
            self.refusal = exc
        except SuspiciousOperation as exc:
            self.refusal = SignInRefused(str(exc))
        except (requests.RequestException, SsoUnavailable) as exc:
            self.refusal = SignInRefused(
                f"the identity provider could not be reached or refused the code: {exc}"
            )
        return self.login_failure()

    def login_failure(self):
        refusal = self.refusal or SignInRefused(
            self.request.GET.get("error_description")
            or self.request.GET.get("error")
            or "the sign-in could not be completed (an unknown or used state: start again from the login page)"
        )
        failed_sign_in_record(
            self.request, username=refusal.username, user=refusal.user, method="oidc", reason=str(refusal)
        )
        template = "registration/no_access.html" if refusal.no_access else "registration/sso_refused.html"
        return render(self.request, template, {"message": str(refusal)}, status=403)
