"""The payloads the cloud-connector tests serve are authored, not captured: nothing in them may be a real person's
e-mail address, a real token or a key. This scans them and refuses anything that looks real.

Allowed: addresses at example.com / example.org / example.net (and their subdomains) or under .test, and the
AWS documentation's AKIAIOSFODNN7EXAMPLE. Refused: any other address, AWS access key ids, GitHub tokens
(ghp_, gho_, ghu_, ghs_, ghr_, github_pat_), JWTs, Slack tokens and PEM private keys.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
#: Fixture folders and the modules that author payloads (stand-ins, seeders), and the guides that quote them.
SCANNED = [
    TESTS / "fixtures" / "scim",
    TESTS / "fixtures" / "github",
    TESTS / "scim",
    TESTS / "github",
    TESTS / "cloud" / "identity" / "fixtures",
    TESTS / "cloud" / "identity" / "stand_in.py",
    TESTS / "test_connectors_aws.py",
    TESTS / "aws_server.py",
    TESTS.parent / "docs" / "connectors-aws.md",
]
ALLOWED_DOMAIN = re.compile(r"(^|\.)(example\.(com|org|net)|[a-z0-9-]+\.test)$", re.IGNORECASE)
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
SECRETS = {
    "an AWS access key id": re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA)[0-9A-Z]{16}\b"),
    "a GitHub token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{20,})"),
    "a JWT": re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"),
    "a Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    "an Okta API token": re.compile(r"\b00[A-Za-z0-9_-]{40}\b"),
    "an Azure client secret": re.compile(r"\b[A-Za-z0-9_~.-]{3}8Q~[A-Za-z0-9_~.-]{31,34}\b"),
    "a private key": re.compile(r"-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----"),
}
DOCUMENTED = {"AKIAIOSFODNN7EXAMPLE"}


def problems(text: str) -> list[str]:
    found = []
    for match in EMAIL.finditer(text):
        if not ALLOWED_DOMAIN.search(match.group(1)):
            found.append(f"a real-looking e-mail address {match.group(0)!r}")
    for what, pattern in SECRETS.items():
        found += [
            f"{what} {m.group(0)[:24]!r}" for m in pattern.finditer(text) if m.group(0) not in DOCUMENTED
        ]
    return found


def scanned_files() -> list[Path]:
    files = []
    for place in SCANNED:
        if place.is_dir():
            files += sorted(
                p for p in place.rglob("*") if p.is_file() and p.suffix in {".json", ".py", ".ldif", ".csv"}
            )
        elif place.is_file():
            files.append(place)
    return files


@pytest.mark.parametrize("path", scanned_files(), ids=lambda p: str(p.relative_to(TESTS.parent)))
def test_fixture_is_anonymous(path):
    assert problems(path.read_text(encoding="utf-8")) == []


def test_the_scan_finds_what_it_must_refuse():
    planted = "\n".join(
        [
            "jane.doe@gmail.com",
            "ops@corp-finance.io",
            "AKIAABCDEFGHIJKLMNOP",
            "ghp_" + "a1B2" * 9,
            "github_pat_" + "11ABCDEFG0" * 3,
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl",
            "-----BEGIN RSA PRIVATE KEY-----",
            "00" + "a1B2c3D4e5" * 4,
        ]
    )
    assert len(problems(planted)) == 8
    fine = "a@example.com b@mail.example.org c@hr.test AKIAIOSFODNN7EXAMPLE user@ghe.example.net"
    assert problems(fine) == []
    assert len(scanned_files()) >= 8
