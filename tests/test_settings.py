"""Configuration from the environment: typed helpers that fail loudly, and a production configuration that
passes ``manage.py check --deploy`` with no warning at all.

The settings tests run ``manage.py`` in a subprocess, because settings are read once per process.
"""

import functools
import os
import secrets
import string
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from soxgov.env import envbool, envint, envlist, envpaths, envstr

BASE_DIR = Path(__file__).resolve().parent.parent
VAR = "SOXGOV_TEST_SETTING"


# --- soxgov.env -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1", True),
        ("true", True),
        ("TRUE", True),
        (" yes ", True),
        ("on", True),
        ("0", False),
        ("false", False),
        ("No", False),
        ("off", False),
        ("", False),
    ],
)
def test_envbool_reads_the_usual_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv(VAR, raw)
    assert envbool(VAR, not expected) is expected


@pytest.mark.parametrize("default", [True, False])
def test_envbool_falls_back_to_the_default_when_unset(monkeypatch, default):
    monkeypatch.delenv(VAR, raising=False)
    assert envbool(VAR, default) is default


@pytest.mark.parametrize("raw", ["ture", "2", "enabled", "y", "t rue"])
def test_envbool_refuses_a_value_that_is_not_a_boolean_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv(VAR, raw)
    with pytest.raises(ImproperlyConfigured, match=rf"^{VAR}={raw!r} is not a boolean"):
        envbool(VAR, True)


def test_envint_reads_an_integer_and_falls_back_when_unset_or_blank(monkeypatch):
    monkeypatch.setenv(VAR, " 42 ")
    assert envint(VAR, 7) == 42
    monkeypatch.setenv(VAR, "  ")
    assert envint(VAR, 7) == 7
    monkeypatch.delenv(VAR)
    assert envint(VAR, 7) == 7


@pytest.mark.parametrize("raw", ["12x", "1.5", "ten", "0x10"])
def test_envint_refuses_a_value_that_is_not_an_integer_naming_the_variable(monkeypatch, raw):
    monkeypatch.setenv(VAR, raw)
    with pytest.raises(ImproperlyConfigured, match=rf"^{VAR}={raw!r} is not an integer"):
        envint(VAR, 7)


def test_envint_refuses_a_value_below_the_minimum_naming_the_variable(monkeypatch):
    monkeypatch.setenv(VAR, "-1")
    with pytest.raises(ImproperlyConfigured, match=rf"^{VAR}=-1 is below the minimum of 0"):
        envint(VAR, 7, minimum=0)
    monkeypatch.setenv(VAR, "0")
    assert envint(VAR, 7, minimum=0) == 0


def test_envint_does_not_check_the_minimum_against_the_default(monkeypatch):
    monkeypatch.delenv(VAR, raising=False)
    assert envint(VAR, 0, minimum=1) == 0


def test_envlist_splits_on_commas_trims_and_drops_empty_items(monkeypatch):
    monkeypatch.setenv(VAR, " soxgov.example.com, ,www.example.com,, ")
    assert envlist(VAR) == ["soxgov.example.com", "www.example.com"]


def test_envlist_set_but_empty_is_an_empty_list_not_the_default(monkeypatch):
    # So SOXGOV_ALLOWED_HOSTS="" is "no hosts", which settings refuse when DEBUG is off (tested below).
    monkeypatch.setenv(VAR, "")
    assert envlist(VAR, ["default"]) == []


def test_envlist_falls_back_to_a_copy_of_the_default_when_unset(monkeypatch):
    monkeypatch.delenv(VAR, raising=False)
    default = ["localhost"]
    value = envlist(VAR, default)
    assert value == ["localhost"] and value is not default
    assert envlist(VAR) == []


def test_envstr_returns_the_raw_value_or_the_default(monkeypatch):
    monkeypatch.setenv(VAR, " raw ")
    assert envstr(VAR, "default") == " raw "
    monkeypatch.delenv(VAR)
    assert envstr(VAR, "default") == "default"
    assert envstr(VAR) is None


def test_envpaths_splits_on_the_path_separator_and_commas(monkeypatch):
    monkeypatch.setenv(VAR, "/srv/hr:/srv/erp, /data/feeds,")
    assert envpaths(VAR, []) == [Path("/srv/hr"), Path("/srv/erp"), Path("/data/feeds")]
    monkeypatch.delenv(VAR)
    assert envpaths(VAR, [Path("/default")]) == [Path("/default")]


