"""Samples for auditors (reviews/samples.py, reviews/sample_export.py) on the company of
tests/reviews/intelligence.py, where each high-risk decision is known by construction: Mia decides every item,
revoking P6's (review carefully) and P7's (likely fine: against the recommendation) and certifying the rest."""

from __future__ import annotations

import datetime as dt
import hashlib
import io

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from entitlements.models import Identity
from evidence.models import EvidenceEvent
from reviews import sample_export, samples, services
from reviews.models import AuditSample, Decision, RemediationTask, ReviewItem
from reviews.remediation import task_close_manually
from sod.models import ControlException
from soxgov.roles import Role
from tests.reviews.intelligence import item, launch

pytestmark = pytest.mark.django_db
Kind = AuditSample.Kind


@pytest.fixture
def audrey(make_user):
    return make_user("audrey", Role.AUDITOR)


@pytest.fixture
def decided(world):
    """The campaign with every item decided by Mia; P6's and P7's revoked."""
    campaign = launch(world)
    mia = world["users"]["mia"]
    revoked = [item(campaign, "P6", "AP_ENTER"), item(campaign, "P7", "AP_ENTER")]
    services.decide(item_ids=[i.pk for i in revoked], user=mia, certify=False, comment="not needed")
    rest = ReviewItem.objects.filter(campaign=campaign, status=ReviewItem.Status.PENDING)
    services.decide(item_ids=[i.pk for i in rest], user=mia, certify=True, comment='=HYPERLINK("http://x")')
    return campaign


def decision_of(campaign, who: str, code: str) -> int:
    return Decision.objects.filter(item=item(campaign, who, code)).latest("pk").pk


def draw(user, campaign, **fields) -> AuditSample:
    return samples.sample_draw(
        user=user, kind=fields.pop("kind", Kind.DECISIONS), campaign_id=campaign.pk, **fields
    )


# --- The draw itself ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("population", "size"),
    [(1, 1), (5, 5), (6, 6), (9, 9), (10, 10), (50, 10), (51, 25), (250, 25), (251, 40), (100_000, 40)],
)
def test_sizing_table(population, size):
    assert samples.size_for(population) == size


def test_the_draw_depends_only_on_the_sorted_ids_and_the_seed():
    """No database in it: PostgreSQL and SQLite draw alike, and anyone can repeat it from the documented recipe."""
    ids = list(range(1, 101))
    expected_sha = hashlib.sha256("\n".join(map(str, ids)).encode()).hexdigest()
    assert samples.population_sha256(list(reversed(ids))) == expected_sha
    import random

    recipe = random.Random("FY2026 Q4\n" + expected_sha).sample(ids, 5)
    selected, size = samples.draw(list(reversed(ids)), set(), seed="FY2026 Q4", size=5)
    assert (selected, size) == (recipe, 5)
    assert samples.draw(ids, set(), seed="FY2026 Q4", size=5)[0] == selected
    assert samples.draw(ids, set(), seed="FY2026 Q5", size=5)[0] != selected
    # One more member changes the hash, so the same seed draws differently.
    assert samples.draw([*ids, 101], set(), seed="FY2026 Q4", size=5)[0] != selected


def test_same_seed_over_the_same_population_selects_the_same_decisions(world, decided, audrey):
    first = draw(audrey, decided, seed="walkthrough 1", size=5)
    again = draw(audrey, decided, seed="walkthrough 1", size=5)
    other = draw(audrey, decided, seed="walkthrough 2", size=5)

    population = set(Decision.objects.filter(item__campaign=decided).values_list("pk", flat=True))
    assert first.population_count == len(population) == ReviewItem.objects.filter(campaign=decided).count()
    assert len(first.selected) == 5 and set(first.selected) <= population
    assert again.selected == first.selected
    assert other.selected != first.selected
    assert first.population_sha256 == other.population_sha256 == samples.population_sha256(list(population))


def test_the_sizing_table_applies_when_no_size_is_given(world, decided, audrey):
    sample = draw(audrey, decided, seed="table")
    assert sample.size_asked is None
    assert sample.population_count > 10  # the 6-50 row: 10
    assert sample.size == len(sample.selected) == 10


