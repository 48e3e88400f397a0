"""Single sign-on end to end: SOXGov's views (Django's test client) against real OpenID providers over HTTP.

The provider is oidc-provider-mock (tests/oidc_servers.py) for the flows a person goes through, and a provider
whose token endpoint the test controls for the tokens that must be refused.
"""

import base64
import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client
from django.urls import reverse

from entitlements.models import Identity
from evidence.models import EvidenceEvent
from soxgov.models import User
from soxgov.roles import Role, user_roles
from tests.oidc_servers import ForgedProvider, mock_authorize, mock_provider, mock_user_set, rsa_key

CLIENT_ID = "soxgov-test"
ROLE_MAP = {"SOX-Reviewers": frozenset({"reviewer"}), "SOX-Admins": frozenset({"admin"})}


@pytest.fixture(scope="module")
def provider_issuer():
    with mock_provider() as issuer:
        yield issuer


def sso_settings(settings, issuer):
    settings.SOXGOV_OIDC_ISSUER = issuer
    settings.SOXGOV_OIDC_CLIENT_ID = CLIENT_ID
    settings.SOXGOV_OIDC_CLIENT_SECRET = "test-client-secret"
    settings.SOXGOV_OIDC_ROLE_MAP = ROLE_MAP
    settings.SOXGOV_OIDC_NAME = "Example IdP"


@pytest.fixture
def idp(settings, provider_issuer, db):
    sso_settings(settings, provider_issuer)
    return provider_issuer


def events(action):
    return list(EvidenceEvent.objects.filter(action=action).order_by("sequence"))


def start(client, next_url=None):
    response = client.get(reverse("oidc_authentication_init"), {"next": next_url} if next_url else {})
    assert response.status_code == 302
    return response["Location"]


def sign_in(client, issuer, sub):
    """The whole flow as a browser makes it: SOXGov -> provider (pick the subject) -> SOXGov's callback."""
    back = mock_authorize(start(client), sub)
    assert back.startswith("http://testserver/oidc/callback/")
    return client.get(back.removeprefix("http://testserver"))


def test_first_sign_in_creates_the_user_with_the_role_their_group_maps_to(idp):
    identity = Identity.objects.create(employee_id="E7", email="rhea@example.com", display_name="Rhea")
    mock_user_set(
        idp,
        "rhea-sub",
        {"email": "rhea@example.com", "preferred_username": "rhea", "groups": ["SOX-Reviewers", "Other"]},
    )
    client = Client()
    response = sign_in(client, idp, "rhea-sub")
    assert response.status_code == 302 and response["Location"] == reverse("home")
    user = User.objects.get(username="rhea")
    assert user_roles(user) == {Role.REVIEWER} and not user.has_usable_password()
    assert user.identity == identity and user.sso_subject == f"{idp}#rhea-sub"
    assert int(client.session["_auth_user_id"]) == user.pk
    [created] = events("access.user.created")
    assert created.payload_data["roles"] == ["reviewer"] and created.payload_data["source"] == "sign-in"
    [login] = events("access.login.succeeded")
    assert (login.actor_user, login.payload_data["method"]) == (user, "oidc")
    assert client.get(reverse("home")).status_code == 200


def test_the_authorization_request_uses_pkce_and_a_nonce_and_the_scopes(idp):
    query = parse_qs(urlsplit(start(Client())).query)
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) == 43
    assert query["nonce"][0] and query["state"][0] and query["client_id"] == [CLIENT_ID]
    assert query["scope"] == ["openid email profile"]


def test_a_later_sign_in_after_the_group_is_removed_leaves_no_role_and_no_access(idp):
    mock_user_set(
        idp, "gus-sub", {"email": "gus@example.com", "preferred_username": "gus", "groups": ["SOX-Admins"]}
    )
    assert sign_in(Client(), idp, "gus-sub").status_code == 302
    gus = User.objects.get(username="gus")
    assert user_roles(gus) == {Role.ADMIN} and gus.is_staff

    mock_user_set(
        idp, "gus-sub", {"email": "gus@example.com", "preferred_username": "gus", "groups": ["Other"]}
    )
    client = Client()
    response = sign_in(client, idp, "gus-sub")
    assert response.status_code == 403 and "No access to SOXGov" in response.content.decode()
    assert "_auth_user_id" not in client.session
    gus = User.objects.get(pk=gus.pk)
    assert user_roles(gus) == frozenset() and not gus.is_staff
    [changed] = events("access.user.changed")
    assert changed.payload_data["source"] == "sign-in" and changed.subject_id == str(gus.pk)
    assert changed.payload_data["changes"]["roles"] == {"old": ["admin"], "new": []}
    assert changed.payload_data["changes"]["is_staff"] == {"old": True, "new": False}
    [failed] = events("access.login.failed")
    assert (
        failed.payload_data["method"] == "oidc" and "no longer holds a group" in failed.payload_data["reason"]
    )


