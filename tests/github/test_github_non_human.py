"""GitHub Apps and bots as the connector's own non-human identities (``owners``), and what such a pull may touch.

A connector whose scope is its own non-human identities (entitlements/imports/identities.py) brings an identity for
each App or bot ``owners`` names, owned by the person named; an App uninstalled ends its identity; people and the
identities feed's identities are never touched; an owner SOXGov does not know, or an employee id another source is
accountable for, refuses the pull whole.
"""

from __future__ import annotations

import csv

import pytest

from entitlements.models import Account, Connector, ConnectorRun, Identity
from evidence.models import EvidenceEvent
from tests.imports.conftest import command
from tests.web_sources import import_store, snapshot  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("import_store")
LINT = "github:example-org/app:lint-helper"


def own(owners: dict[str, str]) -> None:
    connector = Connector.objects.get(name="gh")
    connector.configuration = {**connector.configuration, "owners": owners}
    connector.save(update_fields=["configuration"])


def test_an_owned_app_becomes_the_connectors_identity_and_ends_when_uninstalled(org):
    hr_only = Identity.objects.create(employee_id="E790", display_name="Hana Payroll")  # in no GitHub listing
    own({"app:lint-helper": "E702"})

    first = command("connector_pull", "gh")

    assert first.code == 0, first
    lint = Identity.objects.get(employee_id=LINT)
    assert (lint.kind, lint.owner.employee_id, lint.connector.name, lint.status) == (
        "service",
        "E702",
        "gh",
        "active",
    )
    assert lint.display_name == "lint-helper (GitHub App installed on example-org)"
    assert Account.objects.get(name="lint-helper").identity == lint
    # The pull is the truth for its own identity only: the people and the feed's bots are untouched.
    assert set(Identity.objects.exclude(pk=lint.pk).values_list("status", flat=True)) == {"active"}
    applied = ConnectorRun.objects.get(kind="identities", status="applied")
    assert applied.counts["identities"]["terminated_absent"] == 0

    org.org["installations"] = [i for i in org.org["installations"] if i["app_slug"] != "lint-helper"]
    second = command("connector_pull", "gh")

    assert second.code == 0, second
    lint.refresh_from_db()
    assert lint.status == "terminated"
    ended = EvidenceEvent.objects.get(action="access.identity.terminated", subject_id=str(lint.pk))
    assert ended.payload_data["reason"] == "absent from the pull of connector gh"
    hr_only.refresh_from_db()
    assert hr_only.status == "active"
    assert Identity.objects.filter(status="terminated").count() == 1


def test_an_owner_soxgov_does_not_know_refuses_the_pull_and_changes_nothing(org):
    own({"app:lint-helper": "E999"})
    before = snapshot()

    refused = command("connector_pull", "gh")

    assert refused.code == 1, refused
    said = refused.out + refused.err
    assert (
        "owner_employee_id" in said and "E999" in said and "no person in SOXGov has this employee id" in said
    )
    assert snapshot() == before


def test_a_bot_cannot_take_over_an_identity_another_source_holds(org):
    """Whoever can name owners in the connector's configuration cannot rewrite a person, or re-own an identity
    the identities feed is accountable for, by giving its employee id."""
    Identity.objects.create(employee_id=LINT, display_name="Not an app", email="sam.lee@example.com")
    own({"app:lint-helper": "E702"})
    before = snapshot()

    refused = command("connector_pull", "gh")

    assert refused.code == 1, refused
    assert f"{LINT}" in refused.out + refused.err
    assert "(a person); connector gh may not take it over" in refused.out + refused.err
    assert snapshot() == before


def test_the_identities_feed_may_not_list_an_identity_a_connector_brought(org, tmp_path):
    own({"app:lint-helper": "E702"})
    assert command("connector_pull", "gh").code == 0
    path = tmp_path / "hr.csv"
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["employee_id", "email", "display_name", "kind", "owner_employee_id"])
        for identity in Identity.objects.filter(kind="human"):
            writer.writerow([identity.employee_id, identity.email or "", identity.display_name, "human", ""])
        writer.writerow(["SVC-REL", "", "Release bot", "bot", "E701"])
        writer.writerow(["SVC-DEPLOY", "", "Deploy app", "service", "E701"])
        writer.writerow([LINT, "", "lint helper, re-owned", "service", "E703"])
    before = snapshot()

    refused = command("import_identities", str(path))

    assert refused.code == 1, refused
    assert "a non-human identity connector gh pulls; its pulls are its truth" in refused.out + refused.err
    assert snapshot() == before
    assert Identity.objects.get(employee_id=LINT).owner.employee_id == "E702"


def test_owners_and_non_human_may_not_name_the_same_app():
    from entitlements.connectors.github import GitHubSource

    problems = GitHubSource.validate(
        {
            "organization": "example-org",
            "non_human": {"app:deploy-conductor": "SVC-DEPLOY"},
            "owners": {"App:Deploy-Conductor": "E701"},
        },
        {"token"},
    )
    assert problems == [
        "owners: app:deploy-conductor is also in non_human: an App or bot is either an identity the identities "
        "feed holds (non_human) or this connector's own, owned by the person named here (owners), not both"
    ]


def test_a_persons_login_in_owners_is_refused(org):
    own({"dev-fay": "E701"})
    before = snapshot()

    refused = command("connector_pull", "gh")

    assert refused.code != 0, refused
    assert "owners: dev-fay is a person's GitHub account, not an App or a bot" in refused.out + refused.err
    assert snapshot() == before
