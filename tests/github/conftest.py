"""The GitHub stand-in (tests/github/standin.py) per test, with its token."""

from __future__ import annotations

import secrets

import pytest

from tests.github.standin import GitHubStandIn


@pytest.fixture
def github():
    served = GitHubStandIn(token="test-gh-" + secrets.token_hex(12))
    try:
        yield served
    finally:
        served.close()
