"""Requesting and building evidence packs. Each export is itself evidenced: who, what scope, the pack's hash."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from evidence.models import EvidencePack
from evidence.packs import build_campaign_pack, build_period_pack
from evidence.services import Actor, Subject, event_record

# A second request for the same campaign by the same person within this window shows the same pack.
REUSE_WINDOW = dt.timedelta(minutes=10)


def pack_request(*, campaign, user) -> EvidencePack:
    """Queue a pack for ``campaign`` (or return the one this user asked for moments ago)."""
    from evidence.tasks import build_pack

    recent = (
        EvidencePack.objects.filter(
            scope={"campaign": campaign.pk},
            requested_by=user,
            requested_at__gte=timezone.now() - REUSE_WINDOW,
        )
        .exclude(status=EvidencePack.Status.FAILED)
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
        transaction.on_commit(lambda: build_pack.delay(pack.pk))
    return pack


def pack_build(*, pack_id: int) -> EvidencePack:
    """Build a queued pack (the Celery task). Safe to call twice: only the caller that claims it builds."""
    from reviews.models import Campaign

    claimed = EvidencePack.objects.filter(pk=pack_id, status=EvidencePack.Status.QUEUED).update(
        status=EvidencePack.Status.RUNNING
    )
    pack = EvidencePack.objects.select_related("requested_by").get(pk=pack_id)
    if not claimed:
        return pack
    actor = Actor.for_user(pack.requested_by) if pack.requested_by else Actor.system("evidence.packs")
    out = Path(settings.SOXGOV_PACK_DIR) / f"evidence-pack-{pack.pk}.zip"
    try:
        campaign = Campaign.objects.get(pk=pack.scope["campaign"])
        sha256 = build_campaign_pack(campaign, out, actor=actor, progress=lambda p: _progress(pack.pk, p))
    except Exception as exc:
        EvidencePack.objects.filter(pk=pack.pk).update(
            status=EvidencePack.Status.FAILED, error=repr(exc)[:2000], finished_at=timezone.now()
        )
        raise
    return _finish(pack, out, sha256, actor)


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
        EvidencePack.objects.filter(pk=pack.pk).update(
            status=EvidencePack.Status.DONE,
            progress=100,
            path=str(out),
            sha256=sha256,
            size=out.stat().st_size,
            finished_at=timezone.now(),
        )
        pack.refresh_from_db()
        event_record(
            actor=actor,
            action="evidence.pack.exported",
            subject=pack,
            payload={"scope": pack.scope, "sha256": sha256, "bytes": pack.size},
        )
    return pack
