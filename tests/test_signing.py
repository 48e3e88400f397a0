"""evidence/signing.py: the Ed25519 key from configuration only, its registration in the evidence chain, the
``signing_key`` command and the public keys shown to auditors."""

import hashlib
import io
import json
import stat

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_public_key,
)
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.urls import reverse

from evidence import ed25519, signing
from evidence.models import EvidenceEvent, SigningKey
from soxgov.env import envpublickeys, envsigningkey
from soxgov.roles import Role

MESSAGE = b'{"scope":"campaign 1","sha256":"ab"}'


def events(action: str) -> list[dict]:
    return [event.payload_data for event in EvidenceEvent.objects.filter(action=action)]


# --- sign / verify / fingerprints ---------------------------------------------------------------------------


def test_a_signature_names_the_key_and_verifies_with_its_public_key_only(db):
    signature = signing.sign(MESSAGE)

    assert signature.algorithm == "Ed25519"
    assert signature.fingerprint == signing.current_public_key().fingerprint
    assert signing.verify(MESSAGE, signature.signature_hex, signature.public_key_hex) is True
    assert ed25519.verify(
        bytes.fromhex(signature.public_key_hex), MESSAGE, bytes.fromhex(signature.signature_hex)
    )
    assert signing.verify(MESSAGE + b" ", signature.signature_hex, signature.public_key_hex) is False


def test_verify_refuses_another_key_and_malformed_hex_without_raising(db):
    signature = signing.sign(MESSAGE)
    other = ed25519.public_key(b"\7" * 32).hex()

    assert signing.verify(MESSAGE, signature.signature_hex, other) is False
    assert signing.verify(MESSAGE, "zz" * 64, signature.public_key_hex) is False
    assert signing.verify(MESSAGE, signature.signature_hex, "abc") is False
    assert signing.verify(MESSAGE, signature.signature_hex[:-2], signature.public_key_hex) is False


def test_the_fingerprint_is_sha256_of_the_raw_public_key_and_the_pem_holds_the_same_key():
    public = signing.current_public_key()
    raw = bytes.fromhex(public.public_key_hex)

    assert public.fingerprint == "SHA256:" + hashlib.sha256(raw).hexdigest()
    loaded = load_pem_public_key(public.pem.encode())
    assert isinstance(loaded, Ed25519PublicKey)
    assert loaded.public_bytes_raw() == raw
    assert signing.group("SHA256:0123456789abcdef") == "SHA256:0123 4567 89ab cdef"


def test_trusted_public_keys_are_the_current_key_and_the_configured_retired_ones(settings):
    retired = ed25519.public_key(b"\1" * 32).hex()
    settings.SOXGOV_SIGNING_RETIRED_PUBLIC_KEYS = [retired]
    current = signing.current_public_key()

    assert signing.trusted_public_keys() == {
        current.fingerprint: current.public_key_hex,
        signing.fingerprint(retired): retired,
    }


# --- where the private key comes from ----------------------------------------------------------------------


def test_with_debug_off_and_no_key_signing_refuses_naming_the_variables(db, settings):
    settings.DEBUG = False
    settings.SOXGOV_SIGNING_KEY = None

    with pytest.raises(ImproperlyConfigured, match=r"SOXGOV_SIGNING_KEY_FILE .* or SOXGOV_SIGNING_KEY "):
        signing.sign(MESSAGE)
    assert not SigningKey.objects.exists()


def test_with_debug_off_and_no_key_a_verifier_still_trusts_the_retired_public_keys(settings):
    settings.DEBUG = False
    settings.SOXGOV_SIGNING_KEY = None
    retired = ed25519.public_key(b"\1" * 32).hex()
    settings.SOXGOV_SIGNING_RETIRED_PUBLIC_KEYS = [retired]

    assert signing.trusted_public_keys() == {signing.fingerprint(retired): retired}


def test_with_debug_on_and_no_key_one_is_generated_once_owner_only_and_reused(db, settings):
    settings.DEBUG = True
    settings.SOXGOV_SIGNING_KEY = None
    path = settings.SOXGOV_SIGNING_GENERATED_KEY_FILE

    first = signing.sign(MESSAGE)

    assert path.is_file() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert signing.sign(MESSAGE).fingerprint == first.fingerprint
    assert signing.public_key_of(path.read_bytes()).fingerprint == first.fingerprint
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind


def test_a_damaged_generated_key_stops_signing_naming_the_file(db, settings):
    settings.DEBUG = True
    settings.SOXGOV_SIGNING_KEY = None
    path = settings.SOXGOV_SIGNING_GENERATED_KEY_FILE
    path.parent.mkdir(parents=True)
    path.write_text("not a key")

    with pytest.raises(ImproperlyConfigured, match=f"the generated signing key {path}"):
        signing.sign(MESSAGE)


