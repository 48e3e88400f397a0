"""SoD pages: rules (list, detail, edit, import), violations (list with counts, detail with actions), what-if.

Every page asks soxgov.access; writes go through sod.services / sod.rules, which ask it again.
"""

import tempfile
from pathlib import Path

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from entitlements.connectors.problems import ImportRefused
from entitlements.models import Identity
from entitlements.selves import same_person
from evidence.selectors import events_visible
from evidence.services import Actor
from sod import dashboard, services
from sod import exceptions as exception_services
from sod import rules as rule_services
from sod.filters import ExceptionFilter, RuleFilter, ViolationFilter
from sod.forms import (
    AcceptanceDecisionForm,
    AcceptanceRequestForm,
    ExceptionAcceptForm,
    ExceptionAssignForm,
    ExceptionCloseForm,
    ExceptionCommentForm,
    ExceptionMitigateForm,
    MitigationForm,
    RuleForm,
    RulesetUploadForm,
    SideFormSet,
    WhatIfForm,
)
from sod.models import ControlException, Mitigation, Risk, RiskAcceptance, Rule, RuleMember, Violation
from sod.selectors import violation_conflict, what_if
from soxgov import access
from soxgov.views import ObjectListView, restricted_object


class RuleListView(ObjectListView):
    model = Rule
    filterset_class = RuleFilter
    ordering = ("code", "id")
    template_name = "sod/rule_list.html"
    title = "SoD rules"

    def get_queryset(self, request):
        live = Count("violations", filter=Q(violations__status__in=Violation.ACTIVE))
        return super().get_queryset(request).annotate(live_violations=live)


def rule_detail(request, pk):
    rule = restricted_object(request, Rule, pk)
    members = RuleMember.objects.filter(rule=rule).select_related("side", "entitlement__application")
    sides = {side: [] for side in rule.sides.all()}
    for member in members:
        sides[member.side].append(member.entitlement)
    context = {
        "rule": rule,
        "sides": sides,
        "live": Violation.objects.restrict(request.user)
        .filter(rule=rule, status__in=Violation.ACTIVE)
        .count(),
        "checks": rule.checks.order_by("-id")[:5],
        "history": rule.history.select_related("history_user")[:20],
        "events": events_visible(request.user, rule),
        "may_edit": access.can_attempt(request.user, Rule, access.CHANGE),
    }
    return render(request, "sod/rule_detail.html", context)


def _sides_initial(rule):
    if rule is None:
        return [{}, {}]
    initial = []
    for side in rule.sides.all():
        initial.append({"name": side.name, "entitlements": list(side.entitlements.all())})
    return initial


@require_http_methods(["GET", "POST"])
def rule_edit(request, pk=None):
    rule = None
    if pk is None:
        access.require(request.user, Rule, access.ADD)
    else:
        access.require(request.user, Rule, access.CHANGE)
        rule = get_object_or_404(Rule.objects.restrict(request.user, access.CHANGE), pk=pk)
    form = RuleForm(request.POST or None, instance=rule)
    sides = SideFormSet(request.POST or None, initial=_sides_initial(rule), prefix="sides")
    if request.method == "POST" and form.is_valid() and sides.is_valid():
        data = form.cleaned_data
        spec = rule_services.RuleSpec(
            code=data["code"],
            name=data["name"],
            description=data["description"],
            risk=data["risk"],
            process=data["process"],
            enabled=data["enabled"],
            sides=[
                (side["name"], [e.pk for e in side["entitlements"]])
                for side in sides.cleaned_data
                if side.get("entitlements")
            ],
        )
        # The ModelForm validated into the instance; reload so the service sees the rule as stored.
        stored = Rule.objects.get(pk=rule.pk) if rule is not None else None
        try:
            saved = rule_services.rule_save(spec, actor=Actor.for_user(request.user), rule=stored)
        except ValidationError as exc:
            form.add_error(None, " ".join(exc.messages))
        else:
            messages.success(
                request, "Rule saved; it is being re-checked for everyone." if saved else "No change."
            )
            return redirect(saved or stored)
    status = 400 if request.method == "POST" else 200
    return render(request, "sod/rule_form.html", {"form": form, "sides": sides, "rule": rule}, status=status)


