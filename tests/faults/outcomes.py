"""What every fault scenario ends with: the work terminal exactly once, the data the input file says, the
follow-up jobs done, the evidence chain intact. Plus the small company and input files the scenarios use.
"""

from __future__ import annotations

import csv
import hashlib
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from entitlements import services
from entitlements.models import Account, Application, ConnectorRun, Entitlement, Grant, Identity
from evidence.models import ChainVerification, EvidenceEvent, EvidencePack
from evidence.services import Actor
from tests.faults.harness import DEADLINE, wait_until
from tests.imports.conftest import ACCESS_HEADER

RUN_TERMINAL = {"applied", "failed", "held", "rejected", "cancelled"}
RUN_TERMINAL_ACTIONS = (
    "import.run.applied",
    "import.run.failed",
    "import.run.refused",
    "import.run.held",
    "import.run.rejected",
    "import.run.cancelled",
)
CORE_MISSING = "the durable-job core (soxgov.models.Job, soxgov.jobs.reap) is not on this branch yet"


def _jobs_module():
    try:
        from soxgov import jobs
        from soxgov.models import Job
    except ImportError as missing:
        pytest.fail(f"{CORE_MISSING}: {missing}")
    return jobs, Job


def reap() -> None:
    """What the beat task does every minute, without its backoff."""
    jobs, _ = _jobs_module()
    jobs.reap(resend_after=0)


def origin_of(obj) -> tuple[str, str]:
    return obj._meta.label_lower, str(obj.pk)


def jobs_of(obj) -> list:
    _, Job = _jobs_module()
    origin_type, origin_id = origin_of(obj)
    return list(Job.objects.filter(origin_type=origin_type, origin_id=origin_id).order_by("pk"))


def describe_jobs(obj) -> str:
    try:
        rows = jobs_of(obj)
    except BaseException:  # pytest.fail's exception too (no core yet): this only describes
        return f"(jobs unavailable: {CORE_MISSING})"
    return (
        "\n".join(
            f"  job {j.pk} {j.task}{j.args} {j.status} attempts={j.attempts}/{j.max_attempts} "
            f"sent={j.sent_at} started={j.started_at} finished={j.finished_at} error={j.error[:300]!r}"
            for j in rows
        )
        or "  (no jobs)"
    )


def describe(obj, workers) -> str:
    obj = type(obj).objects.get(pk=obj.pk)
    fields = {f.attname: getattr(obj, f.attname) for f in obj._meta.concrete_fields}
    for noisy in ("counts", "problems", "warnings", "scope"):
        fields.pop(noisy, None)
    subject_type, subject_id = origin_of(obj)
    events = EvidenceEvent.objects.filter(subject_type=subject_type, subject_id=subject_id).order_by(
        "sequence"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT application_name, state, xact_start IS NOT NULL FROM pg_stat_activity "
            "WHERE application_name LIKE 'soxgov-fault-worker%%'"
        )
        sessions = cursor.fetchall()
    return (
        f"--- {subject_type} {subject_id}: {fields}\n"
        f"--- its evidence: {[e.action for e in events]}\n"
        f"--- its jobs:\n{describe_jobs(obj)}\n"
        f"--- worker sessions (name, state, in transaction): {sessions}\n"
        f"{workers.explain()}"
    )


# --- A small company and its access files --------------------------------------------------------------------

ERP_BEFORE = [  # (account, employee, entitlement) the company has before the run
    ("p1", "E1", "GL_POST"),
    ("p2", "E2", "GL_POST"),
    ("p3", "E3", "AP_PAY"),
    ("p4", "E4", "VENDOR"),
]
ERP_FILE = [  # the run adds p5 and a second grant of p1, removes p4 (few enough not to be held)
    ("p1", "E1", "GL_POST"),
    ("p1", "E1", "AP_PAY"),
    ("p2", "E2", "GL_POST"),
    ("p3", "E3", "AP_PAY"),
    ("p5", "E5", "VENDOR"),
]
CRM_FILE = [("c1", "E1", "CRM_VIEW"), ("c6", "E6", "CRM_VIEW")]
NAMES = {"GL_POST": "Post journal", "AP_PAY": "Pay vendor", "VENDOR": "Create vendor", "CRM_VIEW": "View"}


