"""Review campaigns: a scoped population of grants, snapshotted at launch into review items that reviewers
certify, revoke or delegate, then sign off.

A review item records what the reviewer saw at launch (names and flags are copied, so later changes to the
identity or entitlement do not rewrite the question that was asked). Decisions are an append-only log beside
the item; the item holds the current outcome for fast queues.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.urls import reverse

from entitlements.models import Application, Identity
from soxgov.access import RestrictedQuerySet
from soxgov.links import object_path


class Campaign(models.Model):
    class Kind(models.TextChoices):
        PERIODIC = "periodic", "Periodic review"
        MICRO = "micro", "Standing micro-review (event-driven)"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ACTIVE = "active", "Active"
        COMPLETED = "completed", "Completed"
        SIGNED_OFF = "signed_off", "Signed off"
        CLOSED = "closed", "Closed"

    class Routing(models.TextChoices):
        MANAGER = "manager", "The identity's manager (a non-human identity's owner)"
        APPLICATION_OWNER = "application_owner", "The application owner"
        ENTITLEMENT_OWNER = "entitlement_owner", "The entitlement owner (else the application owner)"
        IDENTITY_OWNER = "identity_owner", "The owner of a non-human identity (else the manager)"
        NAMED = "named", "A named reviewer"

    class Escalation(models.TextChoices):
        MANAGER = "manager", "The reviewer's manager"
        FALLBACK = "fallback", "The fallback reviewer"

    class Recurrence(models.TextChoices):
        NONE = "", "Once"
        QUARTERLY = "quarterly", "Quarterly"
        SEMIANNUAL = "semiannual", "Every six months"
        ANNUAL = "annual", "Yearly"

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PERIODIC)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.DRAFT)
    # Scope. No applications chosen means every SOX in-scope application.
    applications = models.ManyToManyField(Application, blank=True, related_name="campaigns")
    min_criticality = models.CharField(
        max_length=16,
        choices=Application.Criticality.choices,
        blank=True,
        help_text="Empty: any criticality.",
    )
    privileged_only = models.BooleanField("privileged or sensitive entitlements only", default=False)
    identity_kinds = models.JSONField(
        default=list, blank=True, help_text="Identity kinds to include; empty: all, non-human included."
    )
    departments = models.JSONField(default=list, blank=True, help_text="Departments to include; empty: all.")
    # Routing.
    routing = models.CharField(max_length=24, choices=Routing.choices, default=Routing.MANAGER)
    named_reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    fallback_reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Reviews what the routing cannot: no reviewer, a terminated one, or the subject themself.",
    )
    # Dates, reminders, escalation, recurrence.
    start_on = models.DateField()
    due_on = models.DateField()
    reminder_every_days = models.PositiveSmallIntegerField(default=7, help_text="0: no reminders.")
    escalate_after_days = models.PositiveSmallIntegerField(
        default=3, help_text="Days after the due date before pending items escalate."
    )
    escalate_to = models.CharField(max_length=16, choices=Escalation.choices, default=Escalation.MANAGER)
    recurrence = models.CharField(max_length=16, choices=Recurrence.choices, blank=True, default="")
    previous = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)
    launched_at = models.DateTimeField(null=True, blank=True, editable=False)
    completed_at = models.DateTimeField(null=True, blank=True, editable=False)
    signed_off_at = models.DateTimeField(null=True, blank=True, editable=False)
    closed_at = models.DateTimeField(null=True, blank=True, editable=False)
    item_count = models.PositiveIntegerField(default=0, editable=False)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(due_on__gte=F("start_on")),
                name="reviews_campaign_due_after_start",
                violation_error_message="The due date must not be before the start date.",
            )
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("reviews:campaign_detail", args=[self.pk])


class Advice(models.TextChoices):
    """A review item's recommendation (reviews/recommendations.py), most urgent first."""

    REVOKE = "revoke", "Revoke"
    CAREFUL = "careful", "Review carefully"
    FINE = "fine", "Likely fine"


