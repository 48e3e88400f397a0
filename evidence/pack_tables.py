"""What an evidence pack holds: its tables, and which evidence events belong to its scope.

Every table whose rows evidence/binding.py binds to the chain (review items, decisions, sign-offs, remediation,
population source) comes with all the events of its rows' subjects, whatever their date: a row shows the
object's state as of the pack, so it can only be checked against all of the object's events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.db.models import Count, Q

from evidence import pack_csv
from evidence.selectors import subjects_in


@dataclass
class Table:
    name: str
    header: list[str]
    rows: Callable[[], Iterable[list]]  # called once per output format
    # The same rows as CSV cell texts (pack_csv.csv_cells), for COPY on PostgreSQL; None for the tables built in
    # Python (the summaries, the population source), which the Python writer writes everywhere.
    cells: Callable | None = None


ITEM_FIELDS = [
    "id", "campaign_id", "grant_id", "application__name", "identity_name", "department", "account_key",
    "entitlement_key", "entitlement_name", "last_used_at", "terminated", "orphan", "dormant", "privileged",
    "sod_conflict", "new_access", "non_human", "reviewer__username", "status", "decided_by__username",
    "decided_at", "comment", "signed_off",
]  # fmt: skip
DECISION_FIELDS = ["id", "item_id", "action", "actor__username", "at", "comment", "delegated_to__username",
                   "recommendation", "reasons", "batch", "seconds_shown"]  # fmt: skip
SIGN_OFF_FIELDS = ["id", "campaign_id", "reviewer__username", "at", "items"]
VIOLATION_FIELDS = ["id", "rule__code", "rule__name", "rule__risk", "holder", "status", "opened_at",
                    "resolved_at", "resolution"]  # fmt: skip
TASK_FIELDS = [
    "id", "item_id", "application__name", "account_key", "entitlement_key", "identity_name", "due_on", "status",
    "ticket", "created_at", "closed_at", "closing_run_id", "proof", "attachment_sha256",
]  # fmt: skip
POPULATION_FIELDS = ["campaign_id", "application", "kind", "run_id", "source_name", "input_sha256",
                     "changes_sha256", "finished_at", "event", "items"]  # fmt: skip


def query_table(name: str, queryset, fields: list[str]) -> Table:
    return Table(
        name,
        fields,
        lambda: (list(row) for row in queryset.values_list(*fields).iterator(chunk_size=5000)),
        lambda: pack_csv.csv_cells(queryset, fields),
    )


def _reviews_tables(items, campaigns, tasks, population: list[list]) -> tuple[list[Table], Q]:
    """The bound tables of these items, their campaigns and remediation, and their events (all of them)."""
    from reviews.models import Decision, SignOff

    decisions = Decision.objects.filter(item__in=items).order_by("pk")
    sign_offs = SignOff.objects.filter(campaign__in=campaigns).order_by("pk")
    runs = sorted({str(row[3]) for row in population if row[3] is not None})
    tables = [
        query_table("review_items", items, ITEM_FIELDS),
        query_table("decisions", decisions, DECISION_FIELDS),
        query_table("sign_offs", sign_offs, SIGN_OFF_FIELDS),
        query_table("remediation", tasks, TASK_FIELDS),
        Table("population_source", POPULATION_FIELDS, lambda: iter(population)),
    ]
    subjects = (
        subjects_in("reviews.campaign", campaigns)
        | subjects_in("reviews.reviewitem", items)
        | subjects_in("reviews.remediationtask", tasks)
        | Q(subject_type="entitlements.connectorrun", subject_id__in=runs, action="import.run.applied")
    )
    return tables, subjects


def campaign_tables(campaign) -> tuple[list[Table], Q]:
    """The campaign's tables, and which evidence events belong to its scope."""
    from reviews.models import Campaign, RemediationTask, ReviewItem
    from sod.models import Violation

    items = ReviewItem.objects.filter(campaign=campaign).order_by("pk")
    identities = items.exclude(identity_id=None).values("identity_id")
    violations = Violation.objects.filter(identity_id__in=identities).order_by("pk")
    tasks = RemediationTask.objects.filter(item__campaign=campaign).order_by("pk")
    summary = [
        ["id", campaign.pk], ["name", campaign.name], ["kind", campaign.kind], ["status", campaign.status],
        ["start_on", campaign.start_on], ["due_on", campaign.due_on], ["launched_at", campaign.launched_at],
        ["completed_at", campaign.completed_at], ["signed_off_at", campaign.signed_off_at],
        ["closed_at", campaign.closed_at], ["items", campaign.item_count],
        ["routing", campaign.routing], ["fallback_reviewer", campaign.fallback_reviewer.get_username()],
    ]  # fmt: skip
    campaigns = Campaign.objects.filter(pk=campaign.pk)
    reviews, subjects = _reviews_tables(items, campaigns, tasks, population_rows(campaigns))
    statistics, findings, finding_rows = _stamp_tables(campaign)
    tables = [
        Table("campaign", ["field", "value"], lambda: iter(summary)),
        *reviews[:4],
        query_table("sod_violations", violations, VIOLATION_FIELDS),
        reviews[4],
        statistics,
        findings,
    ]
    return tables, subjects | subjects_in("sod.violation", violations) | subjects_in(
        "sod.controlexception", finding_rows
    )  # the findings' exceptions: opened, answered, closed


