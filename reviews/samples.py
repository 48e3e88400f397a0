"""Samples for auditors: draw a reproducible sample of a population, record it, and check it later.

A population is a campaign's decisions (the certify or revoke in force on each item), a campaign's revocations, remediation tasks (of a
campaign, or opened in a period) or control exceptions opened in a period; its members are rows by id.

The draw, which anyone can repeat (docs/review-intelligence.md, "Samples for auditors"):

1. the population's ids, sorted ascending; ``population_sha256`` is SHA-256 over them written in decimal, one per
   line, no trailing newline;
2. stratified: the high-risk members (``high_risk``) are taken whole, and the draw is from the rest;
3. ``random.Random(seed + "\\n" + population_sha256).sample(rest, size)`` (CPython 3.11), so the same seed over the
   same population draws the same ids on any database, and over a changed population draws differently;
4. the size is the auditor's, or the sizing table's for the number drawn from (``size_for``).

The sample and its ``review.sample.drawn`` event are written in one transaction; ``sample_verify`` re-draws from
the stored parameters over the current population.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone

from evidence.models import EvidenceEvent
from evidence.services import Actor, canonical_payload, event_record
from reviews.models import Advice, AuditSample, Campaign, Decision, RemediationTask
from reviews.stamps import HIGH_RISK, campaign_findings
from sod.models import ControlException, Risk
from soxgov import access

Kind = AuditSample.Kind
DECIDING = (Decision.Action.CERTIFY, Decision.Action.REVOKE)  # a delegation decides nothing
METHOD = (
    'random.Random(seed + "\\n" + population_sha256).sample(sorted ids not taken whole, size), CPython 3.11'
)
# Common audit guidance for samples of a recurring control's occurrences: (largest population, sample size).
SIZING_TABLE = ((5, None), (50, 10), (250, 25))
LARGE_POPULATION_SIZE = 40


def size_for(population: int) -> int:
    """The sizing table: 1-5 members: all; 6-50: 10 (all if fewer); 51-250: 25; over 250: 40."""
    for largest, size in SIZING_TABLE:
        if population <= largest:
            return population if size is None else min(size, population)
    return LARGE_POPULATION_SIZE


def population_sha256(ids: list[int]) -> str:
    return hashlib.sha256("\n".join(str(pk) for pk in sorted(ids)).encode()).hexdigest()


def draw(ids: list[int], high_risk: set[int], *, seed: str, size: int | None) -> tuple[list[int], int]:
    """The selection (the high-risk ids ascending, then the random draw in draw order) and the size drawn."""
    ordered = sorted(ids)
    rest = [pk for pk in ordered if pk not in high_risk]
    size = size_for(len(rest)) if size is None else size
    rng = random.Random(f"{seed}\n{population_sha256(ordered)}")
    return [pk for pk in ordered if pk in high_risk] + rng.sample(rest, size), size


# --- Populations and their high-risk members ------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    kind: str
    campaign_id: int | None = None
    since: dt.date | None = None
    until: dt.date | None = None
    as_of: dt.date | None = None  # the day "overdue" is judged on: the draw's


def population(scope: Scope):
    """The population's rows (a queryset)."""
    if scope.kind in (Kind.DECISIONS, Kind.REVOCATIONS):
        # The decision in force on each item: a decision changed before sign-off is replaced by a later one (the
        # log is append-only, so ids grow with time); the replaced one stays in the item's evidence.
        replaced = Decision.objects.filter(item=OuterRef("item"), action__in=DECIDING, pk__gt=OuterRef("pk"))
        rows = Decision.objects.filter(item__campaign_id=scope.campaign_id, action__in=DECIDING)
        rows = rows.filter(~Exists(replaced))
        return rows.filter(action=Decision.Action.REVOKE) if scope.kind == Kind.REVOCATIONS else rows
    if scope.kind == Kind.REMEDIATION:
        if scope.campaign_id is not None:
            return RemediationTask.objects.filter(item__campaign_id=scope.campaign_id)
        return RemediationTask.objects.filter(
            created_at__date__gte=scope.since, created_at__date__lte=scope.until
        )
    return ControlException.objects.filter(opened_at__date__gte=scope.since, opened_at__date__lte=scope.until)