class ReviewItem(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        CERTIFIED = "certified", "Certified"
        REVOKED = "revoked", "Revoked"

    # Flags, as the reviewer saw them at launch.
    FLAGS = ("terminated", "orphan", "dormant", "privileged", "sod_conflict", "new_access", "non_human")
    # Certifying one of these needs a comment.
    FLAGS_NEEDING_COMMENT = ("terminated", "orphan", "sod_conflict")
    # Each flag as a reviewer reads it (filters, previews, messages).
    FLAG_LABELS = {
        "terminated": "terminated",
        "orphan": "orphan",
        "dormant": "dormant",
        "privileged": "privileged",
        "sod_conflict": "SoD conflict",
        "new_access": "new access",
        "non_human": "non-human",
    }

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="items", db_index=False)
    # The grant reviewed. Plain ids (no foreign keys): the grant, account or entitlement may be gone by the
    # time an auditor looks, and the snapshot below still says what was asked.
    grant_id = models.BigIntegerField()
    account_id = models.BigIntegerField()
    entitlement_id = models.BigIntegerField()
    # Snapshot references without database constraints: a million-row launch would otherwise pay a foreign-key
    # check per row per column at commit (the bench measured most of the launch there); the ORM still PROTECTs.
    application = models.ForeignKey(
        Application, on_delete=models.PROTECT, related_name="+", db_index=False, db_constraint=False
    )
    identity = models.ForeignKey(
        Identity, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_constraint=False
    )
    identity_name = models.CharField(max_length=200)
    department = models.CharField(max_length=120, blank=True)
    account_key = models.CharField(max_length=255)
    entitlement_key = models.CharField(max_length=255)
    entitlement_name = models.CharField(max_length=255)
    last_used_at = models.DateTimeField(null=True, blank=True)
    terminated = models.BooleanField(default=False)
    orphan = models.BooleanField(default=False)
    dormant = models.BooleanField(default=False)
    privileged = models.BooleanField(default=False)
    sod_conflict = models.BooleanField(default=False)
    new_access = models.BooleanField("new since the last certification", default=False)
    non_human = models.BooleanField(default=False)
    # Routing.
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    # The reviewer's identity when assigned, so the database itself can refuse self-review.
    reviewer_identity = models.ForeignKey(
        Identity,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    # Recommendation (reviews/recommendations.py): computed at launch, refreshed while pending when the access
    # changes; what it was at each decision is kept on the decision. Database defaults: launch inserts items with
    # one INSERT ... SELECT that names only the snapshot's columns.
    recommendation = models.CharField(
        max_length=8, choices=Advice.choices, blank=True, default="", db_default=""
    )
    # Its signals, as numbers and facts (the reasons are words rendered from them).
    peer_holders = models.PositiveIntegerField(null=True, blank=True)
    peer_size = models.PositiveIntegerField(null=True, blank=True)
    peer_basis = models.CharField(
        max_length=8, blank=True, default="", db_default=""
    )  # "title" (department and title) or "manager"
    never_used = models.BooleanField(default=False, db_default=False)
    regranted = models.BooleanField("revoked before and granted again", default=False, db_default=False)
    certified_by_reviewer = models.BooleanField(
        "certified before by the same reviewer", default=False, db_default=False
    )
    unique_in_queue = models.BooleanField(
        "the only one of its kind in the reviewer's queue", default=False, db_default=False
    )
    owner_gone = models.BooleanField("non-human without a live owner", default=False, db_default=False)
    on_leave = models.BooleanField(default=False, db_default=False)
    # When the item was first shown to its current reviewer (queue or item page): decisions are timed from it.
    shown_at = models.DateTimeField(null=True, blank=True)
    # Outcome.
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    comment = models.TextField(blank=True)
    signed_off = models.BooleanField(default=False)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["identity_name", "id"]
        constraints = [
            # Nobody reviews their own access: NOT (reviewer identity = subject identity).
            models.CheckConstraint(
                condition=Q(reviewer_identity__isnull=True)
                | Q(identity__isnull=True)
                | ~Q(reviewer_identity=F("identity")),
                name="reviews_item_not_self_review",
                violation_error_message="Nobody may review their own access.",
            ),
            models.UniqueConstraint(fields=["campaign", "grant_id"], name="reviews_item_once_per_grant"),
        ]
        indexes = [
            # The reviewer's queue, keyset-paginated by person at any depth.
            models.Index(fields=["reviewer", "campaign", "identity_name", "id"], name="reviews_item_queue"),
            models.Index(fields=["campaign", "status"], name="reviews_item_progress"),
            # A reviewer's counts by campaign and status, from the index alone.
            models.Index(fields=["reviewer", "status", "campaign"], name="reviews_item_reviewer_status"),
            # "New since the last certification" looks up earlier outcomes of the same account/entitlement.
            models.Index(fields=["account_id", "entitlement_id", "status"], name="reviews_item_prior"),
        ]

    def __str__(self) -> str:
        return f"{self.identity_name}: {self.entitlement_name} ({self.account_key})"

    def get_absolute_url(self) -> str:
        return object_path("reviews:item_detail", self.pk)

    @property
    def flags(self) -> list[str]:
        return [flag for flag in self.FLAGS if getattr(self, flag)]

    @property
    def flag_labels(self) -> list[str]:
        return [self.FLAG_LABELS[flag] for flag in self.flags]

    @property
    def comment_flag_labels(self) -> list[str]:
        """The flags that make certifying this item need a comment."""
        return [self.FLAG_LABELS[flag] for flag in self.FLAGS_NEEDING_COMMENT if getattr(self, flag)]

    @property
    def needs_comment(self) -> bool:
        return any(getattr(self, flag) for flag in self.FLAGS_NEEDING_COMMENT)


class ReviewerProgress(models.Model):
    """How many items of a campaign a reviewer holds and how many are pending, kept in the same transaction as
    every launch, decision and delegation, so queues, progress bars and sign-off panels never count a reviewer's
    (possibly hundreds of thousands of) items on each page view."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="progress")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    total = models.PositiveIntegerField(default=0)
    pending = models.PositiveIntegerField(default=0)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["reviewer", "campaign"], name="reviews_progress_once"),
            models.CheckConstraint(
                condition=Q(pending__lte=F("total")), name="reviews_progress_pending_le_total"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.reviewer}: {self.pending} of {self.total} pending in {self.campaign}"


class Decision(models.Model):
    """The append-only log of what reviewers did: certify, revoke, delegate."""

    class Action(models.TextChoices):
        CERTIFY = "certify", "Certified"
        REVOKE = "revoke", "Revoked"
        DELEGATE = "delegate", "Delegated"

    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="decisions")
    action = models.CharField(max_length=16, choices=Action.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField()
    comment = models.TextField(blank=True)
    delegated_to = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # What the reviewer was told when deciding, and how the decision was made (reviews/stamps.py).
    recommendation = models.CharField(max_length=8, choices=Advice.choices, blank=True)
    reasons = models.TextField(blank=True)
    batch = models.PositiveIntegerField(default=1, help_text="How many items this one request decided.")
    seconds_shown = models.PositiveIntegerField(
        null=True, blank=True, help_text="Seconds from the item first shown to its reviewer to this decision."
    )

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.get_action_display()} by {self.actor} at {self.at:%Y-%m-%d %H:%M}"


class SignOff(models.Model):
    """A reviewer's sign-off of their part of a campaign; it locks their decisions."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="sign_offs")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    at = models.DateTimeField()
    items = models.PositiveIntegerField()

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "reviewer"], name="reviews_signoff_once")]

    def __str__(self) -> str:
        return f"{self.reviewer} signed off {self.campaign}"


