"""Writes that belong to the project as a whole: users, their link to identities, and what follows a change.

``User.save`` calls ``user_save_begin`` / ``user_save_end`` around the row write in one transaction, so these
rules hold on every route (Django admin, ``user_create``, ``changepassword``, a shell): the identity link is
not changed while the user has open work, a change of it is evidenced with old and new identity, and a password
change or a deactivation revokes the user's API tokens. Who did it comes from ``user._soxgov_actor`` where the
caller knows (Django admin sets it), else a system actor naming the route.
"""

from dataclasses import dataclass

from django.apps import apps
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction

from evidence.services import Actor, event_record
from soxgov.models import User, identity_for_email
from soxgov.roles import Role

# Fields whose change the save hooks look at; a save limited to other fields (last_login) skips them.
_WATCHED = frozenset({"password", "is_active", "identity", "email"})


def user_open_work(user) -> list[str]:
    """What ``user`` still has to answer, each as a sentence; empty if nothing.

    Open work is what a changed identity link could turn into deciding one's own case:
    - review items assigned to the user and not yet decided (reviews.ReviewItem, pending): the link decides
      whose access is the reviewer's own;
    - SoD risk acceptances the user requested that nobody has decided yet (sod.RiskAcceptance, requested);
    - control exceptions the user owns that are still open, unanswered (sod.ControlException, open), and those
      where the user's own risk-acceptance request awaits another person's decision.
    Mitigations are not counted: they are owned by an identity, not a user, and answer a violation until they
    expire rather than waiting for anyone.

    The higher apps are looked up through the app registry: soxgov is the lowest layer and imports none of them.
    """
    if user.pk is None:
        return []
    ReviewItem = apps.get_model("reviews", "ReviewItem")
    RiskAcceptance = apps.get_model("sod", "RiskAcceptance")
    ControlException = apps.get_model("sod", "ControlException")
    counts = {
        "undecided review item(s) assigned to them": ReviewItem.objects.filter(
            reviewer=user, status=ReviewItem.Status.PENDING
        ).count(),
        "risk acceptance request(s) of theirs awaiting a decision": RiskAcceptance.objects.filter(
            requested_by=user, status=RiskAcceptance.Status.REQUESTED
        ).count(),
        "open control exception(s) they own": ControlException.objects.filter(
            owner=user, status=ControlException.Status.OPEN
        ).count(),
        "control exception risk acceptance request(s) of theirs awaiting a decision": (
            ControlException.objects.filter(acceptance_requested_by=user)
            .exclude(status=ControlException.Status.CLOSED)
            .count()
        ),
    }
    return [f"{n} {what}" for what, n in counts.items() if n]


def identity_change_refusal(user) -> str | None:
    """Why ``user``'s identity link may not change now, or None if it may."""
    work = user_open_work(user)
    if not work:
        return None
    return (
        f"the identity of user {user.get_username()} cannot change while they have open work: "
        + "; ".join(work)
        + ". Reassign or finish it first."
    )


@dataclass(frozen=True)
class _Before:
    exists: bool
    password: str = ""
    is_active: bool = True
    identity_id: int | None = None
    # check_password() re-hashing a correct password on sign-in (a stronger hasher): the same password.
    rehash: bool = False


def _actor(user, route: str) -> Actor:
    return getattr(user, "_soxgov_actor", None) or Actor.system(route)


def _identity_payload(identity_id):
    if identity_id is None:
        return None
    identity = apps.get_model("entitlements", "Identity").objects.filter(pk=identity_id).first()
    return {"id": identity_id, "name": str(identity) if identity else ""}


def user_save_begin(user: User, *, update_fields=None) -> _Before | None:
    """Before a user row is written: remember the old values, link by e-mail, refuse a forbidden relink."""
    if update_fields is not None and not (_WATCHED & set(update_fields)):
        return None
    row = (
        User.objects.filter(pk=user.pk).values("password", "is_active", "identity_id").first()
        if user.pk
        else None
    )
    rehash = list(update_fields or ()) == ["password"] and getattr(user, "_password", None) is None
    before = _Before(exists=True, rehash=rehash, **row) if row else _Before(exists=False)
    if user.identity_id is None and user.email and (update_fields is None or "identity" in update_fields):
        # Single sign-on linking by another claim (employee id) turns this off. The e-mail auto-link is skipped, not forced, while the user has open work (users_link_identities
        # tries again after the next identity import).
        candidate = None if getattr(user, "_soxgov_no_email_link", False) else identity_for_email(user.email)
        if candidate is not None and not user_open_work(user):
            user.identity = candidate
    if before.exists and user.identity_id != before.identity_id:
        refusal = identity_change_refusal(user)
        if refusal:
            raise ValidationError({"identity": refusal})
    return before


