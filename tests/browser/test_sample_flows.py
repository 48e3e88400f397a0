"""Real Chromium against the live server and the seeded demo company: an auditor draws a sample of a campaign's
decisions from the campaign page, sees it verified, and downloads it with its evidence."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from openpyxl import load_workbook
from playwright.sync_api import expect

from reviews import services
from reviews.models import AuditSample, Campaign, ReviewItem
from soxgov.models import User

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not Path("/usr/bin/chromium").exists(),
        reason="/usr/bin/chromium is missing: these tests drive Debian's Chromium (apt-get install chromium)",
    ),
]


def test_auditor_draws_a_sample_from_the_campaign_page_and_downloads_its_evidence(page, login):
    campaign = Campaign.objects.get(name__startswith="SOX access review ")
    rita = User.objects.get(username="rita")
    items = list(
        ReviewItem.objects.filter(campaign=campaign, reviewer=rita, status="pending").order_by("pk")[:4]
    )
    services.decide(item_ids=[i.pk for i in items[:3]], user=rita, certify=True, comment="known and needed")
    services.decide(item_ids=[items[3].pk], user=rita, certify=False, comment="left the team")

    login(page, "audrey")
    page.goto(campaign.get_absolute_url())
    page.get_by_role("link", name="Draw a sample for testing").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Samples for auditors")
    form = page.locator("form").filter(has=page.get_by_role("button", name="Draw", exact=True))
    form.get_by_label("Population").select_option("decisions")
    expect(form.get_by_label("Campaign")).to_have_value(str(campaign.pk))
    form.get_by_label("Size:", exact=True).fill("2")
    form.get_by_label("Seed:", exact=True).fill("FY2026 walkthrough")
    form.get_by_role("button", name="Draw").click()

    sample = AuditSample.objects.get()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Sample #{sample.pk}")
    expect(page.get_by_text("reproduced", exact=True)).to_be_visible()
    expect(page.get_by_role("main")).to_contain_text(sample.population_sha256)
    assert (sample.population_count, len(sample.selected)) == (4, 2)

    with page.expect_download() as download:
        page.get_by_role("button", name="Download with evidence (XLSX)").click()
    book = load_workbook(io.BytesIO(Path(download.value.path()).read_bytes()))
    assert book.sheetnames == ["sample", "decisions", "evidence_events"]
    rows = list(book["decisions"].iter_rows(values_only=True))
    assert [row[2] for row in rows[1:]] == sample.selected
    assert page.js_errors == []
