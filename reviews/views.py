"""Campaign pages (admins prepare, preview, launch, monitor and close) and the reviewer's "My reviews".

Rows come from soxgov.access.restrict; "My reviews" further narrows to the items routed to the signed-in user,
whatever their role. Writes go through reviews.services, which checks again.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Q
from django.http import QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from evidence.selectors import events_visible
from evidence.services import Actor
from reviews import changes, exports, recommendations, remediation, selectors, services, stamps
from reviews.campaign_drafts import campaign_save
from reviews.filters import CampaignFilter, RemediationFilter, ReviewItemFilter
from reviews.forms import (
    CampaignForm,
    DecisionChangeForm,
    DecisionForm,
    DelegateForm,
    ManualCloseForm,
    RemediationUpdateForm,
)
from reviews.models import Campaign, Decision, Notification, RemediationTask, ReviewItem, SignOff
from soxgov import access
from soxgov.views import ObjectListView, restricted_object


class CampaignListView(ObjectListView):
    model = Campaign
    filterset_class = CampaignFilter
    ordering = ("-created_at", "-id")
    template_name = "reviews/campaign_list.html"
    title = "Review campaigns"


def campaign_detail(request, pk):
    campaign = restricted_object(request, Campaign, pk, select_related=("fallback_reviewer", "created_by"))
    context = {
        "campaign": campaign,
        # Everyone's progress is for admins, control owners and auditors; a reviewer sees their own in My reviews.
        "monitor": selectors.campaign_monitor(campaign)
        if campaign.status != Campaign.Status.DRAFT and _sees_everyone(request.user)
        else None,
        "events": events_visible(request.user, campaign, limit=30),
        "may_manage": access.can_attempt(request.user, Campaign, access.CHANGE),
        "today": timezone.localdate(),
    }
    if context["monitor"] is not None:
        context["how_reviewed"] = stamps.reviewer_statistics(campaign)
        context["findings"] = stamps.campaign_findings(campaign)
        context["stamp_fast_seconds"] = settings.SOXGOV_STAMP_FAST_SECONDS
    return render(request, "reviews/campaign_detail.html", context)


@require_POST
def campaign_stamps(request, pk):
    """Check the reviewers of a campaign for rubber stamps now (sign-off and close also do)."""
    access.require(request.user, Campaign, access.CHANGE)
    campaign = get_object_or_404(Campaign.objects.restrict(request.user, access.CHANGE), pk=pk)
    opened = stamps.findings_raise(campaign_id=campaign.pk, actor=Actor.for_user(request.user))
    messages.success(request, f"Checked: {len(opened)} new finding(s) opened as control exceptions.")
    return redirect(campaign)


def intelligence(request):
    """For auditors (and everyone): what each recommendation, statistic and rubber-stamp rule means, with the
    thresholds in force."""
    access.require(request.user, ReviewItem, access.VIEW)
    return render(request, "reviews/intelligence.html", {"settings": _intelligence_settings()})


def _intelligence_settings() -> dict:
    names = [name for name in dir(settings) if name.startswith(("SOXGOV_RECOMMEND_", "SOXGOV_STAMP_"))]
    return {name: getattr(settings, name) for name in [*names, "SOXGOV_DORMANT_DAYS"]}


def _sees_everyone(user) -> bool:
    from soxgov.roles import user_roles

    return user.is_superuser or bool(user_roles(user) & access.FULL_SCOPE_ROLES)


@require_http_methods(["GET", "POST"])
def campaign_edit(request, pk=None):
    campaign = None
    if pk is None:
        access.require(request.user, Campaign, access.ADD)
    else:
        access.require(request.user, Campaign, access.CHANGE)
        campaign = get_object_or_404(Campaign.objects.restrict(request.user, access.CHANGE), pk=pk)
        if campaign.status != Campaign.Status.DRAFT:
            messages.error(request, "Only a draft campaign can be changed.")
            return redirect(campaign)
    form = CampaignForm(request.POST or None, instance=campaign)
    if request.method == "POST" and form.is_valid():
        try:
            saved = campaign_save(
                user=request.user, campaign_id=campaign.pk if campaign else None, **form.cleaned_data
            )
        except ValidationError as exc:
            form.add_error(None, exc)  # a refusal naming a field shows beside that field
        else:
            messages.success(request, "Campaign saved as a draft. Preview it before launch.")
            return redirect("reviews:campaign_preview", pk=saved.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "reviews/campaign_form.html", {"form": form, "campaign": campaign}, status=status)


def campaign_preview(request, pk):
    access.require(request.user, Campaign, access.CHANGE)
    campaign = get_object_or_404(Campaign.objects.restrict(request.user, access.CHANGE), pk=pk)
    preview = services.campaign_preview(campaign) if campaign.status == Campaign.Status.DRAFT else None
    flags = [(ReviewItem.FLAG_LABELS[flag], n) for flag, n in preview.flagged.items()] if preview else []
    return render(
        request, "reviews/campaign_preview.html", {"campaign": campaign, "preview": preview, "flags": flags}
    )


@require_POST
def campaign_launch(request, pk):
    access.require(request.user, Campaign, access.CHANGE)
    campaign = get_object_or_404(Campaign.objects.restrict(request.user, access.CHANGE), pk=pk)
    try:
        campaign = services.campaign_launch(campaign_id=campaign.pk, user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Launched: {campaign.item_count} items routed to their reviewers.")
    return redirect(campaign)


@require_POST
def campaign_close(request, pk):
    access.require(request.user, Campaign, access.CHANGE)
    campaign = get_object_or_404(Campaign.objects.restrict(request.user, access.CHANGE), pk=pk)
    try:
        services.campaign_close(campaign_id=campaign.pk, user=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Campaign closed.")
    return redirect(campaign)


class MyReviewsView(ObjectListView):
    """The items routed to me, grouped by campaign and person; bulk decisions; sign-off."""

    model = ReviewItem
    filterset_class = ReviewItemFilter
    ordering = ("campaign_id", "identity_name", "id")
    template_name = "reviews/my_reviews.html"
    title = "My reviews"

    def get_queryset(self, request):
        queryset = super().get_queryset(request).filter(reviewer=request.user)
        # Joined, not fetched per row: who the person is (title, manager, status) and why the item is mine.
        return queryset.select_related(
            "campaign", "application__owner", "identity__manager", "identity__owner"
        )

    def decorate(self, request, items) -> None:
        selectors.annotate_why_yours(items)
        selectors.mark_shown(request.user, items)
        for item in items:
            item.reasons = recommendations.reasons(item)

    def get(self, request):
        if "status" not in request.GET:
            # Pending first: the work to do. (An explicit empty status shows everything.)
            query = request.GET.copy()
            query["status"] = ReviewItem.Status.PENDING
            request.GET = query
        return super().get(request)

    def extra_context(self, request, filterset) -> dict:
        # One grouped count (from the reviewer/status/campaign index) serves the progress bar, the sign-off
        # panel and the "all pending" count: a reviewer with 200k items must not pay for four scans.
        counts = selectors.my_counts(request.user)
        campaign = filterset.form.cleaned_data.get("campaign") if filterset.form.is_valid() else None
        scoped = [c for c in counts if campaign is None or c["campaign"] == campaign.pk]
        total = sum(c["total"] for c in scoped)
        pending = sum(c["pending"] for c in scoped)
        narrowed = (
            any(filterset.form.cleaned_data.get(name) for name in ("q", "flag", "application", "identity"))
            if filterset.form.is_valid()
            else True
        )
        matching = filterset.qs.filter(status=ReviewItem.Status.PENDING).count() if narrowed else pending
        return {
            "progress": {
                "total": total,
                "decided": total - pending,
                "percent": round(100 * (total - pending) / total) if total else 0,
            },
            "matching": matching,
            "sign_offs": selectors.sign_off_state(request.user, counts),
            "delegate_form": DelegateForm(),
            "attestation": settings.SOXGOV_ATTESTATION_TEXT,
            # The queue as shown (filter and page): where a decision made on it comes back to.
            "here": f"{reverse('reviews:my_reviews')}?{request.GET.urlencode()}",
            # Flagged rows a certification without a comment left undecided: still ticked, awaiting it.
            "ticked": getattr(request, "queue_ticked", set()),
            "confirm_revokes": getattr(request, "queue_confirm_revokes", False),
        }


def _back_to_queue(request):
    target = request.POST.get("next") or ""
    if target.startswith(reverse("reviews:my_reviews")) or target.startswith("/reviews/items/"):
        return redirect(target)
    return redirect("reviews:my_reviews")


def _after_decision(request):
    """Without htmx, back to the page the decision came from; with it, the queue's results in place (the same
    filter and page), carrying the messages, so nothing reloads and the script can move focus on."""
    if not request.htmx:
        return _back_to_queue(request)
    target = urlsplit(request.POST.get("next") or "")
    request.GET = QueryDict(target.query if target.path == reverse("reviews:my_reviews") else "")
    return MyReviewsView().get(request)


@require_POST
def decide(request):
    access.require(request.user, ReviewItem, access.CHANGE)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
        return _after_decision(request)
    data = form.cleaned_data
    ids = data["item"]
    if data["all_matching"] and ids:
        messages.error(
            request, "Tick rows or choose all items matching the filter, not both. Nothing was decided."
        )
        return _after_decision(request)
    if data["all_matching"]:
        ids = _all_matching_pending(request)
    certify = data["action"] == "certify"
    # Certifying in bulk what SOXGov recommends revoking asks first, naming those items (the rubber-stamp rules
    # count it: reviews/stamps.py); nothing is decided until the reviewer confirms.
    if certify and len(ids) > 1 and not request.POST.get("confirm_revokes"):
        flagged = selectors.recommended_revoke(request.user, ids)
        if flagged:
            messages.warning(request, _revoke_recommended_message(flagged))
            request.queue_ticked = set(ids)
            request.queue_confirm_revokes = True
            return _after_decision(request)
    # A certification without a comment applies to the rows that need none; the flagged ones stay ticked and
    # the reviewer is asked for the comment they need, naming them.
    held = selectors.needing_comment(request.user, ids) if certify and not data["comment"].strip() else []
    ids = [pk for pk in ids if pk not in {item.pk for item in held}]
    if ids:
        try:
            count = services.decide(item_ids=ids, user=request.user, certify=certify, comment=data["comment"])
        except (ValidationError, PermissionDenied) as exc:
            messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
        except ReviewItem.DoesNotExist:
            messages.error(request, "Some of these items do not exist or are not yours.")
        else:
            verb = "certified" if certify else "revoked"
            messages.success(request, f"{count} item{'s' if count != 1 else ''} {verb}.")
    if held:
        messages.error(request, _held_message(held))
        request.queue_ticked = {item.pk for item in held}
    return _after_decision(request)


def _revoke_recommended_message(flagged: list[ReviewItem], shown: int = 5) -> str:
    names = "; ".join(str(item) for item in flagged[:shown])
    more = f" and {len(flagged) - shown} more" if len(flagged) > shown else ""
    return (
        f"Nothing was certified: SOXGov recommends revoking {len(flagged)} of the selected items ({names}{more}). "
        'Look at them, or tick "I have looked at the items recommended for revoke" and certify again.'
    )


def _held_message(held: list[ReviewItem], shown: int = 5) -> str:
    names = "; ".join(f"{item} ({', '.join(item.comment_flag_labels)})" for item in held[:shown])
    more = f" and {len(held) - shown} more" if len(held) > shown else ""
    return (
        f"{len(held)} flagged item{'s' if len(held) != 1 else ''} not certified: {names}{more}. "
        "They stay ticked: certifying them needs a comment."
    )


def _all_matching_pending(request) -> list[int]:
    """The pending items of mine that the queue's current filter shows (sent along as ``filter``)."""
    query = QueryDict(request.POST.get("filter", ""))
    mine = ReviewItem.objects.restrict(request.user, access.CHANGE).filter(reviewer=request.user)
    filterset = ReviewItemFilter(query, queryset=mine, request=request)
    if not filterset.is_valid():
        return []
    return list(filterset.qs.filter(status=ReviewItem.Status.PENDING).values_list("pk", flat=True))


