"""Where access data comes from (connectors) and each pull of it (connector runs)."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.urls import reverse

from entitlements.models.access import Application
from entitlements.models.identities import Identity
from soxgov.access import RestrictedQuerySet


class Connector(models.Model):
    """A configured source: an HR file, an access file, a directory (LDAP / Active Directory), a database.

    A connector only yields normalised records (entitlements/connectors/); staging, diffing and applying are
    shared by all kinds. A schedule (django-celery-beat) pulls it periodically. Source kinds (``SOURCE_KINDS``)
    read a live system (entitlements/connectors/sources.py) with the connector's secrets (ConnectorSecret).
    """

    class Kind(models.TextChoices):
        IDENTITY_FILE = "identity_file", "Identities file (CSV/XLSX)"
        ACCESS_FILE = "access_file", "Access file (CSV/XLSX)"
        LDAP = "ldap", "Directory (LDAP / Active Directory)"
        SQL = "sql", "Database (SQL)"

    FILE_KINDS = (Kind.IDENTITY_FILE, Kind.ACCESS_FILE)

    name = models.CharField(max_length=120, unique=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    application = models.ForeignKey(
        Application,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="connectors",
        help_text="For access connectors: the application the pulled file is the full truth for.",
    )
    configuration = models.JSONField(
        default=dict, blank=True, help_text='File connectors: {"path": "/data/exports/erp_access.csv"}'
    )
    owner = models.ForeignKey(
        Identity, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_connectors"
    )
    cron = models.CharField(
        max_length=100,
        blank=True,
        help_text='When to pull, as a crontab "minute hour day month weekday" (UTC), '
        'e.g. "0 2 * * *". Empty: only on demand.',
    )
    schedule = models.OneToOneField(
        "django_celery_beat.PeriodicTask",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="connector",
        editable=False,
    )
    deletion_threshold_percent = models.PositiveSmallIntegerField(
        default=10, help_text="Hold a pull that would remove more than this share of the current grants ..."
    )
    deletion_threshold_count = models.PositiveIntegerField(
        default=20, help_text="... and more than this many."
    )
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(deletion_threshold_percent__lte=100),
                name="%(app_label)s_%(class)s_threshold_is_a_share",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        from django.core.exceptions import ValidationError

        from entitlements.connectors.configuration import connector_problems

        secrets = set(self.secrets.values_list("name", flat=True)) if self.pk else set()
        errors = connector_problems(
            kind=self.kind,
            application=self.application_id,
            configuration=self.configuration,
            cron=self.cron,
            secret_names=secrets,
        )
        if errors:
            raise ValidationError(errors)

    @property
    def is_source(self) -> bool:
        """Read from a live system by SOXGov itself (not a file someone drops)."""
        return self.kind not in self.FILE_KINDS

    @property
    def thresholds(self) -> dict[str, int]:
        return {field: getattr(self, field) for field in THRESHOLD_FIELDS}


THRESHOLD_FIELDS = ("deletion_threshold_percent", "deletion_threshold_count")


class ConnectorSecret(models.Model):
    """A connector's secret (a bind or database password), write-only: no page, API answer, log line or
    evidence event ever shows the value.

    Either ``ciphertext`` (a Fernet token made with the first of ``SOXGOV_SECRET_KEYS``; any of them decrypts,
    so keys rotate: entitlements/connectors/secrets.py) or ``reference``: ``env:VARIABLE`` or ``file:/path``,
    read at each pull, for secrets kept by the platform (a container secret, a vault agent's file).
    """

    connector = models.ForeignKey(Connector, on_delete=models.CASCADE, related_name="secrets")
    name = models.CharField(max_length=64)
    ciphertext = models.TextField(blank=True, editable=False)
    reference = models.CharField(max_length=1024, blank=True, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["connector", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["connector", "name"], name="%(app_label)s_%(class)s_one_per_name"
            ),
            models.CheckConstraint(
                condition=(Q(ciphertext="") & ~Q(reference="")) | (~Q(ciphertext="") & Q(reference="")),
                name="%(app_label)s_%(class)s_value_or_reference",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.connector}: {self.name} ({self.kind})"

    @property
    def kind(self) -> str:
        """How it is kept, never what it is: "encrypted", "env" or "file"."""
        return "encrypted" if self.ciphertext else self.reference.partition(":")[0]


class ConnectorThresholdChange(models.Model):
    """A change to a connector's safety thresholds, kept with the values before and after.

    Stricter values (lower) apply at once: status ``applied``. More permissive ones (higher, up to disabling the
    gate) wait for a second admin: pending -> approved (the connector takes the proposed values then) |
    rejected (by another admin, or withdrawn by the proposer). Until then pulls keep the old thresholds.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for a second admin"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        APPLIED = "applied", "Applied at once (stricter)"

    connector = models.ForeignKey(Connector, on_delete=models.PROTECT, related_name="threshold_changes")
    old_percent = models.PositiveSmallIntegerField()
    old_count = models.PositiveIntegerField()
    proposed_percent = models.PositiveSmallIntegerField()
    proposed_count = models.PositiveIntegerField()
    reason = models.TextField(blank=True, help_text="Why the proposer wants the change.")
    proposed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    proposed_by_name = models.CharField(max_length=200)
    proposed_at = models.DateTimeField()
    status = models.CharField(max_length=16, choices=Status.choices)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_by_name = models.CharField(max_length=200, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_reason = models.TextField(blank=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["-proposed_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(proposed_percent__lte=100),
                name="%(app_label)s_%(class)s_percent_is_a_share",
            ),
            # Four eyes, in the database too: whoever proposed raising a threshold cannot be who approved it.
            models.CheckConstraint(
                condition=~Q(status="approved") | ~Q(decided_by=F("proposed_by")),
                name="%(app_label)s_%(class)s_approver_is_not_proposer",
                violation_error_message="The admin who proposed a threshold change cannot approve it.",
            ),
            models.CheckConstraint(
                condition=Q(status="pending", decided_at__isnull=True)
                | (~Q(status="pending") & Q(decided_at__isnull=False)),
                name="%(app_label)s_%(class)s_decided_unless_pending",
            ),
            # One proposal at a time per connector: the approver sees exactly what will change.
            models.UniqueConstraint(
                fields=["connector"],
                condition=Q(status="pending"),
                name="%(app_label)s_%(class)s_one_pending",
                violation_error_message="This connector already has a threshold change waiting for approval.",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.connector}: {self.old_percent}% / {self.old_count} -> "
            f"{self.proposed_percent}% / {self.proposed_count} ({self.status})"
        )

    @property
    def old(self) -> dict[str, int]:
        return dict(zip(THRESHOLD_FIELDS, (self.old_percent, self.old_count), strict=True))

    @property
    def proposed(self) -> dict[str, int]:
        return dict(zip(THRESHOLD_FIELDS, (self.proposed_percent, self.proposed_count), strict=True))


class ConnectorRun(models.Model):
    """One pull: parse, stage, diff, then apply in one transaction, or hold, or refuse.

    Status transitions: queued -> running -> applied | failed | held;
    held -> approved -> running -> applied | failed (approval re-diffs against current data);
    held -> rejected. Approval and rejection need an admin other than the one who started the run.
    """

    class Kind(models.TextChoices):
        IDENTITIES = "identities", "Identities"
        ACCESS = "access", "Access"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        APPLIED = "applied", "Applied"
        FAILED = "failed", "Failed"
        HELD = "held", "Held for approval"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        CANCELLED = "cancelled", "Cancelled"

    class Failure(models.TextChoices):
        NONE = "", "-"
        UNREACHABLE = "unreachable", "Source unreachable or credentials refused"
        SOURCE = "source", "The source answered with an error"
        IDENTITIES = "identities", "Its identities run was not applied"

    FINAL = (Status.APPLIED, Status.FAILED, Status.REJECTED, Status.CANCELLED)

    connector = models.ForeignKey(
        Connector, null=True, blank=True, on_delete=models.PROTECT, related_name="runs"
    )
    parent = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="children",
        help_text="For the identities a source pull read: the access run of the same pull, applied after it.",
    )
    failure = models.CharField(
        max_length=16,
        choices=Failure.choices,
        blank=True,
        default="",
        help_text="Why a failed run failed, when a source pull could not read its source.",
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    application = models.ForeignKey(
        Application,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="connector_runs",
        help_text="The application given with the file (rows may also name applications).",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    source_name = models.CharField(max_length=255, help_text="The file name as uploaded or given.")
    source_path = models.CharField(max_length=1024, help_text="Where the stored copy of the input lies.")
    input_sha256 = models.CharField(max_length=64)
    input_bytes = models.BigIntegerField(default=0)
    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    started_by_name = models.CharField(max_length=200)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_by_name = models.CharField(max_length=200, blank=True)
    decision_reason = models.TextField(blank=True)
    queued_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    rows_total = models.BigIntegerField(default=0)
    rows_done = models.BigIntegerField(default=0)
    counts = models.JSONField(
        default=dict, blank=True, help_text="added / removed / changed / unchanged per object"
    )
    problems = models.JSONField(default=list, blank=True, help_text="Why the input was refused (first 200).")
    problem_count = models.IntegerField(default=0)
    warnings = models.JSONField(default=list, blank=True)
    held_reason = models.TextField(blank=True)
    error = models.TextField(blank=True)
    changes_sha256 = models.CharField(
        max_length=64, blank=True, help_text="Digest of the applied change set."
    )

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["-queued_at", "-id"]
        indexes = [
            # The held-for-approval queue: WHERE status = 'held'.
            models.Index(fields=["queued_at"], condition=Q(status="held"), name="entitlements_run_held"),
        ]

    def __str__(self) -> str:
        return f"run #{self.pk} {self.kind} {self.source_name}"

    def get_absolute_url(self) -> str:
        return reverse("entitlements:run_detail", args=[self.pk])

    @property
    def progress_percent(self) -> int:
        if self.status in self.FINAL or self.status == self.Status.HELD:
            return 100
        return int(100 * self.rows_done / self.rows_total) if self.rows_total else 0
