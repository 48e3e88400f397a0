"""Fixtures for the import pipeline tests: files on disk, a private input store, a before/after snapshot.

Every test gets its own input store (``SOXGOV_IMPORT_DIR`` under tmp_path). ``snapshot()`` captures the row
counts and a content digest of every table an import may touch, so "changed nothing" is a comparison.
"""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import override_settings

from entitlements import services
from entitlements.models import Account, ConnectorRun, Entitlement, Grant, Identity
from evidence.models import EvidenceEvent
from evidence.services import Actor
from soxgov import jobs

TRACKED = (Identity, Account, Entitlement, Grant)
# The only evidence a refused run may add: its own queue and refusal events.
RUN_OWN_ACTIONS = ("import.run.queued", "import.run.refused")

IDENTITY_HEADER = (
    "employee_id",
    "email",
    "display_name",
    "department",
    "title",
    "manager_employee_id",
    "status",
    "termination_date",
    "kind",
    "owner_employee_id",
)
ACCESS_HEADER = (
    "application",
    "account_id",
    "account_name",
    "employee_id",
    "email",
    "account_status",
    "last_used_at",
    "entitlement_id",
    "entitlement_name",
    "entitlement_type",
    "privileged",
)


@pytest.fixture(autouse=True)
def import_store(tmp_path):
    """A private input store per test."""
    store = tmp_path / "store"
    with override_settings(SOXGOV_IMPORT_DIR=store):
        yield store


def csv_text(rows: list[list[str]], *, lineterminator: str = "\n") -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator=lineterminator).writerows(rows)
    return buffer.getvalue()


@pytest.fixture
def write_csv(tmp_path):
    """write_csv(name, rows | text | bytes) -> Path. Rows are lists of cells, header first."""

    def write(name: str, content, *, lineterminator: str = "\n") -> Path:
        path = tmp_path / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_bytes(content.encode("utf-8"))
        else:
            path.write_bytes(csv_text(content, lineterminator=lineterminator).encode("utf-8"))
        return path

    return write


@pytest.fixture
def write_xlsx(tmp_path):
    """write_xlsx(name, rows) -> Path, a real workbook written by openpyxl (first sheet)."""
    from openpyxl import Workbook

    def write(name: str, rows: list[list]) -> Path:
        workbook = Workbook()
        sheet = workbook.active
        for row in rows:
            sheet.append(row)
        path = tmp_path / name
        workbook.save(path)
        return path

    return write


def table_digest(model) -> str:
    fields = [f.attname for f in model._meta.concrete_fields]
    hasher = hashlib.sha256()
    for values in model.objects.order_by("pk").values_list(*fields):
        hasher.update(repr(values).encode())
    return hasher.hexdigest()


def snapshot() -> dict:
    """Row counts and content digests of identities, accounts, entitlements, grants, their history, and evidence
    other than runs' own queued/refused events."""
    state = {}
    for model in TRACKED:
        state[model._meta.label] = (model.objects.count(), table_digest(model))
        historical = model.history.model
        state[historical._meta.label] = historical.objects.count()
    state["evidence"] = EvidenceEvent.objects.exclude(
        subject_type="entitlements.connectorrun", action__in=RUN_OWN_ACTIONS
    ).count()
    return state


def changes(run: ConnectorRun) -> dict[str, dict[str, int]]:
    """The non-zero added / removed / changed / terminated counts of a run, per object ({} when none)."""
    out = {}
    for what, counts in run.counts.items():
        moved = {k: v for k, v in counts.items() if k != "unchanged" and v}
        if moved:
            out[what] = moved
    return out


def access_state() -> tuple[list, list]:
    """Accounts and grants without last_seen (which every pull refreshes)."""
    accounts = list(
        Account.objects.order_by("pk").values_list(
            "pk",
            "application_id",
            "account_id",
            "name",
            "identity_id",
            "status",
            "privileged",
            "last_used_at",
        )
    )
    grants = list(
        Grant.objects.order_by("pk").values_list("pk", "account_id", "entitlement_id", "first_seen")
    )
    return accounts, grants


def run_file(path: Path, *, kind: str = "access", application=None, user=None) -> ConnectorRun:
    """Queue and execute a run the way the commands do; returns the finished run."""
    actor = Actor.for_user(user) if user is not None else Actor.system("tests")
    run = services.run_create(
        kind=kind,
        source=path,
        source_name=path.name,
        actor=actor,
        user=user,
        application=application,
        send=False,
    )
    jobs.execute(jobs.of(run).get().pk)
    return ConnectorRun.objects.get(pk=run.pk)


class Outcome:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    def __repr__(self) -> str:
        return f"Outcome(code={self.code}, out={self.out!r}, err={self.err!r})"


def command(name: str, *args, **options) -> Outcome:
    """call_command, returning the exit code (0 unless SystemExit) and what went to stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    try:
        call_command(name, *args, stdout=out, stderr=err, **options)
    except SystemExit as exit_:
        code = exit_.code
    return Outcome(code, out.getvalue(), err.getvalue())


@pytest.fixture
def cmd():
    return command


# Files matching the ``company`` fixture exactly: importing them changes nothing. Tuples, so that no test
# can change them for the tests after it.
COMPANY_IDENTITIES = (
    ("E1", "rita@example.com", "Rita Reviewer", "", "", "", "active", "", "human", ""),
    ("E2", "bob@example.com", "Bob Builder", "", "", "E1", "active", "", "human", ""),
    ("E3", "carol@example.com", "Carol Other", "", "", "", "active", "", "human", ""),
    ("SVC1", "", "ledger-sync", "", "", "", "active", "", "service", "E1"),
)
COMPANY_ERP_ACCESS = (
    ("ERP", "bob", "", "E2", "", "enabled", "", "GL_POST", "Post journal", "role", "false"),
    ("ERP", "carol", "", "E3", "", "enabled", "", "GL_POST", "Post journal", "role", "false"),
    ("ERP", "svc-ledger", "", "SVC1", "", "enabled", "", "GL_POST", "Post journal", "role", "false"),
)


@pytest.fixture
def identities_rows():
    """An identities file (header first) matching the ``company`` fixture exactly."""
    return [list(IDENTITY_HEADER), *(list(row) for row in COMPANY_IDENTITIES)]


@pytest.fixture
def erp_rows():
    """An ERP access file (header first) matching the ``company`` fixture exactly."""
    return [list(ACCESS_HEADER), *(list(row) for row in COMPANY_ERP_ACCESS)]
