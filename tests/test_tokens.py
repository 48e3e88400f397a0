"""API tokens cannot be used to route around four-eyes: nobody can read a token after it was issued, and a
token dies with its owner's password, deactivation or expiry. Every creation and revocation is evidenced."""

import datetime as dt
import io

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.test import Client
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from entitlements.models import ConnectorRun
from evidence.models import EvidenceEvent
from soxgov.models import ApiToken
from soxgov.roles import Role


@pytest.fixture
def bob(make_user):
    """A second admin: the one who could approve alice's held run."""
    return make_user("bob", Role.ADMIN)


def obtain(client, username, password="correct horse battery"):
    response = client.post(reverse("api_token"), {"username": username, "password": password})
    assert response.status_code == 200, response.content
    return response.json()["token"]


def auth(key: str) -> dict:
    return {"Authorization": f"Token {key}"}


def works(key: str) -> bool:
    return Client().get(reverse("identity-list"), headers=auth(key)).status_code == 200


@pytest.fixture
def held_run(personas, company):
    return ConnectorRun.objects.create(
        kind=ConnectorRun.Kind.ACCESS,
        application=company["applications"]["erp"],
        status=ConnectorRun.Status.HELD,
        source_name="erp.csv",
        source_path="/nonexistent/erp.csv",
        input_sha256="0" * 64,
        started_by=personas["alice"],
        started_by_name="alice",
        held_reason="would remove 40% of the grants",
    )


def _admin_pages(token: ApiToken, user):
    """Every changelist in Django admin, plus the pages that show one token or its owner."""
    for model in admin.site._registry:
        opts = model._meta
        yield reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    yield reverse("admin:soxgov_apitoken_change", args=[token.pk])
    yield reverse("admin:soxgov_apitoken_delete", args=[token.pk])
    yield reverse("admin:soxgov_user_change", args=[user.pk])
    yield reverse("admin:auth_user_password_change", args=[user.pk])


def _api_lists():
    from soxgov.urls import router

    for *_, basename in router.registry:
        yield reverse(f"{basename}-list")
    yield reverse("api_schema")


def test_no_admin_page_or_api_shows_another_admins_token_or_its_digest(client, personas, company, bob):
    key = obtain(Client(), "bob")
    token = ApiToken.objects.get(user=bob)
    client.force_login(personas["alice"])
    secrets = {"key": key, "key without its prefix": key[8:], "digest": token.digest}
    for url in [*_admin_pages(token, bob), *_api_lists()]:
        response = client.get(url)
        assert response.status_code in (200, 403, 405), (url, response.status_code)
        content = response.content.decode()
        assert not [name for name, secret in secrets.items() if secret in content], url
    # DRF's plain-text token admin is gone, and nobody creates a token for someone else in admin.
    with pytest.raises(NoReverseMatch):
        reverse("admin:authtoken_tokenproxy_changelist")
    assert client.get(reverse("admin:soxgov_apitoken_add")).status_code == 403
    listing = client.get(reverse("admin:soxgov_apitoken_changelist")).content.decode()
    assert "bob" in listing and token.prefix in listing


def test_alice_cannot_approve_her_own_held_run_with_her_token_and_cannot_get_bobs(
    client, personas, company, bob, held_run
):
    """With DRF's authtoken alice read bob's key in Django admin and approved her own run as bob."""
    approve = reverse("connectorrun-approve", args=[held_run.pk])
    alices = obtain(client, "alice")
    bobs = obtain(Client(), "bob")
    assert client.post(approve, {"reason": "mine"}, headers=auth(alices)).status_code == 403
    # The token endpoint wants bob's password, and hands out a new token, never an existing one.
    assert client.post(reverse("api_token"), {"username": "bob", "password": "guess"}).status_code == 400
    held_run.refresh_from_db()
    assert held_run.status == ConnectorRun.Status.HELD
    # Only bob's own secret approves it: four eyes.
    assert Client().post(approve, {"reason": "checked"}, headers=auth(bobs)).status_code == 200
    held_run.refresh_from_db()
    assert (held_run.status, held_run.decided_by) == (ConnectorRun.Status.APPROVED, bob)


def test_issued_token_is_stored_only_as_a_digest_and_evidenced(client, personas):
    key = obtain(client, "audrey")
    token = ApiToken.objects.get(user=personas["audrey"])
    assert key not in {token.digest, token.token_key} and key.startswith(token.token_key)
    event = EvidenceEvent.objects.get(action="access.token.created")
    assert event.actor_user == personas["audrey"] and event.subject_id == str(personas["audrey"].pk)
    assert event.payload_data["prefix"] == token.prefix and event.payload_data["expiry"]
    assert event.payload_data["reason"] == "signed in at the token endpoint"
    assert key not in event.payload and token.digest not in event.payload
    assert works(key)


