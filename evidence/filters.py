import django_filters
from django import forms
from django.db.models import Q

from evidence.models import EvidenceEvent
from evidence.selectors import subjects_in


class EvidenceEventFilter(django_filters.FilterSet):
    action = django_filters.CharFilter(lookup_expr="startswith", help_text="Prefix, such as access.grant")
    actor = django_filters.CharFilter(field_name="actor_name", lookup_expr="icontains")
    subject_type = django_filters.CharFilter()
    subject_id = django_filters.CharFilter()
    occurred_from = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_to = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")
    # The auditor's period, by day (inclusive).
    since = django_filters.DateFilter(
        field_name="occurred_at",
        lookup_expr="date__gte",
        label="From",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    until = django_filters.DateFilter(
        field_name="occurred_at",
        lookup_expr="date__lte",
        label="To",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    campaign = django_filters.NumberFilter(method="filter_campaign", label="Campaign id")
    identity = django_filters.NumberFilter(method="filter_identity", label="Identity id")
    application = django_filters.NumberFilter(method="filter_application", label="Application id")

    class Meta:
        model = EvidenceEvent
        fields = [
            "action",
            "actor",
            "since",
            "until",
            "campaign",
            "identity",
            "application",
            "subject_type",
            "subject_id",
            "occurred_from",
            "occurred_to",
        ]

    def filter_campaign(self, queryset, name, value):
        from reviews.models import RemediationTask, ReviewItem

        return queryset.filter(
            Q(subject_type="reviews.campaign", subject_id=str(value))
            | subjects_in("reviews.reviewitem", ReviewItem.objects.filter(campaign_id=value))
            | subjects_in("reviews.remediationtask", RemediationTask.objects.filter(item__campaign_id=value))
        )

    def filter_identity(self, queryset, name, value):
        from entitlements.models import Account
        from reviews.models import ReviewItem
        from sod.models import Violation

        return queryset.filter(
            Q(subject_type="entitlements.identity", subject_id=str(value))
            | subjects_in("entitlements.account", Account.objects.filter(identity_id=value))
            | subjects_in("reviews.reviewitem", ReviewItem.objects.filter(identity_id=value))
            | subjects_in("sod.violation", Violation.objects.filter(identity_id=value))
        )

    def filter_application(self, queryset, name, value):
        from entitlements.models import Account, ConnectorRun, Entitlement

        return queryset.filter(
            Q(subject_type="entitlements.application", subject_id=str(value))
            | subjects_in("entitlements.account", Account.objects.filter(application_id=value))
            | subjects_in("entitlements.entitlement", Entitlement.objects.filter(application_id=value))
            | subjects_in("entitlements.connectorrun", ConnectorRun.objects.filter(application_id=value))
        )