def test_the_draw_is_evidenced_with_every_parameter(world, decided, audrey):
    sample = draw(audrey, decided, seed="evidenced", size=3, stratified=True)

    event = EvidenceEvent.objects.get(action="review.sample.drawn")
    assert (event.subject_type, event.subject_id, event.actor_user) == (
        "reviews.auditsample",
        str(sample.pk),
        audrey,
    )
    payload = event.payload_data
    assert payload["selected"] == sample.selected
    assert payload["population_sha256"] == sample.population_sha256
    assert payload["population_count"] == sample.population_count
    assert (payload["seed"], payload["size_asked"], payload["size"], payload["stratified"]) == (
        "evidenced",
        3,
        3,
        True,
    )
    assert (payload["kind"], payload["campaign"]) == ("decisions", decided.pk)
    assert payload["high_risk"] == sample.high_risk and payload["high_risk"]


def test_stratified_takes_every_high_risk_decision_and_draws_the_size_from_the_rest(world, decided, audrey):
    # By construction: P1's vendor master, P3's (terminated) and the bot's (owner gone) were recommended for
    # revoke and certified; P2's GL_ADMIN is privileged; P7's was likely fine and revoked (against the advice).
    high_risk = {
        decision_of(decided, "P1", "VENDOR_MASTER"),
        decision_of(decided, "P3", "AP_ENTER"),
        decision_of(decided, "ap-sync", "AP_ENTER"),
        decision_of(decided, "P2", "GL_ADMIN"),
        decision_of(decided, "P7", "AP_ENTER"),
    }

    sample = draw(audrey, decided, seed="strata", size=4, stratified=True)

    assert sample.high_risk == sorted(high_risk)
    assert sample.selected[:5] == sorted(high_risk)
    drawn = sample.selected[5:]
    assert len(drawn) == 4 and not set(drawn) & high_risk
    assert sample.strata["rest"] == sample.population_count - 5


def test_a_rubber_stamp_finding_makes_all_its_reviewers_decisions_high_risk(world, decided, audrey):
    ControlException.objects.create(
        kind=ControlException.Kind.REVIEW_RUBBER_STAMP,
        severity="medium",
        key=f"rubber_stamp:{decided.pk}:mia:fast",
        title="Rubber stamp? mia",
        detail={"reviewer": "mia", "rule": "fast"},
        due_on=timezone.localdate(),
        opened_at=timezone.now(),
    )
    sample = draw(audrey, decided, seed="stamped", stratified=True)
    assert sample.size == 0 and sample.strata["rest"] == 0
    assert sorted(sample.selected) == sorted(
        Decision.objects.filter(item__campaign=decided).values_list("pk", flat=True)
    )


def test_revocations_are_the_revoke_decisions(world, decided, audrey):
    sample = draw(audrey, decided, kind=Kind.REVOCATIONS, seed="revocations")
    assert sorted(sample.selected) == sorted(
        [decision_of(decided, "P6", "AP_ENTER"), decision_of(decided, "P7", "AP_ENTER")]
    )  # two members: the sizing table takes all


def test_a_changed_decision_is_sampled_as_the_one_in_force(world, decided, audrey):
    from reviews.changes import decision_change

    p7 = item(decided, "P7", "AP_ENTER")
    withdrawn = Decision.objects.get(item=p7).pk
    decision_change(item_id=p7.pk, user=world["users"]["mia"], certify=True, comment="revoked by mistake")
    in_force = Decision.objects.filter(item=p7).latest("pk").pk

    decisions = draw(audrey, decided, seed="changed", size=1)
    revocations = draw(audrey, decided, kind=Kind.REVOCATIONS, seed="changed")

    population = set(
        samples.population(samples.Scope(Kind.DECISIONS, campaign_id=decided.pk)).values_list("pk", flat=True)
    )
    assert in_force in population and withdrawn not in population
    assert decisions.population_count == ReviewItem.objects.filter(campaign=decided).count()
    assert revocations.selected == [decision_of(decided, "P6", "AP_ENTER")]


