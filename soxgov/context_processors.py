from django.conf import settings

from soxgov.roles import Role, user_roles


def navigation(request):
    roles = user_roles(getattr(request, "user", None))
    return {
        "user_roles": roles,
        "is_admin_role": Role.ADMIN in roles,
        "is_auditor": Role.AUDITOR in roles,
        "is_control_owner": Role.CONTROL_OWNER in roles,
        "is_reviewer": Role.REVIEWER in roles,
        "unread_notifications": _unread(request),
        # The login page: "Sign in with <provider>" first when single sign-on is on, and which password form.
        "sso_name": settings.SOXGOV_OIDC_NAME if settings.SOXGOV_OIDC_ISSUER else None,
        "saml_name": settings.SOXGOV_SAML_NAME if settings.SOXGOV_SAML_IDP_METADATA else None,
        "local_login": settings.SOXGOV_LOCAL_LOGIN,
        "break_glass_accounts": bool(settings.SOXGOV_BREAK_GLASS_USERS),
    }


def _unread(request) -> int:
    from reviews.views import unread_count

    return unread_count(getattr(request, "user", None))