@require_POST
def delegate(request):
    access.require(request.user, ReviewItem, access.CHANGE)
    form = DelegateForm(request.POST)
    if not form.is_valid():
        messages.error(
            request, "Not delegated: " + " ".join(e for errors in form.errors.values() for e in errors)
        )
        return _back_to_queue(request)
    data = form.cleaned_data
    try:
        count = services.delegate(
            item_ids=data["item"], user=request.user, to_user=data["to_user"], reason=data["reason"]
        )
    except (ValidationError, PermissionDenied) as exc:
        messages.error(request, "Not delegated: " + " ".join(getattr(exc, "messages", [str(exc)])))
    except ReviewItem.DoesNotExist:
        messages.error(request, "Some of these items do not exist or are not yours.")
    else:
        messages.success(
            request, f"{count} item{'s' if count != 1 else ''} delegated to {data['to_user'].display_name}."
        )
        if request.POST.get("next", "").startswith("/reviews/items/"):
            return redirect("reviews:my_reviews")
    return _back_to_queue(request)


@require_POST
def sign_off(request, pk):
    access.require(request.user, SignOff, access.ADD)
    campaign = restricted_object(request, Campaign, pk)
    try:
        services.sign_off(
            campaign_id=campaign.pk, user=request.user, attested=bool(request.POST.get("attest"))
        )
    except (ValidationError, PermissionDenied) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
    else:
        messages.success(request, f"Signed off your part of {campaign.name}. Your decisions are locked.")
    return redirect(f"{reverse('reviews:my_reviews')}?campaign={campaign.pk}&status=")


