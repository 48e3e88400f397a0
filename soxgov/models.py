from django.contrib.auth.models import AbstractUser
from django.db import models, transaction
from knox.models import AbstractAuthToken


class User(AbstractUser):
    """A person who signs in. Linked to their Identity by e-mail so that self-review can be refused.

    Every save goes through soxgov.services (``user_save_begin`` / ``user_save_end``) in one transaction: a
    change of the identity link is refused while the user has open work and is evidenced, and a password change
    or a deactivation revokes the user's API tokens, whichever route (Django admin, a form, a command) saved it.
    """

    identity = models.ForeignKey(
        "entitlements.Identity",
        null=True,
        blank=True,
        # SET_NULL would unlink the user in SQL, past User.save's open-work guard and its evidence; unlink with
        # soxgov.services.user_identity_set first.
        on_delete=models.PROTECT,
        related_name="users",
        help_text="The identity this user is, matched by e-mail; set automatically.",
    )

    sso_subject = models.CharField(
        max_length=400,
        null=True,
        blank=True,
        unique=True,
        editable=False,
        help_text="The identity provider's issuer and subject (sub) that signs in as this user; set by single "
        "sign-on, which matches users by it rather than by a name or e-mail the provider may reuse.",
    )

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"

    def save(self, *args, **kwargs):
        from soxgov.services import user_save_begin, user_save_end

        with transaction.atomic():
            before = user_save_begin(self, update_fields=kwargs.get("update_fields"))
            super().save(*args, **kwargs)
            user_save_end(self, before)

    @property
    def display_name(self) -> str:
        return self.get_full_name() or self.username


def identity_for_email(email: str):
    from entitlements.models import Identity

    return Identity.objects.filter(email__iexact=email.strip()).first()


class ApiToken(AbstractAuthToken):
    """An API token (django-rest-knox): only a SHA-512 digest of the secret is stored, so nobody, an admin
    included, can read a token back after it was handed out once.

    The primary key is a plain integer, unlike knox's own model whose key is the digest: admin URLs, action
    checkboxes and evidence name a token by its id and the first characters of its secret (``prefix``),
    never by the digest. Revoking a token deletes the row (``soxgov.tokens.tokens_revoke`` evidences it); an
    expired token is refused but kept until revoked, so the admin list shows it.
    """

    PREFIX_LENGTH = 8

    id = models.BigAutoField(primary_key=True)
    digest = models.CharField(max_length=128, unique=True)

    class Meta:
        verbose_name = "API token"
        ordering = ["-created", "-id"]

    def __str__(self) -> str:
        return f"{self.prefix}… of {self.user}"

    @property
    def prefix(self) -> str:
        return self.token_key[: self.PREFIX_LENGTH]


class Job(models.Model):
    """Work to be done by a Celery worker, recorded in the same transaction as what it belongs to.

    This table is the outbox: a run, pack or verification and its job commit together, and the message to the
    broker is only a wake-up call sent after the commit (and again by the reaper while it is unsent, or sent
    long ago and still not started, e.g. after a Redis restart without persistence). A job holds a lease while
    it runs (soxgov.leases); a running job whose lease is free lost its worker and is run again, or given up
    after ``max_attempts`` (``None``: retried until done). soxgov/jobs.py has the life cycle.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    OPEN = (Status.PENDING, Status.RUNNING)

    task = models.CharField(
        max_length=100, help_text="The registered job name, e.g. entitlements.execute_run."
    )
    args = models.JSONField(default=list, blank=True)
    origin_type = models.CharField(
        max_length=100, blank=True, help_text="What the job belongs to (app.model)."
    )
    origin_id = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=9, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0, help_text="How many times a worker started it.")
    max_attempts = models.PositiveIntegerField(null=True, blank=True, help_text="Empty: retried until done.")
    sends = models.PositiveIntegerField(default=0, help_text="How many times it was sent to the broker.")
    sent_at = models.DateTimeField(null=True, blank=True)
    not_before = models.DateTimeField(null=True, blank=True, help_text="A retry waits until then.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["pk"]
        indexes = [
            models.Index(fields=["origin_type", "origin_id"], name="soxgov_job_origin"),
            # The reaper's scan: only open jobs, a handful among many done ones.
            models.Index(
                fields=["status"],
                condition=models.Q(status__in=["pending", "running"]),
                name="soxgov_job_open",
            ),
        ]

    def __str__(self) -> str:
        return f"job #{self.pk} {self.task} ({self.status})"

    @property
    def label(self) -> str:
        from soxgov.jobs import label

        return label(self.task)


class Heartbeat(models.Model):
    """When a Celery worker last ran the ``soxgov.heartbeat`` task that beat sends every SOXGOV_HEARTBEAT_SECONDS:
    the readiness endpoint's proof that some worker consumes the queue (soxgov/health.py). One row per source,
    overwritten; operational state, not evidence."""

    source = models.CharField(max_length=40, unique=True)
    at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.source} at {self.at:%Y-%m-%d %H:%M:%S}"
