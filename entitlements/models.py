"""Who has access to what: identities, applications, accounts, entitlements and grants.

Every model keeps django-simple-history so that "who held entitlement E on date D" and "what did identity I
hold on date D" can be answered. Fields that change on every pull (``last_seen``, ``last_used_at``) are kept
out of history: they would add a history row per grant per pull without telling an auditor anything.
"""

from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.urls import reverse
from simple_history.models import HistoricalRecords

from soxgov.access import RestrictedQuerySet

NOISY_FIELDS = ["last_seen", "last_used_at"]


class Identity(models.Model):
    """A person or a non-human identity (service account, system, bot, API key).

    Status transitions: active <-> leave; active | leave -> terminated (termination_date required);
    terminated -> active on rehire. A non-human identity must name an owning person: forms and imports
    require it, and a missing or departed owner is surfaced as a control exception, never silently allowed.
    """

    class Kind(models.TextChoices):
        HUMAN = "human", "Person"
        SERVICE = "service", "Service account"
        SYSTEM = "system", "System"
        BOT = "bot", "Bot"
        API_KEY = "api_key", "API key"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        LEAVE = "leave", "On leave"
        TERMINATED = "terminated", "Terminated"

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.HUMAN)
    employee_id = models.CharField(max_length=64, null=True, blank=True)
    email = models.EmailField(max_length=254, null=True, blank=True)
    display_name = models.CharField(max_length=200)
    department = models.CharField(max_length=120, blank=True)
    title = models.CharField(max_length=120, blank=True)
    manager = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="reports"
    )
    owner = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_identities",
        help_text="The person accountable for a non-human identity.",
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    termination_date = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    history = HistoricalRecords()
    objects = RestrictedQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "identities"
        ordering = ["display_name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["employee_id"],
                name="%(app_label)s_%(class)s_unique_employee_id",
                violation_error_message="Another identity already has this employee id.",
            ),
            models.UniqueConstraint(
                Lower("email"),
                name="%(app_label)s_%(class)s_unique_email",
                violation_error_message="Another identity already has this e-mail address.",
            ),
            models.CheckConstraint(
                condition=Q(employee_id__isnull=False) | Q(email__isnull=False),
                name="%(app_label)s_%(class)s_has_natural_key",
                violation_error_message="An identity needs an employee id or an e-mail address.",
            ),
            models.CheckConstraint(
                condition=~Q(status="terminated") | Q(termination_date__isnull=False),
                name="%(app_label)s_%(class)s_terminated_has_date",
                violation_error_message="A terminated identity needs a termination date.",
            ),
            models.CheckConstraint(
                condition=~Q(kind="human") | Q(owner__isnull=True),
                name="%(app_label)s_%(class)s_only_non_human_owned",
                violation_error_message="Only non-human identities have an owner.",
            ),
        ]
        indexes = [
            # Keyset pagination of the identity list: ORDER BY display_name, id.
            models.Index(fields=["display_name", "id"], name="entitlements_identity_name_id"),
            models.Index(fields=["department"], name="entitlements_identity_dept"),
        ]

    def __str__(self) -> str:
        return self.display_name

    def get_absolute_url(self) -> str:
        return reverse("entitlements:identity_detail", args=[self.pk])

    @property
    def is_human(self) -> bool:
        return self.kind == self.Kind.HUMAN

    @property
    def natural_key_display(self) -> str:
        return self.employee_id or self.email or f"#{self.pk}"

    def clean(self):
        from django.core.exceptions import ValidationError

        if not self.is_human and self.owner_id is None:
            raise ValidationError({"owner": "A non-human identity must have an owning person."})
        if self.owner_id is not None and self.owner_id == self.pk:
            raise ValidationError({"owner": "An identity cannot own itself."})
        if self.owner is not None and not self.owner.is_human:
            raise ValidationError({"owner": "The owner must be a person."})
        if self.manager_id is not None and self.manager_id == self.pk:
            raise ValidationError({"manager": "An identity cannot be its own manager."})


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

    history = HistoricalRecords(m2m_fields=[financial_processes])
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

    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="accounts")
    account_id = models.CharField("account id", max_length=255, help_text="The application's own key.")
    name = models.CharField(max_length=255, blank=True)
    identity = models.ForeignKey(
        Identity, null=True, blank=True, on_delete=models.SET_NULL, related_name="accounts"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ENABLED)
    privileged = models.BooleanField(default=False)
    last_used_at = models.DateTimeField(null=True, blank=True)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()

    history = HistoricalRecords(excluded_fields=NOISY_FIELDS)
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
                fields=["application"], condition=Q(identity__isnull=True), name="entitlements_account_orphans"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} @ {self.application}" if self.application_id else self.account_id

    def get_absolute_url(self) -> str:
        return reverse("entitlements:account_detail", args=[self.pk])

    @property
    def is_orphan(self) -> bool:
        return self.identity_id is None


class Entitlement(models.Model):
    """A role, group or permission inside one application."""

    class Kind(models.TextChoices):
        ROLE = "role", "Role"
        GROUP = "group", "Group"
        PERMISSION = "permission", "Permission"

    application = models.ForeignKey(Application, on_delete=models.PROTECT, related_name="entitlements")
    entitlement_id = models.CharField("entitlement id", max_length=255, help_text="The application's own key.")
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.ROLE)
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        Identity, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_entitlements"
    )
    privileged = models.BooleanField(default=False)
    sensitive = models.BooleanField(default=False, help_text="Touches financial data or SOX-relevant functions.")
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

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="grants")
    entitlement = models.ForeignKey(Entitlement, on_delete=models.CASCADE, related_name="grants")
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()

    history = HistoricalRecords(excluded_fields=["last_seen"])
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

    def clean(self):
        from django.core.exceptions import ValidationError

        if self.account_id and self.entitlement_id and self.account.application_id != self.entitlement.application_id:
            raise ValidationError("The account and the entitlement must belong to the same application.")