def test_a_role_gained_at_the_provider_is_synced_and_evidenced_with_old_and_new(idp):
    mock_user_set(
        idp, "ann-sub", {"email": "ann@example.com", "preferred_username": "ann", "groups": ["SOX-Reviewers"]}
    )
    sign_in(Client(), idp, "ann-sub")
    mock_user_set(
        idp,
        "ann-sub",
        {"email": "ann@example.com", "preferred_username": "ann", "groups": ["SOX-Reviewers", "SOX-Admins"]},
    )
    assert sign_in(Client(), idp, "ann-sub").status_code == 302
    [changed] = events("access.user.changed")
    assert changed.payload_data["changes"]["roles"] == {"old": ["reviewer"], "new": ["admin", "reviewer"]}
    # A sign-in that changes nothing records no change.
    sign_in(Client(), idp, "ann-sub")
    assert len(events("access.user.changed")) == 1


def test_someone_without_a_mapped_group_gets_no_user_and_a_no_access_page(idp):
    mock_user_set(
        idp, "zed-sub", {"email": "zed@example.com", "preferred_username": "zed", "groups": ["Canteen"]}
    )
    response = sign_in(Client(), idp, "zed-sub")
    assert response.status_code == 403 and "No access to SOXGov" in response.content.decode()
    assert not User.objects.filter(username="zed").exists()
    assert not events("access.user.created")
    assert events("access.login.failed")[0].payload_data["username"] == "zed"


def test_with_user_creation_off_a_newcomer_is_not_created(idp, settings):
    settings.SOXGOV_OIDC_CREATE_USERS = False
    mock_user_set(
        idp, "neo-sub", {"email": "neo@example.com", "preferred_username": "neo", "groups": ["SOX-Admins"]}
    )
    assert sign_in(Client(), idp, "neo-sub").status_code == 403
    assert not User.objects.filter(username="neo").exists()


def test_the_identity_link_follows_the_configured_employee_id_claim_not_the_email(idp, settings):
    settings.SOXGOV_OIDC_LINK_CLAIM = "employee_id"
    settings.SOXGOV_OIDC_EMPLOYEE_ID_CLAIM = "employeeid"
    Identity.objects.create(employee_id="E1", email="kim@example.com", display_name="Kim by e-mail")
    by_number = Identity.objects.create(
        employee_id="E2", email="kim.k@example.com", display_name="Kim by number"
    )
    mock_user_set(
        idp,
        "kim-sub",
        {
            "email": "kim@example.com",
            "preferred_username": "kim",
            "employeeid": "E2",
            "groups": ["SOX-Reviewers"],
        },
    )
    sign_in(Client(), idp, "kim-sub")
    assert User.objects.get(username="kim").identity == by_number


def test_a_local_account_with_the_same_email_is_adopted_once_and_then_matched_by_subject(idp, make_user):
    old = make_user("rita.local", Role.REVIEWER, email="rita@example.com")
    mock_user_set(
        idp,
        "rita-sub",
        {"email": "rita@example.com", "preferred_username": "rita", "groups": ["SOX-Reviewers"]},
    )
    sign_in(Client(), idp, "rita-sub")
    old.refresh_from_db()
    assert old.sso_subject == f"{idp}#rita-sub" and User.objects.count() == 1
    [changed] = events("access.user.changed")
    assert changed.payload_data["changes"] == {"sso_subject": {"old": None, "new": f"{idp}#rita-sub"}}


