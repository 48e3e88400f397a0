"""Pages and htmx fragments for identities, applications, accounts and entitlements."""

from django import forms
from django.shortcuts import render
from django.utils import timezone

from entitlements import selectors
from entitlements.filters import AccountFilter, ApplicationFilter, EntitlementFilter, IdentityFilter
from entitlements.models import Account, Application, Entitlement, Grant, Identity
from evidence.models import EvidenceEvent
from evidence.selectors import events_for_subject
from soxgov import access
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
        "events": events_for_subject(identity) if access.can_attempt(user, EvidenceEvent, access.VIEW) else [],
        "date_form": OnDateForm(initial={"date": timezone.localdate()}),
    }
    return render(request, "entitlements/identity_detail.html", context)


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
        "entitlements": Entitlement.objects.restrict(user).filter(application=application).select_related("owner")[:200],
        "account_count": Account.objects.restrict(user).filter(application=application).count(),
        "orphan_count": Account.objects.restrict(user).filter(application=application, identity__isnull=True).count(),
        "grant_count": Grant.objects.restrict(user).filter(account__application=application).count(),
        "history": application.history.select_related("history_user")[:20],
    }
    return render(request, "entitlements/application_detail.html", context)


def account_detail(request, pk):
    account = restricted_object(request, Account, pk, select_related=("application", "identity"))
    grants = Grant.objects.restrict(request.user).filter(account=account).select_related("entitlement")
    context = {"account": account, "grants": grants, "history": account.history.select_related("history_user")[:20]}
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
