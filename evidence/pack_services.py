"""Requesting and building evidence packs. Each export is itself evidenced: who, what scope, the pack's hash."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from evidence.cancel import work_cancel
from evidence.models import EvidencePack
from evidence.packs import build_campaign_pack, build_period_pack, partial_path
from evidence.services import Actor, Subject, event_record
from soxgov import jobs, leases

# A second request for the same campaign by the same person within this window shows the same pack.
REUSE_WINDOW = dt.timedelta(minutes=10)


def pack_request(*, campaign, user) -> EvidencePack:
    """Queue a pack for ``campaign`` (or return the one this user asked for moments ago, unless it failed or
    was cancelled: a stuck pack is ended by the reaper or an admin, never handed out again)."""
    from evidence.tasks import pack_job

    recent = (
        EvidencePack.objects.filter(
            scope={"campaign": campaign.pk},
            requested_by=user,
            requested_at__gte=timezone.now() - REUSE_WINDOW,
        )
        .exclude(status__in=[EvidencePack.Status.FAILED, EvidencePack.Status.CANCELLED])
        .first()
    )
    if recent is not None:
        return recent
    with transaction.atomic():
        pack = EvidencePack.objects.create(
            scope={"campaign": campaign.pk},
            scope_label=f"campaign {campaign.name}",
            requested_by=user,
            requested_by_name=Actor.for_user(user).name,
            requested_at=timezone.now(),
        )
        jobs.enqueue(pack_job, pack.pk, origin=pack)
    return pack


def pack_build(*, pack_id: int) -> EvidencePack:
    """Build a queued pack (its job). Safe to call twice and after a crash at any point: only the caller that
    holds the pack's lease builds it, and a pack left building by a dead worker is built again from the start."""
    from reviews.models import Campaign

    with leases.held(leases.Kind.PACK, pack_id) as mine:
        claimed = mine and EvidencePack.objects.filter(pk=pack_id, status__in=OPEN).update(
            status=EvidencePack.Status.RUNNING, progress=0
        )
        pack = EvidencePack.objects.select_related("requested_by").get(pk=pack_id)
        if not claimed:
            return pack
        actor = Actor.for_user(pack.requested_by) if pack.requested_by else Actor.system("evidence.packs")
        out = pack_path(pack.pk)
        try:
            campaign = Campaign.objects.get(pk=pack.scope["campaign"])
            sha256 = build_campaign_pack(
                campaign,
                out,
                actor=actor,
                progress=lambda p: _progress(pack.pk, p),
                scratch=scratch_path(pack.pk),
            )
        except Exception as exc:
            _discard(pack.pk)
            if not _transient(exc):
                _finish_failed(pack, jobs.describe(exc), actor=Actor.system("evidence.packs"))
            raise
        return _finish(pack, out, sha256, actor)


OPEN = (EvidencePack.Status.QUEUED, EvidencePack.Status.RUNNING)


def pack_path(pack_id: int) -> Path:
    return Path(settings.SOXGOV_PACK_DIR) / f"evidence-pack-{pack_id}.zip"


def scratch_path(pack_id: int) -> Path:
    return Path(settings.SOXGOV_PACK_DIR) / ".scratch" / f"pack-{pack_id}"


def _discard(pack_id: int) -> None:
    """Remove what a build of this pack left behind (its scratch folder and unfinished zip)."""
    shutil.rmtree(scratch_path(pack_id), ignore_errors=True)
    partial_path(pack_path(pack_id)).unlink(missing_ok=True)


def _transient(exc: Exception) -> bool:
    from django.db import InterfaceError, OperationalError

    return connection.vendor == "postgresql" and isinstance(exc, InterfaceError | OperationalError)


def _finish_failed(pack: EvidencePack, cause: str, *, actor: Actor) -> None:
    with transaction.atomic():
        ended = EvidencePack.objects.filter(pk=pack.pk, status__in=OPEN).update(
            status=EvidencePack.Status.FAILED, error=cause[:2000], finished_at=timezone.now()
        )
        if ended:
            event_record(
                actor=actor, action="evidence.pack.failed", subject=pack, payload={"error": cause[:500]}
            )


