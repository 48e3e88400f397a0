"""OpenID providers for the single sign-on tests, real HTTP servers on loopback ports of their own.

- ``mock_provider``: oidc-provider-mock (PyPI), a complete provider (authlib): discovery, authorization with a
  form that picks the subject, token and userinfo endpoints, JWKS, RP-initiated logout. Users' claims (groups
  among them) are set over its HTTP API.
- ``ForgedProvider``: a provider SOXGov's tests control to the byte: it publishes its discovery document and its
  JWKS like any provider, but its token endpoint hands out whatever ID token the test put there (signed with
  another key, for another audience, with an old nonce). It records each token request (PKCE's verifier).
"""

from __future__ import annotations

import contextlib
import json
import time
from urllib.parse import parse_qs

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.loopback import LoopbackServer, QuietHandler


@contextlib.contextmanager
def mock_provider():
    """oidc-provider-mock on a free port; yields its issuer URL."""
    from oidc_provider_mock import run_server_in_thread

    with run_server_in_thread(port=0, require_nonce=True) as server:
        yield f"http://localhost:{server.server_port}"


def mock_user_set(issuer: str, sub: str, claims: dict) -> None:
    requests.put(f"{issuer}/users/{sub}", json=claims, timeout=5).raise_for_status()


def mock_authorize(authorize_url: str, sub: str) -> str:
    """What the person does at the provider: pick ``sub`` and consent. Returns the redirect back to SOXGov."""
    response = requests.post(authorize_url, data={"sub": sub}, allow_redirects=False, timeout=5)
    assert response.status_code == 302, response.text[:500]
    return response.headers["Location"]


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class ForgedProvider(LoopbackServer):
    KID = "forged-1"

    def __init__(self):
        self.key = rsa_key()
        self.id_token = ""
        self.token_requests: list[dict] = []
        provider = self

        class Handler(QuietHandler):
            def _json(self, body: dict, status: int = 200):
                self.send_body(json.dumps(body).encode(), "application/json", status)

            def do_GET(self):
                if self.path == "/.well-known/openid-configuration":
                    self._json(provider.discovery())
                elif self.path == "/jwks":
                    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(provider.key.public_key()))
                    self._json({"keys": [{**public, "kid": provider.KID, "alg": "RS256", "use": "sig"}]})
                else:
                    self._json({"error": "not_found"}, 404)

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
                if self.path != "/token":
                    self._json({"error": "not_found"}, 404)
                    return
                provider.token_requests.append(form)
                self._json({"access_token": "opaque", "token_type": "Bearer", "id_token": provider.id_token})

        super().__init__(Handler)
        self.issuer = self.base

    def discovery(self) -> dict:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "token_endpoint_auth_methods_supported": ["client_secret_post"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def sign(self, claims: dict, *, key=None, kid: str | None = None) -> str:
        now = int(time.time())
        body = {"iss": self.issuer, "iat": now, "exp": now + 300, **claims}
        return jwt.encode(body, key or self.key, algorithm="RS256", headers={"kid": kid or self.KID})
