import django_filters

from evidence.models import EvidenceEvent


class EvidenceEventFilter(django_filters.FilterSet):
    action = django_filters.CharFilter(lookup_expr="startswith", help_text="Prefix, such as access.grant")
    actor = django_filters.CharFilter(field_name="actor_name", lookup_expr="icontains")
    subject_type = django_filters.CharFilter()
    subject_id = django_filters.CharFilter()
    occurred_from = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_to = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = EvidenceEvent
        fields = ["action", "actor", "subject_type", "subject_id", "occurred_from", "occurred_to"]
