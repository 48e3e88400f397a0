"""Who a single sign-on (OIDC or SAML) signs in as, and what the identity provider's word changes in SOXGov.

Both protocols end here with a ``Person``, the provider's verified statement about someone:

- The user is found by the provider's issuer and subject (``User.sso_subject``), never by a name or e-mail the
  provider may hand to someone else later. A user who has none yet is adopted once by e-mail (a local account
  from before SSO), unless that account is a break-glass one, which stays local.
- Roles follow the provider's groups (the role map) at every sign-in, evidenced like an admin's change of the user
  (``access.user.changed``, source ``sign-in``); no mapped group leaves no role and no access.
- The identity link follows the configured attribute (e-mail or employee id) matched to an Identity, under the same
  open-work rule as every other relink (``identity_change_refusal``). An attribute that matches no identity leaves
  the link as it was: unlinking would only weaken the self-review checks.
"""

from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction

from evidence.services import Actor
from soxgov.models import User
from soxgov.roles import Role
from soxgov.services import identity_change_refusal, user_change_record, user_create, user_snapshot

SOURCE = "sign-in"


class SignInRefused(Exception):
    """A sign-in that reached SOXGov but is not let in. ``no_access``: the person is known to the provider but
    holds no SOXGov role; the page says so and nothing else."""

    def __init__(self, message: str, *, no_access: bool = False, username: str = "", user=None):
        super().__init__(message)
        self.no_access, self.username, self.user = no_access, username, user


@dataclass(frozen=True)
class Person:
    subject: str  # "<issuer>#<subject>": unique across providers
    username: str
    groups: tuple[str, ...]
    email: str = ""
    email_verified: bool = True
    first_name: str = ""
    last_name: str = ""
    employee_id: str = ""


def groups_of(value) -> tuple[str, ...]:
    """A group claim or attribute as a tuple of names; anything else (a number, an object) counts as none."""
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(group for group in value if isinstance(group, str))
    return ()


def mapped_roles(groups, role_map: dict[str, frozenset[str]]) -> list[Role]:
    names = {role for group in groups for role in role_map.get(group, ())}
    return [role for role in Role if role.value in names]


def linked_identity(person: Person):
    """The Identity the configured link attribute names, or None."""
    from entitlements.models import Identity

    if settings.SOXGOV_OIDC_LINK_CLAIM == "employee_id":
        lookup = {"employee_id": person.employee_id.strip()} if person.employee_id.strip() else None
    else:
        lookup = {"email__iexact": person.email.strip()} if person.email.strip() else None
    return Identity.objects.filter(**lookup).first() if lookup else None


def _existing_user(person: Person):
    user = User.objects.filter(sso_subject=person.subject).first()
    if user is not None or not person.email or not person.email_verified:
        return user
    matches = list(User.objects.filter(email__iexact=person.email, sso_subject__isnull=True)[:2])
    if len(matches) == 1 and matches[0].get_username() not in settings.SOXGOV_BREAK_GLASS_USERS:
        return matches[0]
    return None


def sso_sign_in(person: Person, *, roles: list[Role], actor: Actor) -> User:
    """The user ``person`` signs in as, created or brought in line with the provider: roles, identity link,
    e-mail. Raises SignInRefused (after committing the role change) when no group maps to a role, when a new user
    would be needed but creation is off, or when the user is deactivated."""
    username = person.username[:150]
    with transaction.atomic():
        user = _existing_user(person)
        if user is None:
            return _user_create(person, username=username, roles=roles, actor=actor)
        user = User.objects.select_for_update().get(pk=user.pk)
        _user_sync(actor=actor, user=user, person=person, roles=roles)
    if not user.is_active:
        raise SignInRefused(
            f"the SOXGov user {user.get_username()} is deactivated", user=user, username=username
        )
    if not roles:
        raise SignInRefused(
            f"{user.get_username()} no longer holds a group that gives a SOXGov role",
            no_access=True,
            user=user,
            username=username,
        )
    return user


def _user_create(person: Person, *, username: str, roles: list[Role], actor: Actor) -> User:
    if not roles:
        raise SignInRefused(
            f"{username} holds no group that gives a SOXGov role", no_access=True, username=username
        )
    if not settings.SOXGOV_OIDC_CREATE_USERS:
        raise SignInRefused(
            f"{username} has no SOXGov user and SOXGOV_OIDC_CREATE_USERS is off: an admin creates it first",
            no_access=True,
            username=username,
        )
    if User.objects.filter(username=username).exists():
        raise SignInRefused(
            f"a SOXGov user named {username} already exists for someone else: an admin renames one of them",
            username=username,
        )
    return user_create(
        actor=actor,
        username=username,
        email=person.email,
        password=None,
        roles=roles,
        first_name=person.first_name[:150],
        last_name=person.last_name[:150],
        identity=linked_identity(person),
        sso_subject=person.subject,
        source=SOURCE,
    )


def _user_sync(*, actor: Actor, user: User, person: Person, roles: list[Role]) -> None:
    before = user_snapshot(user)
    user._soxgov_actor = actor
    user.sso_subject = person.subject
    user.email = person.email or user.email
    user.is_staff = Role.ADMIN in roles or user.is_superuser
    identity = linked_identity(person)
    if identity is not None and identity.pk != user.identity_id and not identity_change_refusal(user):
        user.identity = identity
    # The e-mail auto-link only while the link attribute is the e-mail itself.
    user._soxgov_no_email_link = settings.SOXGOV_OIDC_LINK_CLAIM != "email"
    try:
        user.save()
    except ValidationError as exc:  # a relink raced with new open work: keep the old link
        raise SignInRefused(
            f"the identity link of {user.get_username()} could not change: {exc}", user=user
        ) from None
    user.groups.set(Group.objects.filter(name__in=[r.value for r in roles]))
    user._soxgov_roles = None
    user_change_record(actor=actor, user=user, before=before, source=SOURCE)
