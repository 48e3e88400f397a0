"""Two people acting on the same review item at once, on PostgreSQL: one decision wins, the other is told, and
nothing is lost. Real threads, each with its own connection and committed transaction."""

import threading

import pytest
from django.db import connection

from reviews import services
from reviews.models import Decision, ReviewItem

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="concurrent writers need PostgreSQL; SQLite serialises writers"
)


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_decisions_on_one_item_one_wins_the_other_gets_a_conflict(
    committed_db, people, company, make_campaign
):
    campaign = make_campaign(applications=list(company["applications"].values()))
    services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])
    item = ReviewItem.objects.get(campaign=campaign, account_key="bob")
    rita = people["rita"]
    # Rita in two browser tabs: certify in one, revoke in the other, released together.
    barrier = threading.Barrier(2, timeout=30)
    outcomes: dict[str, object] = {}

    def act(certify: bool) -> None:
        name = "certify" if certify else "revoke"
        try:
            barrier.wait()
            services.decide(item_ids=[item.pk], user=rita, certify=certify, comment=f"{name} tab")
            outcomes[name] = "decided"
        except services.Conflict as exc:
            outcomes[name] = exc
        except BaseException as exc:  # anything else fails the test below
            outcomes[name] = repr(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=act, args=(flag,)) for flag in (True, False)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    decided = [name for name, outcome in outcomes.items() if outcome == "decided"]
    refused = [outcome for outcome in outcomes.values() if isinstance(outcome, services.Conflict)]
    assert len(decided) == 1 and len(refused) == 1, outcomes
    winner = decided[0]
    item.refresh_from_db()
    assert item.status == ("certified" if winner == "certify" else "revoked")
    assert item.comment == f"{winner} tab"
    assert Decision.objects.filter(item=item).count() == 1
    assert "already decided" in str(refused[0])
