"""Pages and htmx fragments for identities, applications, accounts and entitlements."""

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRefresh

from entitlements import progress, selectors, services, thresholds
from entitlements.connectors.problems import ImportRefused
from entitlements.filters import (
    AccountFilter,
    ApplicationFilter,
    ConnectorRunFilter,
    EntitlementFilter,
    IdentityFilter,
)
from entitlements.forms import RunDecisionForm, RunUploadForm
from entitlements.models import (
    Account,
    Application,
    Connector,
    ConnectorRun,
    ConnectorThresholdChange,
    Entitlement,
    Grant,
    Identity,
)
from entitlements.selves import same_person
from evidence.models import EvidenceEvent
from evidence.selectors import events_for_subject
from evidence.services import Actor
from soxgov import access, jobs
from soxgov.views import ObjectListView, restricted_object


class IdentityListView(ObjectListView):
    model = Identity
    filterset_class = IdentityFilter
    ordering = ("display_name", "id")
    select_related = ("manager", "owner")
    template_name = "entitlements/identity_list.html"
    title = "Identities"


class ApplicationListView(ObjectListView):
    model = Application
    filterset_class = ApplicationFilter
    ordering = ("name", "id")
    select_related = ("owner",)
    prefetch_related = ("financial_processes",)
    template_name = "entitlements/application_list.html"
    title = "Applications"


class AccountListView(ObjectListView):
    model = Account
    filterset_class = AccountFilter
    ordering = ("account_id", "id")
    select_related = ("application", "identity")
    template_name = "entitlements/account_list.html"
    title = "Accounts"


class EntitlementListView(ObjectListView):
    model = Entitlement
    filterset_class = EntitlementFilter
    ordering = ("name", "id")
    select_related = ("application", "owner")
    template_name = "entitlements/entitlement_list.html"
    title = "Entitlements"


