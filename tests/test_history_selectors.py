"""Access on a past date: "who held entitlement E on day D" and "what did identity I hold on day D".

History dates are set the way simple-history reads them: ``instance._history_date`` before save()/delete()
(simple_history/models.py, ``create_historical_record``). Every change below happens at noon of its day.

Timeline, in days before today (d10 = ten days ago):
    d10  ERP with "Approve payment" and "View ledger"; Ann and Ben; accounts ann, ben, shared (Ann), gone (Ann)
    d9   gone gets Approve payment; ben gets View ledger
    d8   ann gets Approve payment
    d7   shared gets Approve payment
    d6   ben gets Approve payment
    d5   ann's Approve payment is removed
    d4   Ann is renamed "Ann Married"
    d3   account shared is re-linked from Ann to Ben
    d2   account gone is deleted (its grants cascade; their own deletion records are stamped "now")
"""

import datetime as dt
import zoneinfo

import pytest
from django.urls import reverse
from django.utils import timezone

from entitlements.models import Account, Application, Entitlement, Grant, Identity
from entitlements.selectors import entitlement_holders_on, identity_access_on
from soxgov.roles import Role


def day(n: int) -> dt.date:
    return timezone.localdate() - dt.timedelta(days=n)


def noon(n: int) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day(n), dt.time(12)))


def save_at(obj, when: dt.datetime):
    obj._history_date = when
    obj.save()
    return obj


def delete_at(obj, when: dt.datetime) -> None:
    obj._history_date = when
    obj.delete()


def grant_at(account, entitlement, when):
    return save_at(Grant(account=account, entitlement=entitlement, first_seen=when), when)


@pytest.fixture
def history(db):
    d10 = noon(10)
    erp = save_at(Application(name="ERP"), d10)
    approve = save_at(Entitlement(application=erp, entitlement_id="AP_APPROVE", name="Approve payment"), d10)
    ledger = save_at(Entitlement(application=erp, entitlement_id="GL_VIEW", name="View ledger"), d10)
    ann = save_at(Identity(employee_id="A1", display_name="Ann"), d10)
    ben = save_at(Identity(employee_id="B1", display_name="Ben"), d10)
    accounts = {
        name: save_at(Account(application=erp, account_id=name, identity=owner, first_seen=d10), d10)
        for name, owner in [("ann", ann), ("ben", ben), ("shared", ann), ("gone", ann)]
    }
    grant_at(accounts["gone"], approve, noon(9))
    grant_at(accounts["ben"], ledger, noon(9))
    ann_approve = grant_at(accounts["ann"], approve, noon(8))
    grant_at(accounts["shared"], approve, noon(7))
    grant_at(accounts["ben"], approve, noon(6))
    delete_at(ann_approve, noon(5))
    ann.display_name = "Ann Married"
    save_at(ann, noon(4))
    accounts["shared"].identity = ben
    save_at(accounts["shared"], noon(3))
    delete_at(accounts["gone"], noon(2))
    return {"approve": approve, "ledger": ledger, "ann": ann, "ben": ben, "erp": erp}


def holders(entitlement, n):
    return [(h.account_id, h.identity) for h in entitlement_holders_on(entitlement=entitlement, day=day(n))]


def held(identity, n):
    return [(h.account_id, h.entitlement) for h in identity_access_on(identity=identity, day=day(n))]


@pytest.mark.parametrize(
    ("days_ago", "expected"),
    [
        (11, []),
        (10, []),
        (9, [("gone", "Ann")]),
        (8, [("ann", "Ann"), ("gone", "Ann")]),
        (7, [("ann", "Ann"), ("gone", "Ann"), ("shared", "Ann")]),
        (6, [("ann", "Ann"), ("ben", "Ben"), ("gone", "Ann"), ("shared", "Ann")]),
        (5, [("ben", "Ben"), ("gone", "Ann"), ("shared", "Ann")]),
        (4, [("ben", "Ben"), ("gone", "Ann Married"), ("shared", "Ann Married")]),
        (3, [("ben", "Ben"), ("shared", "Ben"), ("gone", "Ann Married")]),
        (2, [("ben", "Ben"), ("shared", "Ben")]),
        (0, [("ben", "Ben"), ("shared", "Ben")]),
    ],
)
def test_who_held_approve_payment_on_each_day(history, days_ago, expected):
    assert sorted(holders(history["approve"], days_ago)) == sorted(expected)


def test_holders_of_one_entitlement_leave_out_other_entitlements(history):
    assert holders(history["ledger"], 10) == []
    assert holders(history["ledger"], 5) == [("ben", "Ben")]
    assert holders(history["ledger"], 0) == [("ben", "Ben")]


@pytest.mark.parametrize(
    ("days_ago", "expected"),
    [
        (10, []),
        (9, [("gone", "Approve payment")]),
        (8, [("ann", "Approve payment"), ("gone", "Approve payment")]),
        (7, [("ann", "Approve payment"), ("gone", "Approve payment"), ("shared", "Approve payment")]),
        (5, [("gone", "Approve payment"), ("shared", "Approve payment")]),
        (3, [("gone", "Approve payment")]),
        (2, []),
        (0, []),
    ],
)
def test_what_ann_held_on_each_day(history, days_ago, expected):
    assert sorted(held(history["ann"], days_ago)) == sorted(expected)


