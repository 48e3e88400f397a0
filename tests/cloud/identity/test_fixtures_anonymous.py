"""The stand-ins' fixtures are authored and anonymous: no real-looking e-mail address, token or key."""

from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).parent
FILES = sorted([*(HERE / "fixtures").glob("*.json"), HERE / "stand_in.py"])

EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@([A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)")
ALLOWED_DOMAIN = re.compile(r"(^|\.)(example\.(com|org|net)|[a-z0-9-]+\.test)$", re.IGNORECASE)
SECRETS = {
    "AWS access key": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{20,}"),
    "JWT": re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"),
    "Okta API token": re.compile(r"\b00[A-Za-z0-9_-]{40}\b"),
    "Azure client secret": re.compile(r"\b[A-Za-z0-9_~.-]{3}8Q~[A-Za-z0-9_~.-]{31,34}\b"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
}
DOCUMENTED = {"AKIAIOSFODNN7EXAMPLE"}  # AWS's own documentation example


def problems(text: str) -> list[str]:
    found = [
        f"e-mail address {m.group(0)}" for m in EMAIL.finditer(text) if not ALLOWED_DOMAIN.search(m.group(1))
    ]
    for what, pattern in SECRETS.items():
        found += [
            f"{what} {m.group(0)[:12]}..." for m in pattern.finditer(text) if m.group(0) not in DOCUMENTED
        ]
    return found


def test_the_fixtures_hold_nothing_real():
    assert len(FILES) >= 3
    for path in FILES:
        assert problems(path.read_text()) == [], path


def test_the_scan_catches_what_it_looks_for():
    # Built here, never written out whole: the scan must see each of these.
    samples = [
        "jane.doe@" + "contoso.com",
        "AKIA" + "Q3EGRXRZ5KJ4W7ZP",
        "ghp_" + "a" * 36,
        "eyJhbGciOiJIUzI1NiJ9" + "." + "eyJzdWIiOiIxMjM0In0" + ".sig",
        "00" + "a1B2c3D4e5" * 4,
        "-----BEGIN " + "PRIVATE KEY-----",
    ]
    for sample in samples:
        assert problems(f'{{"value": "{sample}"}}'), sample
    assert problems("ann.lee@example.com auditor@example.org svc@build.test AKIAIOSFODNN7EXAMPLE") == []
