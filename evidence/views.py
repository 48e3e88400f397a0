"""The evidence trail and the integrity page."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from evidence import services
from evidence.filters import EvidenceEventFilter
from evidence.models import ChainVerification, EvidenceEvent
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
    context = {
        "head": chain_head(),
        "latest": verification_latest(),
        "runs": ChainVerification.objects.restrict(request.user)[:20],
        "can_verify": access.can_attempt(request.user, ChainVerification, access.ADD),
    }
    return render(request, "evidence/integrity.html", context)


@require_POST
def verification_create(request):
    access.require(request.user, ChainVerification, access.ADD)
    verification = services.verification_request(
        actor=services.Actor.for_user(request.user), user=request.user
    )
    messages.success(request, f"Verification #{verification.pk} queued.")
    return redirect("evidence:integrity")
