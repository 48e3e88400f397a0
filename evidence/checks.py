"""System checks for ``manage.py check --deploy``."""

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def signing_key_configured(app_configs, **kwargs):
    """Without a key, production can sign no checkpoint or evidence pack (with DEBUG on, one is generated)."""
    if settings.DEBUG or settings.SOXGOV_SIGNING_KEY is not None:
        return []
    return [
        Warning(
            "No evidence signing key is configured: checkpoints and evidence packs cannot be signed.",
            hint=(
                "Set SOXGOV_SIGNING_KEY_FILE (path to a PEM PKCS#8 Ed25519 private key) or SOXGOV_SIGNING_KEY "
                "(the PEM text); create a key with: python manage.py signing_key create --out PATH"
            ),
            id="soxgov.W001",
        )
    ]


@register(Tags.security, deploy=True)
def connection_cannot_bypass_the_triggers(app_configs, databases=None, **kwargs):
    """The application's database role must not be able to switch off the append-only triggers: a superuser or
    the evidence table's owner can (ALTER TABLE ... DISABLE TRIGGER, session_replication_role)."""
    from django.db import DatabaseError

    from soxgov.dbroles import connection_privilege_problems

    try:
        problems = connection_privilege_problems()
    except DatabaseError:
        return []  # unreachable: other checks and the first request say so; this one has nothing to judge
    return [
        Warning(
            f"The application can switch off the evidence table's append-only triggers: {problem}.",
            hint=(
                "Connect as a role that owns nothing and is not a superuser; create it as the owner with: "
                "python manage.py db_app_role --role soxgov_app --password-env SOXGOV_DB_APP_PASSWORD "
                '(README, "Database roles")'
            ),
            id="soxgov.W002",
        )
        for problem in problems
    ]