@require_http_methods(["GET", "POST"])
def ruleset_upload(request):
    access.require(request.user, Rule, access.ADD)
    form = RulesetUploadForm(request.POST or None, request.FILES or None)
    problems, total = [], 0
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            changed, read, warnings = _import_upload(upload, Actor.for_user(request.user))
        except ImportRefused as refused:
            problems, total = refused.problems, refused.total
        else:
            messages.success(request, f"{read} rules read: {len(changed)} created or changed.")
            for warning in warnings:
                messages.warning(request, warning)
            return redirect("sod:rule_list")
    status = 400 if request.method == "POST" else 200
    return render(
        request,
        "sod/ruleset_upload.html",
        {"form": form, "problems": problems, "total": total},
        status=status,
    )


def _import_upload(upload, actor: Actor):
    """Spool the upload to a private temporary file (the readers stream from a path), import, delete it."""
    with tempfile.TemporaryDirectory(prefix="soxgov-ruleset-") as folder:
        path = Path(folder) / ("ruleset" + Path(upload.name).suffix.lower()[:8])
        with path.open("wb") as spool:
            for chunk in upload.chunks():
                spool.write(chunk)
        return rule_services.ruleset_import(path, actor=actor, source_name=upload.name)


class ViolationListView(ObjectListView):
    model = Violation
    filterset_class = ViolationFilter
    ordering = ("-opened_at", "-id")
    select_related = ("rule", "identity", "account__application")
    template_name = "sod/violation_list.html"
    title = "SoD violations"

    def extra_context(self, request, filterset) -> dict:
        """Counts above the list, for the rows the filters select: by status, and live ones by risk."""
        rows = filterset.qs.order_by()
        by_status = dict(rows.values_list("status").annotate(n=Count("id")))
        by_risk = dict(
            rows.filter(status__in=Violation.ACTIVE).values_list("rule__risk").annotate(n=Count("id"))
        )
        return {
            "by_status": [
                (label, by_status.get(value, 0), value) for value, label in Violation.Status.choices
            ],
            "by_risk": [(label, by_risk.get(value, 0), value) for value, label in Risk.choices],
        }


def violation_detail(request, pk):
    violation = restricted_object(request, Violation, pk, select_related=("rule", "identity", "account"))
    user = request.user
    me = user.identity_id
    # Nobody answers a conflict in their own access (the services refuse it too).
    own = (
        me is not None
        and violation.identity_id is not None
        and me in (violation.identity_id, violation.identity.owner_id)
    )
    context = {
        "violation": violation,
        "conflict": violation_conflict(violation) if violation.is_active else {},
        "mitigations": Mitigation.objects.restrict(user)
        .filter(violation=violation)
        .select_related("owner", "recorded_by"),
        "acceptances": RiskAcceptance.objects.restrict(user)
        .filter(violation=violation)
        .select_related("requested_by", "decided_by"),
        "history": violation.history.select_related("history_user")[:30],
        "events": events_visible(user, violation),
        "may_mitigate": violation.is_active and not own and access.can_attempt(user, Mitigation, access.ADD),
        "may_request": violation.is_active
        and not own
        and access.can_attempt(user, RiskAcceptance, access.ADD)
        and not violation.acceptances.filter(status=RiskAcceptance.Status.REQUESTED).exists(),
        "may_decide": not own and access.can_attempt(user, RiskAcceptance, access.CHANGE),
        # Distinct ids: both forms have an expires_on field, and each label must point at its own input.
        "mitigation_form": MitigationForm(auto_id="mitigation_%s"),
        "acceptance_form": AcceptanceRequestForm(auto_id="acceptance_%s"),
        "decision_form": AcceptanceDecisionForm(),
    }
    return render(request, "sod/violation_detail.html", context)


def _form_errors(form) -> str:
    """Form errors as one sentence, naming each field by its label."""
    parts = []
    for name, errors in form.errors.items():
        text = " ".join(errors)
        parts.append(text if name == "__all__" else f"{form[name].label}: {text}")
    return "; ".join(parts)


@require_POST
def violation_mitigate(request, pk):
    violation = restricted_object(request, Violation, pk)
    access.require(request.user, Mitigation, access.ADD)
    form = MitigationForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Not mitigated: {_form_errors(form)}")
        return redirect(violation)
    try:
        services.violation_mitigate(violation_id=violation.pk, user=request.user, **form.cleaned_data)
    except ValidationError as exc:
        messages.error(request, f"Not mitigated: {' '.join(exc.messages)}")
    else:
        messages.success(request, "Mitigation recorded.")
    return redirect(violation)


@require_POST
def violation_accept(request, pk):
    violation = restricted_object(request, Violation, pk)
    access.require(request.user, RiskAcceptance, access.ADD)
    form = AcceptanceRequestForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"Not requested: {_form_errors(form)}")
        return redirect(violation)
    try:
        services.acceptance_request(violation_id=violation.pk, user=request.user, **form.cleaned_data)
    except ValidationError as exc:
        messages.error(request, f"Not requested: {' '.join(exc.messages)}")
    else:
        messages.success(request, "Risk acceptance requested; another person must approve it.")
    return redirect(violation)


