"""Writes that belong to the project as a whole: users and their link to identities."""

from django.contrib.auth.models import Group
from django.db import transaction

from evidence.services import Actor, event_record
from soxgov.models import User, identity_for_email
from soxgov.roles import Role


def users_link_identities(*, actor: Actor | None = None) -> int:
    """Link every unlinked user whose e-mail matches an identity (after identities arrive). Returns count.

    The link decides what a reviewer sees and lets later work refuse self-review, so each one is evidenced.
    """
    actor = actor or Actor.system("users_link_identities")
    linked = 0
    with transaction.atomic():
        for user in User.objects.filter(identity__isnull=True).exclude(email=""):
            identity = identity_for_email(user.email)
            if identity is not None:
                User.objects.filter(pk=user.pk).update(identity=identity)
                event_record(
                    actor=actor,
                    action="access.user.linked",
                    subject=user,
                    payload={"identity_id": identity.pk, "identity": str(identity), "email": user.email},
                )
                linked += 1
    return linked


def user_create(
    *,
    actor: Actor,
    username: str,
    email: str,
    password: str,
    roles: list[Role],
    first_name: str = "",
    last_name: str = "",
) -> User:
    """Create a user with roles; admins are also staff so they reach Django admin for configuration."""
    with transaction.atomic():
        user = User(username=username, email=email, first_name=first_name, last_name=last_name)
        user.is_staff = Role.ADMIN in roles
        user.set_password(password)
        user.save()
        user.groups.set(Group.objects.filter(name__in=[r.value for r in roles]))
        event_record(
            actor=actor,
            action="access.user.created",
            subject=user,
            payload={
                "username": username,
                "email": email,
                "roles": sorted(r.value for r in roles),
                "identity_id": user.identity_id,
            },
        )
    return user
