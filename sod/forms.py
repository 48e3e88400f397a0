from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

from entitlements.models import Entitlement, Identity
from sod.models import Frequency, Rule


def _entitlement_choices():
    return Entitlement.objects.select_related("application").order_by("application__name", "name", "id")


class EntitlementChoiceField(forms.ModelMultipleChoiceField):
    def label_from_instance(self, obj):
        return f"{obj.application.name} / {obj.name} ({obj.entitlement_id})"


class RuleForm(forms.ModelForm):
    class Meta:
        model = Rule
        fields = ["code", "name", "description", "risk", "process", "enabled"]
        widgets = {"description": forms.Textarea(attrs={"rows": 2})}


class SideForm(forms.Form):
    name = forms.CharField(max_length=100, required=False, label="Side")
    entitlements = EntitlementChoiceField(
        queryset=_entitlement_choices(), required=False, widget=forms.SelectMultiple(attrs={"size": 6})
    )


class BaseSideFormSet(forms.BaseFormSet):
    def clean(self):
        if any(self.errors):
            return
        named = [f.cleaned_data for f in self.forms if f.cleaned_data.get("entitlements")]
        if len(named) < 2:
            raise ValidationError("A rule needs at least two sides, each with at least one entitlement.")
        for data in named:
            if not (data.get("name") or "").strip():
                raise ValidationError("Every side with entitlements needs a name.")


SideFormSet = forms.formset_factory(SideForm, formset=BaseSideFormSet, extra=1, max_num=8)


class RulesetUploadForm(forms.Form):
    file = forms.FileField(
        help_text="CSV or XLSX: rule_id, rule_name, risk, process, side, application, entitlement_id"
    )


def _after_today(value):
    if value <= timezone.localdate():
        raise ValidationError("Must be after today.")
    return value


class MitigationForm(forms.Form):
    control = forms.CharField(max_length=200, label="Compensating control")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))
    owner = forms.ModelChoiceField(
        queryset=Identity.objects.filter(kind=Identity.Kind.HUMAN).exclude(status=Identity.Status.TERMINATED),
        help_text="The person who performs the control.",
    )
    frequency = forms.ChoiceField(choices=Frequency.choices)
    expires_on = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), validators=[_after_today])


class AcceptanceRequestForm(forms.Form):
    justification = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))
    expires_on = forms.DateField(
        widget=forms.DateInput(attrs={"type": "date"}), validators=[_after_today], label="Accepted until"
    )


class AcceptanceDecisionForm(forms.Form):
    note = forms.CharField(
        max_length=2000, required=False, widget=forms.TextInput(attrs={"placeholder": "Note"})
    )


class WhatIfForm(forms.Form):
    identity = forms.CharField(
        max_length=255, label="Identity", help_text="Employee id, e-mail or exact display name."
    )
    entitlements = EntitlementChoiceField(
        queryset=_entitlement_choices(),
        widget=forms.SelectMultiple(attrs={"size": 8}),
        label="Would be granted",
    )

    def __init__(self, *args, identities=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.identities = identities if identities is not None else Identity.objects.none()

    def clean_identity(self):
        value = self.cleaned_data["identity"].strip()
        matches = list(
            self.identities.filter(
                Q(employee_id__iexact=value) | Q(email__iexact=value) | Q(display_name__iexact=value)
            )[:2]
        )
        if not matches:
            raise ValidationError(f"No identity you can see matches {value!r}.")
        if len(matches) > 1:
            raise ValidationError(f"{value!r} matches more than one identity; use the employee id.")
        return matches[0]


class ExceptionAssignForm(forms.Form):
    owner = forms.ModelChoiceField(queryset=None, label="Assign to")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from soxgov.models import User

        self.fields["owner"].queryset = User.objects.filter(is_active=True).order_by("username")


class ExceptionCommentForm(forms.Form):
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), label="Comment")
    remediation = forms.BooleanField(required=False, label="This records remediation work")


class ExceptionMitigateForm(forms.Form):
    control = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), label="Compensating control")
    until = forms.DateField(widget=forms.DateInput(attrs={"type": "date"}), validators=[_after_today])


class ExceptionAcceptForm(forms.Form):
    justification = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))
    until = forms.DateField(
        widget=forms.DateInput(attrs={"type": "date"}), validators=[_after_today], label="Accepted until"
    )


class ExceptionCloseForm(forms.Form):
    proof = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), label="Proof")
