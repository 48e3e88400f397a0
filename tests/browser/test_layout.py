"""Every page fits its window: at 1280 px (a laptop) and 390 px (a phone) no page scrolls sideways, and the
header's notifications, name and Log out stay on screen (issue 23). Wide tables scroll inside their own box."""

from __future__ import annotations

import pytest

from tests.browser.pages import nav

WIDTHS = ((1280, 800), (390, 844))
PAGES = {
    "alice": ("/", "/reviews/campaigns/", "/identities/", "/accounts/", "/imports/", "/connectors/", "/evidence/",
              "/evidence/integrity/", "/sod/rules/", "/reviews/how-reviews-are-judged/"),
    "rita": ("/reviews/", "/reviews/remediation/?status=open"),
    "oscar": ("/exceptions/?status=live", "/dashboard/", "/sod/violations/?status=live"),
    "audrey": ("/reviews/samples/", "/evidence/"),
}  # fmt: skip


def overflow(page) -> int:
    """How many pixels the page is wider than its window."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


@pytest.mark.parametrize("width,height", WIDTHS, ids=[f"{w}px" for w, _ in WIDTHS])
def test_every_page_fits_the_window_and_the_header_stays_on_screen(page, login, width, height):
    page.set_viewport_size({"width": width, "height": height})
    too_wide = []
    for username, paths in PAGES.items():
        page.context.clear_cookies()
        login(page, username)
        for path in paths:
            page.goto(path)
            if overflow(page) > 0:
                too_wide.append(f"{username} {path}: {overflow(page)} px too wide")
            log_out = page.get_by_role("button", name="Log out")
            box = log_out.bounding_box()
            assert box is not None and box["x"] + box["width"] <= width, f"{path}: Log out is off screen"
    assert too_wide == []


def test_the_menus_open_and_lead_where_they_say(page, login):
    page.set_viewport_size({"width": 390, "height": 844})
    login(page, "alice")
    nav(page).get_by_role("link", name="Integrity").click()
    assert page.url.endswith("/evidence/integrity/")
    nav(page).get_by_role("link", name="Identities").click()
    assert "/identities/" in page.url
