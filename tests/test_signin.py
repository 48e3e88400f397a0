"""Sign-in evidence and brute-force protection, through the real login views (no client.login shortcuts)."""

import io

import pytest
from axes.models import AccessAttempt
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from evidence.models import EvidenceEvent
from soxgov.models import ApiToken

PASSWORD = "correct horse battery"


def sign_in(username, password, *, address="127.0.0.1", url="login", **extra):
    client = Client(REMOTE_ADDR=address, **extra)
    return client, client.post(reverse(url), {"username": username, "password": password})


def events(action):
    return list(EvidenceEvent.objects.filter(action=action).order_by("sequence"))


@pytest.mark.parametrize(("url", "who"), [("login", "audrey"), ("admin:login", "alice")])
def test_each_sign_in_on_the_login_pages_is_evidenced_without_the_password(personas, url, who):
    _, failed = sign_in(who, "wrong horse", url=url, address="192.0.2.7")
    assert failed.status_code == 200  # the form again, with its error
    _, succeeded = sign_in(who, PASSWORD, url=url, address="192.0.2.7")
    assert succeeded.status_code == 302
    [fail] = events("access.login.failed")
    [ok] = events("access.login.succeeded")
    assert fail.payload_data["username"] == who and fail.payload_data["user_id"] == personas[who].pk
    assert fail.payload_data["source_address"] == "192.0.2.7" and fail.payload_data["path"] == reverse(url)
    assert (ok.actor_user, ok.payload_data["source_address"]) == (personas[who], "192.0.2.7")
    assert not [e for e in (fail, ok) if "horse" in e.payload]


def test_a_failed_sign_in_with_an_unknown_username_is_evidenced_as_typed(db):
    sign_in("Nobody Here", "whatever")
    [fail] = events("access.login.failed")
    assert (fail.payload_data["username"], fail.payload_data["user_id"]) == ("Nobody Here", None)
    assert fail.subject_type == "soxgov.login"


def test_token_endpoint_sign_ins_are_evidenced(personas):
    client = Client()
    assert client.post(reverse("api_token"), {"username": "audrey", "password": "nope"}).status_code == 400
    assert client.post(reverse("api_token"), {"username": "audrey", "password": PASSWORD}).status_code == 200
    [fail], [ok] = events("access.login.failed"), events("access.login.succeeded")
    assert fail.payload_data["path"] == ok.payload_data["path"] == reverse("api_token")


def test_behind_the_tls_proxy_the_source_is_the_address_the_proxy_appended(personas, settings):
    settings.SOXGOV_BEHIND_TLS_PROXY = True
    sign_in("audrey", "wrong", address="10.0.0.2", HTTP_X_FORWARDED_FOR="6.6.6.6, 198.51.100.4")
    [fail] = events("access.login.failed")
    assert (fail.payload_data["source_address"], fail.payload_data["peer_address"]) == (
        "198.51.100.4",
        "10.0.0.2",
    )


def lock_out(username="audrey", address="127.0.0.1", url="login"):
    for _ in range(5):  # SOXGOV_LOGIN_FAILURE_LIMIT's default
        sign_in(username, "wrong horse", address=address, url=url)


def test_the_login_page_locks_a_username_from_an_address_after_the_failure_limit(personas):
    lock_out()
    client, response = sign_in("audrey", PASSWORD)
    assert response.status_code == 429 and "locked" in response.content.decode()
    assert "_auth_user_id" not in client.session
    locked = events("access.login.locked_out")
    assert locked and locked[0].payload_data["username"] == "audrey"
    assert locked[0].payload_data["failure_limit"] == 5
    # Username and address together: the owner signing in from elsewhere is not locked out by a stranger.
    assert sign_in("audrey", PASSWORD, address="203.0.113.9")[1].status_code == 302


def test_the_token_endpoint_is_locked_too_and_issues_no_token(personas):
    client = Client()
    for _ in range(5):
        client.post(reverse("api_token"), {"username": "audrey", "password": "wrong"})
    response = client.post(reverse("api_token"), {"username": "audrey", "password": PASSWORD})
    assert response.status_code == 429 and "locked" in response.json()["detail"]
    assert not ApiToken.objects.exists()
    assert events("access.login.locked_out")


def test_an_admin_unlocks_in_django_admin_and_the_unlock_is_evidenced(personas):
    lock_out()
    attempt = AccessAttempt.objects.get(username="audrey")
    admin = Client()
    admin.force_login(personas["alice"])
    response = admin.post(reverse("admin:axes_accessattempt_delete", args=[attempt.pk]), {"post": "yes"})
    assert response.status_code == 302
    [unlocked] = events("access.login.unlocked")
    assert unlocked.actor_user == personas["alice"]
    assert (unlocked.payload_data["username"], unlocked.payload_data["user_id"]) == (
        "audrey",
        personas["audrey"].pk,
    )
    assert unlocked.payload_data["ip_addresses"] == ["127.0.0.1"] and unlocked.payload_data["failures"] == 5
    assert sign_in("audrey", PASSWORD)[1].status_code == 302


def test_axes_reset_username_unlocks_with_evidence(personas):
    lock_out()
    out = io.StringIO()
    call_command("axes_reset_username", "audrey", stdout=out)
    assert "1 attempts removed" in out.getvalue()
    [unlocked] = events("access.login.unlocked")
    assert unlocked.actor_name == "system:command:axes_reset_username"
    assert sign_in("audrey", PASSWORD)[1].status_code == 302


def test_only_the_admin_role_sees_and_clears_login_attempts(personas):
    lock_out()
    url = reverse("admin:axes_accessattempt_changelist")
    for persona, expected in (("alice", 200), ("oscar", 302), ("audrey", 302)):
        client = Client()
        client.force_login(personas[persona])
        assert client.get(url).status_code == expected, persona
