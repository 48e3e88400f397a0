"""What the tests of the web-API sources (tests/scim, tests/github) share: answering JSON from a stand-in
server, a private import store, the state a refused or held pull must leave unchanged, and the check that a
credential appears nowhere."""

from __future__ import annotations

import contextlib
import json
from http.server import BaseHTTPRequestHandler

import pytest
from django.test import override_settings

from entitlements.models import ConnectorRun
from evidence.models import EvidenceEvent
from tests.imports.conftest import Outcome
from tests.imports.conftest import snapshot as tables_snapshot


@pytest.fixture
def import_store(tmp_path):
    """Pulls store their copies under the test's own directory (MD5 hashing keeps make_user fast)."""
    with override_settings(
        SOXGOV_IMPORT_DIR=tmp_path / "store",
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    ):
        yield


def snapshot() -> dict:
    """The access tables and their history, and evidence other than the runs' own (a pull that changes nothing
    still records that it was queued and failed or was held)."""
    state = tables_snapshot()
    state["evidence"] = EvidenceEvent.objects.exclude(subject_type="entitlements.connectorrun").count()
    return state


def assert_said_nowhere(outcome: Outcome, *secrets: str) -> None:
    """No secret in the command's output, the last run's error or any evidence event."""
    run = ConnectorRun.objects.order_by("-pk").first()
    said = [outcome.out, outcome.err, run.error or ""]
    said += [json.dumps(event.payload) for event in EvidenceEvent.objects.all()]
    for secret in secrets:
        assert not any(secret in text for text in said), "a secret was shown"


def write_json(
    handler: BaseHTTPRequestHandler,
    status: int,
    headers: dict[str, str],
    body,
    *,
    content_type: str = "application/json; charset=utf-8",
) -> None:
    """Answer a stand-in server's request with a JSON body and the given headers."""
    payload = json.dumps(body).encode()
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(payload)))
    handler.end_headers()
    with contextlib.suppress(BrokenPipeError):  # the client gave up waiting
        handler.wfile.write(payload)
