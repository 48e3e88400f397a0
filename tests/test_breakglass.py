"""Local password sign-in under SOXGOV_LOCAL_LOGIN, and break-glass accounts with TOTP, through the real views."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from evidence.models import EvidenceEvent
from evidence.services import Actor
from soxgov.breakglass import totp_enrol
from soxgov.roles import Role

PASSWORD = "correct horse battery"


def events(action):
    return list(EvidenceEvent.objects.filter(action=action).order_by("sequence"))


def sign_in(username, password=PASSWORD, otp="", url="login"):
    client = Client()
    response = client.post(reverse(url), {"username": username, "password": password, "otp_token": otp})
    return client, response


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def current_code(device) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


@pytest.fixture
def break_glass(settings, make_user):
    settings.SOXGOV_LOCAL_LOGIN = "break-glass"
    settings.SOXGOV_BREAK_GLASS_USERS = ["root"]
    root = make_user("root", Role.ADMIN)
    make_user("rita", Role.REVIEWER)
    device = totp_enrol(actor=Actor.system("test"), user=root)
    return root, device


def test_in_break_glass_mode_other_users_are_refused_even_with_the_right_password(break_glass):
    client, response = sign_in("rita")
    assert response.status_code == 200 and not signed_in(client)
    assert "only for break-glass accounts" in response.content.decode()
    [failed] = events("access.login.failed")
    assert failed.payload_data["username"] == "rita" and "break-glass" in failed.payload_data["reason"]


@pytest.mark.parametrize("url", ["login", "admin:login"])
def test_a_break_glass_account_needs_its_current_totp_code(break_glass, url):
    _root, device = break_glass
    client, _ = sign_in("root", url=url)
    assert not signed_in(client)
    assert "one-time code" in events("access.login.failed")[0].payload_data["reason"]
    wrong = f"{(int(current_code(device)) + 500_000) % 1_000_000:06d}"
    client, _response = sign_in("root", otp=wrong, url=url)
    assert not signed_in(client)


def test_a_break_glass_sign_in_with_password_and_code_is_evidenced_as_break_glass(break_glass):
    root, device = break_glass
    client, response = sign_in("root", otp=current_code(device))
    assert response.status_code == 302 and signed_in(client)
    [event] = events("access.login.break_glass")
    assert event.actor_user == root and event.payload_data["method"] == "password"
    assert not events("access.login.succeeded")


def test_a_totp_code_cannot_be_used_twice(break_glass):
    _root, device = break_glass
    code = current_code(device)
    assert signed_in(sign_in("root", otp=code)[0])
    assert not signed_in(sign_in("root", otp=code)[0])


def test_a_break_glass_account_without_a_device_cannot_sign_in(break_glass):
    root, _ = break_glass
    TOTPDevice.objects.filter(user=root).delete()
    assert not signed_in(sign_in("root", otp="123456")[0])


def test_with_local_sign_in_off_nobody_uses_a_password(break_glass, settings):
    settings.SOXGOV_LOCAL_LOGIN = "off"
    _root, device = break_glass
    assert not signed_in(sign_in("root", otp=current_code(device))[0])
    client = Client()
    response = client.post(reverse("api_token"), {"username": "rita", "password": PASSWORD})
    assert response.status_code == 400
    assert "turned off" in events("access.login.failed")[-1].payload_data["reason"]


def test_the_login_page_hides_the_password_form_when_local_sign_in_is_off(settings, db):
    settings.SOXGOV_LOCAL_LOGIN = "off"
    assert 'name="password"' not in Client().get(reverse("login")).content.decode()


def test_in_the_default_mode_everyone_signs_in_with_a_password(make_user):
    make_user("rita", Role.REVIEWER)
    client, response = sign_in("rita")
    assert response.status_code == 302 and signed_in(client)
    assert events("access.login.succeeded")[0].payload_data["method"] == "password"


def test_the_enrol_command_prints_an_otpauth_uri_once_and_evidences_it(break_glass):
    root, old = break_glass
    out = io.StringIO()
    call_command("break_glass_totp", "root", stdout=out, stderr=io.StringIO())
    assert out.getvalue().startswith("otpauth://totp/")
    [new] = TOTPDevice.objects.filter(user=root)
    assert new.pk != old.pk  # the old device no longer works
    enrolled = events("access.mfa.enrolled")
    assert enrolled[-1].payload_data == {
        "username": "root",
        "device": "break-glass",
        "kind": "totp",
        "replaced_devices": 1,
        "break_glass": True,
    }
    assert signed_in(sign_in("root", otp=current_code(new))[0])


def test_the_enrol_command_refuses_an_account_that_is_not_break_glass(break_glass):
    with pytest.raises(CommandError, match="not in SOXGOV_BREAK_GLASS_USERS"):
        call_command("break_glass_totp", "rita")
    with pytest.raises(CommandError, match="no user named"):
        call_command("break_glass_totp", "nobody")
