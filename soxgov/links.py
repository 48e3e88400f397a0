"""Links to an object's page without a URL resolver lookup per object.

A review queue page links each of its 50 rows to the item's page; ``reverse`` for each cost the page about 8 ms of
CPU (bench/page_cost.py). The path for one placeholder primary key is reversed once per view name and script
prefix, and the real key substituted.
"""

from functools import lru_cache

from django.urls import get_script_prefix, reverse

_PLACEHOLDER = 2_147_483_646  # an integer the URL patterns accept and no real path contains elsewhere


@lru_cache(maxsize=64)
def _template(viewname: str, prefix: str) -> tuple[str, str]:
    path = reverse(viewname, args=[_PLACEHOLDER])
    before, _, after = path.rpartition(str(_PLACEHOLDER))
    return before, after


def object_path(viewname: str, pk: int) -> str:
    """``reverse(viewname, args=[pk])`` for a view whose only argument is an integer primary key."""
    before, after = _template(viewname, get_script_prefix())
    return f"{before}{int(pk)}{after}"
