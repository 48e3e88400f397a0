"""The evidence hash chain: canonical encoding, digests and verification.

Standard library only, on purpose: an auditor's offline verifier (shipped in evidence packs) runs this same
file without installing SOXGov. Anything that changes the encoding breaks every existing chain; don't.

Each event's hash is SHA-256 over the canonical JSON (sorted keys, no whitespace, UTF-8) of::

    {"action", "actor_id", "actor_kind", "actor_name", "occurred_at", "payload", "prev_hash",
     "sequence", "subject_id", "subject_repr", "subject_type"}

where ``payload`` is the event's canonical JSON text, ``occurred_at`` is UTC as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``
and ``prev_hash`` is the previous event's hash (64 zeros for sequence 1).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

GENESIS_HASH = "0" * 64
HASHED_FIELDS = (
    "sequence",
    "occurred_at",
    "actor_kind",
    "actor_id",
    "actor_name",
    "action",
    "subject_type",
    "subject_id",
    "subject_repr",
    "payload",
    "prev_hash",
)


def canonical_json(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def format_time(moment: dt.datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("evidence times must be timezone-aware")
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_hash(fields: Mapping) -> str:
    """SHA-256 of one event; ``fields`` holds HASHED_FIELDS with occurred_at already formatted."""
    material = {name: fields[name] for name in HASHED_FIELDS}
    return hashlib.sha256(canonical_json(material).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Verification:
    intact: bool
    count: int
    head_sequence: int
    head_hash: str
    broken_sequence: int | None = None
    reason: str = ""

    def summary(self) -> str:
        if self.intact:
            return f"intact: {self.count} events, head {self.head_hash}"
        return f"broken at sequence {self.broken_sequence}: {self.reason}"


def verify(
    rows: Iterable[Mapping], *, start_sequence: int = 1, start_prev_hash: str = GENESIS_HASH
) -> Verification:
    """Recompute every link of a chain segment given in ascending sequence order.

    Detects an edited field (hash mismatch), a deleted row (sequence gap), a reordered pair (sequence or link
    mismatch) and a forged hash column (the next link no longer matches). Names the first broken sequence.
    """
    expected_sequence = start_sequence
    prev_hash = start_prev_hash
    count = 0
    for row in rows:
        sequence = row["sequence"]
        if sequence != expected_sequence:
            return Verification(
                False,
                count,
                expected_sequence - 1,
                prev_hash,
                expected_sequence,
                f"expected sequence {expected_sequence}, found {sequence} (a row is missing or out of order)",
            )
        if row["prev_hash"] != prev_hash:
            return Verification(
                False,
                count,
                sequence - 1,
                prev_hash,
                sequence,
                "prev_hash does not match the hash of the event before it",
            )
        recomputed = event_hash(row)
        if recomputed != row["hash"]:
            return Verification(
                False,
                count,
                sequence - 1,
                prev_hash,
                sequence,
                "stored hash does not match the event's content (the event was altered)",
            )
        prev_hash = row["hash"]
        expected_sequence += 1
        count += 1
    return Verification(True, count, expected_sequence - 1, prev_hash)


# --- Checkpoints: the chain head, signed, kept outside the database -------------------------------------------
#
# A checkpoint document holds CHECKPOINT_FIELDS plus "signature" (and "public_key" for Ed25519). The signature is
# over the canonical JSON of CHECKPOINT_FIELDS. Ed25519 (the current algorithm): "key_id" is the fingerprint of
# the signing public key, "SHA256:" + hex SHA-256 of its raw 32 bytes, and the signature is checked only against
# a public key the verifier already trusts under that fingerprint: a key carried inside the document proves
# nothing. HMAC-SHA256: checkpoints written before Ed25519, checkable only with the shared secret.
#
# Ed25519 comes from evidence/ed25519.py (standard library only); inside an evidence pack it sits beside this file
# as evidence_ed25519.py, loaded first by the pack's verifier.

CHECKPOINT_FIELDS = ("sequence", "head_hash", "signed_at", "key_id", "algorithm")
ED25519 = "Ed25519"
HMAC_SHA256 = "HMAC-SHA256"


def key_fingerprint(public_key: bytes) -> str:
    """Names an Ed25519 public key: "SHA256:" + the hex SHA-256 of its raw 32 bytes."""
    return "SHA256:" + hashlib.sha256(public_key).hexdigest()


def checkpoint_material(checkpoint: Mapping) -> bytes:
    """The signed bytes: canonical JSON of CHECKPOINT_FIELDS."""
    return canonical_json({name: checkpoint[name] for name in CHECKPOINT_FIELDS}).encode("utf-8")


def checkpoint_problem(
    checkpoint: Mapping, *, trusted_keys: Mapping[str, str], hmac_key: bytes | None = None
) -> str | None:
    """None when the checkpoint is signed by a trusted key and the signature holds; otherwise why not.

    ``trusted_keys`` maps fingerprints to raw public keys in hex; ``hmac_key`` checks legacy HMAC checkpoints.
    """
    missing = [name for name in (*CHECKPOINT_FIELDS, "signature") if name not in checkpoint]
    if missing:
        return f"lacks {', '.join(missing)}"
    algorithm = checkpoint["algorithm"]
    if algorithm == ED25519:
        fingerprint = checkpoint["key_id"]
        public_hex = trusted_keys.get(fingerprint) if isinstance(fingerprint, str) else None
        if public_hex is None:
            return f"signed by key {fingerprint}, which is not a trusted key"
        try:
            signature = bytes.fromhex(checkpoint["signature"])
        except (TypeError, ValueError):
            return "its signature is not hexadecimal"
        if not _ed25519().verify(bytes.fromhex(public_hex), checkpoint_material(checkpoint), signature):
            return f"the signature does not verify with trusted key {fingerprint}"
        return None
    if algorithm == HMAC_SHA256:
        if hmac_key is None:
            return "a legacy HMAC-SHA256 checkpoint, and no HMAC key was given to check it"
        if not checkpoint_valid(checkpoint, hmac_key):
            return "the signature does not verify with the HMAC key"
        return None
    return f"unknown signature algorithm {algorithm!r}"


def _ed25519():
    try:
        from evidence import ed25519
    except ImportError:  # inside an evidence pack
        import evidence_ed25519 as ed25519
    return ed25519


def key_id(key: bytes) -> str:
    """Names a legacy HMAC key without revealing it."""
    return hashlib.sha256(b"soxgov-checkpoint-key:" + key).hexdigest()[:16]


def checkpoint_signature(checkpoint: Mapping, key: bytes) -> str:
    """Legacy: HMAC-SHA256 over the canonical JSON of CHECKPOINT_FIELDS."""
    import hmac

    return hmac.new(key, checkpoint_material(checkpoint), hashlib.sha256).hexdigest()


def checkpoint_valid(checkpoint: Mapping, key: bytes) -> bool:
    """Legacy: True when an HMAC-SHA256 checkpoint was signed with ``key``."""
    import hmac

    signature = checkpoint.get("signature")
    return (
        checkpoint.get("key_id") == key_id(key)
        and isinstance(signature, str)
        and hmac.compare_digest(checkpoint_signature(checkpoint, key).encode(), signature.encode("utf-8"))
    )