def item_detail(request, pk):
    item = restricted_object(request, ReviewItem, pk, select_related=("campaign", "reviewer", "decided_by"))
    mine = item.reviewer_id == request.user.pk and not item.signed_off
    selectors.mark_shown(request.user, [item])
    item.reasons = recommendations.reasons(item)
    context = {
        "item": item,
        "context": selectors.item_context(item),
        "decisions": Decision.objects.filter(item=item).select_related("actor", "delegated_to"),
        "may_decide": mine
        and item.status == ReviewItem.Status.PENDING
        and item.campaign.status == Campaign.Status.ACTIVE,
        # The service checks again (self-review, a closed remediation task); this only decides what is shown.
        "may_change": mine
        and item.status != ReviewItem.Status.PENDING
        and item.campaign.status in changes.CHANGEABLE,
        "delegate_form": DelegateForm(),
    }
    return render(request, "reviews/item_detail.html", context)


@require_POST
def decision_change(request, pk):
    access.require(request.user, ReviewItem, access.CHANGE)
    item = restricted_object(request, ReviewItem, pk)
    form = DecisionChangeForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Not changed: choose certify or revoke.")
        return redirect(item)
    data = form.cleaned_data
    try:
        changed = changes.decision_change(
            item_id=item.pk, user=request.user, certify=data["action"] == "certify", comment=data["comment"]
        )
    except (ValidationError, PermissionDenied) as exc:
        messages.error(request, "Not changed: " + " ".join(getattr(exc, "messages", [str(exc)])))
    except ReviewItem.DoesNotExist:
        messages.error(request, "Not changed: this item is not assigned to you.")
    else:
        messages.success(request, f"Decision changed: now {changed.get_status_display().lower()}.")
    return redirect(item)


