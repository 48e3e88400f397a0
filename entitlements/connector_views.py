"""Admin pages for connectors: the list, a create/edit form (secrets as password inputs that never render a
value), "Test connection" and "Pull now". Saving goes through connector_services, as the API and the command do."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from entitlements import services
from entitlements.connector_services import SecretInput, connector_save, connector_test
from entitlements.connectors.sources import SourceError, SourceUnreachable, source_class
from entitlements.models import Application, Connector, ConnectorThresholdChange
from entitlements.thresholds import default_thresholds
from evidence.services import Actor
from soxgov import access
from soxgov.views import restricted_object


def secret_names() -> list[str]:
    """Every secret a kind available here knows (sql: password; ldap: bind_password)."""
    names = set()
    for kind in Connector.Kind.values:
        try:
            source = source_class(kind)
        except ImportError:
            continue
        if source is not None:
            names |= set(source.secret_names)
    return sorted(names)


class ConnectorForm(forms.Form):
    name = forms.CharField(max_length=120)
    kind = forms.ChoiceField(choices=Connector.Kind.choices)
    application = forms.ModelChoiceField(queryset=Application.objects.order_by("name"), required=False)
    configuration = forms.JSONField(
        widget=forms.Textarea(attrs={"rows": 8, "spellcheck": "false"}),
        help_text="The kind's settings as JSON (README: Connectors). Never a password: those are secrets below.",
    )
    cron = forms.CharField(
        required=False, help_text='"minute hour day month weekday" (UTC); empty: on demand.'
    )
    enabled = forms.BooleanField(required=False, initial=True)
    deletion_threshold_percent = forms.IntegerField(min_value=0, max_value=100)
    deletion_threshold_count = forms.IntegerField(min_value=0)

    def __init__(self, *args, secrets=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.secret_names = secrets
        for name in secrets:
            self.fields[f"secret_{name}"] = forms.CharField(
                label=f"Secret {name}",
                required=False,
                strip=False,
                widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
                help_text="Stored encrypted. Leave empty to keep the current one.",
            )
            self.fields[f"reference_{name}"] = forms.CharField(
                label=f"... or a reference for {name}",
                required=False,
                help_text="env:VARIABLE or file:/absolute/path, read at each pull.",
            )
            self.fields[f"remove_{name}"] = forms.BooleanField(label=f"Remove secret {name}", required=False)

    def secret_inputs(self) -> dict[str, SecretInput]:
        data, given = self.cleaned_data, {}
        for name in self.secret_names:
            if data.get(f"remove_{name}"):
                given[name] = SecretInput()
            elif data.get(f"secret_{name}") or data.get(f"reference_{name}"):
                given[name] = SecretInput(
                    value=data.get(f"secret_{name}") or None, reference=data.get(f"reference_{name}") or None
                )
        return given


def _connector(request, pk):
    """Admins only (the pages configure connectors); others are refused before anything is looked up."""
    access.require(request.user, Connector, access.CHANGE)
    return restricted_object(request, Connector, pk, select_related=("application",))


def _initial(connector: Connector) -> dict:
    return {
        "name": connector.name,
        "kind": connector.kind,
        "application": connector.application_id,
        "configuration": connector.configuration,
        "cron": connector.cron,
        "enabled": connector.enabled,
        **connector.thresholds,
    }


def connector_list(request):
    access.require(request.user, Connector, access.CHANGE)
    connectors = (
        Connector.objects.restrict(request.user)
        .select_related("application")
        .prefetch_related("secrets")
        .order_by("name")
    )
    may_change = access.can_attempt(request.user, Connector, access.CHANGE)
    return render(
        request,
        "entitlements/connector_list.html",
        {"connectors": connectors, "may_change": may_change, "title": "Connectors"},
    )


@require_http_methods(["GET", "POST"])
def connector_edit(request, pk=None):
    access.require(request.user, Connector, access.CHANGE if pk else access.ADD)
    connector = _connector(request, pk) if pk is not None else None
    names = secret_names()
    initial = _initial(connector) if connector is not None else default_thresholds()
    form = ConnectorForm(request.POST or None, initial=initial, secrets=names)
    if request.method == "POST" and form.is_valid():
        values = {
            k: form.cleaned_data[k]
            for k in form.fields
            if not k.startswith(("secret_", "reference_", "remove_"))
        }
        try:
            saved = connector_save(
                connector=connector,
                values=values,
                secrets=form.secret_inputs(),
                actor=Actor.for_user(request.user),
                user=request.user,
                via="ui",
            )
        except ValidationError as exc:
            for field, problems in exc.message_dict.items():
                for problem in problems:
                    form.add_error(
                        field if field in form.fields else None,
                        f"{field}: {problem}" if field not in form.fields else problem,
                    )
        else:
            change = saved.thresholds
            if change is not None and change.status == ConnectorThresholdChange.Status.PENDING:
                messages.warning(
                    request,
                    f"Raising the thresholds needs a second admin: change #{change.pk} waits on the Imports page; "
                    f"until then pulls keep {change.old_percent}% / {change.old_count}.",
                )
            messages.success(request, f"Connector {saved.connector.name} saved.")
            return redirect("entitlements:connector_edit", pk=saved.connector.pk)
    context = {
        "form": form,
        "connector": connector,
        "secrets": list(connector.secrets.all()) if connector else [],
    }
    return render(request, "entitlements/connector_form.html", context, status=400 if form.errors else 200)


@require_POST
def connector_test_view(request, pk):
    connector = _connector(request, pk)
    result = {"ok": False}
    try:
        report = connector_test(connector=connector)
    except ValidationError as exc:
        result["error"] = " ".join(exc.messages)
    except SourceError as exc:
        result.update(error=str(exc), unreachable=isinstance(exc, SourceUnreachable))
    else:
        result.update(ok=True, report=report)
    form = ConnectorForm(initial=_initial(connector), secrets=secret_names())
    context = {"form": form, "connector": connector, "secrets": list(connector.secrets.all()), "test": result}
    return render(request, "entitlements/connector_form.html", context)


@require_POST
def connector_pull_view(request, pk):
    connector = _connector(request, pk)
    run = services.connector_pull(connector=connector, actor=Actor.for_user(request.user), user=request.user)
    messages.success(request, f"Pull of {connector.name} queued as import #{run.pk}.")
    return redirect(run)
