"""People and non-human identities."""

from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower
from django.urls import reverse
from simple_history.models import HistoricalRecords

from soxgov.access import RestrictedQuerySet


class Identity(models.Model):
    """A person or a non-human identity (service account, system, bot, API key).

    Status transitions: active <-> leave; active | leave -> terminated (termination_date required);
    terminated -> active on rehire. A non-human identity must name an owning person: forms and imports
    require it, and a missing or departed owner is surfaced as a control exception, never silently allowed.
    A non-human identity that only one system knows (an AWS role, a GitHub App) may be brought by that source
    connector (``connector``): its pulls, not the identities feed, are then its truth
    (entitlements/imports/identities.py).
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
    connector = models.ForeignKey(
        "entitlements.Connector",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="pulled_identities",
        editable=False,
        help_text="The source connector whose pulls are the truth for this non-human identity (an AWS role, a "
        "GitHub App): absent from its pull, it ends. Empty for identities the identities feed holds.",
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
            models.CheckConstraint(
                condition=~Q(kind="human") | Q(connector__isnull=True),
                name="%(app_label)s_%(class)s_only_non_human_pulled",
                violation_error_message="A person comes from the identities feed, never from one connector.",
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