def user_save_end(user: User, before: _Before | None) -> None:
    """After the row is written (same transaction): evidence the link change; revoke tokens where due."""
    if before is None:
        return
    from soxgov.tokens import user_tokens_revoke

    actor = _actor(user, "user.save")
    if user.identity_id != before.identity_id:
        event_record(
            actor=actor,
            action="access.user.identity_changed",
            subject=user,
            payload={
                "user": user.get_username(),
                "old": _identity_payload(before.identity_id),
                "new": _identity_payload(user.identity_id),
            },
        )
    if before.exists and user.password != before.password and not before.rehash:
        by_self = actor.user_id == user.pk
        event_record(
            actor=actor,
            action="access.user.password_changed" if by_self else "access.user.password_reset",
            subject=user,
            # Who changed whose password, never the password or its hash.
            payload={"user": user.get_username(), "by": actor.name},
        )
        user_tokens_revoke(actor=actor, user=user, reason="password changed")
    if before.exists and before.is_active and not user.is_active:
        user_tokens_revoke(actor=actor, user=user, reason="user deactivated")


def user_identity_set(*, actor: Actor, user: User, identity) -> User:
    """Link ``user`` to ``identity``. Refused with ValidationError while they have open work; evidenced as
    ``access.user.identity_changed`` with old and new identity."""
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user.pk)
        user._soxgov_actor = actor
        user.identity = identity
        user.save(update_fields=["identity"])
    return user


def users_link_identities(*, actor: Actor | None = None) -> int:
    """Link every unlinked user whose e-mail matches an identity (after identities arrive). Returns count.

    The link decides what a reviewer sees and lets later work refuse self-review, so each one is evidenced
    (``access.user.identity_changed``); a user with open work is left unlinked (``user_open_work``).
    """
    actor = actor or Actor.system("users_link_identities")
    linked = 0
    with transaction.atomic():
        for user in User.objects.filter(identity__isnull=True).exclude(email=""):
            identity = identity_for_email(user.email)
            if identity is None or user_open_work(user):
                continue
            user_identity_set(actor=actor, user=user, identity=identity)
            linked += 1
    return linked


def user_create(
    *,
    actor: Actor,
    username: str,
    email: str,
    password: str | None,
    roles: list[Role],
    first_name: str = "",
    last_name: str = "",
    identity=None,
    sso_subject: str | None = None,
    source: str | None = None,
) -> User:
    """Create a user with roles; admins are also staff so they reach Django admin for configuration.

    ``password=None`` (single sign-on) leaves the user without a usable password. ``identity`` links the user
    up front (single sign-on's link claim); otherwise the e-mail auto-link of ``user_save_begin`` applies.
    """
    with transaction.atomic():
        user = User(
            username=username,
            email=email,
            first_name=first_name,
            last_name=last_name,
            identity=identity,
            sso_subject=sso_subject,
        )
        user.is_staff = Role.ADMIN in roles
        if password is None:
            user.set_unusable_password()
        else:
            user.set_password(password)
        user._soxgov_actor = actor
        user._soxgov_no_email_link = sso_subject is not None
        user.save()
        user.groups.set(Group.objects.filter(name__in=[r.value for r in roles]))
        payload = {
            "username": username,
            "email": email,
            "roles": sorted(r.value for r in roles),
            "identity_id": user.identity_id,
            "is_active": user.is_active,
            "is_staff": user.is_staff,
            "is_superuser": user.is_superuser,
        }
        if source:
            payload.update(source=source, sso_subject=sso_subject)
        event_record(actor=actor, action="access.user.created", subject=user, payload=payload)
    return user


# What access.user.changed compares, old against new. Never the password: a reset is its own event.
USER_FIELDS = (
    "username",
    "email",
    "first_name",
    "last_name",
    "is_active",
    "is_staff",
    "is_superuser",
    "identity",
    "sso_subject",
)


def user_snapshot(user) -> dict:
    values = {f: _plain_id(getattr(user, f)) for f in USER_FIELDS}
    values["roles"] = sorted(user.groups.values_list("name", flat=True)) if user.pk else []
    return values


def _plain_id(value):
    return value.pk if hasattr(value, "pk") else value


def user_change_record(*, actor: Actor, user: User, before: dict, source: str | None = None) -> dict:
    """Evidence a change of ``user`` as ``access.user.changed`` with each changed field's old and new value
    (``before`` is ``user_snapshot`` taken before the change), whether an admin made it or a sign-in that
    re-synced roles from the identity provider (``source``). Returns the changes; nothing is recorded if none."""
    after = user_snapshot(user)
    changes = {
        field: {"old": before[field], "new": after[field]} for field in after if before[field] != after[field]
    }
    if changes:
        payload = {"changes": changes, **({"source": source} if source else {})}
        event_record(actor=actor, action="access.user.changed", subject=user, payload=payload)
    return changes
