"""The evidence trail and the integrity page."""

from pathlib import Path

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from evidence import pack_services, packs, services
from evidence.filters import EvidenceEventFilter
from evidence.models import ChainVerification, Checkpoint, EvidenceEvent, EvidencePack, SigningKey
from evidence.selectors import chain_head, verification_latest
from soxgov import access
from soxgov.views import ObjectListView, restricted_object


class EventListView(ObjectListView):
    model = EvidenceEvent
    filterset_class = EvidenceEventFilter
    ordering = ("-sequence",)
    template_name = "evidence/event_list.html"
    title = "Evidence trail"


def event_detail(request, sequence):
    event = restricted_object(request, EvidenceEvent, sequence)
    visible = EvidenceEvent.objects.restrict(request.user)
    context = {
        "event": event,
        "previous": visible.filter(sequence=event.sequence - 1).first(),
        "next": visible.filter(sequence=event.sequence + 1).first(),
    }
    return render(request, "evidence/event_detail.html", context)


@require_http_methods(["GET", "HEAD"])
def integrity(request):
    access.require(request.user, ChainVerification, access.VIEW)
    keys = list(SigningKey.objects.restrict(request.user))
    context = {
        "head": chain_head(),
        "latest": verification_latest(),
        "runs": ChainVerification.objects.restrict(request.user)[:20],
        "can_verify": access.can_attempt(request.user, ChainVerification, access.ADD),
        "checkpoint": Checkpoint.objects.first(),
        "signing_key": next((key for key in keys if key.is_current), None),
        "retired_keys": [key for key in keys if not key.is_current],
    }
    return render(request, "evidence/integrity.html", context)


@require_http_methods(["GET", "HEAD"])
def pack_verifier(request):
    """The offline verifier with this SOXGov's keys and module hashes built in, from SOXGov itself rather than
    from a pack: an auditor who runs this copy is not relying on anything the pack brought."""
    access.require(request.user, ChainVerification, access.VIEW)
    response = HttpResponse(packs.verifier_source(), content_type="text/x-python; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="verify_pack.py"'
    return response


@require_POST
def verification_create(request):
    access.require(request.user, ChainVerification, access.ADD)
    verification = services.verification_request(
        actor=services.Actor.for_user(request.user), user=request.user
    )
    messages.success(request, f"Verification #{verification.pk} queued.")
    return redirect("evidence:integrity")


# --- Evidence packs ----------------------------------------------------------------------------------------


def pack_list(request):
    access.require(request.user, EvidencePack, access.VIEW)
    rows = EvidencePack.objects.restrict(request.user)[:50]
    return render(request, "evidence/pack_list.html", {"packs": rows, "title": "Evidence packs"})


@require_POST
def pack_for_campaign(request, campaign_id):
    """Ask for a campaign's pack: a POST, as it starts work (no GET changes anything), but one that only reads
    evidence (the export itself is evidenced), so whoever may view packs may ask, the read-only auditor too;
    asking twice within minutes shows the same pack."""
    from reviews.models import Campaign

    access.require(request.user, EvidencePack, access.VIEW)
    campaign = restricted_object(request, Campaign, campaign_id)
    pack = pack_services.pack_request(campaign=campaign, user=request.user)
    return redirect(pack)


def pack_detail(request, pk):
    pack = restricted_object(request, EvidencePack, pk)
    template = "evidence/pack_progress.html" if request.htmx else "evidence/pack_detail.html"
    may_cancel = pack.status in pack_services.OPEN and access.can_attempt(
        request.user, EvidencePack, access.CHANGE
    )
    return render(request, template, {"pack": pack, "may_cancel": may_cancel})


@require_POST
def pack_cancel(request, pk):
    pack = restricted_object(request, EvidencePack, pk)
    try:
        pack_services.pack_cancel(
            pack_id=pack.pk, user=request.user, reason=request.POST.get("reason", "")[:2000]
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Evidence pack #{pack.pk} cancelled.")
    return redirect(pack)


def pack_download(request, pk):
    return pack_file_response(restricted_object(request, EvidencePack, pk))


def pack_file_response(pack: EvidencePack) -> FileResponse:
    """The built pack's ZIP as a download (also for the API); 404 until it is built."""
    if pack.status != EvidencePack.Status.DONE or not Path(pack.path).is_file():
        raise Http404("the pack is not ready")
    return FileResponse(Path(pack.path).open("rb"), as_attachment=True, filename=Path(pack.path).name)
