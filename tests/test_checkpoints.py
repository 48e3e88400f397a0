"""Signed checkpoints of the chain head, kept outside the database: a consistently rebuilt chain is caught."""

import json
import os
import stat

from evidence.chain import event_hash, format_time
from evidence.checkpoints import checkpoint_create
from evidence.models import Checkpoint, EvidenceEvent
from evidence.services import Actor
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


def test_a_chain_rebuilt_consistently_after_tampering_fails_against_the_checkpoint(db):
    record_chain(4)
    checkpoint_create(reason=Checkpoint.Reason.MANUAL, actor=ACTOR)  # signs #4; its own event is #5
    bypass_append_only_triggers()
    # The forger edits event 2 and recomputes every later hash, so the chain itself verifies.
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

    code, _out, err = run_verify_evidence()

    assert code == 1
    assert "broken against the external checkpoint: event 4 has hash" in err
    assert "the chain was rewritten after the checkpoint" in err


def test_a_forged_checkpoint_file_is_reported(db, settings):
    record_chain(2)
    checkpoint_create(reason=Checkpoint.Reason.MANUAL, actor=ACTOR)
    forged = settings.SOXGOV_CHECKPOINT_DIR / "checkpoint-000000000099-x.json"
    forged.write_text(
        json.dumps(
            {
                "sequence": 99,
                "head_hash": "f" * 64,
                "signed_at": "x",
                "key_id": "x",
                "algorithm": "HMAC-SHA256",
                "signature": "0" * 64,
            }
        )
    )

    code, _out, err = run_verify_evidence()

    assert code == 1 and "checkpoint-000000000099-x.json: the signature does not verify" in err