def test_a_break_glass_account_is_never_adopted_by_single_sign_on(idp, make_user, settings):
    settings.SOXGOV_BREAK_GLASS_USERS = ["root"]
    make_user("root", Role.ADMIN, email="ops@example.com")
    mock_user_set(
        idp, "ops-sub", {"email": "ops@example.com", "preferred_username": "ops", "groups": ["SOX-Admins"]}
    )
    sign_in(Client(), idp, "ops-sub")
    assert User.objects.get(username="root").sso_subject is None
    assert User.objects.get(username="ops").sso_subject == f"{idp}#ops-sub"


def test_logout_ends_the_session_at_soxgov_and_at_the_provider(idp):
    mock_user_set(
        idp, "lou-sub", {"email": "lou@example.com", "preferred_username": "lou", "groups": ["SOX-Reviewers"]}
    )
    client = Client()
    sign_in(client, idp, "lou-sub")
    id_token = client.session["oidc_id_token"]
    response = client.post(reverse("logout"))
    assert response.status_code == 302
    to_provider = urlsplit(response["Location"])
    assert f"{to_provider.scheme}://{to_provider.netloc}{to_provider.path}" == f"{idp}/oauth2/end_session"
    query = parse_qs(to_provider.query)
    assert query["id_token_hint"] == [id_token]
    assert query["post_logout_redirect_uri"] == ["http://testserver" + reverse("login")]
    assert "_auth_user_id" not in client.session
    assert client.get(reverse("home"))["Location"].startswith(reverse("login"))


def test_single_sign_on_is_absent_when_not_configured(db):
    client = Client()
    assert client.get(reverse("oidc_authentication_init")).status_code == 404
    assert "Sign in with" not in client.get(reverse("login")).content.decode()


def test_a_provider_that_cannot_be_reached_gives_a_clear_page(settings, db):
    sso_settings(settings, "http://127.0.0.1:9")
    response = Client().get(reverse("oidc_authentication_init"))
    assert response.status_code == 503
    assert (
        "discovery document http://127.0.0.1:9/.well-known/openid-configuration" in response.content.decode()
    )


def test_the_login_page_offers_the_provider_first(idp):
    html = Client().get(reverse("login")).content.decode()
    assert "Sign in with Example IdP" in html
    assert html.index("Sign in with Example IdP") < html.index('name="password"')


# --- Tokens that must be refused -----------------------------------------------------------------------------


@pytest.fixture
def forged(settings, db):
    with ForgedProvider() as provider:
        sso_settings(settings, provider.issuer)
        yield provider


def begin(client):
    """Start a sign-in at SOXGov; returns the state and nonce it sent to the provider, and the PKCE challenge."""
    query = {k: v[0] for k, v in parse_qs(urlsplit(start(client)).query).items()}
    return query


def callback(client, state):
    return client.get(reverse("oidc_authentication_callback"), {"code": "any-code", "state": state})


def good_claims(nonce, **extra):
    return {
        "sub": "fay-sub",
        "aud": CLIENT_ID,
        "nonce": nonce,
        "email": "fay@example.com",
        "preferred_username": "fay",
        "groups": ["SOX-Reviewers"],
        **extra,
    }


def test_a_well_formed_token_from_the_controlled_provider_signs_in_and_proves_pkce(forged):
    client = Client()
    request = begin(client)
    forged.id_token = forged.sign(good_claims(request["nonce"]))
    assert callback(client, request["state"]).status_code == 302
    assert User.objects.get(username="fay")
    [exchange] = forged.token_requests
    verifier = exchange["code_verifier"]
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert challenge == request["code_challenge"]
    assert exchange["client_id"] == CLIENT_ID and exchange["grant_type"] == "authorization_code"


def refused(client, state, reason_part):
    response = callback(client, state)
    assert response.status_code == 403 and "Sign-in refused" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert not User.objects.filter(username="fay").exists()
    [failed] = events("access.login.failed")
    assert failed.payload_data["method"] == "oidc" and reason_part in failed.payload_data["reason"], (
        failed.payload_data
    )
    return response


def test_a_token_signed_with_another_key_is_refused(forged):
    client = Client()
    request = begin(client)
    forged.id_token = forged.sign(good_claims(request["nonce"]), key=rsa_key())
    refused(client, request["state"], "Signature verification failed")


