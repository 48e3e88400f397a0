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
