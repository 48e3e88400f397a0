from django import forms
from django.core.exceptions import ValidationError

from entitlements.models import Application, Identity
from reviews.campaign_drafts import CAMPAIGN_FIELDS
from reviews.models import AuditSample, Campaign
from soxgov.models import User


class UserChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj):
        return f"{obj.display_name} ({obj.get_username()})"


def _active_users():
    return User.objects.filter(is_active=True).order_by("first_name", "last_name", "username")


class CampaignForm(forms.ModelForm):
    """Reads the page's inputs; reviews.campaign_drafts.campaign_save checks and saves them (the API's too)."""

    applications = forms.ModelMultipleChoiceField(
        queryset=Application.objects.order_by("name"),
        required=False,
        widget=forms.SelectMultiple(attrs={"size": 6}),
        help_text="None chosen: every SOX in-scope application.",
    )
    identity_kinds = forms.MultipleChoiceField(
        choices=Identity.Kind.choices,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="None ticked: every kind, non-human included. Orphan accounts are always in scope.",
    )
    departments = forms.CharField(
        required=False,
        help_text="Comma-separated; empty: every department (a department filter leaves orphans out).",
    )
    named_reviewer = UserChoiceField(queryset=_active_users(), required=False)
    fallback_reviewer = UserChoiceField(queryset=_active_users())

    class Meta:
        model = Campaign
        fields = list(CAMPAIGN_FIELDS)
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "start_on": forms.DateInput(attrs={"type": "date"}),
            "due_on": forms.DateInput(attrs={"type": "date"}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.initial["departments"] = ", ".join(self.instance.departments or [])

    def clean_departments(self):
        return [part.strip() for part in self.cleaned_data["departments"].split(",") if part.strip()]


class DecisionForm(forms.Form):
    ACTIONS = (("certify", "Certify"), ("revoke", "Revoke"))

    action = forms.ChoiceField(choices=ACTIONS)
    item = forms.TypedMultipleChoiceField(coerce=int, required=False, choices=())
    all_matching = forms.BooleanField(required=False)
    comment = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Any integer is acceptable here; the service decides which of them the user may decide.
        self.fields["item"].valid_value = lambda value: str(value).isdigit()

    def clean(self):
        data = super().clean()
        if not data.get("item") and not data.get("all_matching"):
            raise ValidationError("Select at least one item (or all items matching the filter).")
        return data


class DecisionChangeForm(forms.Form):
    action = forms.ChoiceField(choices=DecisionForm.ACTIONS)
    comment = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class DelegateForm(forms.Form):
    item = forms.TypedMultipleChoiceField(coerce=int, choices=())
    # A username, not a list of every user: thousands of users would make each page heavy.
    to_user = forms.CharField(max_length=150, label="Delegate to (username)")
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["item"].valid_value = lambda value: str(value).isdigit()

    def clean_to_user(self):
        username = self.cleaned_data["to_user"].strip()
        user = User.objects.filter(username=username, is_active=True).first()
        if user is None:
            raise ValidationError(f"No active user named {username!r}.")
        return user


class RemediationUpdateForm(forms.Form):
    ticket = forms.CharField(max_length=100, required=False, label="Ticket reference")
    notes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class ManualCloseForm(forms.Form):
    proof = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), label="What proves the access is gone")
    ticket = forms.CharField(max_length=100, required=False, label="Ticket reference")
    attachment = forms.FileField(required=False, help_text="A screenshot or export showing the removal.")


class SampleDrawForm(forms.Form):
    """An auditor's sample (reviews/samples.py checks the combination and names the field that is wrong)."""

    kind = forms.ChoiceField(choices=AuditSample.Kind.choices, label="Population")
    campaign = forms.ModelChoiceField(
        queryset=Campaign.objects.exclude(status=Campaign.Status.DRAFT).order_by("-created_at", "-id"),
        required=False,
        help_text="Decisions and revocations: a campaign. Remediation: a campaign or a period.",
    )
    since = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}), help_text="Exceptions: opened from"
    )
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}), label="Until")
    size = forms.IntegerField(required=False, help_text="Empty: the sizing table.")
    seed = forms.CharField(
        max_length=200, help_text="Any text; the same seed over the same population draws alike."
    )
    stratified = forms.BooleanField(
        required=False, label="Take every high-risk member, and draw the size from the rest"
    )