def test_a_token_for_another_audience_is_refused(forged):
    client = Client()
    request = begin(client)
    forged.id_token = forged.sign(good_claims(request["nonce"], aud="another-application"))
    refused(client, request["state"], "Audience doesn't match")


def test_a_token_from_another_issuer_is_refused(forged):
    client = Client()
    request = begin(client)
    forged.id_token = forged.sign(good_claims(request["nonce"], iss="https://evil.example"))
    refused(client, request["state"], "issuer")


def test_an_expired_token_is_refused(forged):
    client = Client()
    request = begin(client)
    forged.id_token = forged.sign(good_claims(request["nonce"], iat=1_000_000, exp=1_000_300))
    refused(client, request["state"], "expired")


def test_a_token_replayed_into_another_sign_in_is_refused_by_its_nonce(forged):
    """An ID token captured from one sign-in (its nonce) is useless in another, even properly signed."""
    client = Client()
    first = begin(client)
    captured = forged.sign(good_claims(first["nonce"], sub="eve-sub", preferred_username="eve"))
    forged.id_token = captured
    assert callback(client, first["state"]).status_code == 302
    client.post(reverse("logout"))
    second = begin(client)
    forged.id_token = captured
    response = callback(client, second["state"])
    assert response.status_code == 403 and "Nonce verification failed" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_callback_replayed_with_a_used_state_is_refused(forged):
    client = Client()
    request = begin(client)
    forged.id_token = forged.sign(good_claims(request["nonce"]))
    assert callback(client, request["state"]).status_code == 302
    client.post(reverse("logout"))
    response = callback(client, request["state"])
    assert response.status_code == 403 and "_auth_user_id" not in client.session
    assert len(forged.token_requests) == 1  # the used code was not even exchanged again


def test_a_password_form_carrying_a_code_and_state_never_exchanges_the_code(forged, make_user):
    make_user("pat", Role.REVIEWER)
    Client().post(reverse("login") + "?code=stolen&state=x", {"username": "pat", "password": "wrong"})
    assert forged.token_requests == []


def test_the_log_out_form_may_go_on_to_the_provider_under_the_content_security_policy(idp):
    policy = Client().get(reverse("login"))["Content-Security-Policy"]
    [form_action] = [d for d in policy.split(";") if d.strip().startswith("form-action")]
    assert form_action.split()[1:] == ["'self'", idp]


@pytest.fixture
def by_employee_id(idp, settings):
    settings.SOXGOV_OIDC_LINK_CLAIM = "employee_id"
    settings.SOXGOV_OIDC_EMPLOYEE_ID_CLAIM = "employeeid"


def test_the_identity_link_stays_while_the_user_has_open_work_whatever_the_claim_says(
    idp, by_employee_id, company, personas
):
    """Otherwise the IdP relinks Rita to Bob and Rita certifies Bob's access as someone else's."""
    from tests.test_user_admin import launch_campaign

    launch_campaign(company, personas)
    before = len(events("access.user.identity_changed"))
    claims = {
        "email": "rita@example.com",
        "preferred_username": "rita",
        "employeeid": "E2",
        "groups": ["SOX-Reviewers"],
    }
    mock_user_set(idp, "rita-sub", claims)
    assert sign_in(Client(), idp, "rita-sub").status_code == 302
    rita = User.objects.get(pk=personas["rita"].pk)
    assert rita.sso_subject == f"{idp}#rita-sub" and rita.identity == company["identities"]["rita"]
    assert len(events("access.user.identity_changed")) == before


def test_without_open_work_the_link_follows_the_claim_and_is_evidenced(
    idp, by_employee_id, company, personas
):
    claims = {
        "email": "mallory@example.com",
        "preferred_username": "mal",
        "employeeid": "E3",
        "groups": ["SOX-Reviewers"],
    }
    mock_user_set(idp, "mal-sub", claims)
    sign_in(Client(), idp, "mal-sub")
    mallory = User.objects.get(pk=personas["mallory"].pk)
    assert mallory.identity == company["identities"]["carol"]
    [changed] = [e for e in events("access.user.identity_changed") if e.subject_id == str(mallory.pk)]
    assert changed.payload_data["new"]["id"] == company["identities"]["carol"].pk
    assert changed.actor_name.startswith("system:oidc:")
