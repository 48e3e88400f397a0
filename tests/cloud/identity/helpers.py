"""Helpers of the Entra ID and Okta tests: connectors made with ``connector_add`` as an admin would, and a
snapshot of what a pull may change."""

from __future__ import annotations

import json

from entitlements.models import Application
from evidence.models import EvidenceEvent
from tests.imports.conftest import command
from tests.imports.conftest import snapshot as tables_snapshot


def snapshot() -> dict:
    """The tables a pull may change, and evidence other than the runs' own."""
    state = tables_snapshot()
    state["evidence"] = EvidenceEvent.objects.exclude(subject_type="entitlements.connectorrun").count()
    return state


def connector_add(tmp_path, *, name: str, kind: str, application: str, config: dict, secret: tuple[str, str]):
    """``connector_add`` with the configuration in a file and the secret as a file reference."""
    Application.objects.get_or_create(name=application)
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(config))
    secret_file = tmp_path / "secrets" / f"{name}.secret"  # under SOXGOV_SECRET_FILE_ROOTS (conftest's store)
    secret_file.parent.mkdir(exist_ok=True)
    secret_file.write_text(secret[1])
    return command(
        "connector_add",
        *("--name", name, "--kind", kind, "--application", application),
        *("--config", str(path), "--secret", f"{secret[0]}=file:{secret_file}"),
    )
