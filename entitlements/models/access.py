"""Applications, accounts, entitlements and grants."""

from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.urls import reverse
from simple_history.models import HistoricalRecords

from entitlements.models.identities import Identity
from soxgov.access import RestrictedQuerySet

# Fields that change on every pull stay out of history: a history row per account per pull would drown the
# real changes.
# (Neither tells an auditor who had access to what; the run that moved them is evidenced anyway.)


class FinancialProcess(models.Model):
    """A financial process an application touches (journal entries, payables, payroll ...)."""

    code = models.SlugField(max_length=40, unique=True)
    name = models.CharField(max_length=100)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "financial processes"

    def __str__(self) -> str:
        return self.name


class Application(models.Model):
    """A system whose access matters. Top-down SOX scoping starts here."""

    class Criticality(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"
        CRITICAL = "critical", "Critical"

    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    sox_in_scope = models.BooleanField("SOX in scope", default=False)
    criticality = models.CharField(max_length=16, choices=Criticality.choices, default=Criticality.MEDIUM)
    financial_processes = models.ManyToManyField(FinancialProcess, blank=True, related_name="applications")
    owner = models.ForeignKey(
        Identity, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_applications"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    last_pulled_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When an applied connector run last confirmed its access.",
    )

    history = HistoricalRecords(m2m_fields=[financial_processes], excluded_fields=["last_pulled_at"])
    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                name="%(app_label)s_%(class)s_unique_name",
                violation_error_message="An application with this name already exists.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("entitlements:application_detail", args=[self.pk])


class Account(models.Model):
    """An identity's login in one application, or an orphan account that matches no identity."""

    class Status(models.TextChoices):
        ENABLED = "enabled", "Enabled"
        DISABLED = "disabled", "Disabled"

    # No index of its own: the unique (application, account_id) index serves lookups by application.
    application = models.ForeignKey(
        Application, on_delete=models.PROTECT, related_name="accounts", db_index=False
    )
    account_id = models.CharField("account id", max_length=255, help_text="The application's own key.")
    name = models.CharField(max_length=255, blank=True)
    identity = models.ForeignKey(
        Identity, null=True, blank=True, on_delete=models.SET_NULL, related_name="accounts"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ENABLED)
    privileged = models.BooleanField(default=False)
    last_used_at = models.DateTimeField(null=True, blank=True)
    first_seen = models.DateTimeField()
    # What the last pull said about this account, hashed (entitlements/imports/incremental.py): a later pull
    # whose rows hash the same need not re-read them. Bookkeeping, not access, so it stays out of history.
    pull_digest = models.CharField(max_length=64, null=True, blank=True, editable=False)

    history = HistoricalRecords(excluded_fields=["last_used_at", "pull_digest"])
    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["application_id", "account_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["application", "account_id"],
                name="%(app_label)s_%(class)s_unique_per_application",
                violation_error_message="This application already has an account with this id.",
            ),
        ]
        indexes = [
            models.Index(fields=["account_id", "id"], name="entitlements_account_key_id"),
            # The orphan-account queue: WHERE identity_id IS NULL.
            models.Index(
                fields=["application"],
                condition=Q(identity__isnull=True),
                name="entitlements_account_orphans",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} @ {self.application}" if self.application_id else self.account_id

    def get_absolute_url(self) -> str:
        return reverse("entitlements:account_detail", args=[self.pk])

    @property
    def last_seen(self):
        """A pull is the full truth for its application, so every account still here was in the last pull."""
        return self.application.last_pulled_at or self.first_seen

    @property
    def is_orphan(self) -> bool:
        return self.identity_id is None


class Entitlement(models.Model):
    """A role, group or permission inside one application."""

    class Kind(models.TextChoices):
        ROLE = "role", "Role"
        GROUP = "group", "Group"
        PERMISSION = "permission", "Permission"

    # No index of its own: the unique (application, entitlement_id) index serves lookups by application.
    application = models.ForeignKey(
        Application, on_delete=models.PROTECT, related_name="entitlements", db_index=False
    )
    entitlement_id = models.CharField(
        "entitlement id", max_length=255, help_text="The application's own key."
    )
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.ROLE)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        Identity, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_entitlements"
    )
    privileged = models.BooleanField(default=False)
    sensitive = models.BooleanField(
        default=False, help_text="Touches financial data or SOX-relevant functions."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()
    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["application_id", "name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["application", "entitlement_id"],
                name="%(app_label)s_%(class)s_unique_per_application",
                violation_error_message="This application already has an entitlement with this id.",
            ),
        ]
        indexes = [models.Index(fields=["name", "id"], name="entitlements_ent_name_id")]

    def __str__(self) -> str:
        return f"{self.name} ({self.application})" if self.application_id else self.name

    def get_absolute_url(self) -> str:
        return reverse("entitlements:entitlement_detail", args=[self.pk])


class Grant(models.Model):
    """One account holding one entitlement: the unit that is reviewed, checked for SoD and evidenced.

    The account and the entitlement belong to the same application; services enforce it because a
    cross-table check is not expressible as a portable database constraint.
    """

    # No single-column indexes: (account, entitlement) and (entitlement, account) serve both lookups, and each
    # extra index is paid on every one of millions of inserted grants.
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="grants", db_index=False)
    entitlement = models.ForeignKey(
        Entitlement, on_delete=models.CASCADE, related_name="grants", db_index=False
    )
    first_seen = models.DateTimeField()

    history = HistoricalRecords()
    objects = RestrictedQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "entitlement"],
                name="%(app_label)s_%(class)s_unique_account_entitlement",
                violation_error_message="This account already holds this entitlement.",
            ),
        ]
        indexes = [models.Index(fields=["entitlement", "account"], name="entitlements_grant_ent_acct")]

    def __str__(self) -> str:
        return f"{self.account_id} holds {self.entitlement_id}"

    @property
    def last_seen(self):
        """Every grant still here was in its application's last pull (which is the full truth for it).

        Derived rather than stored: writing a timestamp to every grant on every pull would rewrite millions of
        rows to say nothing new.
        """
        return self.account.application.last_pulled_at or self.first_seen

    def clean(self):
        from django.core.exceptions import ValidationError

        if (
            self.account_id
            and self.entitlement_id
            and self.account.application_id != self.entitlement.application_id
        ):
            raise ValidationError("The account and the entitlement must belong to the same application.")
