"""Packs that always end: written under a temporary name, rebuilt after a dead worker, leftovers swept by the
reaper, cancellable by an admin and never handed out again once stuck or cancelled."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from evidence import pack_services
from evidence.models import EvidenceEvent, EvidencePack
from evidence.packs import partial_path
from soxgov import jobs

pytestmark = pytest.mark.usefixtures("pack_keys_trusted")


@pytest.fixture
def campaign(people, make_campaign):
    return make_campaign(name="Q4 ERP")


@pytest.fixture
def pack_dir(tmp_path, settings):
    settings.SOXGOV_PACK_DIR = tmp_path / "packs"
    return settings.SOXGOV_PACK_DIR


def _leftovers(pack_id: int) -> list:
    return [
        path
        for path in (pack_services.scratch_path(pack_id), partial_path(pack_services.pack_path(pack_id)))
        if path.exists()
    ]


def test_a_built_pack_leaves_only_the_finished_zip(
    campaign, people, pack_dir, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        pack = pack_services.pack_request(campaign=campaign, user=people["audrey"])
    pack.refresh_from_db()
    assert pack.status == "done"
    assert sorted(p.name for p in pack_dir.iterdir()) == [".scratch", f"evidence-pack-{pack.pk}.zip"]
    assert _leftovers(pack.pk) == []
    assert jobs.of(pack).get().status == "done"


def test_a_pack_left_building_by_a_dead_worker_is_built_again_and_exported_once(campaign, people, pack_dir):
    pack = pack_services.pack_request(campaign=campaign, user=people["audrey"])  # not sent: no commit here
    # What a worker killed while zipping leaves: the pack claimed, a scratch folder and half a zip.
    EvidencePack.objects.filter(pk=pack.pk).update(status="running", progress=90)
    pack_services.scratch_path(pack.pk).mkdir(parents=True)
    (pack_services.scratch_path(pack.pk) / "half.csv").write_text("a,b\n")
    partial_path(pack_services.pack_path(pack.pk)).write_bytes(b"PK\x03\x04 truncated")

    rebuilt = pack_services.pack_build(pack_id=pack.pk)

    assert rebuilt.status == "done"
    assert _leftovers(pack.pk) == []
    assert EvidenceEvent.objects.filter(action="evidence.pack.exported", subject_id=str(pack.pk)).count() == 1
    assert pack_services.pack_build(pack_id=pack.pk).status == "done"
    assert EvidenceEvent.objects.filter(action="evidence.pack.exported", subject_id=str(pack.pk)).count() == 1


def test_the_reaper_sweeps_leftovers_of_packs_nobody_is_building(campaign, people, pack_dir):
    failed = EvidencePack.objects.create(
        scope={"campaign": campaign.pk},
        scope_label="x",
        requested_by_name="audrey",
        requested_at=campaign.created_at,
        status="failed",
    )
    pack_services.scratch_path(failed.pk).mkdir(parents=True)
    partial_path(pack_services.pack_path(failed.pk)).write_bytes(b"PK")

    assert jobs.reap()["swept"] == 2
    assert _leftovers(failed.pk) == []


def test_an_admin_cancels_a_stuck_pack_which_is_then_not_handed_out_again(campaign, people, pack_dir):
    pack = pack_services.pack_request(campaign=campaign, user=people["audrey"])
    EvidencePack.objects.filter(pk=pack.pk).update(status="running")
    with pytest.raises(PermissionDenied):
        pack_services.pack_cancel(pack_id=pack.pk, user=people["audrey"], reason="stuck")
    with pytest.raises(ValidationError, match="Say why"):
        pack_services.pack_cancel(pack_id=pack.pk, user=people["alice"], reason="")

    cancelled = pack_services.pack_cancel(pack_id=pack.pk, user=people["alice"], reason="stuck for an hour")

    assert cancelled.status == "cancelled" and cancelled.error.endswith("stuck for an hour")
    event = EvidenceEvent.objects.get(action="evidence.pack.cancelled")
    assert (event.actor_user_id, event.payload_data["status_before"]) == (people["alice"].pk, "running")
    assert jobs.of(pack).get().status == "cancelled"
    assert pack_services.pack_build(pack_id=pack.pk).status == "cancelled"  # a late delivery builds nothing
    again = pack_services.pack_request(campaign=campaign, user=people["audrey"])
    assert again.pk != pack.pk and again.status == "queued"
    with pytest.raises(ValidationError, match="cancelled; only a queued or building pack"):
        pack_services.pack_cancel(pack_id=pack.pk, user=people["alice"], reason="again")


def test_a_pack_whose_attempts_are_used_up_fails_once_with_the_cause(campaign, people, pack_dir):
    pack = pack_services.pack_request(campaign=campaign, user=people["audrey"])
    job = jobs.of(pack).get()
    from soxgov.models import Job

    Job.objects.filter(pk=job.pk).update(status="running", attempts=3, started_at=None)
    EvidencePack.objects.filter(pk=pack.pk).update(status="running")

    assert jobs.reap()["given_up"] == 1

    pack.refresh_from_db()
    assert pack.status == "failed"
    assert pack.error == "given up after 3 attempt(s); its worker was lost during attempt 3"
    assert EvidenceEvent.objects.filter(action="evidence.pack.failed", subject_id=str(pack.pk)).count() == 1