def test_the_key_is_read_from_the_file_variable_or_the_pem_variable(monkeypatch, tmp_path):
    pem = signing.new_private_key_pem()
    path = tmp_path / "key.pem"
    path.write_bytes(pem)
    monkeypatch.delenv("SOXGOV_SIGNING_KEY", raising=False)
    monkeypatch.setenv("SOXGOV_SIGNING_KEY_FILE", str(path))
    assert envsigningkey("SOXGOV_SIGNING_KEY_FILE", "SOXGOV_SIGNING_KEY") == pem

    monkeypatch.delenv("SOXGOV_SIGNING_KEY_FILE")
    monkeypatch.setenv("SOXGOV_SIGNING_KEY", pem.decode())
    assert envsigningkey("SOXGOV_SIGNING_KEY_FILE", "SOXGOV_SIGNING_KEY").strip() == pem.strip()

    monkeypatch.delenv("SOXGOV_SIGNING_KEY")
    assert envsigningkey("SOXGOV_SIGNING_KEY_FILE", "SOXGOV_SIGNING_KEY") is None


def test_both_key_variables_at_once_are_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("SOXGOV_SIGNING_KEY_FILE", str(tmp_path / "key.pem"))
    monkeypatch.setenv("SOXGOV_SIGNING_KEY", signing.new_private_key_pem().decode())

    with pytest.raises(
        ImproperlyConfigured, match=r"^set SOXGOV_SIGNING_KEY_FILE or SOXGOV_SIGNING_KEY, not both"
    ):
        envsigningkey("SOXGOV_SIGNING_KEY_FILE", "SOXGOV_SIGNING_KEY")


def test_a_missing_key_file_is_refused_naming_the_variable_and_the_path(monkeypatch, tmp_path):
    monkeypatch.delenv("SOXGOV_SIGNING_KEY", raising=False)
    monkeypatch.setenv("SOXGOV_SIGNING_KEY_FILE", str(tmp_path / "missing.pem"))

    with pytest.raises(
        ImproperlyConfigured, match=r"^SOXGOV_SIGNING_KEY_FILE='.*missing.pem' cannot be read"
    ):
        envsigningkey("SOXGOV_SIGNING_KEY_FILE", "SOXGOV_SIGNING_KEY")


def test_a_malformed_key_is_refused_naming_the_variable_without_echoing_it(monkeypatch):
    monkeypatch.delenv("SOXGOV_SIGNING_KEY_FILE", raising=False)
    secret = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ1dC1icm9rZW4=\n-----END PRIVATE KEY-----\n"
    monkeypatch.setenv("SOXGOV_SIGNING_KEY", secret)

    with pytest.raises(ImproperlyConfigured) as refused:
        envsigningkey("SOXGOV_SIGNING_KEY_FILE", "SOXGOV_SIGNING_KEY")

    assert str(refused.value).startswith("SOXGOV_SIGNING_KEY is not an unencrypted PEM PKCS#8 private key")
    assert "c2VjcmV0" not in str(refused.value)


def test_a_key_that_is_not_ed25519_is_refused(monkeypatch):
    rsa = generate_private_key(public_exponent=65537, key_size=2048)
    monkeypatch.delenv("SOXGOV_SIGNING_KEY_FILE", raising=False)
    monkeypatch.setenv(
        "SOXGOV_SIGNING_KEY", rsa.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
    )

    with pytest.raises(
        ImproperlyConfigured, match=r"^SOXGOV_SIGNING_KEY is a .*RSAPrivateKey.*, not an Ed25519"
    ):
        envsigningkey("SOXGOV_SIGNING_KEY_FILE", "SOXGOV_SIGNING_KEY")


def test_retired_public_keys_are_read_as_hex_or_pem_files(monkeypatch, tmp_path):
    hex_key = ed25519.public_key(b"\1" * 32).hex()
    pem_public = signing.current_public_key()
    path = tmp_path / "old.pub.pem"
    path.write_text(pem_public.pem)
    monkeypatch.setenv("SOXGOV_TEST_KEYS", f"{hex_key.upper()}, {path}")

    assert envpublickeys("SOXGOV_TEST_KEYS") == [hex_key, pem_public.public_key_hex]


@pytest.mark.parametrize("item", ["abc123", "/nonexistent/old.pem"])
def test_a_malformed_retired_public_key_is_refused_naming_the_variable_and_the_item(monkeypatch, item):
    monkeypatch.setenv("SOXGOV_TEST_KEYS", f"{'ab' * 32},{item}")

    with pytest.raises(ImproperlyConfigured, match=rf"^SOXGOV_TEST_KEYS item 2 \('{item}'\) is neither"):
        envpublickeys("SOXGOV_TEST_KEYS")


# --- registration in the chain ------------------------------------------------------------------------------


def test_the_first_signature_registers_the_key_as_created_once(db):
    public = signing.current_public_key()

    signing.sign(MESSAGE)
    signing.sign(MESSAGE)

    key = SigningKey.objects.get()
    assert (key.fingerprint, key.public_key, key.retired_at) == (
        public.fingerprint,
        public.public_key_hex,
        None,
    )
    assert events("evidence.signing_key.created") == [
        {
            "algorithm": "Ed25519",
            "old_fingerprint": None,
            "old_public_key": None,
            "new_fingerprint": public.fingerprint,
            "new_public_key": public.public_key_hex,
        }
    ]