def test_token_expires_after_the_configured_hours(client, personas, settings):
    settings.SOXGOV_API_TOKEN_TTL_HOURS = 2
    key = obtain(client, "audrey")
    token = ApiToken.objects.get(user=personas["audrey"])
    assert abs(token.expiry - (timezone.now() + dt.timedelta(hours=2))) < dt.timedelta(minutes=1)
    ApiToken.objects.filter(pk=token.pk).update(expiry=timezone.now() - dt.timedelta(seconds=1))
    assert not works(key)
    assert ApiToken.objects.filter(pk=token.pk).exists(), "an expired token stays listed until revoked"


def test_an_admin_password_reset_revokes_the_owners_tokens_with_evidence(client, personas):
    key = obtain(Client(), "audrey")
    audrey = personas["audrey"]
    client.force_login(personas["alice"])
    response = client.post(
        reverse("admin:auth_user_password_change", args=[audrey.pk]),
        {
            "usable_password": "true",
            "password1": "a new long passphrase",
            "password2": "a new long passphrase",
        },
    )
    assert response.status_code == 302, response.content
    assert not works(key) and not ApiToken.objects.filter(user=audrey).exists()
    revoked = EvidenceEvent.objects.get(action="access.token.revoked")
    assert revoked.actor_user == personas["alice"] and revoked.payload_data["reason"] == "password changed"
    reset = EvidenceEvent.objects.get(action="access.user.password_reset")
    assert (reset.actor_user, reset.subject_id) == (personas["alice"], str(audrey.pk))
    assert "passphrase" not in reset.payload and "md5$" not in reset.payload


def test_a_password_set_outside_the_admin_revokes_tokens_too(personas):
    """changepassword, a shell, any form: User.save sees the new password."""
    key = obtain(Client(), "audrey")
    audrey = personas["audrey"]
    audrey.set_password("another long passphrase")
    audrey.save()
    assert not works(key)
    assert EvidenceEvent.objects.filter(action="access.token.revoked", subject_id=str(audrey.pk)).exists()


def test_a_rehash_of_the_same_password_at_sign_in_keeps_the_tokens(client, personas, settings):
    key = obtain(Client(), "audrey")
    # A stronger hasher first: the next correct sign-in re-hashes the stored MD5 password.
    settings.PASSWORD_HASHERS = [
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.MD5PasswordHasher",
    ]
    response = client.post(reverse("login"), {"username": "audrey", "password": "correct horse battery"})
    assert response.status_code == 302
    personas["audrey"].refresh_from_db()
    assert personas["audrey"].password.startswith("pbkdf2_")
    assert works(key)


def test_deactivating_a_user_revokes_their_tokens(client, personas):
    key = obtain(Client(), "audrey")
    audrey = personas["audrey"]
    audrey.is_active = False
    audrey.save()
    audrey.is_active = True
    audrey.save()
    assert not works(key), "reactivating a user does not bring old tokens back"
    event = EvidenceEvent.objects.get(action="access.token.revoked")
    assert event.payload_data["reason"] == "user deactivated"


def test_an_admin_revokes_a_token_in_django_admin_with_evidence(client, personas):
    key = obtain(Client(), "audrey")
    token = ApiToken.objects.get(user=personas["audrey"])
    client.force_login(personas["alice"])
    response = client.post(reverse("admin:soxgov_apitoken_delete", args=[token.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not works(key)
    event = EvidenceEvent.objects.get(action="access.token.revoked")
    assert event.actor_user == personas["alice"]
    assert event.payload_data["prefix"] == token.prefix and event.payload_data["token_id"] == token.pk


def test_token_create_command_prints_the_token_once(personas):
    out, err = io.StringIO(), io.StringIO()
    call_command("token_create", "audrey", "--expiry-hours", "3", stdout=out, stderr=err)
    key = out.getvalue().strip()
    token = ApiToken.objects.get(user=personas["audrey"])
    assert works(key) and token.prefix in err.getvalue() and key not in err.getvalue()
    assert abs(token.expiry - (timezone.now() + dt.timedelta(hours=3))) < dt.timedelta(minutes=1)
    event = EvidenceEvent.objects.get(action="access.token.created")
    assert event.actor_name == "system:command:token_create"
    assert event.payload_data["reason"] == "token_create command"


@pytest.mark.parametrize("args", [["nobody"], ["audrey", "--expiry-hours", "0"]])
def test_token_create_command_refuses_bad_input(personas, args):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError):
        call_command("token_create", *args, stdout=io.StringIO())
    assert not ApiToken.objects.exists()


def test_deleting_a_user_in_admin_revokes_their_tokens_with_evidence(client, personas):
    """A user who has acted is protected by the evidence naming them; one who never has may be deleted."""
    mallory = personas["mallory"]
    call_command("token_create", "mallory", stdout=io.StringIO(), stderr=io.StringIO())
    client.force_login(personas["alice"])
    response = client.post(reverse("admin:soxgov_user_delete", args=[mallory.pk]), {"post": "yes"})
    assert response.status_code == 302
    revoked = EvidenceEvent.objects.get(action="access.token.revoked")
    assert (revoked.actor_user, revoked.payload_data["reason"]) == (personas["alice"], "user deleted")
    deleted = EvidenceEvent.objects.get(action="access.user.deleted")
    assert deleted.subject_id == str(mallory.pk) and deleted.payload_data["username"] == "mallory"
