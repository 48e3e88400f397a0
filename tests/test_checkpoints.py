"""Signed checkpoints of the chain head, kept outside the database: a consistently rebuilt chain is caught, with
nothing but the signer's public key."""

import hmac
import html
import json
import os
import stat
from pathlib import Path

from django.urls import reverse

from evidence import ed25519, signing
from evidence.chain import checkpoint_material, event_hash, format_time, key_fingerprint, key_id
from evidence.checkpoints import checkpoint_create
from evidence.models import ChainVerification, Checkpoint, EvidenceEvent
from evidence.selectors import chain_verify
from evidence.services import Actor, verification_request, verification_run
from soxgov.roles import Role
from tests.test_evidence_chain import bypass_append_only_triggers, execute, record_chain, run_verify_evidence

ACTOR = Actor.system("tests")


def test_a_checkpoint_signs_the_head_in_the_database_and_in_a_read_only_external_file(db, settings):
    events = record_chain(3)

    checkpoint = checkpoint_create(reason=Checkpoint.Reason.MANUAL, actor=ACTOR)

    assert (checkpoint.sequence, checkpoint.head_hash) == (3, events[-1].hash)
    files = list(settings.SOXGOV_CHECKPOINT_DIR.glob("checkpoint-*.json"))
    assert [str(f) for f in files] == [checkpoint.external_path]
    document = json.loads(files[0].read_text())
    assert document["head_hash"] == events[-1].hash and document["signature"] == checkpoint.signature
    assert not os.stat(files[0]).st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
    assert EvidenceEvent.objects.filter(action="evidence.checkpoint.created").count() == 1
    code, out, _err = run_verify_evidence()
    assert code == 0 and f"matches external checkpoint {files[0].name} (sequence 3" in out


def rebuild_chain_with_event_2_edited() -> None:
    """What a forger with database access does: edit event 2 and recompute every later hash, so the chain itself
    verifies."""
    bypass_append_only_triggers()
    rows = list(EvidenceEvent.objects.order_by("sequence"))
    prev = rows[0].hash
    for row in rows[1:]:
        fields = row.hashed_fields()
        if row.sequence == 2:
            fields["payload"] = json.dumps({"n": 999}, separators=(",", ":"))
        fields["prev_hash"] = prev
        fields["occurred_at"] = format_time(row.occurred_at)
        new_hash = event_hash(fields)
        execute(
            f"UPDATE {EvidenceEvent._meta.db_table} SET payload = %s, prev_hash = %s, hash = %s WHERE sequence = %s",
            [fields["payload"], prev, new_hash, row.sequence],
        )
        prev = new_hash


def test_a_chain_rebuilt_consistently_after_tampering_fails_against_the_checkpoint(db):
    record_chain(4)
    checkpoint_create(reason=Checkpoint.Reason.MANUAL, actor=ACTOR)  # signs #4; its own event comes after
    rebuild_chain_with_event_2_edited()

    code, _out, err = run_verify_evidence()

    assert code == 1
    assert "broken against the external checkpoint: checkpoint #" in err
    assert "says head hash" in err and "at sequence 4; the chain now has" in err
    assert "the chain was rewritten after the checkpoint" in err


def test_the_in_app_verification_of_a_chain_rebuilt_after_a_checkpoint_is_broken_naming_the_checkpoint(
    db, client, make_user, django_capture_on_commit_callbacks
):
    events = record_chain(4)
    checkpoint = checkpoint_create(reason=Checkpoint.Reason.MANUAL, actor=ACTOR)
    rebuild_chain_with_event_2_edited()
    rewritten = EvidenceEvent.objects.get(sequence=4).hash
    assert rewritten != events[-1].hash and chain_verify().intact  # consistent: the links alone see nothing

    with django_capture_on_commit_callbacks(execute=True):
        verification = verification_request(actor=ACTOR)

    verification.refresh_from_db()
    assert verification.status == ChainVerification.Status.BROKEN
    assert verification.broken_sequence == 4
    name = Path(checkpoint.external_path).name
    expected = (
        f"checkpoint #{checkpoint.pk} ({name}) signed at {format_time(checkpoint.signed_at)} says head hash "
        f"{events[-1].hash} at sequence 4; the chain now has {rewritten}"
    )
    assert expected in verification.detail
    broken = EvidenceEvent.objects.get(action="evidence.chain.broken")
    assert broken.payload_data["intact"] is False and broken.payload_data["checkpoint"] == name
    assert expected in broken.payload_data["detail"]

    client.force_login(make_user("audrey", Role.AUDITOR))
    page = client.get(reverse("evidence:integrity")).content.decode()
    latest = page.split("Latest verification:", 1)[1].split("</article>", 1)[0]
    assert "broken" in latest and html.escape(expected) in latest