def test_envpaths_refuses_a_relative_path_naming_the_variable(monkeypatch):
    monkeypatch.setenv(VAR, "/srv/hr,feeds")
    with pytest.raises(ImproperlyConfigured, match=rf"^{VAR}: 'feeds' is not an absolute path"):
        envpaths(VAR, [])


# --- The settings module, in a fresh process --------------------------------------------------------------


def random_secret_key() -> str:
    alphabet = string.ascii_letters + string.digits + "!@#%^&*(-_=+)"
    return "".join(secrets.choice(alphabet) for _ in range(64))


@functools.cache
def production_signing_key() -> str:
    from evidence.signing import new_private_key_pem

    return new_private_key_pem().decode()


def production_env(**overrides: str | None) -> dict[str, str]:
    """The test process's environment without any SOXGOV_/database/broker setting, plus production values."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("SOXGOV_")
        and key not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(
        SOXGOV_DEBUG="0",
        SOXGOV_SECRET_KEY=random_secret_key(),
        SOXGOV_ALLOWED_HOSTS="soxgov.example.com",
        SOXGOV_SIGNING_KEY=production_signing_key(),
    )
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_settings_pass_the_deploy_check_with_nothing_to_report():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."
    assert result.stderr == ""


def test_production_settings_with_a_sqlite_database_url_pass_the_deploy_check(tmp_path):
    env = production_env(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."


def test_the_deploy_check_fails_on_a_weak_secret_key():
    # Proves the check above can fail: Django's own security warning, raised to an error by --fail-level.
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING", env=production_env(SOXGOV_SECRET_KEY="short")
    )
    assert result.returncode == 1
    assert "security.W009" in result.stderr


def test_the_deploy_check_fails_when_https_is_switched_off():
    env = production_env(SOXGOV_SECURE_SSL_REDIRECT="0", SOXGOV_SECURE_COOKIES="0", SOXGOV_HSTS_SECONDS="0")
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 1
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr


def test_production_settings_with_a_signing_key_file_pass_the_deploy_check(tmp_path):
    path = tmp_path / "signing.pem"
    path.write_text(production_signing_key())
    env = production_env(SOXGOV_SIGNING_KEY=None, SOXGOV_SIGNING_KEY_FILE=str(path))
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."


def test_the_deploy_check_warns_without_a_signing_key_naming_the_variables():
    result = manage(
        "check", "--deploy", "--fail-level", "WARNING", env=production_env(SOXGOV_SIGNING_KEY=None)
    )
    assert result.returncode == 1
    assert "soxgov.W001" in result.stderr and "No evidence signing key is configured" in result.stderr
    assert "SOXGOV_SIGNING_KEY_FILE" in result.stderr and "signing_key create" in result.stderr


def test_a_malformed_signing_key_stops_the_process_naming_the_variable():
    result = manage("check", env=production_env(SOXGOV_SIGNING_KEY="-----BEGIN PRIVATE KEY-----\nnope"))
    assert result.returncode != 0
    assert (
        "ImproperlyConfigured: SOXGOV_SIGNING_KEY is not an unencrypted PEM PKCS#8 private key"
        in result.stderr
    )
    assert "nope" not in result.stderr


def test_a_missing_signing_key_file_stops_the_process_naming_the_variable(tmp_path):
    env = production_env(SOXGOV_SIGNING_KEY=None, SOXGOV_SIGNING_KEY_FILE=str(tmp_path / "missing.pem"))
    result = manage("check", env=env)
    assert result.returncode != 0
    assert (
        "ImproperlyConfigured: SOXGOV_SIGNING_KEY_FILE=" in result.stderr
        and "cannot be read" in result.stderr
    )


def test_a_malformed_retired_public_key_stops_the_process_naming_the_variable():
    result = manage("check", env=production_env(SOXGOV_SIGNING_RETIRED_PUBLIC_KEYS="cafe"))
    assert result.returncode != 0
    assert "ImproperlyConfigured: SOXGOV_SIGNING_RETIRED_PUBLIC_KEYS item 1 ('cafe')" in result.stderr


def test_debug_off_without_a_secret_key_stops_the_process_naming_the_variable():
    result = manage("check", env=production_env(SOXGOV_SECRET_KEY=None))
    assert result.returncode != 0
    assert "ImproperlyConfigured: SOXGOV_SECRET_KEY must be set when SOXGOV_DEBUG is off" in result.stderr


def test_debug_off_with_an_empty_secret_key_stops_the_process_naming_the_variable():
    result = manage("check", env=production_env(SOXGOV_SECRET_KEY=""))
    assert result.returncode != 0
    assert "SOXGOV_SECRET_KEY must be set" in result.stderr


def test_debug_off_without_allowed_hosts_stops_the_process_naming_the_variable():
    result = manage("check", env=production_env(SOXGOV_ALLOWED_HOSTS=None))
    assert result.returncode != 0
    assert "ImproperlyConfigured: SOXGOV_ALLOWED_HOSTS must be set when SOXGOV_DEBUG is off" in result.stderr


def test_a_mistyped_debug_flag_stops_the_process_naming_the_variable():
    result = manage("check", env=production_env(SOXGOV_DEBUG="ture"))
    assert result.returncode != 0
    assert "ImproperlyConfigured: SOXGOV_DEBUG='ture' is not a boolean" in result.stderr


def test_a_mistyped_integer_setting_stops_the_process_naming_the_variable():
    result = manage("check", env=production_env(SOXGOV_HSTS_SECONDS="1y"))
    assert result.returncode != 0
    assert "ImproperlyConfigured: SOXGOV_HSTS_SECONDS='1y' is not an integer" in result.stderr


def test_the_embedded_default_needs_no_variables_at_all():
    env = production_env(SOXGOV_DEBUG=None, SOXGOV_SECRET_KEY=None, SOXGOV_ALLOWED_HOSTS=None)
    result = manage("check", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_session_limits_come_from_the_environment_and_the_cookie_lives_no_longer_than_the_absolute_limit():
    env = production_env(SOXGOV_SESSION_IDLE_MINUTES="15", SOXGOV_SESSION_MAX_HOURS="8")
    code = "from django.conf import settings as s; print(s.SOXGOV_SESSION_IDLE_MINUTES, s.SESSION_COOKIE_AGE)"
    result = manage("shell", "-c", code, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].split() == ["15", str(8 * 3600)]


def test_a_zero_idle_limit_stops_the_process_naming_the_variable():
    result = manage("check", env=production_env(SOXGOV_SESSION_IDLE_MINUTES="0"))
    assert result.returncode != 0
    assert "ImproperlyConfigured: SOXGOV_SESSION_IDLE_MINUTES=0 is below the minimum of 1" in result.stderr


def test_in_production_no_file_connector_may_read_anything_until_roots_are_set():
    show = "from django.conf import settings; print(settings.SOXGOV_CONNECTOR_FILE_ROOTS)"
    result = manage("shell", "--no-imports", "-c", show, env=production_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    result = manage(
        "shell", "--no-imports", "-c", show, env=production_env(SOXGOV_CONNECTOR_FILE_ROOTS="/srv/feeds")
    )
    assert result.stdout.strip() == "[PosixPath('/srv/feeds')]"


# --- Worker priority (soxgov/celery.py) ---------------------------------------------------------------------

NICENESS_AFTER_POOL_START = """
import os, django
django.setup()
from celery.signals import worker_process_init
import soxgov.celery  # connects the hook, as a worker does
worker_process_init.send(sender=None)
print(os.nice(0))
"""


@pytest.mark.parametrize(("setting", "expected"), [(None, 10), ("3", 3), ("0", 0)])
def test_a_worker_pool_process_yields_the_cpu_by_soxgov_worker_nice(setting, expected):
    env = {k: v for k, v in os.environ.items() if k != "SOXGOV_WORKER_NICE"}
    env["DJANGO_SETTINGS_MODULE"] = "soxgov.settings"
    if setting is not None:
        env["SOXGOV_WORKER_NICE"] = setting
    done = subprocess.run(
        [sys.executable, "-c", NICENESS_AFTER_POOL_START],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip().splitlines()[-1]) == max(
        os.nice(0), expected
    )  # raised to it, never lowered


def test_soxgov_worker_nice_above_19_is_refused_naming_it():
    done = manage("check", env={"SOXGOV_WORKER_NICE": "20"})
    assert done.returncode != 0
    assert "SOXGOV_WORKER_NICE=20 is above the maximum of 19" in done.stderr
