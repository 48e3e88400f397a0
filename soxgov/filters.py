"""Filters every app's filtersets share (django-filter), for list pages and API lists alike."""

import django_filters
from django import forms
from django.core.exceptions import ValidationError

_TRUE, _FALSE = ("true", "1"), ("false", "0")


class YesNoSelect(forms.Select):
    """Any / Yes / No. Passes what was sent through untouched, so the field can refuse what it cannot read
    (django-filter's BooleanWidget turns ``?privileged=maybe`` into "any", and the filter is silently ignored)."""

    def __init__(self, attrs=None):
        super().__init__(attrs, choices=(("", "Any"), ("true", "Yes"), ("false", "No")))

    def format_value(self, value):
        return super().format_value({True: "true", False: "false"}.get(value, value))


class YesNoField(forms.Field):
    widget = YesNoSelect

    def __init__(self, *, required=False, **kwargs):
        super().__init__(required=required, **kwargs)

    def to_python(self, value):
        if value is None or value == "":
            return None
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ValidationError(f"Use true or false (got {str(value)[:40]!r}).", code="invalid")


class BooleanFilter(django_filters.BooleanFilter):
    """A yes/no filter: ``true``/``false`` (or 1/0, any case) filter, empty or absent means any, anything else
    is refused with 400 naming the parameter."""

    field_class = YesNoField