def test_signing_with_a_new_key_records_the_rotation_and_retires_the_old_key(db, settings):
    old = signing.sign(MESSAGE)
    settings.SOXGOV_SIGNING_KEY = signing.new_private_key_pem()

    new = signing.sign(MESSAGE)

    assert events("evidence.signing_key.rotated") == [
        {
            "algorithm": "Ed25519",
            "old_fingerprint": old.fingerprint,
            "old_public_key": old.public_key_hex,
            "new_fingerprint": new.fingerprint,
            "new_public_key": new.public_key_hex,
        }
    ]
    keys = {key.fingerprint: key for key in SigningKey.objects.all()}
    assert keys[old.fingerprint].retired_at is not None and keys[new.fingerprint].retired_at is None


def test_configuring_a_retired_key_again_makes_it_current_again_and_is_recorded(
    db, settings, session_signing_key
):
    first = signing.sign(MESSAGE)
    settings.SOXGOV_SIGNING_KEY = signing.new_private_key_pem()
    second = signing.sign(MESSAGE)
    settings.SOXGOV_SIGNING_KEY = session_signing_key

    signing.sign(MESSAGE)

    current = SigningKey.objects.get(retired_at__isnull=True)
    assert current.fingerprint == first.fingerprint and SigningKey.objects.count() == 2
    assert [(e["old_fingerprint"], e["new_fingerprint"]) for e in events("evidence.signing_key.rotated")] == [
        (first.fingerprint, second.fingerprint),
        (second.fingerprint, first.fingerprint),
    ]


def test_a_failed_use_of_the_signature_leaves_no_registration_behind(db):
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic():
        signing.sign(MESSAGE)
        raise RuntimeError("the pack could not be written")

    assert not SigningKey.objects.exists()
    assert not EvidenceEvent.objects.filter(action__startswith="evidence.signing_key.").exists()


# --- the signing_key command ------------------------------------------------------------------------------


def run(*args) -> str:
    out = io.StringIO()
    call_command("signing_key", *args, stdout=out)
    return out.getvalue()


def test_signing_key_create_writes_an_owner_only_key_and_prints_its_fingerprint(tmp_path):
    path = tmp_path / "soxgov-signing.pem"

    out = run("create", "--out", str(path))

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    public = signing.public_key_of(path.read_bytes())
    assert f"fingerprint: {public.fingerprint}" in out
    assert public.public_key_hex in out and public.pem.strip() in out
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_signing_key_create_refuses_to_overwrite_an_existing_file(tmp_path):
    path = tmp_path / "soxgov-signing.pem"
    path.write_text("the key in use")

    with pytest.raises(CommandError, match="exists; refusing to overwrite"):
        run("create", "--out", str(path))

    assert path.read_text() == "the key in use"


def test_signing_key_show_prints_the_current_key_and_registers_it_once(db):
    public = signing.current_public_key()

    out = run("show")
    again = run("show")

    assert f"fingerprint: {public.fingerprint}" in out and public.pem.strip() in out
    assert "registered now" in out and "registered now" not in again
    assert len(events("evidence.signing_key.created")) == 1
    assert (
        EvidenceEvent.objects.get(action="evidence.signing_key.created").actor_name
        == "system:command:signing_key"
    )


# --- what auditors see ------------------------------------------------------------------------------------


def test_the_api_lists_current_and_retired_public_keys_for_the_auditor(db, client, make_user, settings):
    old = signing.sign(MESSAGE)
    settings.SOXGOV_SIGNING_KEY = signing.new_private_key_pem()
    new = signing.sign(MESSAGE)
    client.force_login(make_user("audrey", Role.AUDITOR))

    listed = client.get(reverse("signingkey-list")).json()["results"]  # oldest first (keyset on the id)

    assert [(k["fingerprint"], k["current"]) for k in listed] == [
        (old.fingerprint, False),
        (new.fingerprint, True),
    ]
    assert listed[1]["algorithm"] == "Ed25519" and listed[1]["public_key_hex"] == new.public_key_hex
    assert listed[1]["public_key_pem"] == signing.public_key_pem(new.public_key_hex)
    assert listed[0]["retired_at"] is not None and listed[1]["retired_at"] is None
    assert "PRIVATE" not in json.dumps(listed)


def test_the_integrity_page_shows_the_current_public_key_and_the_retired_ones(
    db, client, make_user, settings
):
    old = signing.sign(MESSAGE)
    settings.SOXGOV_SIGNING_KEY = signing.new_private_key_pem()
    new = signing.sign(MESSAGE)
    client.force_login(make_user("audrey", Role.AUDITOR))

    page = client.get(reverse("evidence:integrity")).content.decode()

    current, _, retired = page.partition("Retired keys")
    assert new.fingerprint in current and signing.public_key_pem(new.public_key_hex).strip() in current
    assert old.fingerprint in retired and old.public_key_hex in retired
