import django_filters
from django.db.models import Q

from entitlements.filters import SearchFilterSet, visible_applications
from reviews.models import Advice, AuditSample, Campaign, RemediationTask, ReviewItem
from soxgov.filters import BooleanFilter

FLAG_CHOICES = list(ReviewItem.FLAG_LABELS.items())


class CampaignFilter(SearchFilterSet):
    search_fields = ("name", "description")
    status = django_filters.ChoiceFilter(choices=Campaign.Status.choices, empty_label="Any")
    kind = django_filters.ChoiceFilter(choices=Campaign.Kind.choices, empty_label="Any")

    class Meta:
        model = Campaign
        fields = ["q", "status", "kind"]


def my_campaigns(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return Campaign.objects.none()
    return Campaign.objects.restrict(user).order_by("-created_at")


def my_applications(request):
    """Applications to filter the queue by. All of them: listing the ones in a reviewer's 200k items would cost a
    scan on every page view, and a name that matches nothing simply shows no rows."""
    from entitlements.models import Application

    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return Application.objects.none()
    return Application.objects.order_by("name")


class ReviewItemFilter(SearchFilterSet):
    search_fields = ("identity_name", "account_key", "entitlement_name", "entitlement_key")
    campaign = django_filters.ModelChoiceFilter(queryset=my_campaigns, empty_label="Any")
    status = django_filters.ChoiceFilter(choices=ReviewItem.Status.choices, empty_label="Any")
    flag = django_filters.ChoiceFilter(
        choices=FLAG_CHOICES, method="filter_flag", empty_label="Any", label="Flag"
    )
    recommendation = django_filters.ChoiceFilter(
        choices=Advice.choices, empty_label="Any", label="Recommendation"
    )
    application = django_filters.ModelChoiceFilter(queryset=my_applications, empty_label="Any")
    identity = django_filters.NumberFilter(field_name="identity_id")

    class Meta:
        model = ReviewItem
        fields = ["q", "campaign", "status", "flag", "recommendation", "application", "identity"]

    def filter_flag(self, queryset, name, value):
        return queryset.filter(Q(**{value: True})) if value else queryset


class RemediationFilter(SearchFilterSet):
    search_fields = ("account_key", "entitlement_key", "identity_name", "ticket")
    status = django_filters.ChoiceFilter(choices=RemediationTask.Status.choices, empty_label="Any")
    application = django_filters.ModelChoiceFilter(queryset=visible_applications, empty_label="Any")
    overdue = BooleanFilter(method="filter_overdue", label="Overdue")

    class Meta:
        model = RemediationTask
        fields = ["q", "status", "application", "overdue"]

    def filter_overdue(self, queryset, name, value):
        from django.utils import timezone

        if value is None:
            return queryset
        late = Q(status=RemediationTask.Status.OPEN, due_on__lt=timezone.localdate())
        return queryset.filter(late) if value else queryset.exclude(late)


class SampleFilter(SearchFilterSet):
    search_fields = ("seed", "drawn_by_name")
    kind = django_filters.ChoiceFilter(choices=AuditSample.Kind.choices, empty_label="Any")
    campaign = django_filters.ModelChoiceFilter(queryset=my_campaigns, empty_label="Any")

    class Meta:
        model = AuditSample
        fields = ["q", "kind", "campaign"]