STATISTICS_FIELDS = ["reviewer", "decisions", "certified", "revoked", "certified_share", "in_bulk", "bulk_share",
                     "timed", "median_seconds", "fastest_seconds", "fast", "unshown", "against_recommendation", "high_risk",
                     "high_risk_certified_without_comment", "bulk_certified_revokes", "in_last_hours",
                     "by_hour"]  # fmt: skip
FINDING_FIELDS = ["exception_id", "reviewer", "rule", "seen", "severity", "status", "opened_at", "closed_at"]


def _stamp_tables(campaign) -> tuple[Table, Table, list]:
    """How each reviewer reviewed (reviews/stamps.py) and the findings raised, computed as of the pack."""
    import json

    from reviews import stamps

    rows = [row.as_dict() for row in stamps.reviewer_statistics(campaign)]

    def cell(value):
        # Text for what is not a whole number, so the CSV, JSON and XLSX of the table say it alike.
        if isinstance(value, dict):
            return json.dumps(value, sort_keys=True)
        return f"{value:.4f}" if isinstance(value, float) else value

    statistics = [[cell(row[f]) for f in STATISTICS_FIELDS] for row in rows]
    found = stamps.campaign_findings(campaign)
    findings = [[e.pk, *(e.detail.get(k) for k in ("reviewer", "rule", "seen")), e.severity, e.status,
                 e.opened_at, e.closed_at] for e in found]  # fmt: skip
    return (
        Table("reviewer_statistics", STATISTICS_FIELDS, lambda: iter(statistics)),
        Table("review_findings", FINDING_FIELDS, lambda: iter(findings)),
        found,
    )


def period_tables(since, until, application_ids: list[int]) -> tuple[list[Table], Q]:
    """A period (inclusive dates) and a set of applications: the review items of campaigns launched in the period,
    with their decisions, their campaigns' sign-offs and population source; SoD violations opened or resolved in
    it on rules touching the applications, and remediation opened or closed in it. Events: all of the reviews'
    (see the module's docstring); of the violations, applications and accounts, those in the period."""
    from entitlements.models import Account, Application
    from reviews.models import Campaign, RemediationTask, ReviewItem
    from sod.models import Violation

    in_period = {"date__gte": since, "date__lte": until}
    items = ReviewItem.objects.filter(
        application_id__in=application_ids, **{f"campaign__launched_at__{k}": v for k, v in in_period.items()}
    ).order_by("pk")
    touched = Q(**{f"opened_at__{k}": v for k, v in in_period.items()}) | Q(
        **{f"resolved_at__{k}": v for k, v in in_period.items()}
    )
    violations = (
        Violation.objects.filter(touched, rule__members__entitlement__application_id__in=application_ids)
        .distinct()
        .order_by("pk")
    )
    tasks = (
        RemediationTask.objects.filter(application_id__in=application_ids)
        .filter(
            Q(**{f"created_at__{k}": v for k, v in in_period.items()})
            | Q(**{f"closed_at__{k}": v for k, v in in_period.items()})
        )
        .order_by("pk")
    )
    campaigns = Campaign.objects.filter(pk__in=items.values("campaign_id"))
    names = list(
        Application.objects.filter(pk__in=application_ids).order_by("name").values_list("name", flat=True)
    )
    summary = [["since", since], ["until", until], ["applications", ", ".join(names)]]
    reviews, subjects = _reviews_tables(items, campaigns, tasks, population_rows(campaigns, application_ids))
    dated = Q(occurred_at__date__gte=since, occurred_at__date__lte=until) & (
        subjects_in("sod.violation", violations)
        | Q(subject_type="entitlements.application", subject_id__in=[str(pk) for pk in application_ids])
        | subjects_in("entitlements.account", Account.objects.filter(application_id__in=application_ids))
    )
    tables = [
        Table("scope", ["field", "value"], lambda: iter(summary)),
        *reviews[:4],
        query_table("sod_violations", violations, VIOLATION_FIELDS),
        reviews[4],
    ]
    return tables, subjects | dated