class Company:
    """Two applications, six people and their ERP access before the run. The scenarios of a module share one
    database (emptying it between tests costs seconds each), so names that must be unique carry a tag."""

    def __init__(self, tag: str):
        self.tag = tag
        now = timezone.now()
        erp = Application.objects.create(name=f"ERP-{tag}")
        crm = Application.objects.create(name=f"CRM-{tag}")
        self.applications = {"ERP": erp, "CRM": crm}
        people = {
            e: Identity.objects.create(
                employee_id=self.employee(e), email=f"{e}-{tag}@example.com", display_name=e
            )
            for e in (f"E{n}" for n in range(1, 7))
        }
        entitlements = {
            key: Entitlement.objects.create(
                application=crm if key == "CRM_VIEW" else erp, entitlement_id=key, name=name
            )
            for key, name in NAMES.items()
        }
        for account_id, employee, entitlement in ERP_BEFORE:
            account = Account.objects.create(
                application=erp, account_id=account_id, identity=people[employee], first_seen=now
            )
            Grant.objects.create(account=account, entitlement=entitlements[entitlement], first_seen=now)

    def employee(self, employee: str) -> str:
        return f"{self.tag}-{employee}"

    def file(self, directory: Path, application: str, rows) -> Path:
        """An access file of ``application`` ("ERP" or "CRM") with ``rows`` (account, employee, entitlement)."""
        path = directory / f"{application.lower()}-{self.tag}-{len(rows)}.csv"
        buffer = StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(ACCESS_HEADER)
        name = self.applications[application].name
        for account_id, employee, entitlement in rows:
            employee_id, title = self.employee(employee), NAMES[entitlement]
            writer.writerow(
                [name, account_id, "", employee_id, "", "enabled", "", entitlement, title, "role", "false"]
            )
        path.write_text(buffer.getvalue())
        return path

    def access(self, application: str) -> tuple[set, set]:
        """The application's accounts (account, employee, status) and grants (account, entitlement) now."""
        app = self.applications[application]
        prefix = len(self.tag) + 1
        accounts = {
            (account_id, employee_id[prefix:] if employee_id else None, status)
            for account_id, employee_id, status in Account.objects.filter(application=app).values_list(
                "account_id", "identity__employee_id", "status"
            )
        }
        grants = set(
            Grant.objects.filter(account__application=app).values_list(
                "account__account_id", "entitlement__entitlement_id"
            )
        )
        return accounts, grants

    def admin(self, name: str = "alice"):
        """An admin who is also a known person (an identity with her e-mail), as a campaign's reviewer must be."""
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group

        from soxgov.roles import Role

        email = f"{name}-{self.tag}@example.com"
        Identity.objects.create(employee_id=f"{self.tag}-U-{name}", email=email, display_name=name.title())
        user = get_user_model().objects.create_user(
            username=f"{name}-{self.tag}", email=email, password=None, is_staff=True
        )
        user.groups.set(Group.objects.filter(name=Role.ADMIN.value))
        return user


def request_run(path: Path) -> ConnectorRun:
    """What the upload view does: store the input, queue the run with its job, send the job after commit."""
    return services.run_create(
        kind="access", source=path, source_name=path.name, actor=Actor.system("fault-tests"), user=None
    )


def access_in(rows) -> tuple[set, set]:
    """The accounts and grants an access file with ``rows`` says an application has."""
    return {(a, e, "enabled") for a, e, _ in rows}, {(a, g) for a, _, g in rows}


# --- Waiting and asserting -------------------------------------------------------------------------------------


def wait_terminal(obj, workers, *, field: str = "status", done=RUN_TERMINAL, timeout: float = DEADLINE):
    model = type(obj)

    def ended():
        current = model.objects.get(pk=obj.pk)
        return current if getattr(current, field) in done else None

    return wait_until(
        ended,
        f"{model._meta.label_lower} {obj.pk} reaching one of {sorted(done)}",
        timeout=timeout,
        explain=lambda: describe(obj, workers),
    )


def wait_jobs_done(obj, workers, *, timeout: float = DEADLINE) -> list:
    """Every job that ``obj`` started (its own and its follow-ups) done; returns them."""

    def done():
        rows = jobs_of(obj)
        return rows if rows and all(j.status == "done" for j in rows) else None

    return wait_until(
        done, f"every job of {origin_of(obj)} done", timeout=timeout, explain=lambda: describe(obj, workers)
    )


def restarts(run: ConnectorRun) -> int:
    """How often the run was taken over from a dead or failed attempt (import.run.restarted)."""
    return EvidenceEvent.objects.filter(
        subject_type="entitlements.connectorrun", subject_id=str(run.pk), action="import.run.restarted"
    ).count()


def assert_chain_intact() -> None:
    out = StringIO()
    call_command("verify_evidence", stdout=out)
    assert out.getvalue().startswith("intact:"), out.getvalue()


def assert_run_applied_once(run: ConnectorRun, company: Company, application: str, rows, workers) -> None:
    """The run applied exactly once, the application's access is the file's, its follow-ups are done."""
    run = wait_terminal(run, workers)
    assert run.status == "applied", describe(run, workers)
    jobs = wait_jobs_done(run, workers)
    ended = list(
        EvidenceEvent.objects.filter(
            subject_type="entitlements.connectorrun", subject_id=str(run.pk), action__in=RUN_TERMINAL_ACTIONS
        ).values_list("action", flat=True)
    )
    assert ended == ["import.run.applied"], describe(run, workers)
    assert company.access(application) == access_in(rows)
    tasks = {j.task for j in jobs}
    assert {"sod.check_after_import", "reviews.verify_remediation"} <= tasks, describe(run, workers)
    from sod.models import Check

    assert Check.objects.filter(connector_run=run, trigger=Check.Trigger.IMPORT).exists(), describe(
        run, workers
    )
    assert_chain_intact()


def assert_pack_exported_once(pack: EvidencePack, workers) -> None:
    pack = wait_terminal(pack, workers, done={"done", "failed"})
    assert pack.status == "done", describe(pack, workers)
    wait_jobs_done(pack, workers)
    exported = EvidenceEvent.objects.filter(
        action="evidence.pack.exported", subject_type="evidence.evidencepack", subject_id=str(pack.pk)
    )
    assert exported.count() == 1, describe(pack, workers)
    assert (
        hashlib.sha256(Path(pack.path).read_bytes()).hexdigest()
        == pack.sha256
        == exported.get().payload_data["sha256"]
    )
    assert_chain_intact()


def assert_verified_once(verification: ChainVerification, workers) -> None:
    verification = wait_terminal(verification, workers, done={"intact", "broken", "failed"})
    assert verification.status == "intact", describe(verification, workers)
    wait_jobs_done(verification, workers)
    verified = EvidenceEvent.objects.filter(
        subject_type="evidence.chainverification",
        subject_id=str(verification.pk),
        action__in=("evidence.chain.verified", "evidence.chain.broken"),
    )
    assert list(verified.values_list("action", flat=True)) == ["evidence.chain.verified"], describe(
        verification, workers
    )
    assert_chain_intact()
