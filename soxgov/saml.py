"""SAML 2.0 single sign-on (pysaml2; signatures checked by xmlsec1), with the same group mapping as OIDC.

SOXGov is the service provider: ``/saml/login/`` sends an AuthnRequest (HTTP-Redirect binding) to the identity
provider named in its metadata (``SOXGOV_SAML_IDP_METADATA``), which posts the response to ``/saml/acs/``.
A response is accepted only when:

- the response or its assertion is signed by a key in the IdP's metadata (xmlsec1), unsigned ones are refused;
- it answers a request SOXGov sent (``InResponseTo``), and that request is answered once: a replayed response is
  refused. The request id travels in the signed RelayState, not in the session, because the IdP's cross-site POST
  carries no SameSite=Lax session cookie; the used ids are remembered in the cache until the request expires;
- pysaml2's checks pass: audience (our entity id), destination, validity window.

The person it names then signs in through soxgov/sso_users.py, like an OIDC sign-in: roles from the groups
attribute, the identity link from the e-mail or employee-id attribute, evidence of every refusal.
``/saml/metadata/`` serves the service provider's metadata to register at the IdP.
"""

import threading
from pathlib import Path

from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.backends import ModelBackend
from django.core import signing
from django.core.cache import cache
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.crypto import get_random_string
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from evidence.services import Actor
from soxgov.signin import failed_sign_in_record
from soxgov.sso_users import Person, SignInRefused, groups_of, mapped_roles, sso_sign_in

BACKEND = "soxgov.saml.SamlBackend"
RELAY_SALT = "soxgov.saml.relay"
# How long an AuthnRequest may wait for its answer (and a used request id is remembered).
REQUEST_MAX_AGE_SECONDS = 15 * 60
# pysaml2 is imported where it is used: loading it (and xmlschema) costs every process a second and some noise.
_configs: dict[tuple, object] = {}
_configs_lock = threading.Lock()


class SamlBackend(ModelBackend):
    """The backend a SAML sign-in is recorded under (the session's user is loaded through it); it never
    authenticates anything itself: /saml/acs/ checks the response and calls ``login``."""

    def authenticate(self, request, **kwargs):
        return None


def saml_enabled() -> bool:
    return bool(settings.SOXGOV_SAML_IDP_METADATA)


def sp_config(request):
    """pysaml2's service-provider configuration (metadata loaded once per process and address)."""
    from saml2 import BINDING_HTTP_POST
    from saml2.config import SPConfig

    acs = request.build_absolute_uri(reverse("saml_acs"))
    entity_id = settings.SOXGOV_SAML_SP_ENTITY_ID or request.build_absolute_uri(reverse("saml_metadata"))
    metadata = settings.SOXGOV_SAML_IDP_METADATA
    key = (metadata, entity_id, acs)
    with _configs_lock:
        if key not in _configs:
            source = (
                {"remote": [{"url": metadata}]}
                if metadata.startswith(("https://", "http://"))
                else {"local": [str(Path(metadata))]}
            )
            config = SPConfig()
            config.load(
                {
                    "entityid": entity_id,
                    "xmlsec_binary": settings.SOXGOV_SAML_XMLSEC_BINARY,
                    "metadata": source,
                    "allow_unknown_attributes": True,
                    "service": {
                        "sp": {
                            "name": "SOXGov",
                            "endpoints": {"assertion_consumer_service": [(acs, BINDING_HTTP_POST)]},
                            "allow_unsolicited": False,
                            "want_assertions_or_response_signed": True,
                            "want_response_signed": False,
                            "want_assertions_signed": False,
                            "authn_requests_signed": False,
                        }
                    },
                }
            )
            _configs[key] = config
        return _configs[key]


@require_GET
def saml_metadata(request):
    if not saml_enabled():
        raise Http404("SAML is not configured")
    from saml2.metadata import entity_descriptor

    xml = str(entity_descriptor(sp_config(request)))
    return HttpResponse(xml, content_type="application/samlmetadata+xml")


