"""A SAML 2.0 identity provider for the tests: pysaml2's IdP (signing with xmlsec1) behind a real HTTP server on
a free loopback port. Its single sign-on endpoint takes SOXGov's AuthnRequest (HTTP-Redirect binding) and answers
with the HTML form a browser would post back (HTTP-POST binding), for the user and in the mode the test set:
assertion signed (what Entra ID does), response signed, nothing signed, or signed and then altered."""

from __future__ import annotations

import base64
import datetime as dt
import html
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.loopback import LoopbackServer, QuietHandler

XMLSEC = "/usr/bin/xmlsec1"


def self_signed(directory: Path, name: str) -> tuple[Path, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    key_path, cert_path = directory / f"{name}.key", directory / f"{name}.crt"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


class SamlIdp(LoopbackServer):
    SIGNED_ASSERTION, SIGNED_RESPONSE, UNSIGNED, TAMPERED = "assertion", "response", "unsigned", "tampered"

    def __init__(self, directory: Path):
        self.directory = directory
        self.key_file, self.cert_file = self_signed(directory, "idp")
        self.mode = self.SIGNED_ASSERTION
        self.name_id = "nora@example.com"
        self.attributes: dict[str, list[str]] = {}
        super().__init__(self._handler())
        self.entity_id = f"{self.base}/metadata"
        self.metadata_file = directory / "idp-metadata.xml"
        self.metadata_file.write_text(self._metadata())
        self.idp = None

    def _config(self, sp_metadata: Path | None):
        from saml2 import BINDING_HTTP_REDIRECT
        from saml2.config import IdPConfig
        from saml2.saml import NAMEID_FORMAT_PERSISTENT

        config = IdPConfig()
        config.load(
            {
                "entityid": self.entity_id,
                "xmlsec_binary": XMLSEC,
                "key_file": str(self.key_file),
                "cert_file": str(self.cert_file),
                "metadata": {"local": [str(sp_metadata)]} if sp_metadata else {},
                "service": {
                    "idp": {
                        "endpoints": {
                            "single_sign_on_service": [(f"{self.base}/sso", BINDING_HTTP_REDIRECT)]
                        },
                        "name_id_format": [NAMEID_FORMAT_PERSISTENT],
                        "policy": {"default": {"lifetime": {"minutes": 5}, "attribute_restrictions": None}},
                    }
                },
            }
        )
        return config

    def _metadata(self) -> str:
        from saml2.metadata import entity_descriptor

        return str(entity_descriptor(self._config(None)))

    def trust(self, sp_metadata_xml: str) -> None:
        """Load the service provider's metadata (from SOXGov's /saml/metadata/)."""
        from saml2.server import Server

        path = self.directory / "sp-metadata.xml"
        path.write_text(sp_metadata_xml)
        self.idp = Server(config=self._config(path))

    def answer(self, saml_request: str, relay_state: str) -> tuple[str, str, str]:
        """The response to an AuthnRequest: (where it is posted, SAMLResponse, RelayState)."""
        from saml2 import BINDING_HTTP_REDIRECT
        from saml2.saml import AUTHN_PASSWORD, NAMEID_FORMAT_PERSISTENT, NameID

        request = self.idp.parse_authn_request(saml_request, BINDING_HTTP_REDIRECT).message
        args = self.idp.response_args(request)
        args.pop("binding", None)
        response = self.idp.create_authn_response(
            identity=self.attributes,
            userid=self.name_id,
            name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=self.name_id),
            authn={"class_ref": AUTHN_PASSWORD, "authn_auth": self.base},
            sign_assertion=self.mode in (self.SIGNED_ASSERTION, self.TAMPERED),
            sign_response=self.mode == self.SIGNED_RESPONSE,
            **args,
        )
        xml = str(response)
        if self.mode == self.TAMPERED:
            # What an attacker who intercepted the response would do: give themselves the admin group.
            assert "SOX-Reviewers" in xml
            xml = xml.replace("SOX-Reviewers", "SOX-Admins")
        return args["destination"], base64.b64encode(xml.encode()).decode(), relay_state

    def _handler(self):
        idp = self

        class Handler(QuietHandler):
            def do_GET(self):
                url = urlsplit(self.path)
                if url.path != "/sso":
                    self.send_error(404)
                    return
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                action, response, relay = idp.answer(query["SAMLRequest"], query.get("RelayState", ""))
                body = (
                    f'<form method="post" action="{html.escape(action)}">'
                    f'<input type="hidden" name="SAMLResponse" value="{html.escape(response)}">'
                    f'<input type="hidden" name="RelayState" value="{html.escape(relay)}">'
                    '<button type="submit">Continue</button></form>'
                ).encode()
                self.send_body(body, "text/html; charset=utf-8")

        return Handler
