"""Samples for auditors: the list with the "Draw a sample" form, a sample's page (parameters, verification, the
items) and its export. Rows come from soxgov.access.restrict; drawing goes through reviews.samples, which checks
again."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render

from evidence.selectors import events_visible
from reviews import sample_export, samples
from reviews.filters import SampleFilter
from reviews.forms import SampleDrawForm
from reviews.models import AuditSample
from soxgov import access
from soxgov.views import ObjectListView, restricted_object

# The filter form on the same page has a campaign and a kind too: distinct ids, so each label has its own input.
DRAW_IDS = "draw_%s"


class SampleListView(ObjectListView):
    model = AuditSample
    filterset_class = SampleFilter
    ordering = ("-drawn_at", "-id")
    select_related = ("campaign",)
    template_name = "reviews/sample_list.html"
    title = "Samples for auditors"

    def extra_context(self, request, filterset) -> dict:
        if not access.can_attempt(request.user, AuditSample, access.ADD):
            return {}
        initial = {"campaign": request.GET.get("campaign") or None, "kind": AuditSample.Kind.DECISIONS}
        form = getattr(request, "draw_form", None) or SampleDrawForm(initial=initial, auto_id=DRAW_IDS)
        return {"draw_form": form}

    def post(self, request):
        access.require(request.user, AuditSample, access.ADD)
        form = SampleDrawForm(request.POST, auto_id=DRAW_IDS)
        if form.is_valid():
            data = form.cleaned_data
            campaign = data["campaign"]
            try:
                sample = samples.sample_draw(
                    user=request.user,
                    kind=data["kind"],
                    seed=data["seed"],
                    campaign_id=campaign.pk if campaign else None,
                    since=data["since"],
                    until=data["until"],
                    size=data["size"],
                    stratified=data["stratified"],
                )
            except ValidationError as exc:
                form.add_error(None, exc)  # a refusal naming a field shows beside that field
            else:
                messages.success(request, f"Drawn: {len(sample.selected)} of {sample.population_count}.")
                return redirect(sample)
        request.draw_form = form
        response = self.get(request)
        response.status_code = 400
        return response


def sample_detail(request, pk):
    sample = restricted_object(request, AuditSample, pk, select_related=("campaign",))
    items, _ = sample_export.item_sheet(sample)
    context = {
        "sample": sample,
        "check": samples.sample_verify(sample),
        "items": items,
        "events": events_visible(request.user, sample, limit=20),
    }
    return render(request, "reviews/sample_detail.html", context)


def sample_export_view(request, pk):
    """The XLSX (``?format=csv``: the items' sheet as CSV). Reading it changes nothing, so it is not evidenced;
    the draw was."""
    sample = restricted_object(request, AuditSample, pk, select_related=("campaign",))
    if request.GET.get("format") == "csv":
        return sample_export.csv_response(sample)
    return sample_export.xlsx_response(sample)
