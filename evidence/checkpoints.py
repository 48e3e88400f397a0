"""Signing the chain head and keeping it outside the database.

A checkpoint is signed with Ed25519 (evidence/signing.py) and written to the database and to a configured
directory (in production a write-once store: object lock, WORM share); files are created exclusively and made
read-only, never overwritten. ``verify_evidence`` checks the chain against the latest external checkpoint signed
by a trusted public key, so a chain rebuilt consistently after tampering (every hash recomputed) is still caught:
its hash at the checkpoint's sequence differs. Checking needs public keys only, no secret.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from evidence import signing
from evidence.chain import ED25519, HMAC_SHA256, checkpoint_material, checkpoint_problem, format_time
from evidence.models import Checkpoint, EvidenceEvent
from evidence.services import Actor, _lock_chain, event_record


def checkpoint_create(*, reason: str, actor: Actor) -> Checkpoint | None:
    """Sign the current head; None when the chain is empty."""
    key = signing.current_public_key()
    with transaction.atomic():
        _lock_chain()
        head = EvidenceEvent.objects.order_by("-sequence").values_list("sequence", "hash").first()
        if head is None:
            return None
        signed_at = timezone.now()
        document = {
            "sequence": head[0],
            "head_hash": head[1],
            "signed_at": format_time(signed_at),
            "key_id": key.fingerprint,
            "algorithm": ED25519,
        }
        signature = signing.sign(checkpoint_material(document))
        document["public_key"] = signature.public_key_hex
        document["signature"] = signature.signature_hex
        document["reason"] = reason
        path = _write_external(document)
        checkpoint = Checkpoint.objects.create(
            sequence=head[0],
            head_hash=head[1],
            signed_at=signed_at,
            algorithm=ED25519,
            key_id=key.fingerprint,
            public_key=signature.public_key_hex,
            signature=signature.signature_hex,
            reason=reason,
            external_path=str(path),
        )
        event_record(
            actor=actor,
            action="evidence.checkpoint.created",
            subject=checkpoint,
            payload={**document, "external_path": str(path)},
        )
    return checkpoint


def _write_external(document: dict) -> Path:
    folder = Path(settings.SOXGOV_CHECKPOINT_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = document["signed_at"].replace(":", "").replace("-", "").replace(".", "")
    path = folder / f"checkpoint-{document['sequence']:012d}-{stamp}.json"
    with path.open("x", encoding="utf-8") as handle:  # "x": never overwrite an existing checkpoint
        json.dump(document, handle, sort_keys=True, indent=1)
    os.chmod(path, 0o444)
    return path


def latest_external() -> tuple[dict | None, list[str]]:
    """The external checkpoint with the highest sequence signed by a trusted key, and the problems found.

    Trusted: ``signing.trusted_public_keys()`` (the current key and SOXGOV_SIGNING_RETIRED_PUBLIC_KEYS); legacy
    HMAC-SHA256 checkpoints are checked with SOXGOV_CHECKPOINT_KEY when it is set.
    """
    folder = Path(settings.SOXGOV_CHECKPOINT_DIR)
    problems: list[str] = []
    best = None
    if not folder.is_dir():
        return None, problems
    trusted = signing.trusted_public_keys()
    legacy_key = settings.SOXGOV_CHECKPOINT_KEY
    hmac_key = legacy_key.encode("utf-8") if legacy_key else None
    for path in sorted(folder.glob("checkpoint-*.json")):
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            problems.append(f"{path.name}: unreadable ({exc})")
            continue
        if not isinstance(document, dict):
            problems.append(f"{path.name}: not a checkpoint (a JSON object)")
            continue
        problem = checkpoint_problem(document, trusted_keys=trusted, hmac_key=hmac_key)
        if problem is not None:
            if document.get("algorithm") == HMAC_SHA256 and hmac_key is None:
                problem += " (set SOXGOV_CHECKPOINT_KEY to the key it was signed with)"
            problems.append(f"{path.name}: {problem}")
            continue
        if not isinstance(document["sequence"], int):
            problems.append(f"{path.name}: its sequence is not a number")
            continue
        if best is None or document["sequence"] > best["sequence"]:
            best = {**document, "path": path.name}
    return best, problems


def chain_matches(document: dict) -> str | None:
    """None when the chain holds the checkpoint's head; otherwise why not, naming the checkpoint."""
    found = EvidenceEvent.objects.filter(sequence=document["sequence"]).values_list("hash", flat=True).first()
    name = _checkpoint_name(document)
    if found is None:
        return (
            f"{name} signed at {document['signed_at']} says head hash {document['head_hash']} at sequence "
            f"{document['sequence']}; the chain now has no event {document['sequence']}"
        )
    if found != document["head_hash"]:
        return (
            f"{name} signed at {document['signed_at']} says head hash {document['head_hash']} at sequence "
            f"{document['sequence']}; the chain now has {found}: the chain was rewritten after the checkpoint"
        )
    return None


def _checkpoint_name(document: dict) -> str:
    # The database row's number when it is still there (a forger may have removed it; the file is what counts).
    pk = (
        Checkpoint.objects.filter(signature=document.get("signature", ""))
        .values_list("pk", flat=True)
        .first()
    )
    return f"checkpoint #{pk} ({document['path']})" if pk else f"checkpoint {document['path']}"


@dataclass(frozen=True)
class CheckpointCheck:
    """The chain against the latest trusted external checkpoint: what ``verify_evidence`` and the in-app
    verification both report. Not ok when the chain contradicts the checkpoint or a checkpoint file could not be
    trusted (an unreadable or unverifiable file may be one a forger replaced)."""

    checkpoint: dict | None
    mismatch: str | None
    problems: list[str]

    @property
    def ok(self) -> bool:
        return self.mismatch is None and not self.problems

    def summary(self) -> str:
        parts = []
        if self.mismatch:
            parts.append(f"broken against the external checkpoint: {self.mismatch}")
        parts += [f"checkpoint problem: {problem}" for problem in self.problems]
        if self.checkpoint is not None and self.mismatch is None:
            parts.append(
                f"matches external checkpoint {self.checkpoint['path']} (sequence {self.checkpoint['sequence']}, "
                f"signed {self.checkpoint['signed_at']})"
            )
        elif self.checkpoint is None and not self.problems:
            parts.append("no external checkpoint to compare with yet")
        return "; ".join(parts)


def chain_against_checkpoint() -> CheckpointCheck:
    """Compare the chain with the latest external checkpoint signed by a trusted key."""
    checkpoint, problems = latest_external()
    mismatch = chain_matches(checkpoint) if checkpoint is not None else None
    return CheckpointCheck(checkpoint=checkpoint, mismatch=mismatch, problems=problems)