@require_GET
def saml_login(request):
    if not saml_enabled():
        raise Http404("SAML is not configured")
    from saml2 import BINDING_HTTP_REDIRECT
    from saml2.client import Saml2Client

    next_url = request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}, require_https=request.is_secure()):
        next_url = ""
    client = Saml2Client(config=sp_config(request))
    request_id = f"id-{get_random_string(32)}"
    relay = signing.dumps({"id": request_id, "next": next_url}, salt=RELAY_SALT)
    _, info = client.prepare_for_authenticate(
        relay_state=relay, binding=BINDING_HTTP_REDIRECT, message_id=request_id
    )
    return HttpResponseRedirect(dict(info["headers"])["Location"])


@csrf_exempt  # the IdP's form posts here from its own origin; the signed response and relay state are the proof
@require_POST
def saml_acs(request):
    if not saml_enabled():
        raise Http404("SAML is not configured")
    try:
        user, next_url = _sign_in(request)
    except SignInRefused as refusal:
        failed_sign_in_record(
            request, username=refusal.username, user=refusal.user, method="saml", reason=str(refusal)
        )
        template = "registration/no_access.html" if refusal.no_access else "registration/sso_refused.html"
        return render(request, template, {"message": str(refusal)}, status=403)
    user.backend = BACKEND  # as authenticate() would: the sign-in evidence names the method from it
    login(request, user)
    return HttpResponseRedirect(next_url or reverse(settings.LOGIN_REDIRECT_URL))


def _sign_in(request):
    from saml2 import BINDING_HTTP_POST
    from saml2.client import Saml2Client

    try:
        relay = signing.loads(
            request.POST.get("RelayState", ""), salt=RELAY_SALT, max_age=REQUEST_MAX_AGE_SECONDS
        )
    except signing.BadSignature:
        raise SignInRefused(
            "the SAML response does not answer a sign-in SOXGov started (or it expired)"
        ) from None
    client = Saml2Client(config=sp_config(request))
    try:
        response = client.parse_authn_request_response(
            request.POST.get("SAMLResponse", ""), BINDING_HTTP_POST, outstanding={relay["id"]: relay["next"]}
        )
    except Exception as exc:  # pysaml2 raises many unrelated types for a bad signature, audience or time
        raise SignInRefused(f"the SAML response was refused: {type(exc).__name__}: {exc}") from None
    if response is None:
        raise SignInRefused("the SAML response was refused: it could not be read")
    if not cache.add(f"soxgov:saml:used:{relay['id']}", True, REQUEST_MAX_AGE_SECONDS + 60):
        raise SignInRefused("the SAML response was already used: sign in again")
    attributes = response.get_identity()
    name_id = response.name_id.text if response.name_id is not None else ""
    if not name_id:
        raise SignInRefused("the SAML assertion names no subject (NameID)")
    person = Person(
        subject=f"{response.issuer()}#{name_id}",
        username=_first(attributes, settings.SOXGOV_SAML_USERNAME_ATTRIBUTE) or name_id,
        groups=groups_of(attributes.get(settings.SOXGOV_SAML_GROUPS_ATTRIBUTE, [])),
        email=_first(attributes, settings.SOXGOV_SAML_EMAIL_ATTRIBUTE),
        first_name=_first(attributes, "givenName"),
        last_name=_first(attributes, "sn"),
        employee_id=_first(attributes, settings.SOXGOV_SAML_EMPLOYEE_ID_ATTRIBUTE),
    )
    roles = mapped_roles(person.groups, settings.SOXGOV_SAML_ROLE_MAP or settings.SOXGOV_OIDC_ROLE_MAP)
    user = sso_sign_in(person, roles=roles, actor=Actor.system(f"saml:{response.issuer()}"[:60]))
    return user, relay["next"]


def _first(attributes: dict, name: str) -> str:
    values = attributes.get(name) or []
    return str(values[0]) if values else ""