def test_the_in_app_verification_of_an_untouched_chain_matches_the_checkpoint(db):
    record_chain(3)
    checkpoint_create(reason=Checkpoint.Reason.MANUAL, actor=ACTOR)
    verification = ChainVerification.objects.create(requested_by_name="system:tests")

    assert verification_run(verification_id=verification.pk) is True

    verification.refresh_from_db()
    assert verification.status == ChainVerification.Status.INTACT
    assert "matches external checkpoint checkpoint-000000000003-" in verification.detail


def test_a_checkpoint_is_an_ed25519_signature_that_the_standard_library_verifier_accepts(db, settings):
    record_chain(2)

    checkpoint = checkpoint_create(reason=Checkpoint.Reason.MANUAL, actor=ACTOR)

    document = json.loads(Path(checkpoint.external_path).read_text())
    public = signing.current_public_key()
    assert document["algorithm"] == checkpoint.algorithm == "Ed25519"
    assert document["key_id"] == checkpoint.key_id == public.fingerprint
    assert document["public_key"] == checkpoint.public_key == public.public_key_hex
    assert public.fingerprint == key_fingerprint(bytes.fromhex(public.public_key_hex))
    assert ed25519.verify(
        bytes.fromhex(document["public_key"]),
        checkpoint_material(document),
        bytes.fromhex(document["signature"]),
    )
    assert checkpoint.as_document() == {key: document[key] for key in checkpoint.as_document()}


def test_verify_evidence_catches_a_rebuilt_chain_with_only_the_public_key_and_no_secret(db, settings):
    record_chain(4)
    checkpoint_create(reason=Checkpoint.Reason.MANUAL, actor=ACTOR)
    rebuild_chain_with_event_2_edited()
    # The verifying machine holds no private key and no shared secret: only the signer's public key.
    public = signing.current_public_key()
    settings.DEBUG = False
    settings.SOXGOV_SIGNING_KEY = None
    settings.SOXGOV_CHECKPOINT_KEY = None
    settings.SOXGOV_SIGNING_RETIRED_PUBLIC_KEYS = [public.public_key_hex]

    code, _out, err = run_verify_evidence()

    assert code == 1
    assert "checkpoint problem" not in err  # the checkpoint itself was trusted ...
    assert "at sequence 4; the chain now has" in err  # ... and the chain contradicts it


def test_a_checkpoint_file_re_signed_with_another_ed25519_key_is_refused_as_untrusted(db, settings):
    record_chain(2)
    checkpoint_create(reason=Checkpoint.Reason.MANUAL, actor=ACTOR)
    # The forger writes a later checkpoint over a rewritten head, signed with a key of their own, and even
    # carries that key inside the file: a key in the document proves nothing.
    forger_seed = os.urandom(32)
    forger_public = ed25519.public_key(forger_seed)
    forged = {
        "sequence": 99,
        "head_hash": "f" * 64,
        "signed_at": "2026-12-01T00:00:00.000000Z",
        "key_id": key_fingerprint(forger_public),
        "algorithm": "Ed25519",
        "public_key": forger_public.hex(),
    }
    forged["signature"] = ed25519.sign(forger_seed, checkpoint_material(forged)).hex()
    (settings.SOXGOV_CHECKPOINT_DIR / "checkpoint-000000000099-x.json").write_text(json.dumps(forged))

    code, out, err = run_verify_evidence()

    assert code == 1
    assert (
        f"checkpoint-000000000099-x.json: signed by key {key_fingerprint(forger_public)}, "
        "which is not a trusted key" in err
    )
    assert "matches external checkpoint checkpoint-000000000002" in out  # the genuine one still counts