def pack_give_up(job, cause: str) -> None:
    """The pack's job was given up (its attempts used up): the pack fails with the cause, once."""
    pack = EvidencePack.objects.filter(pk=job.args[0]).first()
    if pack is not None:
        _discard(pack.pk)
        _finish_failed(pack, cause, actor=Actor.system("evidence.packs"))


def pack_cancel(*, pack_id: int, user, reason: str) -> EvidencePack:
    """Cancel a queued or building pack (an admin; evidenced). A build still running on a live worker finds the
    pack cancelled when it ends, and its file is removed."""
    pack, previous = work_cancel(
        model=EvidencePack,
        pk=pack_id,
        user=user,
        reason=reason,
        open_statuses=OPEN,
        open_label="a queued or building pack",
        action="evidence.pack.cancelled",
    )
    if previous == EvidencePack.Status.QUEUED:
        _discard(pack.pk)
    return pack


@jobs.sweeper
def sweep_leftovers() -> int:
    """Remove scratch folders and unfinished zips of packs that are not being built by a live worker (a worker
    killed mid-build leaves them; the reaper calls this)."""
    removed = 0
    root = Path(settings.SOXGOV_PACK_DIR)
    found = {}
    for path in (root / ".scratch").glob("pack-*"):
        found.setdefault(path.name.removeprefix("pack-"), []).append(path)
    for path in root.glob(".evidence-pack-*.zip.part"):
        found.setdefault(path.name.removeprefix(".evidence-pack-").removesuffix(".zip.part"), []).append(path)
    for pack_id, paths in found.items():
        if not pack_id.isdigit() or _building(int(pack_id)):
            continue
        for path in paths:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed += 1
    return removed


def _building(pack_id: int) -> bool:
    """Whether a live worker is building the pack: it is running and its lease is held."""
    if not EvidencePack.objects.filter(pk=pack_id, status=EvidencePack.Status.RUNNING).exists():
        return False
    if connection.vendor != "postgresql":
        return True  # no leases to ask; the pack's job is given up or finished first
    with leases.held(leases.Kind.PACK, pack_id) as mine:
        return not mine


def pack_write(*, out: Path, actor: Actor, campaign=None, period=None) -> str:
    """The shell's way (export_evidence_pack): build straight to ``out`` and evidence it. ``period`` is
    (since, until, application ids)."""
    if campaign is not None:
        sha256 = build_campaign_pack(campaign, out, actor=actor)
        scope, subject = {"campaign": campaign.pk}, campaign
    else:
        since, until, application_ids = period
        sha256 = build_period_pack(since, until, application_ids, out, actor=actor)
        scope = {"since": since, "until": until, "applications": sorted(application_ids)}
        subject = Subject("evidence.pack", "period", f"{since} to {until}")
    with transaction.atomic():
        event_record(
            actor=actor,
            action="evidence.pack.exported",
            subject=subject,
            payload={"scope": scope, "sha256": sha256, "bytes": out.stat().st_size, "to": str(out)},
        )
    return sha256


def _progress(pack_id: int, percent: int) -> None:
    EvidencePack.objects.filter(pk=pack_id).update(progress=percent)


def _finish(pack: EvidencePack, out: Path, sha256: str, actor: Actor) -> EvidencePack:
    with transaction.atomic():
        done = EvidencePack.objects.filter(pk=pack.pk, status=EvidencePack.Status.RUNNING).update(
            status=EvidencePack.Status.DONE,
            progress=100,
            path=str(out),
            sha256=sha256,
            size=out.stat().st_size,
            finished_at=timezone.now(),
        )
        pack.refresh_from_db()
        if not done:  # cancelled while it was being built
            out.unlink(missing_ok=True)
            return pack
        event_record(
            actor=actor,
            action="evidence.pack.exported",
            subject=pack,
            payload={"scope": pack.scope, "sha256": sha256, "bytes": pack.size},
        )
    return pack
