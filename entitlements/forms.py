from django import forms

from entitlements.models import Application, ConnectorRun


class RunUploadForm(forms.Form):
    kind = forms.ChoiceField(choices=ConnectorRun.Kind.choices, label="What the file holds")
    application = forms.ModelChoiceField(
        queryset=Application.objects.all(),
        required=False,
        empty_label="(named in the file's application column)",
        help_text="For access files without an application column.",
    )
    file = forms.FileField(help_text="CSV (UTF-8) or XLSX, first sheet; formats in the README.")

    def clean(self):
        data = super().clean()
        if data.get("kind") == ConnectorRun.Kind.IDENTITIES and data.get("application"):
            self.add_error("application", "Identities files are not tied to an application.")
        return data


class RunDecisionForm(forms.Form):
    reason = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), max_length=2000)
