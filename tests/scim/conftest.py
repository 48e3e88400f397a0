"""A real SCIM 2.0 server (scim2-server) for the test session, wiped and seeded with the fixture tenant for
each test: starting one costs seconds, a fresh tenant a few dozen requests."""

from __future__ import annotations

import pytest

from tests.scim.servers import Proxy, ScimServer, scim2_server_missing


@pytest.fixture(scope="session")
def scim_process():
    missing = scim2_server_missing()
    if missing:
        pytest.skip(missing)
    server = ScimServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def scim_server(scim_process):
    scim_process.wipe()
    return scim_process.seed()


@pytest.fixture
def proxy(scim_server):
    """make(**options) -> a Proxy in front of the server, closed after the test."""
    made = []

    def make(**options) -> Proxy:
        made.append(Proxy(scim_server.url, **options))
        return made[-1]

    yield make
    for each in made:
        each.close()
