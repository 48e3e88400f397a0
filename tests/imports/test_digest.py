"""The change-set digest: PostgreSQL's in-database computation agrees with the Python one, and it moves."""

import pytest
from django.db import connection

from entitlements.imports import digest
from entitlements.models import Account, Entitlement, Grant


def _marks():
    return dict.fromkeys((Entitlement, Account, Grant), 0)


def test_the_digest_changes_when_a_history_row_of_the_run_changes(company):
    grant = Grant.objects.first()
    reason = "connector run 999"
    Grant.history.filter(id=grant.pk).update(history_change_reason=reason)
    before = digest.changes_digest(reason, _marks())
    Grant.history.filter(id=grant.pk).update(first_seen=grant.first_seen.replace(year=2001))
    assert digest.changes_digest(reason, _marks()) != before


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the in-database digest exists on PostgreSQL only"
)
def test_the_database_digest_equals_the_python_digest(company):
    reason = "connector run 998"
    Account.history.update(history_change_reason=reason)
    Grant.history.update(history_change_reason=reason)
    Account.history.filter(id=Account.objects.first().pk).update(privileged=True, name="")
    assert digest.changes_digest(reason, _marks()) == digest.digest_python(reason, _marks())
    assert digest.changes_digest("no such run", _marks()) == digest.digest_python("no such run", _marks())