def high_risk(scope: Scope) -> Q:
    """Which members are taken whole when the sample is stratified.

    Decisions and revocations: by a reviewer with a rubber-stamp finding in the campaign, against the
    recommendation, or of a high-risk item (reviews/stamps.py). Remediation: overdue on the day of the draw (open
    past due, or closed after it) or closed manually. Exceptions: high or critical, or a rubber-stamp finding."""
    if scope.kind in (Kind.DECISIONS, Kind.REVOCATIONS):
        stamped = campaign_findings(Campaign.objects.get(pk=scope.campaign_id))
        reviewers = {e.detail.get("reviewer") for e in stamped} - {None}
        against = Q(action=Decision.Action.CERTIFY, recommendation=Advice.REVOKE) | Q(
            action=Decision.Action.REVOKE, recommendation=Advice.FINE
        )
        return HIGH_RISK | against | Q(actor__username__in=sorted(reviewers))
    if scope.kind == Kind.REMEDIATION:
        return (
            Q(status=RemediationTask.Status.MANUAL)
            | Q(status=RemediationTask.Status.OPEN, due_on__lt=scope.as_of)
            | Q(status=RemediationTask.Status.VERIFIED, closed_at__date__gt=F("due_on"))
        )
    return Q(severity__in=[Risk.HIGH, Risk.CRITICAL]) | Q(kind=ControlException.Kind.REVIEW_RUBBER_STAMP)


def members(scope: Scope, *, stratified: bool) -> tuple[list[int], set[int]]:
    """The population's ids (sorted) and, when stratified, its high-risk ids."""
    rows = population(scope).order_by()
    ids = sorted(rows.values_list("pk", flat=True))
    if not stratified:
        return ids, set()
    return ids, set(rows.filter(high_risk(scope)).values_list("pk", flat=True).distinct())


# --- Drawing --------------------------------------------------------------------------------------------------


def _scope_checked(*, kind, campaign_id, since, until) -> Scope:
    """The population asked for, or a ValidationError naming the field that is wrong."""
    if kind not in Kind.values:
        raise ValidationError({"kind": f"Choose one of {', '.join(Kind.values)}; not {kind!r}."})
    by_campaign = campaign_id is not None
    if kind in AuditSample.BY_CAMPAIGN and not by_campaign:
        raise ValidationError({"campaign": f"A sample of {kind} is of a campaign: choose one."})
    if kind in AuditSample.BY_PERIOD and by_campaign:
        raise ValidationError({"campaign": f"A sample of {kind} is of a period, not a campaign."})
    if by_campaign:
        if since is not None or until is not None:
            field = "since" if since is not None else "until"
            raise ValidationError({field: "A sample is of a campaign or of a period, not both."})
        if not Campaign.objects.filter(pk=campaign_id).exists():
            raise ValidationError({"campaign": f"There is no campaign #{campaign_id}."})
        return Scope(kind, campaign_id=campaign_id)
    for name, value in (("since", since), ("until", until)):
        if value is None:
            raise ValidationError(
                {name: f"A sample of {kind} by period needs both dates: {name} is missing."}
            )
    if until < since:
        raise ValidationError({"until": f"The period ends ({until}) before it starts ({since})."})
    return Scope(kind, since=since, until=until)


