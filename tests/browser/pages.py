"""What the browser tests share about SOXGov's pages."""

from __future__ import annotations


class Nav:
    """The header's navigation. Most links sit in menus (``<details>``): asking for one opens its menu first, as a
    user would, so the link can be seen and clicked; a link the page does not render is simply not found."""

    def __init__(self, page):
        self.locator = page.get_by_role("banner").get_by_role("navigation")

    def get_by_role(self, role: str, **options):
        self.close()
        rendered = self.locator.get_by_role(role, include_hidden=True, **options)
        if rendered.count():
            rendered.first.evaluate(
                "el => { const menu = el.closest('details'); if (menu) menu.open = true; }"
            )
        return self.locator.get_by_role(role, **options)

    def close(self) -> None:
        """Close the open menus (an open one covers the page: the first click elsewhere only closes it)."""
        self.locator.locator("details[open]").evaluate_all("menus => menus.forEach(m => { m.open = false; })")


def nav(page) -> Nav:
    return Nav(page)
