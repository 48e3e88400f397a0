"""Evidence packs and chain verifications whose worker is killed (-9) while it builds or verifies: the work is
taken over and ends exactly once (one evidence.pack.exported, one evidence.chain.verified)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from evidence.pack_services import pack_request
from evidence.services import Actor, verification_request
from reviews.models import Campaign
from tests.faults.harness import wait_sessions_gone
from tests.faults.outcomes import assert_pack_exported_once, assert_verified_once, reap

pytestmark = [pytest.mark.postgres, pytest.mark.worker]


@pytest.fixture
def campaign(company):
    """A launched campaign over the company's ERP access (its launch is evidenced: a pack has a chain to cover)."""
    from reviews.services import campaign_launch

    erp = company.applications["ERP"]
    today = timezone.localdate()
    alice = company.admin()
    campaign = Campaign.objects.create(
        name="Q4 access review",
        start_on=today,
        due_on=today + dt.timedelta(days=14),
        created_by=alice,
        fallback_reviewer=alice,
    )
    campaign.applications.set([erp])
    return campaign_launch(campaign_id=campaign.pk, user=alice)


def kill(worker, workers, paused, how: str) -> None:
    """kill -9 of the pool child that is paused, or of the main process (and its children), then wait until
    PostgreSQL let go of the dead sessions; a killed main process is replaced by a fresh worker."""
    if how == "child":
        worker.kill_child(paused["pid"])
        wait_sessions_gone(worker.session_names(paused["pid"]), workers.explain)
    else:
        worker.kill_main()
        wait_sessions_gone(worker.session_names(), workers.explain)
        workers.fresh()


@pytest.mark.parametrize("how", ["child", "main"])
def test_a_pack_whose_worker_is_killed_while_it_builds_is_exported_once(
    how, campaign, worker, workers, faults
):
    faults.arm("pack-progress")
    pack = pack_request(campaign=campaign, user=campaign.created_by)
    paused = faults.reached("pack-progress", worker)

    kill(worker, workers, paused, how)
    reap()

    assert_pack_exported_once(pack, workers)


@pytest.mark.parametrize("how", ["child", "main"])
def test_a_verification_whose_worker_is_killed_while_it_verifies_ends_once(
    how, campaign, worker, workers, faults
):
    faults.arm("verify")
    verification = verification_request(actor=Actor.system("fault-tests"))
    paused = faults.reached("verify", worker)

    kill(worker, workers, paused, how)
    reap()

    assert_verified_once(verification, workers)
