"""One check of a connector's settings, per kind, used by the model's clean(), connector_add, the API and the
admin pages alike: every problem, each named by the field (and for a configuration, by its key)."""

from __future__ import annotations

from django.core.exceptions import ValidationError

from entitlements.connectors.sources import source_class

FILE_KINDS = ("identity_file", "access_file")


def connector_problems(
    *, kind: str, application, configuration, cron: str = "", secret_names: set[str] = frozenset()
) -> dict[str, list[str]]:
    """Problems by field name ("kind", "application", "configuration", "cron", "secrets"); empty when valid.
    ``application``: the application (or its id, or None)."""
    from entitlements.models import Connector

    errors: dict[str, list[str]] = {}
    if kind not in Connector.Kind.values:
        errors["kind"] = [f"{kind!r} is not a connector kind (use one of {', '.join(Connector.Kind.values)})"]
        return errors
    if cron and cron.strip() and len(cron.split()) != 5:
        errors["cron"] = ['Use five fields: "minute hour day month weekday", e.g. "0 2 * * *".']
    if kind == Connector.Kind.IDENTITY_FILE and application:
        errors["application"] = ["An identities connector is not tied to an application."]
    if kind in FILE_KINDS:
        if secret_names:
            errors["secrets"] = ["A file connector has no secrets."]
        problem = _file_problem(configuration)
        if problem:
            errors["configuration"] = [problem]
        return errors
    if not application:
        errors["application"] = ["A source connector feeds an application: name it."]
    try:
        source = source_class(kind)
    except ImportError:
        errors["kind"] = [f"{kind!r} connectors are not available in this installation"]
        return errors
    config_problems, secret_problems = [], []
    for problem in source.validate(configuration, set(secret_names)):
        (secret_problems if problem.startswith("secrets:") else config_problems).append(problem)
    if config_problems:
        errors["configuration"] = config_problems
    if secret_problems:
        errors["secrets"] = secret_problems
    return errors


def _file_problem(configuration) -> str | None:
    path = configuration.get("path") if isinstance(configuration, dict) else None
    if not path or not isinstance(path, str):
        return 'A file connector needs {"path": "/where/the/file/lands.csv"}.'
    from entitlements.connectors.roots import connector_file

    try:
        connector_file(path)
    except ValidationError as exc:
        return " ".join(exc.messages)
    return None
