"""Fixtures of the Entra ID and Okta tests: a private input store and secrets key, and the stand-in server."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.test import override_settings

from tests.cloud.identity.stand_in import GraphTenant, OktaOrg, StandIn


@pytest.fixture
def store(tmp_path):
    """A private input store and secrets directory; connectors start from a removal gate of 5 grants (10%), fit
    for small tenants."""
    with override_settings(
        SOXGOV_IMPORT_DIR=tmp_path / "store",
        SOXGOV_SECRET_FILE_ROOTS=[tmp_path / "secrets"],
        SOXGOV_SECRET_KEYS=[Fernet.generate_key().decode()],
        SOXGOV_DELETION_THRESHOLD_COUNT=5,
    ):
        yield tmp_path / "store"


@pytest.fixture
def graph(store, tmp_path):
    """Graph (and its sign-in service) serving the authored tenant, 3 to a page."""
    with StandIn(tenant=GraphTenant.from_fixture(), page=3, directory=tmp_path) as server:
        yield server


@pytest.fixture
def okta(store, tmp_path):
    """Okta serving the authored org, 2 to a page."""
    with StandIn(okta=OktaOrg.from_fixture(), okta_page=2, directory=tmp_path) as server:
        yield server