def notifications(request):
    mine = Notification.objects.filter(user=request.user)
    return render(
        request, "reviews/notifications.html", {"notifications": mine[:100], "title": "Notifications"}
    )


@require_POST
def notifications_read(request):
    Notification.objects.filter(user=request.user, read_at__isnull=True).update(read_at=timezone.now())
    return redirect("reviews:notifications")


def unread_count(user) -> int:
    if not getattr(user, "is_authenticated", False):
        return 0
    return Notification.objects.filter(Q(user=user) & Q(read_at__isnull=True)).count()


# --- Remediation ---------------------------------------------------------------------------------------------


class RemediationListView(ObjectListView):
    model = RemediationTask
    filterset_class = RemediationFilter
    ordering = ("due_on", "id")
    select_related = ("application", "owner", "item")
    template_name = "reviews/remediation_list.html"
    title = "Remediation"

    def get(self, request):
        export = request.GET.get("export")
        if export in ("csv", "xlsx"):
            filterset = self.filterset_class(
                request.GET, queryset=self.get_queryset(request), request=request
            )
            if not filterset.is_valid():
                return render(request, "inc/bad_filter.html", {"errors": filterset.errors}, status=400)
            return exports.remediation_response(
                filterset.qs.order_by(*self.ordering), export, user=request.user
            )
        return super().get(request)

    def extra_context(self, request, filterset) -> dict:
        return {"today": timezone.localdate()}