@pytest.mark.parametrize(
    ("days_ago", "expected"),
    [
        (10, []),
        (9, [("ben", "View ledger")]),
        (6, [("ben", "Approve payment"), ("ben", "View ledger")]),
        (4, [("ben", "Approve payment"), ("ben", "View ledger")]),
        (3, [("ben", "Approve payment"), ("ben", "View ledger"), ("shared", "Approve payment")]),
        (0, [("ben", "Approve payment"), ("ben", "View ledger"), ("shared", "Approve payment")]),
    ],
)
def test_what_ben_held_on_each_day(history, days_ago, expected):
    assert sorted(held(history["ben"], days_ago)) == sorted(expected)


def test_held_access_reports_the_identity_and_grant_date_as_they_stood(history):
    [gone] = [
        h
        for h in entitlement_holders_on(entitlement=history["approve"], day=day(5))
        if h.account_id == "gone"
    ]
    assert (gone.identity_id, gone.identity, gone.application, gone.entitlement) == (
        history["ann"].pk,
        "Ann",
        "ERP",
        "Approve payment",
    )
    assert gone.since == noon(9)


def test_a_change_at_midnight_belongs_to_the_next_day(db):
    erp = save_at(Application(name="ERP"), noon(10))
    entitlement = save_at(Entitlement(application=erp, entitlement_id="X", name="X"), noon(10))
    account = save_at(Account(application=erp, account_id="a", first_seen=noon(10)), noon(10))
    last_second_of_d5 = timezone.make_aware(dt.datetime.combine(day(5), dt.time(23, 59, 59, 999999)))
    grant = grant_at(account, entitlement, last_second_of_d5)
    midnight_after_d3 = timezone.make_aware(dt.datetime.combine(day(2), dt.time.min))
    delete_at(grant, midnight_after_d3)
    assert [bool(holders(entitlement, n)) for n in (6, 5, 4, 3, 2)] == [False, True, True, True, False]


def test_the_day_ends_at_midnight_in_the_configured_time_zone(db):
    when = lambda *args: dt.datetime(*args, tzinfo=dt.UTC)  # noqa: E731
    erp = save_at(Application(name="ERP"), when(2024, 1, 1))
    entitlement = save_at(Entitlement(application=erp, entitlement_id="X", name="X"), when(2024, 1, 1))
    account = save_at(
        Account(application=erp, account_id="a", first_seen=when(2024, 1, 1)),
        when(2024, 1, 1),
    )
    grant = grant_at(account, entitlement, when(2024, 1, 2))
    # 03:00 UTC on 11 January is still 10 January (22:00) in New York.
    delete_at(grant, when(2024, 1, 11, 3))
    jan_10 = dt.date(2024, 1, 10)
    with timezone.override(zoneinfo.ZoneInfo("UTC")):
        assert len(entitlement_holders_on(entitlement=entitlement, day=jan_10)) == 1
    with timezone.override(zoneinfo.ZoneInfo("America/New_York")):
        assert entitlement_holders_on(entitlement=entitlement, day=jan_10) == []


# --- the pages -------------------------------------------------------------------------------------------


@pytest.fixture
def auditor(client, make_user):
    client.force_login(make_user("audrey", Role.AUDITOR))
    return client


def test_access_on_page_lists_what_the_identity_held_that_day(history, auditor):
    url = reverse("entitlements:identity_access_on", args=[history["ann"].pk])
    response = auditor.get(url, {"date": day(7).isoformat()})
    assert response.status_code == 200
    assert sorted(h.account_id for h in response.context["held"]) == ["ann", "gone", "shared"]
    content = response.content.decode()
    assert "3 grants at the end of that day" in content
    assert (
        reverse("entitlements:account_detail", args=[Account.objects.get(account_id="shared").pk]) in content
    )


def test_holders_on_page_lists_who_held_the_entitlement_that_day(history, auditor):
    url = reverse("entitlements:entitlement_holders_on", args=[history["approve"].pk])
    response = auditor.get(url, {"date": day(3).isoformat()})
    assert response.status_code == 200
    assert sorted((h.account_id, h.identity) for h in response.context["held"]) == [
        ("ben", "Ben"),
        ("gone", "Ann Married"),
        ("shared", "Ben"),
    ]
    assert "3 holders at the end of that day" in response.content.decode()


@pytest.mark.parametrize("route", ["entitlements:identity_access_on", "entitlements:entitlement_holders_on"])
def test_on_date_pages_default_to_today(history, auditor, route):
    pk = history["ann"].pk if "identity" in route else history["approve"].pk
    response = auditor.get(reverse(route, args=[pk]))
    assert response.status_code == 200
    assert response.context["day"] == timezone.localdate()


@pytest.mark.parametrize("route", ["entitlements:identity_access_on", "entitlements:entitlement_holders_on"])
@pytest.mark.parametrize(
    ("value", "message"),
    [
        ((timezone.localdate() + dt.timedelta(days=1)).isoformat(), "Choose today or a past date."),
        ("2031-02-30", "Enter a valid date."),
        ("last tuesday", "Enter a valid date."),
        ("", "This field is required."),
    ],
    ids=["future", "no such day", "not a date", "empty"],
)
def test_on_date_pages_refuse_a_future_or_malformed_date_naming_the_field(
    history, auditor, route, value, message
):
    pk = history["ann"].pk if "identity" in route else history["approve"].pk
    response = auditor.get(reverse(route, args=[pk]), {"date": value})
    assert response.status_code == 400
    assert response.context["form"].errors == {"date": [message]}
    assert response.context["held"] is None
    content = response.content.decode()
    assert message in content and 'name="date"' in content
