"""SAML 2.0 sign-in end to end: SOXGov (Django's test client) against pysaml2's IdP on its own HTTP port
(tests/saml_idp.py), signatures made and checked by xmlsec1."""

import re
from html import unescape
from pathlib import Path

import pytest
import requests
from django.test import Client
from django.urls import reverse

from evidence.models import EvidenceEvent
from soxgov.models import User
from soxgov.roles import Role, user_roles
from tests.saml_idp import XMLSEC, SamlIdp

pytestmark = pytest.mark.skipif(
    not Path(XMLSEC).exists(), reason=f"{XMLSEC} is missing (apt-get install xmlsec1)"
)

ROLE_MAP = {"SOX-Reviewers": frozenset({"reviewer"}), "SOX-Admins": frozenset({"admin"})}


@pytest.fixture
def idp(settings, db, tmp_path):
    with SamlIdp(tmp_path) as provider:
        settings.SOXGOV_SAML_IDP_METADATA = str(provider.metadata_file)
        settings.SOXGOV_SAML_ROLE_MAP = ROLE_MAP
        settings.SOXGOV_SAML_NAME = "Corp SAML"
        metadata = Client().get(reverse("saml_metadata"))
        assert metadata.status_code == 200
        provider.trust(metadata.content.decode())
        provider.attributes = {
            "email": ["nora@example.com"],
            "groups": ["SOX-Reviewers", "Canteen"],
            "givenName": ["Nora"],
        }
        yield provider


def events(action):
    return list(EvidenceEvent.objects.filter(action=action).order_by("sequence"))


def at_idp(client):
    """SOXGov -> the IdP's sign-on endpoint (real HTTP) -> the form the browser would post back."""
    start = client.get(reverse("saml_login"))
    assert start.status_code == 302
    page = requests.get(start["Location"], timeout=10)
    assert page.status_code == 200, page.text[:300]
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', page.text))
    action = unescape(re.search(r'action="([^"]+)"', page.text).group(1))
    assert action == "http://testserver/saml/acs/"
    return {name: unescape(value) for name, value in fields.items()}


def post_back(client, form):
    return client.post(reverse("saml_acs"), form)


def test_a_signed_assertion_signs_in_with_the_role_its_group_maps_to(idp):
    client = Client()
    response = post_back(client, at_idp(client))
    assert response.status_code == 302 and response["Location"] == reverse("home")
    nora = User.objects.get(username="nora@example.com")
    assert user_roles(nora) == {Role.REVIEWER} and nora.email == "nora@example.com"
    assert nora.sso_subject == f"{idp.entity_id}#nora@example.com"
    assert int(client.session["_auth_user_id"]) == nora.pk
    [login] = events("access.login.succeeded")
    assert login.payload_data["method"] == "saml"
    assert client.get(reverse("home")).status_code == 200


def test_a_signed_response_is_accepted_too(idp):
    idp.mode = SamlIdp.SIGNED_RESPONSE
    client = Client()
    assert post_back(client, at_idp(client)).status_code == 302


def refused(client, form, reason_part):
    response = post_back(client, form)
    assert response.status_code == 403 and "_auth_user_id" not in client.session
    [failed] = events("access.login.failed")
    assert failed.payload_data["method"] == "saml" and reason_part in failed.payload_data["reason"], (
        failed.payload_data
    )
    return response


def test_an_unsigned_response_is_refused(idp):
    idp.mode = SamlIdp.UNSIGNED
    client = Client()
    refused(client, at_idp(client), "Neither the response nor the assertions are signed")
    assert not User.objects.exists()


def test_a_tampered_assertion_is_refused(idp):
    idp.mode = SamlIdp.TAMPERED
    client = Client()
    refused(client, at_idp(client), "Failed to verify signature")
    assert not User.objects.exists()


def test_a_response_used_once_is_refused_the_second_time(idp):
    client = Client()
    form = at_idp(client)
    assert post_back(client, form).status_code == 302
    refused(Client(), form, "already used")


def test_a_response_nobody_asked_for_is_refused(idp):
    client = Client()
    form = at_idp(client)
    refused(Client(), {**form, "RelayState": "made-up"}, "does not answer a sign-in")


def test_the_group_mapping_is_the_same_as_for_oidc_removing_the_group_removes_the_role(idp):
    client = Client()
    post_back(client, at_idp(client))
    idp.attributes = {**idp.attributes, "groups": ["Canteen"]}
    client = Client()
    response = post_back(client, at_idp(client))
    assert response.status_code == 403 and "No access to SOXGov" in response.content.decode()
    assert user_roles(User.objects.get(username="nora@example.com")) == frozenset()
    [changed] = events("access.user.changed")
    assert changed.payload_data["changes"]["roles"] == {"old": ["reviewer"], "new": []}
    assert changed.payload_data["source"] == "sign-in"


def test_the_login_page_offers_saml(idp):
    assert "Sign in with Corp SAML" in Client().get(reverse("login")).content.decode()
