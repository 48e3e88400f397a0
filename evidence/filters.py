import django_filters
from django import forms
from django.db.models import CharField, Q
from django.db.models.functions import Cast

from evidence.models import EvidenceEvent


def _ids(queryset) -> object:
    """Primary keys as text, to match the events' subject_id column."""
    return queryset.annotate(as_text=Cast("pk", CharField())).values("as_text")


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
            | Q(
                subject_type="reviews.reviewitem",
                subject_id__in=_ids(ReviewItem.objects.filter(campaign_id=value)),
            )
            | Q(
                subject_type="reviews.remediationtask",
                subject_id__in=_ids(RemediationTask.objects.filter(item__campaign_id=value)),
            )
        )

    def filter_identity(self, queryset, name, value):
        from entitlements.models import Account
        from reviews.models import ReviewItem
        from sod.models import Violation

        return queryset.filter(
            Q(subject_type="entitlements.identity", subject_id=str(value))
            | Q(
                subject_type="entitlements.account",
                subject_id__in=_ids(Account.objects.filter(identity_id=value)),
            )
            | Q(
                subject_type="reviews.reviewitem",
                subject_id__in=_ids(ReviewItem.objects.filter(identity_id=value)),
            )
            | Q(
                subject_type="sod.violation", subject_id__in=_ids(Violation.objects.filter(identity_id=value))
            )
        )

    def filter_application(self, queryset, name, value):
        from entitlements.models import Account, ConnectorRun, Entitlement

        return queryset.filter(
            Q(subject_type="entitlements.application", subject_id=str(value))
            | Q(
                subject_type="entitlements.account",
                subject_id__in=_ids(Account.objects.filter(application_id=value)),
            )
            | Q(
                subject_type="entitlements.entitlement",
                subject_id__in=_ids(Entitlement.objects.filter(application_id=value)),
            )
            | Q(
                subject_type="entitlements.connectorrun",
                subject_id__in=_ids(ConnectorRun.objects.filter(application_id=value)),
            )
        )
