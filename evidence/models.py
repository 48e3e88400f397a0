"""The append-only, hash-chained evidence trail, and the record of each verification of it."""

import json

from django.conf import settings
from django.db import models
from django.db.models import Q

from soxgov.access import RestrictedQuerySet


class AppendOnlyError(Exception):
    pass


class EvidenceEvent(models.Model):
    """One state change an auditor may ask about. Written only by evidence.services; never updated or deleted.

    The database refuses UPDATE, DELETE and TRUNCATE (triggers, migration 0002). Someone who bypasses the
    triggers is caught by the hash chain: ``python manage.py verify_evidence``.
    """

    class ActorKind(models.TextChoices):
        USER = "user", "User"
        SYSTEM = "system", "System"

    # Gapless and increasing: assigned under the chain lock, never by a database sequence (which skips
    # numbers on rollback).
    sequence = models.BigIntegerField(primary_key=True)
    occurred_at = models.DateTimeField()
    actor_kind = models.CharField(max_length=8, choices=ActorKind.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    actor_name = models.CharField(max_length=200, help_text="Copied so it outlives the user.")
    action = models.CharField(max_length=100, help_text="A dotted verb, such as access.grant.added.")
    subject_type = models.CharField(max_length=100)
    subject_id = models.CharField(max_length=64)
    subject_repr = models.CharField(max_length=255, help_text="Copied so it outlives the subject.")
    payload = models.TextField(help_text="Canonical JSON: sorted keys, no whitespace.")
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["sequence"]
        constraints = [
            models.CheckConstraint(
                condition=Q(sequence__gte=1), name="%(app_label)s_%(class)s_sequence_positive"
            ),
            models.CheckConstraint(
                condition=Q(actor_kind="system") | Q(actor_user__isnull=False),
                name="%(app_label)s_%(class)s_user_actor_named",
            ),
        ]
        indexes = [
            models.Index(fields=["subject_type", "subject_id"], name="evidence_subject"),
            models.Index(fields=["action", "sequence"], name="evidence_action_seq"),
            models.Index(fields=["occurred_at"], name="evidence_occurred_at"),
        ]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.action} {self.subject_repr}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError("evidence events cannot be changed")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("evidence events cannot be deleted")

    @property
    def payload_data(self):
        return json.loads(self.payload)

    def hashed_fields(self) -> dict:
        from evidence.chain import format_time

        return {
            "sequence": self.sequence,
            "occurred_at": format_time(self.occurred_at),
            "actor_kind": self.actor_kind,
            "actor_id": self.actor_user_id,
            "actor_name": self.actor_name,
            "action": self.action,
            "subject_type": self.subject_type,
            "subject_id": self.subject_id,
            "subject_repr": self.subject_repr,
            "payload": self.payload,
            "prev_hash": self.prev_hash,
        }


class ChainVerification(models.Model):
    """One run of the chain verification (scheduled daily, on demand by an admin, or from the shell).

    Status transitions: queued -> running -> intact | broken | failed.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        INTACT = "intact", "Intact"
        BROKEN = "broken", "Broken"
        FAILED = "failed", "Failed"

    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_by_name = models.CharField(max_length=200)
    requested_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    event_count = models.BigIntegerField(null=True, blank=True)
    head_sequence = models.BigIntegerField(null=True, blank=True)
    head_hash = models.CharField(max_length=64, blank=True)
    broken_sequence = models.BigIntegerField(null=True, blank=True)
    detail = models.TextField(blank=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [
            # The worker claims queued runs: WHERE status = 'queued'.
            models.Index(fields=["requested_at"], condition=Q(status="queued"), name="evidence_verif_queued"),
        ]

    def __str__(self) -> str:
        return f"verification #{self.pk} ({self.status})"


class Checkpoint(models.Model):
    """The chain head (sequence and hash) at a moment, signed with the Ed25519 key from settings (rows from
    before Ed25519: HMAC-SHA256) and also written to an external, write-once location. A chain rebuilt
    consistently after tampering no longer matches it."""

    class Reason(models.TextChoices):
        SCHEDULE = "schedule", "Schedule"
        CAMPAIGN_SIGN_OFF = "campaign_sign_off", "Campaign signed off"
        EVIDENCE_PACK = "evidence_pack", "Evidence pack"
        MANUAL = "manual", "On demand"

    sequence = models.BigIntegerField()
    head_hash = models.CharField(max_length=64)
    signed_at = models.DateTimeField()
    algorithm = models.CharField(max_length=16, default="Ed25519")
    key_id = models.CharField(max_length=80, help_text="Ed25519: the signing key's fingerprint.")
    public_key = models.CharField(max_length=64, blank=True, help_text="Ed25519: the raw public key, hex.")
    signature = models.CharField(max_length=128)
    reason = models.CharField(max_length=24, choices=Reason.choices)
    external_path = models.CharField(max_length=500)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["-sequence", "-id"]

    def __str__(self) -> str:
        return f"checkpoint at #{self.sequence}"

    def as_document(self) -> dict:
        from evidence.chain import format_time

        document = {
            "sequence": self.sequence,
            "head_hash": self.head_hash,
            "signed_at": format_time(self.signed_at),
            "key_id": self.key_id,
            "algorithm": self.algorithm,
            "signature": self.signature,
            "reason": self.reason,
        }
        if self.public_key:
            document["public_key"] = self.public_key
        return document


class SigningKey(models.Model):
    """A public key SOXGov has signed with; the private key lives only in configuration (settings).

    Registered, with an ``evidence.signing_key.created`` or ``.rotated`` event, the first time SOXGov signs with
    it. Transitions: current (retired_at empty) -> retired, when another key first signs -> current again, if
    configured again. Verification trusts keys from configuration only, never from this table: a row here is
    the record of what was used and when, for the auditor to compare with what they were given.
    """

    class Algorithm(models.TextChoices):
        ED25519 = "Ed25519", "Ed25519"

    fingerprint = models.CharField(
        max_length=80, unique=True, help_text='"SHA256:" + hex SHA-256 of the key.'
    )
    public_key = models.CharField(max_length=64, help_text="The raw 32-byte public key, hex.")
    algorithm = models.CharField(max_length=16, choices=Algorithm.choices, default=Algorithm.ED25519)
    registered_at = models.DateTimeField()
    retired_at = models.DateTimeField(null=True, blank=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["-registered_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["algorithm"],
                condition=Q(retired_at__isnull=True),
                name="%(app_label)s_%(class)s_one_current",
                violation_error_message="Only one signing key is current.",
            ),
        ]

    def __str__(self) -> str:
        return self.fingerprint

    @property
    def is_current(self) -> bool:
        return self.retired_at is None

    @property
    def public_key_pem(self) -> str:
        from evidence.signing import public_key_pem

        return public_key_pem(self.public_key)


class EvidencePack(models.Model):
    """One export of a self-verifying evidence pack (built by a Celery task)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Building"
        DONE = "done", "Ready"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    scope = models.JSONField(help_text='What the pack covers, e.g. {"campaign": 12}.')
    scope_label = models.CharField(max_length=300)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.PositiveSmallIntegerField(default=0)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    requested_by_name = models.CharField(max_length=200)
    requested_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    path = models.CharField(max_length=500, blank=True)
    sha256 = models.CharField(max_length=64, blank=True)
    size = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["-requested_at", "-id"]

    def __str__(self) -> str:
        return f"Evidence pack #{self.pk}: {self.scope_label}"

    def get_absolute_url(self) -> str:
        from django.urls import reverse

        return reverse("evidence:pack_detail", args=[self.pk])
