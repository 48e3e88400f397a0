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


class Heartbeat(models.Model):
    """When a Celery worker last ran the ``soxgov.heartbeat`` task that beat sends every SOXGOV_HEARTBEAT_SECONDS:
    the readiness endpoint's proof that some worker consumes the queue (soxgov/health.py). One row per source,
    overwritten; operational state, not evidence."""

    source = models.CharField(max_length=40, unique=True)
    at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.source} at {self.at:%Y-%m-%d %H:%M:%S}"
