from django.contrib.auth.models import AbstractUser
from django.db import models


class User(AbstractUser):
    """A person who signs in. Linked to their Identity by e-mail so that self-review can be refused."""

    identity = models.ForeignKey(
        "entitlements.Identity",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="users",
        help_text="The identity this user is, matched by e-mail; set automatically.",
    )

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"

    def save(self, *args, **kwargs):
        if self.identity_id is None and self.email:
            self.identity = identity_for_email(self.email)
        super().save(*args, **kwargs)

    @property
    def display_name(self) -> str:
        return self.get_full_name() or self.username


def identity_for_email(email: str):
    from entitlements.models import Identity

    return Identity.objects.filter(email__iexact=email.strip()).first()