class OnDateForm(forms.Form):
    date = forms.DateField(
        label="On date", widget=forms.DateInput(attrs={"type": "date"}), help_text="End of that day."
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["date"].widget.attrs["max"] = timezone.localdate().isoformat()

    def clean_date(self):
        day = self.cleaned_data["date"]
        if day > timezone.localdate():
            raise forms.ValidationError("Choose today or a past date.")
        return day


def _on_date(request):
    """The submitted date form, and the date if valid (defaults to today when none was given)."""
    if "date" not in request.GET:
        today = timezone.localdate()
        return OnDateForm(initial={"date": today}), today
    form = OnDateForm(request.GET)
    return form, form.cleaned_data["date"] if form.is_valid() else None


def identity_detail(request, pk):
    identity = restricted_object(request, Identity, pk, select_related=("manager", "owner"))
    user = request.user
    accounts = (
        Account.objects.restrict(user)
        .filter(identity=identity)
        .select_related("application")
        .prefetch_related("grants__entitlement")
    )
    context = {
        "identity": identity,
        "accounts": accounts,
        "reports": Identity.objects.restrict(user).filter(manager=identity)[:100],
        "owned": Identity.objects.restrict(user).filter(owner=identity)[:100],
        "history": identity.history.select_related("history_user")[:20],
        "events": events_for_subject(identity)
        if access.can_attempt(user, EvidenceEvent, access.VIEW)
        else [],
        "date_form": OnDateForm(initial={"date": timezone.localdate()}),
        "violations": _live_violations(user, identity),
    }
    return render(request, "entitlements/identity_detail.html", context)


def _live_violations(user, identity):
    from sod.models import Violation

    if not access.can_attempt(user, Violation, access.VIEW):
        return None
    live = Violation.objects.restrict(user).filter(identity=identity, status__in=Violation.ACTIVE)
    return live.select_related("rule")


def identity_access_on(request, pk):
    identity = restricted_object(request, Identity, pk)
    form, day = _on_date(request)
    held = selectors.identity_access_on(identity=identity, day=day) if day else None
    return render(
        request,
        "entitlements/identity_access_on.html",
        {"identity": identity, "form": form, "day": day, "held": held},
        status=200 if day or not form.is_bound else 400,
    )


def application_detail(request, pk):
    application = restricted_object(request, Application, pk, select_related=("owner",))
    user = request.user
    context = {
        "application": application,
        "entitlements": Entitlement.objects.restrict(user)
        .filter(application=application)
        .select_related("owner")[:200],
        "account_count": Account.objects.restrict(user).filter(application=application).count(),
        "orphan_count": Account.objects.restrict(user)
        .filter(application=application, identity__isnull=True)
        .count(),
        "grant_count": Grant.objects.restrict(user).filter(account__application=application).count(),
        "history": application.history.select_related("history_user")[:20],
    }
    return render(request, "entitlements/application_detail.html", context)


def account_detail(request, pk):
    account = restricted_object(request, Account, pk, select_related=("application", "identity"))
    grants = Grant.objects.restrict(request.user).filter(account=account).select_related("entitlement")
    context = {
        "account": account,
        "grants": grants,
        "history": account.history.select_related("history_user")[:20],
    }
    return render(request, "entitlements/account_detail.html", context)


def entitlement_detail(request, pk):
    entitlement = restricted_object(request, Entitlement, pk, select_related=("application", "owner"))
    grants = (
        Grant.objects.restrict(request.user)
        .filter(entitlement=entitlement)
        .select_related("account__identity")
        .order_by("account__account_id")[:500]
    )
    context = {
        "entitlement": entitlement,
        "grants": grants,
        "history": entitlement.history.select_related("history_user")[:20],
        "date_form": OnDateForm(initial={"date": timezone.localdate()}),
    }
    return render(request, "entitlements/entitlement_detail.html", context)


def entitlement_holders_on(request, pk):
    entitlement = restricted_object(request, Entitlement, pk, select_related=("application",))
    form, day = _on_date(request)
    held = selectors.entitlement_holders_on(entitlement=entitlement, day=day) if day else None
    return render(
        request,
        "entitlements/entitlement_holders_on.html",
        {"entitlement": entitlement, "form": form, "day": day, "held": held},
        status=200 if day or not form.is_bound else 400,
    )


# --- Connector runs ---------------------------------------------------------------------------------------


class RunListView(ObjectListView):
    model = ConnectorRun
    filterset_class = ConnectorRunFilter
    ordering = ("-id",)
    select_related = ("application",)
    template_name = "entitlements/run_list.html"
    title = "Imports"

    def extra_context(self, request, filterset) -> dict:
        if request.htmx or not access.can_attempt(request.user, ConnectorThresholdChange, access.VIEW):
            return {}
        pending = (
            ConnectorThresholdChange.objects.restrict(request.user)
            .filter(status=ConnectorThresholdChange.Status.PENDING)
            .select_related("connector")
        )
        may_decide = access.can_attempt(request.user, Connector, access.CHANGE)
        return {
            "threshold_changes": [(change, may_decide) for change in pending],
            "decision_form": RunDecisionForm(auto_id=False),
        }


@require_http_methods(["GET", "POST"])
def run_upload(request):
    access.require(request.user, ConnectorRun, access.ADD)
    form = RunUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            run = services.run_create(
                kind=form.cleaned_data["kind"],
                source=upload,
                source_name=upload.name,
                actor=Actor.for_user(request.user),
                user=request.user,
                application=form.cleaned_data["application"],
            )
        except ImportRefused as refused:
            form.add_error("file", "; ".join(str(p) for p in refused.problems))
        else:
            messages.success(request, f"Import #{run.pk} queued.")
            return redirect(run)
    return render(request, "entitlements/run_upload.html", {"form": form}, status=400 if form.errors else 200)


def run_detail(request, pk):
    run = restricted_object(request, ConnectorRun, pk, select_related=("application", "connector"))
    in_flight = run.status in (
        ConnectorRun.Status.QUEUED,
        ConnectorRun.Status.RUNNING,
        ConnectorRun.Status.APPROVED,
    )
    live = (
        (progress.read(run.pk) or {"phase": run.get_status_display().lower(), "percent": 0})
        if in_flight
        else None
    )
    may_decide = (
        run.status == ConnectorRun.Status.HELD
        and access.can_attempt(request.user, ConnectorRun, access.CHANGE)
        and not same_person(run.started_by, request.user)
    )
    context = {
        "run": run,
        "live": live,
        "may_decide": may_decide,
        "decision_form": RunDecisionForm(),
        "may_cancel": run.status in services.ACTIVE
        and access.can_attempt(request.user, ConnectorRun, access.CHANGE),
        "work": list(jobs.of(run)),
        "reap_seconds": settings.SOXGOV_REAP_SECONDS,
    }
    if request.htmx and request.GET.get("fragment") == "progress":
        if live is None:
            # Finished: reload the whole page, which now shows the outcome.
            return HttpResponseClientRefresh()
        return render(request, "entitlements/run_progress.html", context)
    return render(request, "entitlements/run_detail.html", context)


@require_POST
def run_decide(request, pk, decision):
    run = restricted_object(request, ConnectorRun, pk)
    form = RunDecisionForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        if decision == "approve":
            services.run_approve(run_id=run.pk, user=request.user, reason=reason)
        else:
            services.run_reject(run_id=run.pk, user=request.user, reason=reason)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        messages.success(request, f"Import #{run.pk} {'approved' if decision == 'approve' else 'rejected'}.")
    return redirect(run)


@require_POST
def run_cancel(request, pk):
    run = restricted_object(request, ConnectorRun, pk)
    form = RunDecisionForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    try:
        services.run_cancel(run_id=run.pk, user=request.user, reason=reason)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Import #{run.pk} cancelled.")
    return redirect(run)


@require_POST
def threshold_decide(request, pk, decision):
    change = restricted_object(request, ConnectorThresholdChange, pk)
    form = RunDecisionForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    decide = thresholds.thresholds_approve if decision == "approve" else thresholds.thresholds_reject
    try:
        decide(change_id=change.pk, user=request.user, reason=reason)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        messages.success(request, f"Threshold change #{change.pk} {decision}d.")
    return redirect("entitlements:run_list")