def test_a_checkpoint_whose_signed_fields_were_edited_is_refused(db, settings):
    record_chain(2)
    checkpoint = checkpoint_create(reason=Checkpoint.Reason.MANUAL, actor=ACTOR)
    path = Path(checkpoint.external_path)
    document = json.loads(path.read_text())
    document["head_hash"] = "f" * 64
    os.chmod(path, 0o644)
    path.write_text(json.dumps(document))

    code, _out, err = run_verify_evidence()

    assert code == 1
    assert f"{path.name}: the signature does not verify with trusted key {checkpoint.key_id}" in err


def test_after_rotation_old_checkpoints_verify_through_the_retired_public_keys(db, settings):
    record_chain(2)
    old = checkpoint_create(reason=Checkpoint.Reason.MANUAL, actor=ACTOR)
    old_public = signing.current_public_key()
    settings.SOXGOV_SIGNING_KEY = signing.new_private_key_pem()  # the operator rotates the key
    new = checkpoint_create(reason=Checkpoint.Reason.MANUAL, actor=ACTOR)
    assert new.key_id != old.key_id

    code, _out, err = run_verify_evidence()
    assert code == 1
    assert f"{Path(old.external_path).name}: signed by key {old.key_id}, which is not a trusted key" in err

    settings.SOXGOV_SIGNING_RETIRED_PUBLIC_KEYS = [old_public.public_key_hex]
    code, out, err = run_verify_evidence()
    assert (code, err) == (0, "")
    assert f"matches external checkpoint {Path(new.external_path).name}" in out


def legacy_hmac_checkpoint(settings, key: str) -> Path:
    """A checkpoint file as SOXGov wrote them before Ed25519, over the current head."""
    head = EvidenceEvent.objects.order_by("-sequence").first()
    document = {
        "sequence": head.sequence,
        "head_hash": head.hash,
        "signed_at": "2026-11-01T00:00:00.000000Z",
        "key_id": key_id(key.encode()),
        "algorithm": "HMAC-SHA256",
    }
    document["signature"] = hmac.new(key.encode(), checkpoint_material(document), "sha256").hexdigest()
    settings.SOXGOV_CHECKPOINT_DIR.mkdir(parents=True, exist_ok=True)
    path = settings.SOXGOV_CHECKPOINT_DIR / f"checkpoint-{head.sequence:012d}-legacy.json"
    path.write_text(json.dumps(document))
    return path


def test_a_legacy_hmac_checkpoint_verifies_with_soxgov_checkpoint_key(db, settings):
    record_chain(3)
    path = legacy_hmac_checkpoint(settings, "the old shared secret")
    settings.SOXGOV_CHECKPOINT_KEY = "the old shared secret"

    code, out, err = run_verify_evidence()

    assert (code, err) == (0, "")
    assert f"matches external checkpoint {path.name} (sequence 3" in out


def test_a_legacy_hmac_checkpoint_without_soxgov_checkpoint_key_is_reported_as_not_checkable(db, settings):
    record_chain(3)
    path = legacy_hmac_checkpoint(settings, "the old shared secret")
    settings.SOXGOV_CHECKPOINT_KEY = None

    code, _out, err = run_verify_evidence()

    assert code == 1
    assert f"{path.name}: a legacy HMAC-SHA256 checkpoint" in err and "set SOXGOV_CHECKPOINT_KEY" in err

    settings.SOXGOV_CHECKPOINT_KEY = "a different secret"
    code, _out, err = run_verify_evidence()
    assert code == 1 and f"{path.name}: the signature does not verify with the HMAC key" in err
