"""Single sign-on configuration from the environment: the role map and the choices fail loudly, naming what."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from soxgov.env import envchoice, envrolemap
from tests.test_settings import manage, production_env

VAR = "SOXGOV_TEST_SETTING"


def test_envrolemap_reads_group_role_pairs_and_a_group_named_twice_holds_both(monkeypatch):
    monkeypatch.setenv(VAR, "SOX-Admins=admin, /corp/sox=reviewer\n/corp/sox = auditor,,")
    assert envrolemap(VAR) == {"SOX-Admins": {"admin"}, "/corp/sox": {"reviewer", "auditor"}}


def test_envrolemap_keeps_an_equals_sign_inside_the_group_name(monkeypatch):
    monkeypatch.setenv(VAR, "CN=SOX Admins=admin")
    assert envrolemap(VAR) == {"CN=SOX Admins": {"admin"}}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("SOX-Admins=superuser", r"item 1 \('SOX-Admins=superuser'\): 'superuser' is not a role"),
        ("A=admin,B", r"item 2 \('B'\) is not group=role"),
        ("=admin", r"item 1 \('=admin'\) is not group=role"),
    ],
)
def test_envrolemap_refuses_a_bad_item_naming_the_variable_and_the_item(monkeypatch, raw, message):
    monkeypatch.setenv(VAR, raw)
    with pytest.raises(ImproperlyConfigured, match=rf"^{VAR} {message}"):
        envrolemap(VAR)


def test_envchoice_refuses_a_value_outside_the_choices(monkeypatch):
    monkeypatch.setenv(VAR, "sometimes")
    with pytest.raises(ImproperlyConfigured, match=rf"^{VAR}='sometimes' is not one of on, off"):
        envchoice(VAR, "on", ("on", "off"))
    monkeypatch.setenv(VAR, " OFF ")
    assert envchoice(VAR, "on", ("on", "off")) == "off"


def test_an_issuer_without_a_client_secret_stops_the_process_naming_the_variable():
    env = production_env(
        SOXGOV_OIDC_ISSUER="https://sso.example.com/realms/corp",
        SOXGOV_OIDC_CLIENT_ID="soxgov",
        SOXGOV_OIDC_ROLE_MAP="sox-admins=admin",
    )
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "SOXGOV_OIDC_CLIENT_SECRET must be set when SOXGOV_OIDC_ISSUER is set" in result.stderr


def test_a_full_single_sign_on_configuration_passes_the_deploy_check():
    env = production_env(
        SOXGOV_OIDC_ISSUER="https://sso.example.com/realms/corp",
        SOXGOV_OIDC_CLIENT_ID="soxgov",
        SOXGOV_OIDC_CLIENT_SECRET="from-the-secret-store",
        SOXGOV_OIDC_ROLE_MAP="sox-admins=admin,sox-auditors=auditor",
        SOXGOV_LOCAL_LOGIN="break-glass",
        SOXGOV_BREAK_GLASS_USERS="root",
    )
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
