"""Segregation of duties: rules, the violations the engine finds, and how a violation is answered.

A rule has two or more sides; each side is a set of entitlements that may span applications. An identity
violates a rule when, through any of its accounts, it holds at least one entitlement of every side. An orphan
account (no identity) is checked on its own.
"""

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.urls import reverse
from simple_history.models import HistoricalRecords

from entitlements.models import Account, ConnectorRun, Entitlement, Identity
from soxgov.access import RestrictedQuerySet


class Risk(models.TextChoices):
    CRITICAL = "critical", "Critical"
    HIGH = "high", "High"
    MEDIUM = "medium", "Medium"
    LOW = "low", "Low"


# Most severe first, for sorting and for the violations list.
RISK_ORDER = {Risk.CRITICAL: 0, Risk.HIGH: 1, Risk.MEDIUM: 2, Risk.LOW: 3}


class Rule(models.Model):
    code = models.CharField(
        "rule id", max_length=64, unique=True, help_text="A stable key, e.g. from the company's ruleset."
    )
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    risk = models.CharField(max_length=16, choices=Risk.choices, default=Risk.HIGH)
    process = models.CharField(
        "business process", max_length=100, blank=True, help_text="e.g. Procure to pay, Record to report."
    )
    enabled = models.BooleanField(default=True)
    # Denormalised from the sides so the engine's HAVING clause needs no second aggregate.
    side_count = models.PositiveSmallIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()
    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["code", "id"]
        verbose_name = "SoD rule"

    def __str__(self) -> str:
        return f"{self.code}: {self.name}"

    def get_absolute_url(self) -> str:
        return reverse("sod:rule_detail", args=[self.pk])


class RuleSide(models.Model):
    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="sides")
    name = models.CharField(max_length=100)
    position = models.PositiveSmallIntegerField(default=0)
    entitlements = models.ManyToManyField(Entitlement, through="RuleMember", related_name="sod_sides")

    class Meta:
        ordering = ["rule_id", "position", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "name"],
                name="sod_side_unique_name",
                violation_error_message="This rule already has a side with this name.",
            )
        ]

    def __str__(self) -> str:
        return self.name


class RuleMember(models.Model):
    """One entitlement on one side of a rule. ``rule`` is repeated from the side so the engine joins once."""

    rule = models.ForeignKey(Rule, on_delete=models.CASCADE, related_name="members", db_index=False)
    side = models.ForeignKey(RuleSide, on_delete=models.CASCADE, related_name="members")
    # CASCADE: an entitlement only disappears when an admin deletes it, and rule changes are evidenced then.
    entitlement = models.ForeignKey(Entitlement, on_delete=models.CASCADE, related_name="sod_members")

    class Meta:
        constraints = [
            # An entitlement on two sides would make one grant a conflict with itself.
            models.UniqueConstraint(
                fields=["rule", "entitlement"],
                name="sod_member_unique_per_rule",
                violation_error_message="An entitlement may be on only one side of a rule.",
            )
        ]
        indexes = [models.Index(fields=["entitlement", "rule", "side"], name="sod_member_ent_rule_side")]

    def __str__(self) -> str:
        return f"{self.entitlement} on {self.side}"


