"""Keyset pagination (soxgov.pagination): every row exactly once, in order, both ways; bad cursors refused."""

import base64
import json

import pytest
from django.db import transaction
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from entitlements.models import Identity
from evidence.models import EvidenceEvent
from evidence.services import Actor, Event, Subject, events_record
from soxgov.pagination import InvalidCursor, keyset_paginate


def walk(queryset, ordering, page_size):
    """Follow next cursors from the first page, then prev cursors back; returns (forward pages, backward pages)."""
    forward = []
    page = keyset_paginate(queryset, ordering=ordering, cursor=None, page_size=page_size)
    assert page.prev_cursor is None, "the first page has no previous page"
    forward.append([obj.pk for obj in page.items])
    while page.next_cursor:
        page = keyset_paginate(queryset, ordering=ordering, cursor=page.next_cursor, page_size=page_size)
        forward.append([obj.pk for obj in page.items])
        assert len(forward) <= queryset.count() + 1, "pagination does not terminate"
    backward = [forward[-1]]
    while page.prev_cursor:
        page = keyset_paginate(queryset, ordering=ordering, cursor=page.prev_cursor, page_size=page_size)
        backward.append([obj.pk for obj in page.items])
        assert len(backward) <= len(forward), "walking back does not reach the first page"
    return forward, backward[::-1]


def assert_walks_every_row_once_in_order(queryset, ordering, page_size):
    expected = list(queryset.order_by(*ordering).values_list("pk", flat=True))
    forward, backward = walk(queryset, ordering, page_size)
    assert [pk for page in forward for pk in page] == expected
    assert all(len(page) == page_size for page in forward[:-1]), "only the last page may be short"
    assert backward == forward, "walking back visits the same pages, in the same order"


def make_identities(names):
    return Identity.objects.bulk_create(
        Identity(employee_id=f"P{i}", display_name=name) for i, name in enumerate(names)
    )


TIED_NAMES = ["Kim", "Ann", "Kim", "kim", "Bo", "Ann", "Kim", "Zed", "Ann", "Bo", "Kim"]


@pytest.mark.parametrize(
    "ordering",
    [("display_name", "id"), ("-display_name", "id"), ("display_name", "-id"), ("-display_name", "-id")],
)
@pytest.mark.parametrize("page_size", [1, 2, 3, 4, 11, 50])
def test_walks_every_identity_once_in_order_despite_ties_on_the_first_column(db, ordering, page_size):
    make_identities(TIED_NAMES)
    assert_walks_every_row_once_in_order(Identity.objects.all(), ordering, page_size)


@pytest.mark.parametrize("ordering", [("-sequence",), ("sequence",)])
@pytest.mark.parametrize("page_size", [1, 5, 7, 23])
def test_walks_the_evidence_trail_once_in_sequence_order(db, ordering, page_size):
    subject = Subject("tests.thing", "1", "thing")
    events_record(
        actor=Actor.system("tests"), events=[Event("test.page.walked", subject, {"n": n}) for n in range(23)]
    )
    assert_walks_every_row_once_in_order(EvidenceEvent.objects.all(), ordering, page_size)


def test_respects_the_filter_of_the_queryset(db):
    make_identities(TIED_NAMES)
    assert_walks_every_row_once_in_order(
        Identity.objects.filter(display_name__in=["Kim", "Bo"]), ("display_name", "id"), 2
    )


def test_an_empty_queryset_is_one_empty_page_without_cursors(db):
    page = keyset_paginate(Identity.objects.all(), ordering=("display_name", "id"), cursor=None, page_size=5)
    assert (page.items, page.next_cursor, page.prev_cursor, page.has_other_pages) == ([], None, None, False)


def test_a_row_inserted_before_the_cursor_does_not_shift_the_next_page(db):
    make_identities(["B", "C", "D", "E"])
    first = keyset_paginate(Identity.objects.all(), ordering=("display_name", "id"), cursor=None, page_size=2)
    Identity.objects.create(employee_id="NEW", display_name="A")
    second = keyset_paginate(
        Identity.objects.all(), ordering=("display_name", "id"), cursor=first.next_cursor, page_size=2
    )
    assert [i.display_name for i in second.items] == ["D", "E"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    names=st.lists(st.text(alphabet="aAbB ", min_size=1, max_size=3), max_size=25),
    page_size=st.integers(min_value=1, max_value=6),
    ordering=st.sampled_from(
        [("display_name", "id"), ("-display_name", "id"), ("display_name", "-id"), ("-id",)]
    ),
)
def test_any_dataset_is_walked_once_in_order_both_ways(db, names, page_size, ordering):
    with transaction.atomic():
        make_identities(names)
        assert_walks_every_row_once_in_order(Identity.objects.all(), ordering, page_size)
        transaction.set_rollback(True)


