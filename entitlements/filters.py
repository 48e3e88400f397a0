import django_filters
from django.db.models import Q

from entitlements.models import (
    Account,
    Application,
    ConnectorRun,
    Entitlement,
    FinancialProcess,
    Grant,
    Identity,
)
from soxgov.filters import BooleanFilter
from soxgov.widgets import plain_selects


def visible_applications(request):
    """Application choices through the same access rules as everything else (a reviewer sees only theirs)."""
    user = getattr(request, "user", None)
    return Application.objects.restrict(user) if user is not None else Application.objects.none()


class SearchFilterSet(django_filters.FilterSet):
    """A FilterSet with a free-text ``q`` over ``search_fields`` (case-insensitive contains)."""

    search_fields: tuple[str, ...] = ()
    q = django_filters.CharFilter(method="search", label="Search")

    def search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        condition = Q()
        for field in self.search_fields:
            condition |= Q(**{f"{field}__icontains": value})
        return queryset.filter(condition)

    def get_form_class(self):
        return plain_selects(super().get_form_class())


class IdentityFilter(SearchFilterSet):
    search_fields = ("display_name", "email", "employee_id", "title")
    kind = django_filters.ChoiceFilter(choices=Identity.Kind.choices, empty_label="Any")
    status = django_filters.ChoiceFilter(choices=Identity.Status.choices, empty_label="Any")
    department = django_filters.CharFilter(lookup_expr="iexact")
    manager = django_filters.NumberFilter(field_name="manager_id")
    owner = django_filters.NumberFilter(field_name="owner_id")
    unowned = BooleanFilter(method="filter_unowned", label="Non-human without owner")

    class Meta:
        model = Identity
        fields = ["q", "kind", "status", "department", "manager", "owner", "unowned"]

    def filter_unowned(self, queryset, name, value):
        if value is None:
            return queryset
        condition = ~Q(kind=Identity.Kind.HUMAN) & Q(owner__isnull=True)
        return queryset.filter(condition) if value else queryset.exclude(condition)


class ApplicationFilter(SearchFilterSet):
    search_fields = ("name", "description")
    sox_in_scope = BooleanFilter()
    criticality = django_filters.ChoiceFilter(choices=Application.Criticality.choices, empty_label="Any")
    process = django_filters.ModelChoiceFilter(
        field_name="financial_processes",
        queryset=FinancialProcess.objects.all(),
        to_field_name="code",
        empty_label="Any",
    )

    class Meta:
        model = Application
        fields = ["q", "sox_in_scope", "criticality", "process"]


class AccountFilter(SearchFilterSet):
    search_fields = ("account_id", "name", "identity__display_name")
    application = django_filters.ModelChoiceFilter(queryset=visible_applications, empty_label="Any")
    status = django_filters.ChoiceFilter(choices=Account.Status.choices, empty_label="Any")
    orphan = BooleanFilter(field_name="identity", lookup_expr="isnull", label="Orphan")
    privileged = BooleanFilter()
    identity = django_filters.NumberFilter(field_name="identity_id")

    class Meta:
        model = Account
        fields = ["q", "application", "status", "orphan", "privileged", "identity"]


class EntitlementFilter(SearchFilterSet):
    search_fields = ("name", "entitlement_id", "description")
    application = django_filters.ModelChoiceFilter(queryset=visible_applications, empty_label="Any")
    kind = django_filters.ChoiceFilter(choices=Entitlement.Kind.choices, empty_label="Any")
    privileged = BooleanFilter()
    sensitive = BooleanFilter()

    class Meta:
        model = Entitlement
        fields = ["q", "application", "kind", "privileged", "sensitive"]


class GrantFilter(django_filters.FilterSet):
    application = django_filters.NumberFilter(field_name="account__application_id")
    account = django_filters.NumberFilter(field_name="account_id")
    entitlement = django_filters.NumberFilter(field_name="entitlement_id")
    identity = django_filters.NumberFilter(field_name="account__identity_id")

    class Meta:
        model = Grant
        fields = ["application", "account", "entitlement", "identity"]


class ConnectorRunFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=ConnectorRun.Status.choices, empty_label="Any")
    kind = django_filters.ChoiceFilter(choices=ConnectorRun.Kind.choices, empty_label="Any")
    application = django_filters.ModelChoiceFilter(queryset=visible_applications, empty_label="Any")

    class Meta:
        model = ConnectorRun
        fields = ["status", "kind", "application"]
