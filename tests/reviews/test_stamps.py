"""Rubber-stamp statistics and findings (reviews/stamps.py) on the company of tests/reviews/intelligence.py: every
number is known by construction, each rule fires on the reviewer who breaks it and not on one who does not, and
a finding is a control exception the reviewer it is about may not answer."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db.models import F
from django.utils import timezone

from entitlements.models import Identity
from evidence.models import EvidenceEvent
from reviews import services, stamps
from reviews.models import Decision, ReviewItem
from sod import exceptions as exception_services
from sod.hygiene import run_hygiene
from sod.models import ControlException
from soxgov.roles import Role
from tests.reviews.intelligence import item, launch

pytestmark = pytest.mark.django_db


def shown(items, seconds_ago: int) -> None:
    ReviewItem.objects.filter(pk__in=[i.pk for i in items]).update(
        shown_at=timezone.now() - dt.timedelta(seconds=seconds_ago)
    )


def earlier(seconds: int) -> None:
    """Move every decision made so far back in time, as if the reviewer had spent ``seconds`` since."""
    Decision.objects.update(at=F("at") - dt.timedelta(seconds=seconds))


def test_statistics_count_what_was_done(world):
    mia = world["users"]["mia"]
    campaign = launch(world)
    revoke_recommended = [item(campaign, "P1", "VENDOR_MASTER"), item(campaign, "P3", "AP_ENTER")]
    fine = [item(campaign, "P5", "AP_ENTER"), item(campaign, "P7", "AP_ENTER")]
    shown(revoke_recommended, 2)
    shown(fine[:1], 120)
    # One bulk certify of two items recommended for revoke (P3's needs a comment: terminated), one slow certify,
    # one revoke of an item recommended as fine, never shown (an API call).
    services.decide(item_ids=[i.pk for i in revoke_recommended], user=mia, certify=True, comment="ok")
    earlier(300)  # the bulk certify was five minutes ago
    services.decide(item_ids=[fine[0].pk], user=mia, certify=True)
    services.decide(item_ids=[fine[1].pk], user=mia, certify=False, comment="moved team")

    (row,) = stamps.reviewer_statistics(campaign)

    assert (row.reviewer, row.decisions, row.certified, row.revoked, row.in_bulk) == ("mia", 4, 3, 1, 2)
    assert (row.timed, row.fast, row.fastest_seconds) == (3, 2, 2)
    assert row.median_seconds in (2.0, 3.0)  # 2, 2 and ~120: the median is the middle one
    assert row.against_recommendation == 3  # two revoke-recommended certified, one fine revoked
    assert row.bulk_certified_revokes == 2
    assert row.high_risk == 2 and row.high_risk_certified_without_comment == 0
    assert sum(row.by_hour.values()) == 4
    assert row.in_last_hours == 0  # due in 14 days
    assert round(row.certified_share, 2) == 0.75 and row.bulk_share == 0.5


def test_each_rule_raises_its_finding_at_sign_off_and_only_once(world, settings):
    settings.SOXGOV_STAMP_FAST_COUNT = 5
    settings.SOXGOV_STAMP_HIGH_RISK_COUNT = 1
    mia = world["users"]["mia"]
    campaign = launch(world)
    pending = list(ReviewItem.objects.filter(campaign=campaign))
    shown(pending, 1)
    services.decide(item_ids=[i.pk for i in pending], user=mia, certify=True, comment="all fine")

    services.sign_off(campaign_id=campaign.pk, user=mia, attested=True)

    found = {e.detail["rule"]: e for e in stamps.campaign_findings(campaign)}
    assert set(found) == {"fast", "all_certified", "bulk_over_revokes"}
    assert found["bulk_over_revokes"].severity == "high"
    assert found["fast"].detail["statistics"]["fast"] == len(pending)
    assert found["fast"].identity_id == mia.identity_id
    opened = EvidenceEvent.objects.filter(action="review.stamp.found", subject_id=str(campaign.pk))
    assert opened.count() == 3
    # The hygiene check keeps a finding open: it is about something done, closed only by a control owner.
    run_hygiene()
    assert all(e.status == "open" for e in stamps.campaign_findings(campaign))
    assert stamps.findings_raise(campaign_id=campaign.pk) == []  # raised once


def test_a_careful_reviewer_raises_nothing(world):
    mia = world["users"]["mia"]
    campaign = launch(world)
    for review_item in ReviewItem.objects.filter(campaign=campaign):
        shown([review_item], 90)
        earlier(90)  # a minute and a half on each item
        certify = review_item.recommendation != "revoke"
        services.decide(
            item_ids=[review_item.pk], user=mia, certify=certify, comment="checked with the manager"
        )

    services.sign_off(campaign_id=campaign.pk, user=mia, attested=True)

    assert list(stamps.campaign_findings(campaign)) == []


def test_the_reviewer_may_not_answer_a_finding_about_them(world, settings, make_user):
    settings.SOXGOV_STAMP_FAST_COUNT = 0
    mia = world["users"]["mia"]
    campaign = launch(world)
    review_item = item(campaign, "P5", "AP_ENTER")
    shown([review_item], 1)
    services.decide(item_ids=[review_item.pk], user=mia, certify=True)
    (finding,) = stamps.findings_raise(campaign_id=campaign.pk)
    # Mia is also a control owner: still not hers to close.
    mia.groups.add(Group.objects.get(name=Role.CONTROL_OWNER.value))

    with pytest.raises(PermissionDenied):
        exception_services.close(exception_id=finding.pk, user=mia, proof="I looked")

    Identity.objects.create(employee_id="O1", email="oscar@example.com", display_name="Oscar")
    owner = make_user("oscar", Role.CONTROL_OWNER, email="oscar@example.com")
    exception_services.close(
        exception_id=finding.pk, user=owner, proof="re-performed: sampled 10 items again"
    )
    assert ControlException.objects.get(pk=finding.pk).status == "closed"


@pytest.mark.usefixtures("pack_keys_trusted")
def test_the_campaign_pack_holds_the_statistics_and_findings_and_verifies(world, settings, tmp_path):
    import csv
    import io

    from django.core.management import call_command

    from evidence.verify_pack import read_pack, verify

    settings.SOXGOV_STAMP_FAST_COUNT = 0
    mia = world["users"]["mia"]
    campaign = launch(world)
    review_item = item(campaign, "P1", "VENDOR_MASTER")
    shown([review_item], 1)
    services.decide(item_ids=[review_item.pk], user=mia, certify=True, comment="ok")
    (finding,) = stamps.findings_raise(campaign_id=campaign.pk)
    out = tmp_path / "pack.zip"
    call_command(
        "export_evidence_pack", "--campaign", str(campaign.pk), "--out", str(out), stdout=io.StringIO()
    )

    files = read_pack(str(out))
    verify(files)
    name = next(n for n in files if n.endswith("data/reviewer_statistics.csv"))
    (row,) = csv.DictReader(io.StringIO(files[name].decode()))
    assert (row["reviewer"], row["decisions"], row["fast"], row["against_recommendation"]) == (
        "mia",
        "1",
        "1",
        "1",
    )
    name = next(n for n in files if n.endswith("data/review_findings.csv"))
    (row,) = csv.DictReader(io.StringIO(files[name].decode()))
    assert (row["exception_id"], row["rule"], row["status"]) == (str(finding.pk), "fast", "open")
    decisions = next(n for n in files if n.endswith("data/decisions.csv"))
    (decision,) = csv.DictReader(io.StringIO(files[decisions].decode()))
    assert decision["recommendation"] == "revoke" and decision["reasons"].startswith(
        "unused for over 90 days"
    )


def test_the_campaign_page_shows_how_each_reviewer_reviewed_and_the_findings(world, settings, client):
    settings.SOXGOV_STAMP_FAST_COUNT = 0
    mia, alice = world["users"]["mia"], world["users"]["alice"]
    campaign = launch(world)
    review_item = item(campaign, "P5", "AP_ENTER")
    shown([review_item], 1)
    services.decide(item_ids=[review_item.pk], user=mia, certify=True)
    client.force_login(alice)

    checked = client.post(f"/reviews/campaigns/{campaign.pk}/stamps/", follow=True)

    page = checked.content.decode()
    assert "Checked: 1 new finding(s) opened as control exceptions." in page
    assert "How each reviewer reviewed" in page and "<td>mia</td>" in page
    assert "Rubber stamp? mia decided too fast to have looked" in page
    judged = client.get("/reviews/how-reviews-are-judged/").content.decode()
    assert "More than 0 decisions, each made either under" in judged


def test_deciding_through_the_api_unseen_is_no_way_around_the_fast_rule(world, settings):
    """An insider scripting certifications one by one on the API never shows an item, so no decision is timed:
    those count with the fast ones."""
    settings.SOXGOV_STAMP_FAST_COUNT = 3
    mia = world["users"]["mia"]
    campaign = launch(world)
    unseen = [item(campaign, f"P{n}", "AP_ENTER") for n in (5, 6, 7, 8)]
    for review_item in unseen:
        services.decide(item_ids=[review_item.pk], user=mia, certify=True, comment="scripted")

    (row,) = stamps.reviewer_statistics(campaign)
    (finding,) = stamps.findings_raise(campaign_id=campaign.pk)

    assert (row.timed, row.fast, row.unshown, row.in_bulk) == (0, 0, 4, 0)
    assert finding.detail["rule"] == "fast"
    assert (
        finding.detail["seen"]
        == "0 decisions each under 5 s from the item shown, 4 without it ever being shown"
    )


def test_a_bulk_decision_gives_each_item_its_share_of_the_time(world):
    """Fifty rows looked at for a minute and certified at once had 1.2 s each: too fast, though each was 'shown'
    60 s before its decision."""
    mia = world["users"]["mia"]
    campaign = launch(world)
    rows = [item(campaign, f"P{n}", "AP_ENTER") for n in (5, 7, 8, 9)]
    shown(rows, 12)  # 3 s each for 4 rows

    services.decide(item_ids=[r.pk for r in rows], user=mia, certify=True, comment="all fine")

    (row,) = stamps.reviewer_statistics(campaign)
    assert (row.in_bulk, row.fast, row.fastest_seconds) == (4, 4, 12)


def test_a_revoke_changed_into_a_certify_is_no_way_around_all_certified(world, settings):
    """Revoke one item, then change it to certify: every item still ends certified, and the rule sees that."""
    from reviews import changes

    settings.SOXGOV_STAMP_HIGH_RISK_COUNT = 1
    mia = world["users"]["mia"]
    campaign = launch(world)
    items = list(ReviewItem.objects.filter(campaign=campaign))
    services.decide(item_ids=[items[0].pk], user=mia, certify=False, comment="decoy")
    services.decide(item_ids=[i.pk for i in items[1:]], user=mia, certify=True, comment="ok")
    changes.decision_change(item_id=items[0].pk, user=mia, certify=True, comment="on second thought")

    rules = {e.detail["rule"] for e in stamps.findings_raise(campaign_id=campaign.pk)}

    assert "all_certified" in rules


def test_a_queue_shown_long_ago_is_timed_decision_by_decision(world):
    """Open the queue on Monday, certify row by row on Tuesday: each decision had the seconds since the last."""
    mia = world["users"]["mia"]
    campaign = launch(world)
    rows = [item(campaign, f"P{n}", "AP_ENTER") for n in (5, 7, 8)]
    shown(rows, 86_400)
    for row in rows:
        services.decide(item_ids=[row.pk], user=mia, certify=True)

    seconds = sorted(Decision.objects.filter(item__in=rows).values_list("seconds_shown", flat=True))
    assert seconds[0] < 5 and seconds[1] < 5 and seconds[2] >= 86_400