def encode(data) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


TAMPERED = {
    "not base64": "!!!not-a-cursor!!!",
    "not JSON": encode(b"\xff\xfe garbage"),
    "JSON list": encode(["n", ["Ann", 1]]),
    "no values": encode({"d": "n"}),
    "unknown direction": encode({"d": "x", "v": ["Ann", 1]}),
    "too few values": encode({"d": "n", "v": ["Ann"]}),
    "too many values": encode({"d": "n", "v": ["Ann", 1, 2]}),
    "boolean value": encode({"d": "n", "v": ["Ann", True]}),
    "float value": encode({"d": "n", "v": ["Ann", 1.5]}),
    "null value": encode({"d": "n", "v": [None, 1]}),
    "nested value": encode({"d": "p", "v": [["Ann"], 1]}),
    "text where the id is a number": encode({"d": "n", "v": ["Ann", "1 OR 1=1"]}),
    "text id, walking back": encode({"d": "p", "v": ["Ann", "abc"]}),
}


@pytest.mark.parametrize("cursor", TAMPERED.values(), ids=TAMPERED.keys())
def test_a_tampered_cursor_raises_invalid_cursor(db, cursor):
    make_identities(["Ann", "Bo"])
    with pytest.raises(InvalidCursor):
        keyset_paginate(Identity.objects.all(), ordering=("display_name", "id"), cursor=cursor, page_size=5)


def test_a_text_cursor_on_a_numeric_ordering_raises_invalid_cursor(db):
    with pytest.raises(InvalidCursor):
        keyset_paginate(
            EvidenceEvent.objects.all(),
            ordering=("-sequence",),
            cursor=encode({"d": "n", "v": ["nine"]}),
            page_size=5,
        )


@pytest.fixture
def signed_in(client, make_user):
    from soxgov.roles import Role

    client.force_login(make_user("audrey", Role.AUDITOR))
    return client


@pytest.mark.parametrize(
    "cursor",
    [TAMPERED[name] for name in ("not base64", "too few values", "text where the id is a number")],
    ids=["not base64", "too few values", "text where the id is a number"],
)
@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx fragment"])
def test_the_list_page_answers_400_for_a_bad_cursor(signed_in, cursor, htmx):
    make_identities(["Ann", "Bo"])
    headers = {"HX-Request": "true"} if htmx else {}
    response = signed_in.get(reverse("entitlements:identity_list"), {"cursor": cursor}, headers=headers)
    assert response.status_code == 400
    assert "cursor is not valid" in response.content.decode()


def test_the_list_page_pager_walks_every_row_and_keeps_the_filter(signed_in, settings):
    settings.SOXGOV_PAGE_SIZE = 2
    make_identities(TIED_NAMES)
    url = reverse("entitlements:identity_list")
    expected = list(
        Identity.objects.filter(display_name__icontains="k")
        .order_by("display_name", "id")
        .values_list("pk", flat=True)
    )
    seen, cursor = [], None
    while True:
        response = signed_in.get(url, {"q": "k", **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200
        page = response.context["page"]
        seen += [i.pk for i in page.items]
        if not page.next_cursor:
            break
        assert f"?q=k&amp;cursor={page.next_cursor}" in response.content.decode(), (
            "the next link keeps the filter"
        )
        cursor = page.next_cursor
    assert seen == expected and len(expected) == 5


def test_a_list_ordered_by_a_time_pages_through_every_row_once(db):
    """Dates and times go into the cursor as ISO text and come back through the column's parser."""
    from evidence.models import EvidenceEvent
    from evidence.services import Actor, Event, Subject, events_record
    from soxgov.pagination import keyset_paginate

    events_record(
        actor=Actor.system("tests"),
        events=[
            Event("tests.thing.recorded", Subject("tests.thing", str(n), "t"), {"n": n}) for n in range(5)
        ],
    )
    seen, cursor = [], None
    while True:
        page = keyset_paginate(
            EvidenceEvent.objects.all(), ordering=("-occurred_at", "-sequence"), cursor=cursor, page_size=2
        )
        seen += [e.sequence for e in page.items]
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert seen == [5, 4, 3, 2, 1]
    back = keyset_paginate(
        EvidenceEvent.objects.all(),
        ordering=("-occurred_at", "-sequence"),
        cursor=page.prev_cursor,
        page_size=2,
    )
    assert [e.sequence for e in back.items] == [3, 2]