# --- Verifying later ------------------------------------------------------------------------------------------


def test_verify_reproduces_an_unchanged_population(world, decided, audrey):
    sample = draw(audrey, decided, seed="verify", size=5, stratified=True)
    check = samples.sample_verify(sample)
    assert (check.population_same, check.selection_same, check.recorded_as_drawn) == (True, True, True)
    assert check.selected == sample.selected
    assert check.summary.startswith("Re-drawn over the current population: the same")


def test_verify_says_when_the_population_changed(world, audrey):
    campaign = launch(world)
    mia = world["users"]["mia"]
    pending = list(ReviewItem.objects.filter(campaign=campaign).order_by("pk"))
    services.decide(item_ids=[i.pk for i in pending[:-1]], user=mia, certify=True, comment="ok")
    sample = draw(audrey, campaign, seed="before the last decision", size=5)

    services.decide(item_ids=[pending[-1].pk], user=mia, certify=True, comment="ok")

    check = samples.sample_verify(sample)
    assert not check.population_same
    assert check.population_count == sample.population_count + 1
    assert not check.selection_same  # a new hash seeds a new draw
    assert "the population changed" in check.summary


def test_verify_says_when_the_stored_sample_no_longer_matches_its_evidence(world, decided, audrey):
    sample = draw(audrey, decided, seed="tampered", size=3)
    AuditSample.objects.filter(pk=sample.pk).update(selected=[1, 2, 3])  # a bypass of the model's refusal
    sample.refresh_from_db()
    check = samples.sample_verify(sample)
    assert not check.recorded_as_drawn and not check.selection_same
    assert "no longer matches its review.sample.drawn event" in check.summary


def test_a_sample_is_never_changed_or_deleted(world, decided, audrey):
    from evidence.models import AppendOnlyError

    sample = draw(audrey, decided, seed="kept", size=2)
    sample.seed = "other"
    with pytest.raises(AppendOnlyError):
        sample.save()
    with pytest.raises(AppendOnlyError):
        sample.delete()
    assert AuditSample.objects.get(pk=sample.pk).seed == "kept"


