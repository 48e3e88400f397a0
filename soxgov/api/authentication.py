"""How the API authenticates a token (kept apart from the views: DRF settings import this)."""

from django.utils import timezone
from drf_spectacular.contrib.knox_auth_token import KnoxTokenScheme
from knox.auth import TokenAuthentication as KnoxTokenAuthentication


class TokenAuthentication(KnoxTokenAuthentication):
    """knox's digest lookup, except that an expired token is refused without being deleted.

    knox deletes expired tokens as a side effect of any request; here a token leaves only by an evidenced
    revocation, and until then the admin list shows it as expired.
    """

    def _cleanup_token(self, auth_token) -> bool:
        return auth_token.expiry is not None and auth_token.expiry <= timezone.now()


class TokenScheme(KnoxTokenScheme):
    """The OpenAPI description of the header above (``Authorization: Token <key>``)."""

    target_class = "soxgov.api.authentication.TokenAuthentication"
    name = "tokenAuth"