class Violation(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", "Open"
        MITIGATED = "mitigated", "Mitigated"
        ACCEPTED = "accepted", "Risk accepted"
        RESOLVED = "resolved", "Resolved"

    ACTIVE = (Status.OPEN, Status.MITIGATED, Status.ACCEPTED)

    rule = models.ForeignKey(Rule, on_delete=models.PROTECT, related_name="violations")
    identity = models.ForeignKey(
        Identity, null=True, blank=True, on_delete=models.PROTECT, related_name="sod_violations"
    )
    # Orphan accounts are checked on their own. No database constraint: a pull deletes accounts set-based,
    # and a violation (resolved or live) must neither block that nor lose which account it was about. The
    # next check resolves a live violation whose account is gone; ``holder`` keeps what it was.
    account = models.ForeignKey(
        Account,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="sod_violations",
    )
    holder = models.CharField(max_length=300, help_text="Who holds the conflict, as shown when it was found.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    opened_at = models.DateTimeField()
    status_changed_at = models.DateTimeField()
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=300, blank=True)
    opened_by_check = models.ForeignKey(
        "Check", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    resolved_by_check = models.ForeignKey(
        "Check", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    history = HistoricalRecords()
    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["-opened_at", "-id"]
        verbose_name = "SoD violation"
        constraints = [
            models.CheckConstraint(
                condition=Q(identity__isnull=True) | Q(account__isnull=True),
                name="sod_violation_one_holder",
                violation_error_message="A violation belongs to an identity or to an orphan account.",
            ),
            # At most one live violation per rule and holder; resolved ones are history.
            models.UniqueConstraint(
                fields=["rule", "identity"],
                condition=Q(identity__isnull=False) & ~Q(status="resolved"),
                name="sod_violation_live_identity",
            ),
            models.UniqueConstraint(
                fields=["rule", "account"],
                condition=Q(account__isnull=False) & ~Q(status="resolved"),
                name="sod_violation_live_account",
            ),
        ]
        indexes = [
            models.Index(fields=["identity", "status"], name="sod_violation_identity"),
            models.Index(fields=["account", "status"], name="sod_violation_account"),
            models.Index(fields=["status", "opened_at"], name="sod_violation_status_age"),
        ]

    def __str__(self) -> str:
        return f"{self.rule.code} · {self.holder}"

    def get_absolute_url(self) -> str:
        return reverse("sod:violation_detail", args=[self.pk])

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE


class Frequency(models.TextChoices):
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"
    MONTHLY = "monthly", "Monthly"
    QUARTERLY = "quarterly", "Quarterly"
    ANNUALLY = "annually", "Annually"


class Mitigation(models.Model):
    """A compensating control that answers a violation until it expires."""

    violation = models.ForeignKey(Violation, on_delete=models.PROTECT, related_name="mitigations")
    control = models.CharField("compensating control", max_length=200)
    description = models.TextField()
    owner = models.ForeignKey(Identity, on_delete=models.PROTECT, related_name="owned_mitigations")
    frequency = models.CharField(max_length=16, choices=Frequency.choices)
    expires_on = models.DateField()
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    end_reason = models.CharField(max_length=200, blank=True)

    history = HistoricalRecords()
    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["-recorded_at", "-id"]

    def __str__(self) -> str:
        return f"{self.control} (until {self.expires_on})"


class RiskAcceptance(models.Model):
    """A request to accept a violation's risk until a date; it takes effect only once another person approves."""

    class Status(models.TextChoices):
        REQUESTED = "requested", "Requested"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        EXPIRED = "expired", "Expired"
        ENDED = "ended", "Ended"

    violation = models.ForeignKey(Violation, on_delete=models.PROTECT, related_name="acceptances")
    justification = models.TextField()
    expires_on = models.DateField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.REQUESTED)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    requested_at = models.DateTimeField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)

    history = HistoricalRecords()
    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            # Four eyes, enforced by the database as well as the service.
            models.CheckConstraint(
                condition=Q(decided_by__isnull=True) | ~Q(decided_by=F("requested_by")),
                name="sod_acceptance_four_eyes",
                violation_error_message="The approver must not be the requester.",
            ),
            models.UniqueConstraint(
                fields=["violation"],
                condition=Q(status="requested"),
                name="sod_acceptance_one_pending",
                violation_error_message="This violation already has a pending risk acceptance.",
            ),
        ]

    def __str__(self) -> str:
        return f"Risk acceptance until {self.expires_on} ({self.get_status_display()})"


class Check(models.Model):
    """One run of the engine: what triggered it, what it looked at and what it changed."""

    class Trigger(models.TextChoices):
        IMPORT = "import", "Connector run applied"
        RULE_CHANGE = "rule_change", "Rule changed"
        MANUAL = "manual", "On demand"
        SCHEDULE = "schedule", "Schedule"

    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    full = models.BooleanField(default=False, help_text="Every identity and orphan account was checked.")
    connector_run = models.ForeignKey(
        ConnectorRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="sod_checks"
    )
    rule = models.ForeignKey(Rule, null=True, blank=True, on_delete=models.SET_NULL, related_name="checks")
    actor_name = models.CharField(max_length=200)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    identities_checked = models.PositiveIntegerField(default=0)
    accounts_checked = models.PositiveIntegerField(default=0)
    opened = models.PositiveIntegerField(default=0)
    resolved = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        verbose_name = "SoD check"

    def __str__(self) -> str:
        return f"SoD check #{self.pk} ({self.get_trigger_display()})"