# --- Refusals -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"size": 0}, "size"),
        ({"size": 1000}, "size"),
        ({"seed": "  "}, "seed"),
        ({"campaign_id": 999_999}, "campaign"),
        ({"campaign_id": None}, "campaign"),
        ({"kind": "everything"}, "kind"),
        ({"kind": Kind.EXCEPTIONS}, "campaign"),
        ({"kind": Kind.REMEDIATION, "since": dt.date(2026, 1, 1)}, "since"),
        (
            {
                "kind": Kind.EXCEPTIONS,
                "campaign_id": None,
                "since": dt.date(2026, 2, 1),
                "until": dt.date(2026, 1, 1),
            },
            "until",
        ),
        ({"kind": Kind.EXCEPTIONS, "campaign_id": None, "since": dt.date(2026, 2, 1)}, "until"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_nothing_is_written(world, decided, audrey, fields, field):
    values = {"kind": Kind.DECISIONS, "campaign_id": decided.pk, "seed": "bad", "size": 3, **fields}
    events = EvidenceEvent.objects.count()
    with pytest.raises(ValidationError) as refused:
        samples.sample_draw(user=audrey, **values)
    assert list(refused.value.message_dict) == [field]
    assert AuditSample.objects.count() == 0 and EvidenceEvent.objects.count() == events


def test_an_empty_population_is_refused(world, audrey):
    campaign = launch(world)  # nothing decided yet
    with pytest.raises(ValidationError) as refused:
        draw(audrey, campaign, seed="nothing")
    assert "empty" in refused.value.message_dict["campaign"][0]


def test_a_reviewer_may_not_draw(world, decided):
    with pytest.raises(PermissionDenied):
        draw(world["users"]["mia"], decided, seed="mine")
    assert AuditSample.objects.count() == 0


# --- Remediation and exceptions -------------------------------------------------------------------------------


@pytest.fixture
def closed_by_hand(world, decided):
    """P7's revocation closed manually with proof by Alice (an admin SOXGov knows as a person); P6's open."""
    Identity.objects.create(employee_id="A1", email="alice@example.com", display_name="Alice Admin")
    task = RemediationTask.objects.get(item=item(decided, "P7", "AP_ENTER"))
    return task_close_manually(
        task_id=task.pk,
        user=world["users"]["alice"],
        proof="=cmd|' /C calc'!A0 removed by IT",
        ticket="CHG-7",
    )


def test_remediation_by_campaign_or_by_period_and_its_high_risk(world, decided, audrey, closed_by_hand):
    by_campaign = draw(audrey, decided, kind=Kind.REMEDIATION, seed="tasks", stratified=True)
    today = timezone.localdate()
    by_period = samples.sample_draw(
        user=audrey, kind=Kind.REMEDIATION, seed="tasks", since=today, until=today, stratified=True
    )
    tasks = sorted(RemediationTask.objects.filter(item__campaign=decided).values_list("pk", flat=True))
    assert by_campaign.population_count == by_period.population_count == 2
    assert by_campaign.population_sha256 == by_period.population_sha256 == samples.population_sha256(tasks)
    assert by_campaign.high_risk == [closed_by_hand.pk]  # closed manually; P6's is open and not yet due
    assert sorted(by_campaign.selected) == tasks

    RemediationTask.objects.filter(status="open").update(due_on=today - dt.timedelta(days=1))
    overdue = draw(audrey, decided, kind=Kind.REMEDIATION, seed="tasks", stratified=True)
    assert overdue.high_risk == tasks and overdue.size == 0


def test_exceptions_of_a_period_take_high_severity_and_rubber_stamps_whole(world, audrey):
    now, today = timezone.now(), timezone.localdate()

    def opened(key, severity, kind=ControlException.Kind.ORPHAN_ACCOUNT, when=now):
        return ControlException.objects.create(
            kind=kind, severity=severity, key=key, title=key, due_on=today, opened_at=when
        ).pk

    high = opened("a", "high")
    critical = opened("b", "critical")
    stamp = opened("c", "medium", ControlException.Kind.REVIEW_RUBBER_STAMP)
    low = [opened(f"low{n}", "low") for n in range(8)]
    opened("last year", "critical", when=now - dt.timedelta(days=400))  # outside the period

    sample = samples.sample_draw(
        user=audrey,
        kind=Kind.EXCEPTIONS,
        seed="exceptions",
        since=today,
        until=today,
        size=2,
        stratified=True,
    )
    assert sample.population_count == 11
    assert sample.high_risk == sorted([high, critical, stamp])
    assert len(sample.selected) == 5 and set(sample.selected[3:]) <= set(low)


# --- The export -----------------------------------------------------------------------------------------------


def workbook(response):
    content = b"".join(response.streaming_content)
    return load_workbook(io.BytesIO(content))


def sheet_rows(book, name) -> list[dict]:
    rows = list(book[name].iter_rows(values_only=True))
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def assert_no_formula(book):
    for sheet in book.worksheets:
        for row in sheet.iter_rows():
            for c in row:
                assert c.data_type != "f", f"{sheet.title}!{c.coordinate} is a formula: {c.value!r}"


def test_the_export_of_decisions_holds_what_the_reviewer_was_told_and_its_evidence(
    world, decided, audrey, client
):
    sample = draw(audrey, decided, seed="export", stratified=True, size=2)
    client.force_login(audrey)

    book = workbook(client.get(reverse("reviews:sample_export", args=[sample.pk])))

    assert book.sheetnames == ["sample", "decisions", "evidence_events"]
    parameters = {row["field"]: row["value"] for row in sheet_rows(book, "sample")}
    assert parameters["seed"] == "export" and parameters["population_sha256"] == sample.population_sha256
    rows = {row["decision_id"]: row for row in sheet_rows(book, "decisions")}
    assert list(rows) == sample.selected
    p1 = rows[decision_of(decided, "P1", "VENDOR_MASTER")]
    assert (p1["stratum"], p1["recommendation"], p1["decision"], p1["reviewer"]) == (
        "high_risk", "revoke", "certify", "mia"
    )  # fmt: skip
    assert "unused" in p1["reasons"] and p1["batch"] > 1
    assert p1["comment"] == '\'=HYPERLINK("http://x")'  # shown, never run
    event = EvidenceEvent.objects.get(sequence=p1["event_sequence"])
    assert event.hash == p1["event_hash"] and event.payload_data["decision"] == p1["decision_id"]
    chained = {row["sequence"] for row in sheet_rows(book, "evidence_events")}
    assert {p1["event_sequence"], EvidenceEvent.objects.get(action="review.sample.drawn").sequence} <= chained
    assert_no_formula(book)


def test_the_export_of_remediation_holds_the_proof_and_the_decision(
    world, decided, audrey, client, closed_by_hand
):
    sample = draw(audrey, decided, kind=Kind.REVOCATIONS, seed="proof")
    client.force_login(audrey)

    book = workbook(client.get(reverse("reviews:sample_export", args=[sample.pk])))

    rows = {row["task_id"]: row for row in sheet_rows(book, "revocations")}
    closed = rows[closed_by_hand.pk]
    assert (closed["task_status"], closed["ticket"]) == ("manual", "CHG-7")
    assert closed["proof"] == "'=cmd|' /C calc'!A0 removed by IT"
    assert closed["comment"] == "not needed" and closed["decision"] == "revoke"
    actions = {row["action"] for row in sheet_rows(book, "evidence_events")}
    assert {"review.item.revoked", "remediation.task.opened", "remediation.task.closed_manually"} <= actions
    assert_no_formula(book)

    tasks = draw(audrey, decided, kind=Kind.REMEDIATION, seed="proof")
    (sheet, _) = sample_export.item_sheet(tasks)
    by_task = {row[2]: dict(zip(sheet.header, row, strict=True)) for row in sheet.rows}
    assert by_task[closed_by_hand.pk]["justification"] == "not needed"
    assert by_task[closed_by_hand.pk]["closed_by"] == "alice"


def test_the_pages_show_the_verification_and_draw_from_the_form(world, decided, audrey, client):
    client.force_login(audrey)
    response = client.post(
        reverse("reviews:sample_list"),
        {"kind": "decisions", "campaign": decided.pk, "seed": "from the page", "size": "3"},
    )
    sample = AuditSample.objects.get()
    assert response.status_code == 302 and response["Location"] == sample.get_absolute_url()
    page = client.get(sample.get_absolute_url()).content.decode()
    assert "the same population and the same selection" in page and sample.population_sha256 in page

    refused = client.post(
        reverse("reviews:sample_list"),
        {"kind": "decisions", "campaign": decided.pk, "seed": "x", "size": "0"},
    )
    assert refused.status_code == 400 and "at least 1" in refused.content.decode()
    assert AuditSample.objects.count() == 1

    csv_text = client.get(reverse("reviews:sample_export", args=[sample.pk]) + "?format=csv").content.decode()
    assert csv_text.splitlines()[0].startswith("order,stratum,decision_id")
    assert len(csv_text.strip().splitlines()) == 4


def test_the_api_draws_and_verifies(world, decided, audrey, client):
    client.force_login(audrey)
    created = client.post(
        "/api/reviews/samples/",
        {"kind": "decisions", "campaign": decided.pk, "seed": "api", "size": 2},
        content_type="application/json",
    )
    assert created.status_code == 201, created.content
    sample_id = created.json()["id"]
    detail = client.get(f"/api/reviews/samples/{sample_id}/").json()
    assert detail["verification"]["selection_same"] is True
    assert detail["selected"] == AuditSample.objects.get(pk=sample_id).selected
    refused = client.post(
        "/api/reviews/samples/", {"kind": "decisions", "seed": "api"}, content_type="application/json"
    )
    assert refused.status_code == 400 and "campaign" in refused.json()