@require_POST
def acceptance_decide(request, pk, decision):
    acceptance = restricted_object(request, RiskAcceptance, pk)
    access.require(request.user, RiskAcceptance, access.CHANGE)
    form = AcceptanceDecisionForm(request.POST)
    note = form.cleaned_data["note"] if form.is_valid() else ""
    try:
        services.acceptance_decide(
            acceptance_id=acceptance.pk, user=request.user, approve=decision == "approve", note=note
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Risk acceptance {'approved' if decision == 'approve' else 'rejected'}.")
    return redirect(acceptance.violation)


def what_if_page(request):
    access.require(request.user, Rule, access.VIEW)
    identities = Identity.objects.restrict(request.user)
    form = WhatIfForm(request.GET or None, identities=identities)
    hits = None
    if request.GET and form.is_valid():
        hits = what_if(form.cleaned_data["identity"], list(form.cleaned_data["entitlements"]))
    status = 400 if request.GET and not form.is_valid() else 200
    return render(request, "sod/what_if.html", {"form": form, "hits": hits}, status=status)


# --- The control owners' exception queue ------------------------------------------------------------------


class ExceptionListView(ObjectListView):
    model = ControlException
    filterset_class = ExceptionFilter
    ordering = ("due_on", "id")
    select_related = ("owner",)
    template_name = "sod/exception_list.html"
    title = "Exceptions"

    def extra_context(self, request, filterset) -> dict:
        live = ControlException.objects.restrict(request.user).filter(status__in=ControlException.LIVE)
        by_kind = dict(live.values_list("kind").annotate(n=Count("id")).order_by())
        return {
            "by_kind": [
                (value, label, by_kind.get(value, 0)) for value, label in ControlException.Kind.choices
            ],
            "by_age": dashboard.exceptions_by_age(live),
            "today": timezone.localdate(),
        }


def exception_detail(request, pk):
    exception = restricted_object(request, ControlException, pk, select_related=("owner", "violation"))
    user = request.user
    may_change = exception.is_live and access.can(user, exception, access.CHANGE)
    context = {
        "exception": exception,
        "notes": exception.notes.all(),
        "history": exception.history.select_related("history_user")[:30],
        "events": events_visible(user, exception),
        "may_change": may_change,
        "may_answer": may_change and exception.kind != ControlException.Kind.SOD_VIOLATION,
        "may_decide": may_change
        and exception.acceptance_requested_by_id
        and not same_person(exception.acceptance_requested_by, user),
        "forms": {
            "assign": ExceptionAssignForm(),
            "comment": ExceptionCommentForm(),
            "mitigate": ExceptionMitigateForm(auto_id="mitigate_%s"),
            "accept": ExceptionAcceptForm(auto_id="accept_%s"),
            "close": ExceptionCloseForm(),
        },
    }
    return render(request, "sod/exception_detail.html", context)


_EXCEPTION_ACTIONS = {
    "assign": (ExceptionAssignForm, exception_services.assign),
    "comment": (ExceptionCommentForm, exception_services.comment),
    "mitigate": (ExceptionMitigateForm, exception_services.mitigate),
    "accept": (ExceptionAcceptForm, exception_services.request_acceptance),
    "close": (ExceptionCloseForm, exception_services.close),
}


@require_POST
def exception_act(request, pk, action):
    exception = restricted_object(request, ControlException, pk)
    access.require(request.user, ControlException, access.CHANGE)
    if action in ("approve", "reject"):
        call, data = (
            exception_services.decide_acceptance,
            {"approve": action == "approve", "note": request.POST.get("note", "")[:2000]},
        )
    else:
        form_class, call = _EXCEPTION_ACTIONS[action]
        form = form_class(request.POST)
        if not form.is_valid():
            messages.error(request, f"Not done: {_form_errors(form)}")
            return redirect(exception)
        data = form.cleaned_data
    try:
        call(exception_id=exception.pk, user=request.user, **data)
    except (ValidationError, PermissionDenied) as exc:
        messages.error(request, "Not done: " + " ".join(getattr(exc, "messages", [str(exc)])))
    else:
        messages.success(request, "Done.")
    return redirect(exception)


def dashboard_page(request):
    access.require(request.user, ControlException, access.VIEW)
    return render(
        request, "sod/dashboard.html", {"data": dashboard.figures(request.user), "title": "Dashboard"}
    )