class Notification(models.Model):
    """An in-app notification (reminders, escalations, delegations); e-mail carries the same text."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications")
    campaign = models.ForeignKey(Campaign, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=32)
    # For escalations: the reviewer the notification is about (one escalation per reviewer and campaign).
    about = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    text = models.CharField(max_length=500)
    url = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField()
    read_at = models.DateTimeField(null=True, blank=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "read_at"], name="reviews_notification_unread")]

    def __str__(self) -> str:
        return self.text


def _proof_path(task, filename: str) -> str:
    return f"remediation/{task.pk or 'new'}/{filename}"


class RemediationTask(models.Model):
    """The work a revocation causes. Closed only when a later pull of the application no longer contains the
    grant (verified), or manually with proof (ticket, note, attachment), marked as manual; cancelled when its
    reviewer withdraws the revocation before sign-off.

    open -> verified | manual | cancelled. An item has at most one task that is not cancelled: revoked again
    after a withdrawal, it gets a new task (the cancelled one stays, as the evidence says it was).
    """

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        VERIFIED = "verified", "Closed: removal verified by a pull"
        MANUAL = "manual", "Closed manually, with proof"
        CANCELLED = "cancelled", "Cancelled: the revocation was withdrawn"

    item = models.ForeignKey(ReviewItem, on_delete=models.PROTECT, related_name="remediation_tasks")
    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="+")
    # Natural keys, so a removal is recognised even if the account was deleted and re-created by a pull.
    account_key = models.CharField(max_length=255)
    entitlement_key = models.CharField(max_length=255)
    identity_name = models.CharField(max_length=200)
    owner = models.ForeignKey(Identity, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    due_on = models.DateField()
    ticket = models.CharField("ticket reference", max_length=100, blank=True)
    notes = models.TextField(blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    closing_run = models.ForeignKey(
        "entitlements.ConnectorRun", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    proof = models.TextField(blank=True)
    attachment = models.FileField(upload_to=_proof_path, blank=True)
    attachment_sha256 = models.CharField(max_length=64, blank=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["due_on", "id"]
        indexes = [models.Index(fields=["status", "application"], name="reviews_remediation_open")]
        constraints = [
            models.UniqueConstraint(
                fields=["item"],
                condition=~Q(status="cancelled"),
                name="reviews_remediationtask_one_live_per_item",
                violation_error_message="A review item has at most one remediation task that is not cancelled.",
            )
        ]

    def __str__(self) -> str:
        return f"Remove {self.entitlement_key} from {self.account_key} ({self.application})"

    def get_absolute_url(self) -> str:
        return reverse("reviews:remediation_detail", args=[self.pk])

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN


class AuditSample(models.Model):
    """A sample an auditor drew to test (reviews/samples.py): which population, how many, with which seed, and what
    was selected. Append-only: a sample is a record of what was drawn, so it is never changed or deleted; its
    ``review.sample.drawn`` event carries the same facts, and re-drawing from them must select the same ids."""

    class Kind(models.TextChoices):
        DECISIONS = "decisions", "A campaign's decisions (certify and revoke)"
        REVOCATIONS = "revocations", "A campaign's revocations"
        REMEDIATION = "remediation", "Remediation tasks (of a campaign, or opened in a period)"
        EXCEPTIONS = "exceptions", "Control exceptions opened in a period"

    BY_CAMPAIGN = (Kind.DECISIONS, Kind.REVOCATIONS)
    BY_PERIOD = (Kind.EXCEPTIONS,)

    kind = models.CharField(max_length=16, choices=Kind.choices)
    campaign = models.ForeignKey(
        Campaign, null=True, blank=True, on_delete=models.PROTECT, related_name="samples"
    )
    since = models.DateField(null=True, blank=True)
    until = models.DateField(null=True, blank=True)
    size_asked = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: the sizing table.")
    size = models.PositiveIntegerField(
        help_text="How many were drawn at random (beside the high-risk stratum)."
    )
    seed = models.CharField(max_length=200)
    stratified = models.BooleanField(default=False)
    population_count = models.PositiveIntegerField()
    population_sha256 = models.CharField(max_length=64)
    selected = models.JSONField(default=list, help_text="The ids selected, in draw order.")
    strata = models.JSONField(default=dict, help_text="The ids taken whole as high-risk.")
    drawn_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    drawn_by_name = models.CharField(max_length=200, help_text="Copied so it outlives the user.")
    drawn_at = models.DateTimeField()

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["-drawn_at", "-id"]
        constraints = [
            # A population is a campaign's or a period's, never both: the kind says which it may be.
            models.CheckConstraint(
                condition=(
                    Q(campaign__isnull=False, since__isnull=True, until__isnull=True) & ~Q(kind="exceptions")
                )
                | (
                    Q(campaign__isnull=True, since__isnull=False, until__isnull=False)
                    & Q(kind__in=["remediation", "exceptions"])
                ),
                name="reviews_auditsample_campaign_or_period",
                violation_error_message="A sample is of a campaign or of a period, as its kind allows.",
            ),
            models.CheckConstraint(
                condition=Q(until__gte=F("since")) | Q(since__isnull=True),
                name="reviews_auditsample_until_after_since",
                violation_error_message="The period must not end before it starts.",
            ),
            models.CheckConstraint(
                condition=Q(size_asked__isnull=True) | Q(size_asked__gte=1),
                name="reviews_auditsample_size_positive",
                violation_error_message="A sample size is at least 1.",
            ),
        ]

    def __str__(self) -> str:
        return f"Sample #{self.pk} of {self.kind} ({len(self.selected)} selected)"

    def save(self, *args, **kwargs):
        from evidence.models import AppendOnlyError

        if not self._state.adding:
            raise AppendOnlyError("an audit sample cannot be changed: draw another")
        kwargs["force_insert"] = True
        super().save(*args, **kwargs)

    def get_absolute_url(self) -> str:
        return reverse("reviews:sample_detail", args=[self.pk])

    def delete(self, *args, **kwargs):
        from evidence.models import AppendOnlyError

        raise AppendOnlyError("an audit sample cannot be deleted")

    @property
    def high_risk(self) -> list[int]:
        return list(self.strata.get("high_risk", []))