# --- Population source: which pulls the review items were snapshotted from ------------------------------------


def population_rows(campaigns, application_ids=None) -> list[list]:
    """Per campaign: the last applied identities pull before its launch, and for each application it reviews the
    last applied access pull before its launch (a row without a run when there was none), with its item count.
    A standing micro-review's later items name their own run in their ``review.item.created`` events."""
    from entitlements.models import Application, ConnectorRun
    from reviews.models import ReviewItem

    rows = []
    for campaign in campaigns.exclude(launched_at=None).order_by("pk"):
        items = ReviewItem.objects.filter(campaign=campaign)
        if application_ids is not None:
            items = items.filter(application_id__in=application_ids)
        counts = dict(items.values_list("application_id").annotate(n=Count("id")).order_by())
        applications = list(Application.objects.filter(pk__in=counts).order_by("name"))
        before = campaign.launched_at
        identities = _last_applied(ConnectorRun.Kind.IDENTITIES, before, [None]).get(None)
        rows.append([campaign.pk, "", "identities", *_run_cells(identities), None])
        found = _last_applied(ConnectorRun.Kind.ACCESS, before, applications)
        for application in applications:
            name, *run = found.get(application.pk, (application.name, None, None))
            rows.append([campaign.pk, name, "access", *_run_cells(run), counts[application.pk]])
    return rows


def _run_cells(found) -> list:
    run, event = found if found else (None, None)
    if run is None:
        return [None] * 6
    return [run.pk, run.source_name, run.input_sha256, run.changes_sha256, run.finished_at, event.sequence]


def _last_applied(kind, before, applications) -> dict:
    """For each application (None: an identities pull), the last applied pull of ``kind`` that finished before
    ``before``, with its ``import.run.applied`` event; an access pull covers the applications its event lists (by
    their names then) or the one it was started for."""
    from entitlements.models import ConnectorRun
    from evidence.models import EvidenceEvent

    wanted = {(a.pk if a is not None else None): a for a in applications}
    found: dict = {}
    runs = ConnectorRun.objects.filter(kind=kind, status=ConnectorRun.Status.APPLIED, finished_at__lte=before)
    chunk = []
    for run in runs.order_by("-finished_at", "-pk").iterator(chunk_size=200):
        chunk.append(run)
        if len(chunk) == 200:
            _match(chunk, wanted, found, EvidenceEvent)
            chunk = []
            if len(found) == len(wanted):
                return found
    if chunk:
        _match(chunk, wanted, found, EvidenceEvent)
    return found


def _match(runs, wanted: dict, found: dict, EvidenceEvent) -> None:
    events = {
        e.subject_id: e
        for e in EvidenceEvent.objects.filter(
            action="import.run.applied",
            subject_type="entitlements.connectorrun",
            subject_id__in=[str(r.pk) for r in runs],
        )
    }
    for run in runs:
        event = events.get(str(run.pk))
        if event is None:
            continue
        listed = {name.lower(): name for name in event.payload_data.get("applications", [])}
        for key, application in wanted.items():
            if key in found:
                continue
            if application is None:
                found[key] = (run, event)
            elif application.name.lower() in listed:
                found[key] = (application.name, run, event)
            elif run.application_id == key and len(listed) == 1:
                # Renamed since: the name the run's own event gives it, which the pack's verifier checks.
                found[key] = (next(iter(listed.values())), run, event)