def remediation_detail(request, pk):
    task = restricted_object(
        request, RemediationTask, pk, select_related=("application", "owner", "item", "closing_run")
    )
    return render(
        request,
        "reviews/remediation_detail.html",
        {
            "task": task,
            "events": events_visible(request.user, task, limit=20),
            "may_change": task.is_open and access.can(request.user, task, access.CHANGE),
            # Distinct ids: both forms have a ticket field, and each label must point at its own input.
            "update_form": RemediationUpdateForm(
                initial={"ticket": task.ticket, "notes": task.notes}, auto_id="track_%s"
            ),
            "close_form": ManualCloseForm(auto_id="close_%s"),
            "today": timezone.localdate(),
        },
    )


@require_POST
def remediation_update(request, pk):
    task = restricted_object(request, RemediationTask, pk)
    access.require(request.user, RemediationTask, access.CHANGE)
    form = RemediationUpdateForm(request.POST)
    if form.is_valid():
        try:
            remediation.task_update(task_id=task.pk, user=request.user, **form.cleaned_data)
        except (ValidationError, PermissionDenied) as exc:
            messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
        else:
            messages.success(request, "Saved.")
    else:
        messages.error(request, "Not saved: the ticket reference is too long.")
    return redirect(task)


@require_POST
def remediation_close(request, pk):
    task = restricted_object(request, RemediationTask, pk)
    access.require(request.user, RemediationTask, access.CHANGE)
    form = ManualCloseForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(
            request, "Not closed: " + " ".join(e for errors in form.errors.values() for e in errors)
        )
        return redirect(task)
    try:
        remediation.task_close_manually(task_id=task.pk, user=request.user, **form.cleaned_data)
    except (ValidationError, PermissionDenied) as exc:
        messages.error(request, "Not closed: " + " ".join(getattr(exc, "messages", [str(exc)])))
    else:
        messages.success(request, "Closed manually, with proof.")
    return redirect(task)


def remediation_attachment(request, pk):
    task = restricted_object(request, RemediationTask, pk)
    if not task.attachment:
        from django.http import Http404

        raise Http404("no attachment")
    from django.http import FileResponse

    return FileResponse(
        task.attachment.open("rb"), as_attachment=True, filename=task.attachment.name.rsplit("/", 1)[-1]
    )
