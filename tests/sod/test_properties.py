"""The engine against a brute-force evaluation of the definition, on random identities, grants and rules."""

import pytest
from django.db import transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from entitlements.models import Account, Application, Entitlement, Grant, Identity
from sod.engine import Scope, detect
from sod.models import Rule, RuleMember, RuleSide

ENTITLEMENTS = 8
IDENTITIES = 5


class Rollback(Exception):
    pass


accounts = st.lists(
    st.tuples(
        st.integers(0, 2),  # application
        st.one_of(st.none(), st.integers(0, IDENTITIES - 1)),  # identity, or an orphan
        st.frozensets(st.integers(0, ENTITLEMENTS - 1), max_size=4),  # entitlements held
    ),
    max_size=12,
)
rules = st.lists(
    st.tuples(
        st.lists(
            st.frozensets(st.integers(0, ENTITLEMENTS - 1), min_size=1, max_size=3), min_size=2, max_size=3
        ),
        st.booleans(),  # enabled
    ),
    min_size=1,
    max_size=4,
)


def brute_force(account_rows, rule_rows) -> set:
    """The definition, literally: a holder violates a rule when every side holds an entitlement it has."""
    holdings: dict = {}
    for n, (_, identity, held) in enumerate(account_rows):
        holder = ("i", identity) if identity is not None else ("a", n)
        holdings.setdefault(holder, set()).update(held)
    found = set()
    for r, (sides, enabled) in enumerate(rule_rows):
        if not enabled:
            continue
        for holder, held in holdings.items():
            if all(side & held for side in sides):
                found.add((r, holder))
    return found


def build(account_rows, rule_rows):
    now = timezone.now()
    apps = [Application.objects.create(name=f"P{n}") for n in range(3)]
    # Entitlement e lives in application e % 3; an account holds only those of its own application, so
    # rules span applications the way real ones do.
    ents = [
        Entitlement.objects.create(application=apps[e % 3], entitlement_id=f"E{e}", name=f"E{e}")
        for e in range(ENTITLEMENTS)
    ]
    people = [Identity.objects.create(employee_id=f"P{i}", display_name=f"P{i}") for i in range(IDENTITIES)]
    normalised, account_objs = [], []
    for n, (app, identity, held) in enumerate(account_rows):
        own = frozenset(e for e in held if e % 3 == app)
        normalised.append((app, identity, own))
        account = Account.objects.create(
            application=apps[app],
            account_id=f"a{n}",
            identity=people[identity] if identity is not None else None,
            first_seen=now,
        )
        account_objs.append(account)
        Grant.objects.bulk_create(Grant(account=account, entitlement=ents[e], first_seen=now) for e in own)
    rule_objs = []
    normalised_rules = []
    for r, (sides, enabled) in enumerate(rule_rows):
        # An entitlement may be on one side of a rule only: keep its first side.
        seen, clean = set(), []
        for side in sides:
            side = frozenset(side - seen)
            seen |= side
            if side:
                clean.append(side)
        if len(clean) < 2:
            clean = []
        rule = Rule.objects.create(code=f"R{r}", name=f"R{r}", enabled=enabled, side_count=len(clean))
        for position, side in enumerate(clean):
            side_obj = RuleSide.objects.create(rule=rule, name=f"s{position}", position=position)
            RuleMember.objects.bulk_create(
                RuleMember(rule=rule, side=side_obj, entitlement=ents[e]) for e in side
            )
        rule_objs.append(rule)
        normalised_rules.append((clean, enabled and bool(clean)))
    return normalised, normalised_rules, people, account_objs, rule_objs


def as_keys(expected, people, account_objs, rule_objs) -> set:
    return {
        (rule_objs[r].pk, people[h[1]].pk, None)
        if h[0] == "i"
        else (rule_objs[r].pk, None, account_objs[h[1]].pk)
        for r, h in expected
    }


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(account_rows=accounts, rule_rows=rules, subset=st.frozensets(st.integers(0, IDENTITIES - 1)))
def test_the_engine_finds_exactly_what_the_definition_says(account_rows, rule_rows, subset):
    try:
        with transaction.atomic():
            normalised, normalised_rules, people, account_objs, rule_objs = build(account_rows, rule_rows)
            expected = as_keys(brute_force(normalised, normalised_rules), people, account_objs, rule_objs)

            assert detect(Scope.everything()) == expected

            # An incremental check of some identities finds exactly their part of the full answer.
            ids = [people[i].pk for i in subset]
            assert detect(Scope(identity_ids=ids, account_ids=())) == {k for k in expected if k[1] in ids}
            raise Rollback
    except Rollback:
        pass
