"""Local (password) sign-in, and the break-glass accounts that keep it when single sign-on is the rule.

``SOXGOV_LOCAL_LOGIN``: ``on`` lets every user sign in with a password (the demo); ``break-glass`` only the
accounts named in ``SOXGOV_BREAK_GLASS_USERS`` (for when the identity provider is down); ``off`` nobody. A
break-glass account always needs its TOTP code as well (django-otp; ``python manage.py break_glass_totp NAME``
enrols one), and each of its sign-ins is evidenced as ``access.login.break_glass`` (soxgov/signin.py).
The rule sits in the authentication backend, so the login page, Django admin's login and the API token endpoint
all keep it; a refusal counts as a failed sign-in (evidence and django-axes' lockout alike).
"""

from django import forms
from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.db import transaction

from evidence.services import Actor, event_record

OTP_FIELD = "otp_token"


def is_break_glass(username: str) -> bool:
    return username in settings.SOXGOV_BREAK_GLASS_USERS


def local_login_refusal(username: str) -> str | None:
    """Why ``username`` may not use the password form at all, or None."""
    mode = settings.SOXGOV_LOCAL_LOGIN
    if mode == "off":
        return "Password sign-in is turned off: sign in with your identity provider."
    if mode == "break-glass" and not is_break_glass(username):
        return "Password sign-in is only for break-glass accounts: sign in with your identity provider."
    return None


def totp_verify(user, token: str) -> bool:
    """The code matches one of the user's confirmed TOTP devices (django-otp refuses a code used before)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    token = (token or "").strip()
    if not token:
        return False
    return any(device.verify_token(token) for device in TOTPDevice.objects.filter(user=user, confirmed=True))


class LocalPasswordBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None or password is None:
            return None
        refusal = local_login_refusal(username)
        if refusal:
            # Refused before the password is checked: the answer says nothing about it.
            _refuse(request, refusal)
            return None
        user = super().authenticate(request, username=username, password=password, **kwargs)
        if user is None or not is_break_glass(user.get_username()):
            return user
        token = request.POST.get(OTP_FIELD, "") if request is not None else ""
        if not totp_verify(user, token):
            _refuse(request, "A break-glass account needs its current one-time code (TOTP) too.")
            return None
        return user


def _refuse(request, message: str) -> None:
    if request is not None:
        request.soxgov_refusal = message


class SignInForm(AuthenticationForm):
    """The login page's form: a one-time code field for break-glass accounts, and the reason a password sign-in
    was refused when it is more than a wrong password."""

    otp_token = forms.CharField(
        label="One-time code (break-glass accounts)", required=False, max_length=12, strip=True
    )

    def clean(self):
        try:
            return super().clean()
        except ValidationError:
            refusal = getattr(self.request, "soxgov_refusal", None)
            if refusal:
                raise ValidationError(refusal, code="refused") from None
            raise


def totp_enrol(*, actor: Actor, user, name: str = "break-glass") -> object:
    """Give ``user`` a new confirmed TOTP device, replacing any they had; evidenced as ``access.mfa.enrolled``.
    Returns the device (its ``config_url`` is the otpauth:// URI an authenticator app reads)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    with transaction.atomic():
        replaced = TOTPDevice.objects.filter(user=user).delete()[0]
        device = TOTPDevice.objects.create(user=user, name=name, confirmed=True)
        event_record(
            actor=actor,
            action="access.mfa.enrolled",
            subject=user,
            payload={
                "username": user.get_username(),
                "device": name,
                "kind": "totp",
                "replaced_devices": replaced,
                "break_glass": is_break_glass(user.get_username()),
            },
        )
    return device
