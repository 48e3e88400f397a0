"""A campaign world on top of the conftest company: Rita manages Bob and owns the bot; Carol has no user."""

import datetime as dt

import pytest
from django.utils import timezone

from reviews.models import Campaign
from soxgov.roles import Role


@pytest.fixture
def people(personas, make_user, company):
    """personas plus a second reviewer (vic, with an identity of his own: a reviewer without one is never routed
    items) and Bob as a user (so self-review can be attempted). Oscar is an identity by his e-mail: closing a
    remediation task needs one."""
    from entitlements.models import Identity

    Identity.objects.create(employee_id="E9", email="vic@example.com", display_name="Vic Viewer")
    Identity.objects.create(employee_id="E8", email="oscar@example.com", display_name="Oscar Owner")
    return {
        **personas,
        "vic": make_user("vic", Role.REVIEWER),
        "bob": make_user("bob", Role.REVIEWER, email="bob@example.com"),
    }


@pytest.fixture
def make_campaign(people, company):
    def make(**fields):
        today = timezone.localdate()
        apps = fields.pop("applications", None)
        values = {
            "name": "Q4 access review",
            "start_on": today,
            "due_on": today + dt.timedelta(days=14),
            "fallback_reviewer": people["vic"],
            "created_by": people["alice"],
            **fields,
        }
        campaign = Campaign.objects.create(**values)
        if apps:
            campaign.applications.set(apps)
        return campaign

    return make


@pytest.fixture
def launched(people, company, make_campaign):
    """A campaign over both applications, launched: (campaign, its items by account id)."""
    from reviews import services
    from reviews.models import ReviewItem

    campaign = make_campaign(applications=list(company["applications"].values()))
    services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])
    return campaign, {i.account_key: i for i in ReviewItem.objects.filter(campaign=campaign)}


@pytest.fixture
def pack_keys_trusted(monkeypatch):
    """The verifier as a pack ships it: the keys this SOXGov signs with and the hashes of the modules it runs built
    in (the source file has neither)."""
    import hashlib
    from pathlib import Path

    from evidence import packs, signing, verify_pack

    monkeypatch.setattr(verify_pack, "TRUSTED_KEYS", signing.trusted_public_keys())
    pinned = {
        n: hashlib.sha256(Path(m.__file__).read_bytes()).hexdigest() for n, m in packs.SHIPPED_MODULES.items()
    }
    monkeypatch.setattr(verify_pack, "PINNED_MODULES", pinned)


@pytest.fixture
def world(make_user):
    """The review-intelligence company (tests/reviews/intelligence.py)."""
    from tests.reviews.intelligence import build_world

    return build_world(make_user)
