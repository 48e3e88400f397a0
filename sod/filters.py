import datetime as dt

import django_filters
from django.db.models import Q
from django.utils import timezone

from entitlements.filters import SearchFilterSet, visible_applications
from entitlements.models import Application
from sod.models import ControlException, Risk, Rule, Violation
from soxgov.filters import BooleanFilter

AGES = (("7", "Under 7 days"), ("30", "7 to 30 days"), ("90", "30 to 90 days"), ("old", "Over 90 days"))
_AGE_BOUNDS = {"7": (0, 7), "30": (7, 30), "90": (30, 90), "old": (90, None)}


class RuleFilter(SearchFilterSet):
    search_fields = ("code", "name", "description", "process")
    risk = django_filters.ChoiceFilter(choices=Risk.choices, empty_label="Any")
    enabled = BooleanFilter()

    class Meta:
        model = Rule
        fields = ["q", "risk", "enabled"]


class ViolationFilter(SearchFilterSet):
    search_fields = ("holder", "rule__code", "rule__name")
    status = django_filters.ChoiceFilter(
        choices=[("live", "Live (not resolved)"), *Violation.Status.choices],
        empty_label="Any",
        method="filter_status",
    )
    risk = django_filters.ChoiceFilter(
        field_name="rule__risk", choices=Risk.choices, empty_label="Any", label="Risk"
    )
    rule = django_filters.ModelChoiceFilter(
        queryset=lambda request: Rule.objects.restrict(request.user), empty_label="Any"
    )
    application = django_filters.ModelChoiceFilter(
        queryset=visible_applications,
        method="filter_application",
        empty_label="Any",
        label="Application",
    )
    age = django_filters.ChoiceFilter(choices=AGES, empty_label="Any", method="filter_age", label="Open for")
    identity = django_filters.NumberFilter(field_name="identity_id")

    class Meta:
        model = Violation
        fields = ["q", "status", "risk", "rule", "application", "age", "identity"]

    def filter_status(self, queryset, name, value):
        if value == "live":
            return queryset.filter(status__in=Violation.ACTIVE)
        return queryset.filter(status=value) if value else queryset

    def filter_application(self, queryset, name, value: Application):
        # A violation touches an application when any entitlement of its rule lives there.
        return queryset.filter(rule__in=Rule.objects.filter(members__entitlement__application=value))

    def filter_age(self, queryset, name, value):
        low, high = _AGE_BOUNDS[value]
        now = timezone.now()
        queryset = queryset.filter(opened_at__lte=now - dt.timedelta(days=low))
        if high is not None:
            queryset = queryset.filter(opened_at__gt=now - dt.timedelta(days=high))
        return queryset


class ExceptionFilter(SearchFilterSet):
    search_fields = ("title", "key")
    kind = django_filters.ChoiceFilter(choices=ControlException.Kind.choices, empty_label="Any")
    severity = django_filters.ChoiceFilter(choices=Risk.choices, empty_label="Any")
    status = django_filters.ChoiceFilter(
        choices=[("live", "Live (not closed)"), *ControlException.Status.choices],
        empty_label="Any",
        method="filter_status",
    )
    age = django_filters.ChoiceFilter(choices=AGES, empty_label="Any", method="filter_age", label="Open for")
    mine = BooleanFilter(method="filter_mine", label="Assigned to me")

    class Meta:
        model = ControlException
        fields = ["q", "kind", "severity", "status", "age", "mine"]

    def filter_status(self, queryset, name, value):
        if value == "live":
            return queryset.filter(status__in=ControlException.LIVE)
        return queryset.filter(status=value) if value else queryset

    def filter_age(self, queryset, name, value):
        low, high = _AGE_BOUNDS[value]
        now = timezone.now()
        queryset = queryset.filter(opened_at__lte=now - dt.timedelta(days=low))
        if high is not None:
            queryset = queryset.filter(opened_at__gt=now - dt.timedelta(days=high))
        return queryset

    def filter_mine(self, queryset, name, value):
        if value is None:
            return queryset
        me = Q(owner=self.request.user)
        return queryset.filter(me) if value else queryset.exclude(me)