class ControlException(models.Model):
    """One control failure a control owner must close: SoD violations, revocations past due, orphan accounts,
    terminated people with enabled accounts, non-human identities without an active owner, dormant accounts,
    overdue reviews. Opened and closed by the hygiene checks (sod/hygiene.py) as conditions appear and go;
    "revoked access returned" is opened by the pull that brings a verified revocation's grant back
    (reviews/remediation.py) and closed by the hygiene checks once the grant is gone again; a rubber-stamp
    finding is opened by reviews/stamps.py and stays open until a control owner closes it."""

    class Kind(models.TextChoices):
        SOD_VIOLATION = "sod_violation", "SoD violation"
        REVOCATION_OVERDUE = "revocation_overdue", "Revocation past due"
        ORPHAN_ACCOUNT = "orphan_account", "Orphan account"
        TERMINATED_ACCESS = "terminated_access", "Terminated person with an enabled account"
        NHI_WITHOUT_OWNER = "nhi_without_owner", "Non-human identity without an active owner"
        DORMANT_ACCOUNT = "dormant_account", "Account unused beyond the dormancy period"
        REVIEW_OVERDUE = "review_overdue", "Review overdue"
        REVOKED_ACCESS_RETURNED = "revoked_access_returned", "Revoked access returned"
        REVIEW_RUBBER_STAMP = "review_rubber_stamp", "Review decided without evident scrutiny"

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        MITIGATED = "mitigated", "Mitigated"
        ACCEPTED = "accepted", "Risk accepted"
        CLOSED = "closed", "Closed"

    LIVE = (Status.OPEN, Status.MITIGATED, Status.ACCEPTED)

    kind = models.CharField(max_length=24, choices=Kind.choices)
    severity = models.CharField(max_length=16, choices=Risk.choices)
    # What the condition is about, e.g. "orphan_account:123": one live exception per key.
    key = models.CharField(max_length=120)
    title = models.CharField(max_length=300)
    detail = models.JSONField(default=dict, blank=True)
    identity = models.ForeignKey(Identity, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    application = models.ForeignKey(
        "entitlements.Application", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    violation = models.ForeignKey(
        Violation, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    due_on = models.DateField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    opened_at = models.DateTimeField()
    answered_until = models.DateField(
        null=True, blank=True, help_text="A mitigation or risk acceptance holds until this date."
    )
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    close_reason = models.CharField(max_length=300, blank=True)
    proof = models.TextField(blank=True)
    # A pending risk acceptance (four eyes: another person approves).
    acceptance_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    acceptance_justification = models.TextField(blank=True)
    acceptance_until = models.DateField(null=True, blank=True)

    history = HistoricalRecords()
    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["due_on", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["key"], condition=~Q(status="closed"), name="sod_exception_one_live_per_key"
            ),
        ]
        indexes = [
            models.Index(fields=["status", "kind"], name="sod_exception_queue"),
            models.Index(fields=["kind", "status", "opened_at"], name="sod_exception_age"),
        ]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("sod:exception_detail", args=[self.pk])

    @property
    def is_live(self) -> bool:
        return self.status in self.LIVE


class ExceptionNote(models.Model):
    """The exception's log: assignments, comments, remediation notes, answers and closure, in order."""

    exception = models.ForeignKey(ControlException, on_delete=models.CASCADE, related_name="notes")
    action = models.CharField(max_length=24)
    actor_name = models.CharField(max_length=200)
    at = models.DateTimeField()
    text = models.TextField(blank=True)

    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_name}"

    @property
    def label(self) -> str:
        return self.action.replace("_", " ")
