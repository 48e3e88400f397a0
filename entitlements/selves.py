"""Which identities a signed-in user *is*, for the rule that nobody answers, certifies or closes their own case.

A user is the identity linked to them (``User.identity``) and also the identity whose e-mail is the user's own
(case-insensitive). The link alone is not enough: it can be missing (a user created before the identity was
imported) or point at someone else (a changed link), and then the person would review or close their own
access. A ``User`` carries no employee id (Django's user has none and SOXGov adds none: the login name is chosen
freely and is no proof of who someone is), so employee ids are compared through the linked identity, whose
employee id is unique: matching it is matching that identity. Identities' e-mails and employee ids are unique,
so a user is at most two identities.

A person's case is also that of a non-human identity they own (``Identity.owner``): its owner would be judging
their own account.
"""

from __future__ import annotations

from django.core.exceptions import PermissionDenied

from entitlements.models import Identity


def identity_ids_of(user) -> frozenset[int]:
    """The ids of the identities ``user`` is: the linked one and the one with the user's e-mail."""
    if user is None or not getattr(user, "pk", None):
        return frozenset()
    ids = set()
    if getattr(user, "identity_id", None) is not None:
        ids.add(user.identity_id)
    email = (getattr(user, "email", "") or "").strip()
    if email:
        ids.update(Identity.objects.filter(email__iexact=email).values_list("pk", flat=True))
    return frozenset(ids)


def is_own_case(user, identity: Identity | None, *, selves: frozenset[int] | None = None) -> bool:
    """True when ``identity`` is the user, or a non-human identity the user owns."""
    if identity is None:
        return False
    selves = identity_ids_of(user) if selves is None else selves
    return identity.pk in selves or (identity.owner_id is not None and identity.owner_id in selves)


def shared_identity(a, b) -> Identity | None:
    """An identity two different users both are (by link or e-mail): one person with two accounts."""
    if a is None or b is None or a.pk == b.pk:
        return None
    shared = identity_ids_of(a) & identity_ids_of(b)
    return Identity.objects.filter(pk__in=shared).order_by("pk").first() if shared else None


def same_person(a, b) -> bool:
    """True when ``a`` and ``b`` are one user, or two users who are one person: four eyes need two people."""
    if a is None or b is None:
        return False
    return a.pk == b.pk or shared_identity(a, b) is not None


def four_eyes_refusal(first, second, refusal: str) -> str:
    """The refusal when ``first`` and ``second`` are the same person, naming who and why ("" when they are two
    people): "<refusal>: bob-admin and bob are the same person (identity E2)"."""
    if first is None or second is None:
        return ""
    if first.pk == second.pk:
        return refusal
    identity = shared_identity(first, second)
    if identity is None:
        return ""
    return (
        f"{refusal}: {second.get_username()} and {first.get_username()} are the same person "
        f"(identity {identity.natural_key_display})"
    )


def require_known_person(user) -> frozenset[int]:
    """The identities ``user`` is, refusing a user who is none: SOXGov could not tell their own case from
    anyone else's, so they may not answer one (as review routing refuses such reviewers)."""
    selves = identity_ids_of(user)
    if not selves:
        raise PermissionDenied(
            f"{user.get_username()} has no identity linked and their e-mail matches none, so SOXGov cannot keep "
            "their own cases from them: link your user to your identity first."
        )
    return selves
