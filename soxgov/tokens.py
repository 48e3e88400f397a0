"""API tokens: issued once, stored as a digest, revoked with evidence.

A token is shown to its owner exactly once, when it is created (the token endpoint or ``token_create``); only
knox's SHA-512 digest is kept, so no page, API or admin can hand out another person's token. Creation and
revocation write ``access.token.created`` / ``access.token.revoked`` in the same transaction.
"""

import datetime as dt

from django.conf import settings
from django.db import transaction

from evidence.services import Actor, event_record
from soxgov.models import ApiToken


def token_create(*, actor: Actor, user, reason: str, expiry_hours: int | None = None) -> tuple[ApiToken, str]:
    """A new token for ``user``; returns the row and the secret, which is never available again."""
    hours = settings.SOXGOV_API_TOKEN_TTL_HOURS if expiry_hours is None else expiry_hours
    if hours < 1:
        raise ValueError("a token must live at least one hour")
    with transaction.atomic():
        token, key = ApiToken.objects.create(user=user, expiry=dt.timedelta(hours=hours))
        event_record(
            actor=actor,
            action="access.token.created",
            subject=user,
            payload={
                "token_id": token.pk,
                "prefix": token.prefix,
                "expiry": token.expiry,
                "user": user.username,
                "reason": reason,
            },
        )
    return token, key


def tokens_revoke(*, actor: Actor, tokens, reason: str) -> int:
    """Revoke (delete) the given tokens, one ``access.token.revoked`` event each. Returns how many."""
    revoked = 0
    with transaction.atomic():
        for token in tokens.select_related("user").select_for_update(of=("self",)).order_by("pk"):
            event_record(
                actor=actor,
                action="access.token.revoked",
                subject=token.user,
                payload={
                    "token_id": token.pk,
                    "prefix": token.prefix,
                    "created": token.created,
                    "expiry": token.expiry,
                    "user": token.user.username,
                    "reason": reason,
                },
            )
            token.delete()
            revoked += 1
    return revoked


def user_tokens_revoke(*, actor: Actor, user, reason: str) -> int:
    return tokens_revoke(actor=actor, tokens=ApiToken.objects.filter(user=user), reason=reason)
