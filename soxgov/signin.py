"""Sign-in evidence and brute-force protection (django-axes).

Every sign-in over HTTP, the login page, Django admin's login and the API token endpoint alike, writes evidence:
``access.login.succeeded`` / ``access.login.failed`` with the username as typed, the user if one has that name,
and the source address; never the password. django-axes refuses a username from an address after
``SOXGOV_LOGIN_FAILURE_LIMIT`` failures for ``SOXGOV_LOGIN_COOLOFF_MINUTES`` (``access.login.locked_out``);
an admin unlocks earlier through ``login_unlock`` (Django admin's "Login attempts", or
``python manage.py axes_reset_username``), evidenced as ``access.login.unlocked``.
"""

from django.conf import settings
from django.db import transaction
from django.http import JsonResponse
from django.shortcuts import render

from evidence.services import Actor, Subject, event_record


def client_address(request) -> str | None:
    """The address a request came from: the peer, or behind the TLS proxy the address that proxy saw.

    With ``SOXGOV_BEHIND_TLS_PROXY`` the peer is the proxy, which appends the client to X-Forwarded-For; only
    that last entry is the proxy's word (anything before it the client could have written). Axes uses this too.
    """
    peer = request.META.get("REMOTE_ADDR") or None
    if settings.SOXGOV_BEHIND_TLS_PROXY:
        forwarded = [a.strip() for a in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if a.strip()]
        if forwarded:
            return forwarded[-1]
    return peer


def _source(request) -> dict:
    return {
        "source_address": client_address(request),
        "peer_address": request.META.get("REMOTE_ADDR") or None,
        "path": request.path,
    }


def _subject(username: str, user) -> Subject:
    if user is not None:
        return Subject.of(user)
    return Subject("soxgov.login", username[:64], username[:255])


def _user_named(username: str):
    from soxgov.models import User

    return User.objects.filter(username=username).first() if username else None


def _over_http(request) -> bool:
    # Django's test client's force_login() calls login() with a bare HttpRequest (no path, no address);
    # every sign-in that reaches SOXGov over HTTP has a path.
    return request is not None and bool(getattr(request, "path", ""))


_METHODS = {"soxgov.sso.OidcBackend": "oidc", "soxgov.saml.SamlBackend": "saml"}


def _method(user) -> str:
    return _METHODS.get(getattr(user, "backend", ""), "password")


def on_login_succeeded(sender, request, user, **kwargs) -> None:
    """``access.login.succeeded``, or ``access.login.break_glass`` for a named break-glass account's password
    sign-in (soxgov/breakglass.py), which an auditor reviews one by one."""
    if not _over_http(request):
        return
    from soxgov.breakglass import is_break_glass

    method = _method(user)
    break_glass = method == "password" and is_break_glass(user.get_username())
    event_record(
        actor=Actor.for_user(user),
        action="access.login.break_glass" if break_glass else "access.login.succeeded",
        subject=user,
        payload={"username": user.get_username(), "user_id": user.pk, "method": method, **_source(request)},
    )


def on_login_failed(sender, credentials, request=None, **kwargs) -> None:
    if not _over_http(request):
        return
    username = str(credentials.get("username") or "")
    failed_sign_in_record(
        request,
        username=username,
        user=_user_named(username),
        reason=getattr(request, "soxgov_refusal", None),
    )


def failed_sign_in_record(
    request, *, username: str, user=None, method: str = "password", reason=None
) -> None:
    """``access.login.failed``: who tried (as typed, or as the identity provider named them), how, and why
    when SOXGov knows more than "wrong password" (an ID token refused, no role, local sign-in off)."""
    payload = {
        "username": username,
        "user_id": user.pk if user else None,
        "method": method,
        **_source(request),
    }
    if reason:
        payload["reason"] = str(reason)
    event_record(
        actor=Actor.system("login"),
        action="access.login.failed",
        subject=_subject(username or "(unknown)", user),
        payload=payload,
    )


def on_locked_out(sender, request, username, ip_address, **kwargs) -> None:
    username = str(username or "")
    user = _user_named(username)
    event_record(
        actor=Actor.system("axes"),
        action="access.login.locked_out",
        subject=_subject(username, user),
        payload={
            "username": username,
            "user_id": user.pk if user else None,
            "ip_address": ip_address,
            "failures": getattr(request, "axes_failures_since_start", None),
            "failure_limit": settings.AXES_FAILURE_LIMIT,
            "cooloff_minutes": settings.SOXGOV_LOGIN_COOLOFF_MINUTES,
            **_source(request),
        },
    )


def lockout_response(request, original_response=None, credentials=None):
    """Axes' answer to a locked-out sign-in: JSON for the API, the login page with a message otherwise."""
    minutes = settings.SOXGOV_LOGIN_COOLOFF_MINUTES
    message = f"Too many failed sign-ins: this username is locked from your address for {minutes} minutes."
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": message}, status=429)
    return render(request, "registration/locked_out.html", {"message": message}, status=429)


def login_unlock(*, actor: Actor, attempts) -> int:
    """Clear the failed-attempt records (``axes.AccessAttempt``) given, unlocking those sign-ins now.

    One ``access.login.unlocked`` event per username, naming who unlocked whom and from which addresses.
    Returns how many records were removed.
    """
    by_username: dict[str, list] = {}
    with transaction.atomic():
        rows = list(attempts.select_for_update().order_by("pk"))
        for row in rows:
            by_username.setdefault(row.username or "", []).append(row)
        for username, group in sorted(by_username.items()):
            user = _user_named(username)
            event_record(
                actor=actor,
                action="access.login.unlocked",
                subject=_subject(username, user),
                payload={
                    "username": username,
                    "user_id": user.pk if user else None,
                    "ip_addresses": sorted({r.ip_address or "" for r in group}),
                    "failures": sum(r.failures_since_start for r in group),
                    "unlocked_by": actor.name,
                },
            )
        attempts.model.objects.filter(pk__in=[r.pk for r in rows]).delete()
    return len(rows)