def sample_draw(
    *,
    user,
    kind: str,
    seed: str,
    campaign_id: int | None = None,
    since: dt.date | None = None,
    until: dt.date | None = None,
    size: int | None = None,
    stratified: bool = False,
) -> AuditSample:
    """Draw a sample and record it with its evidence, or refuse (ValidationError naming the field) writing
    nothing."""
    access.require(user, AuditSample, access.ADD)
    seed = (seed or "").strip()
    if not seed:
        raise ValidationError(
            {"seed": "Type a seed (any text): the same seed over the same population draws alike."}
        )
    if len(seed) > AuditSample._meta.get_field("seed").max_length:
        raise ValidationError({"seed": "A seed is at most 200 characters."})
    if size is not None and size < 1:
        raise ValidationError({"size": f"A sample size is at least 1; not {size}."})
    now = timezone.now()
    scope = _scope_checked(kind=kind, campaign_id=campaign_id, since=since, until=until)
    scope = Scope(scope.kind, scope.campaign_id, scope.since, scope.until, as_of=timezone.localdate(now))
    with transaction.atomic():
        ids, taken_whole = members(scope, stratified=stratified)
        if not ids:
            raise ValidationError(
                {"campaign" if campaign_id is not None else "since": f"The population of {kind} is empty."}
            )
        rest = len(ids) - len(taken_whole)
        if size is not None and size > rest:
            within = "outside the high-risk stratum " if stratified else ""
            raise ValidationError({"size": f"{size} is more than the {rest} members {within}to draw from."})
        selected, size_drawn = draw(ids, taken_whole, seed=seed, size=size)
        sample = AuditSample(
            kind=kind,
            campaign_id=scope.campaign_id,
            since=scope.since,
            until=scope.until,
            size_asked=size,
            size=size_drawn,
            seed=seed,
            stratified=stratified,
            population_count=len(ids),
            population_sha256=population_sha256(ids),
            selected=selected,
            strata={"high_risk": sorted(taken_whole), "rest": rest},
            drawn_by=user,
            drawn_by_name=Actor.for_user(user).name,
            drawn_at=now,
        )
        sample.save()
        event_record(
            actor=Actor.for_user(user),
            action="review.sample.drawn",
            subject=sample,
            payload=drawn_facts(sample),
        )
    return sample


def drawn_facts(sample: AuditSample) -> dict:
    """What the sample's event records: every parameter, the counts, the hash and the selection."""
    return {
        "kind": sample.kind,
        "campaign": sample.campaign_id,
        "since": sample.since,
        "until": sample.until,
        "size_asked": sample.size_asked,
        "size": sample.size,
        "seed": sample.seed,
        "stratified": sample.stratified,
        "population_count": sample.population_count,
        "population_sha256": sample.population_sha256,
        "high_risk": sample.high_risk,
        "selected": sample.selected,
        "method": METHOD,
    }


# --- Verifying ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SampleCheck:
    population_count: int
    population_sha256: str
    population_same: bool
    selected: list[int]
    selection_same: bool
    recorded_as_drawn: bool  # the stored sample still says what its evidence event says

    @property
    def summary(self) -> str:
        if self.population_same and self.selection_same and self.recorded_as_drawn:
            return "Re-drawn over the current population: the same population and the same selection."
        said = []
        if not self.recorded_as_drawn:
            said.append("the stored sample no longer matches its review.sample.drawn event")
        if not self.population_same:
            said.append(
                f"the population changed ({self.population_count} members now, SHA-256 {self.population_sha256})"
            )
        if not self.selection_same:
            said.append("re-drawing selects different members")
        return "Changed since the draw: " + "; ".join(said) + "."


def sample_verify(sample: AuditSample) -> SampleCheck:
    """Re-draw from the stored parameters over the current population and compare."""
    scope = Scope(
        sample.kind, sample.campaign_id, sample.since, sample.until, as_of=timezone.localdate(sample.drawn_at)
    )
    ids, taken_whole = members(scope, stratified=sample.stratified)
    rest = len(ids) - len(taken_whole)
    if sample.size_asked is not None and sample.size_asked > rest:
        selected = []  # too few left to draw the size asked: the selection cannot be repeated
    else:
        selected, _ = draw(ids, taken_whole, seed=sample.seed, size=sample.size_asked)
    event = EvidenceEvent.objects.filter(
        action="review.sample.drawn", subject_type="reviews.auditsample", subject_id=str(sample.pk)
    ).first()
    recorded = event is not None and event.payload_data == _as_json(drawn_facts(sample))
    sha = population_sha256(ids)
    return SampleCheck(
        population_count=len(ids),
        population_sha256=sha,
        population_same=sha == sample.population_sha256,
        selected=selected,
        selection_same=selected == list(sample.selected),
        recorded_as_drawn=recorded,
    )


def _as_json(payload: dict) -> dict:
    """The payload as its event stores it (dates as text), to compare with one read back."""
    return json.loads(canonical_payload(payload))
