"""A real SCIM 2.0 server per test (scim2-server, about a second to start), seeded with the fixture tenant."""

from __future__ import annotations

import pytest

from tests.scim.servers import Proxy, ScimServer, scim2_server_missing


@pytest.fixture
def scim_server():
    missing = scim2_server_missing()
    if missing:
        pytest.skip(missing)
    server = ScimServer().start()
    try:
        yield server.seed()
    finally:
        server.stop()


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
