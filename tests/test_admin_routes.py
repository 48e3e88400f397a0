"""Django admin is no side door: access data changes only through pulls, configuration changes are evidenced
with old and new values (schedules too), and an identity a user is linked to cannot be deleted from under them."""

import datetime as dt

import pytest
from django.db.models import ProtectedError
from django.forms.models import model_to_dict
from django.test import Client
from django.urls import reverse
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from entitlements.models import Account, Application, Entitlement, FinancialProcess, Grant, Identity
from evidence.models import EvidenceEvent
from evidence.services import Actor
from soxgov.services import user_identity_set


@pytest.fixture
def alice(personas, company):
    """The admin, who is also a person in the company: the identity her own access is reviewed under."""
    return user_identity_set(
        actor=Actor.system("tests"),
        user=personas["alice"],
        identity=Identity.objects.create(employee_id="E0", email="alice@example.com", display_name="Alice"),
    )


@pytest.fixture
def client(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


def form(obj, **changes) -> dict:
    """``obj``'s Django admin change form as it stands, with ``changes`` applied."""
    data = {"_save": "Save"}
    for name, value in {**model_to_dict(obj), **changes}.items():
        if isinstance(value, dt.datetime):
            data[f"{name}_0"], data[f"{name}_1"] = value.date().isoformat(), value.time().isoformat()
        elif isinstance(value, bool):
            if value:
                data[name] = "on"
        elif isinstance(value, list):
            data[name] = [getattr(v, "pk", v) for v in value]
        elif value is not None:
            data[name] = getattr(value, "pk", value)
    return data


def change_url(obj) -> str:
    return reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])


def payload(action: str) -> dict:
    return EvidenceEvent.objects.get(action=action).payload_data


# --- access data is the pulls' truth ------------------------------------------------------------------------


def test_admin_cannot_orphan_an_account_in_django_admin(client, company):
    """An orphan is reviewed by the application owner: unlinking her own account would route it to her."""
    account = company["accounts"]["carol_erp"]
    response = client.post(change_url(account), form(account, identity=None))
    assert response.status_code == 403
    account.refresh_from_db()
    assert account.identity == company["identities"]["carol"]


def test_admin_cannot_make_herself_owner_or_manager_of_an_identity_in_django_admin(client, alice, company):
    bot, bob = company["identities"]["bot"], company["identities"]["bob"]
    for identity, field in ((bot, "owner"), (bob, "manager")):
        response = client.post(change_url(identity), form(identity, **{field: alice.identity}))
        assert response.status_code == 403
    for identity in (bot, bob):
        identity.refresh_from_db()
    assert (bot.owner, bob.manager) == (company["identities"]["rita"], company["identities"]["rita"])


@pytest.mark.parametrize(
    "field,value", [("email", "alice@example.com"), ("status", "terminated"), ("kind", "bot")]
)
def test_admin_cannot_change_who_an_identity_is_in_django_admin(client, company, field, value):
    carol = company["identities"]["carol"]
    assert client.post(change_url(carol), form(carol, **{field: value})).status_code == 403
    assert getattr(Identity.objects.get(pk=carol.pk), field) == getattr(carol, field)


def test_admin_can_read_but_not_add_or_delete_access_data_in_django_admin(client, company):
    grant = Grant.objects.first()
    for obj in (company["identities"]["carol"], company["accounts"]["bob_erp"], grant):
        name = f"admin:entitlements_{obj._meta.model_name}"
        page = client.get(change_url(obj))
        assert page.status_code == 200 and "changes only through a pull" in page.content.decode()
        assert client.get(reverse(f"{name}_add")).status_code == 403
        assert client.post(reverse(f"{name}_delete", args=[obj.pk]), {"post": "yes"}).status_code == 403
    assert Grant.objects.filter(pk=grant.pk).exists()
    assert not EvidenceEvent.objects.filter(action__startswith="config.").exists()


def test_admin_cannot_revert_access_data_from_its_history_page(client, company):
    """simple-history's revert form saves with the view permission alone, and without evidence."""
    bot = company["identities"]["bot"]
    first = bot.history.earliest()
    bot.owner = company["identities"]["carol"]
    bot.save()
    url = reverse("admin:entitlements_identity_simple_history", args=[bot.pk, first.history_id])
    assert client.post(url, form(first.instance)).status_code == 403
    bot.refresh_from_db()
    assert bot.owner == company["identities"]["carol"]


def test_entitlement_owner_and_flags_stay_editable_but_its_pulled_fields_do_not(client, alice, company):
    post = company["entitlements"]["post"]
    response = client.post(
        change_url(post), form(post, owner=alice.identity, sensitive=True, name="Renamed", entitlement_id="X")
    )
    assert response.status_code == 302
    post.refresh_from_db()
    assert (post.owner, post.sensitive, post.name, post.entitlement_id) == (
        alice.identity,
        True,
        "Post journal",
        "GL_POST",
    )
    assert payload("config.entitlement.changed")["changed"] == {
        "owner": {"old": None, "new": alice.identity.pk},
        "sensitive": {"old": False, "new": True},
    }
    assert client.get(reverse("admin:entitlements_entitlement_add")).status_code == 403
    assert (
        client.post(
            reverse("admin:entitlements_entitlement_delete", args=[post.pk]), {"post": "yes"}
        ).status_code
        == 403
    )


# --- configuration changes carry old and new values ---------------------------------------------------------


def test_admin_change_of_an_application_records_old_and_new_values(client, alice, company):
    erp = company["applications"]["erp"]
    payroll = FinancialProcess.objects.create(code="treasury-test", name="Treasury")
    response = client.post(
        change_url(erp),
        form(erp, owner=alice.identity, sox_in_scope=False, financial_processes=[payroll.pk]),
    )
    assert response.status_code == 302
    assert payload("config.application.changed")["changed"] == {
        "owner": {"old": company["identities"]["carol"].pk, "new": alice.identity.pk},
        "sox_in_scope": {"old": True, "new": False},
        "financial_processes": {"old": [], "new": [payroll.pk]},
    }


def test_admin_delete_records_the_values_that_were_deleted(client):
    app = Application.objects.create(name="Sandbox", criticality="low")
    response = client.post(reverse("admin:entitlements_application_delete", args=[app.pk]), {"post": "yes"})
    assert response.status_code == 302
    event = EvidenceEvent.objects.get(action="config.application.deleted")
    assert event.subject_id == str(app.pk)
    deleted = event.payload_data["deleted"]
    assert (deleted["name"], deleted["criticality"], deleted["sox_in_scope"]) == ("Sandbox", "low", False)


# --- django-celery-beat's schedules -------------------------------------------------------------------------


@pytest.fixture
def pull_task(db) -> PeriodicTask:
    crontab = CrontabSchedule.objects.create(minute="0", hour="2", timezone="UTC")
    return PeriodicTask.objects.create(
        name="pull connector 1: ERP nightly", task="entitlements.pull_connector", crontab=crontab, args="[1]"
    )


def test_disabling_or_repointing_a_scheduled_pull_in_django_admin_is_evidenced(client, alice, pull_task):
    response = client.post(change_url(pull_task), form(pull_task, enabled=False, args="[2]"))
    assert response.status_code == 302, response.content.decode()[:3000]
    pull_task.refresh_from_db()
    assert (pull_task.enabled, pull_task.args) == (False, "[2]")
    event = EvidenceEvent.objects.get(action="config.periodictask.changed")
    assert (event.actor_user, event.subject_id) == (alice, str(pull_task.pk))
    changed = event.payload_data["changed"]
    assert (changed["enabled"], changed["args"]) == (
        {"old": True, "new": False},
        {"old": "[1]", "new": "[2]"},
    )


def test_bulk_disable_of_periodic_tasks_in_django_admin_is_evidenced_per_task(client, pull_task):
    other = PeriodicTask.objects.create(
        name="verify chain", task="evidence.verify_chain_scheduled", crontab=pull_task.crontab, enabled=False
    )
    response = client.post(
        reverse("admin:django_celery_beat_periodictask_changelist"),
        {"action": "toggle_tasks", "_selected_action": [pull_task.pk, other.pk]},
    )
    assert response.status_code == 302
    events = EvidenceEvent.objects.filter(action="config.periodictask.changed").order_by("sequence")
    assert {e.subject_id: e.payload_data["changed"]["enabled"] for e in events} == {
        str(pull_task.pk): {"old": True, "new": False},
        str(other.pk): {"old": False, "new": True},
    }


def test_a_changed_or_deleted_schedule_in_django_admin_is_evidenced(client, pull_task):
    crontab = pull_task.crontab
    # The schedule page lists the tasks using it (an inline formset, read-only).
    inline = {
        "periodictask_set-TOTAL_FORMS": "1",
        "periodictask_set-INITIAL_FORMS": "1",
        "periodictask_set-0-id": pull_task.pk,
        "periodictask_set-0-crontab": crontab.pk,
    }
    response = client.post(change_url(crontab), {**form(crontab, hour="3"), **inline})
    assert response.status_code == 302
    assert payload("config.crontabschedule.changed")["changed"] == {"hour": {"old": "2", "new": "3"}}
    response = client.post(
        reverse("admin:django_celery_beat_periodictask_delete", args=[pull_task.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert payload("config.periodictask.deleted")["deleted"]["args"] == "[1]"


# --- an identity a user is linked to ------------------------------------------------------------------------


def test_an_identity_linked_to_a_user_cannot_be_deleted_from_under_the_user(alice):
    """SET_NULL would unlink in SQL, past the open-work guard, with no access.user.identity_changed."""
    identity = alice.identity
    with pytest.raises(ProtectedError):
        identity.delete()
    alice.refresh_from_db()
    assert alice.identity == identity
    # Relinked through the service (guarded, evidenced), the identity may go.
    other = Identity.objects.create(employee_id="E9", display_name="Alice (new employee id)")
    user_identity_set(actor=Actor.system("tests"), user=alice, identity=other)
    identity.delete()
    assert (
        EvidenceEvent.objects.filter(action="access.user.identity_changed", subject_id=str(alice.pk)).count()
        == 2
    )


def test_account_and_entitlement_are_still_listed_for_the_admin(client, company):
    """Read-only is not hidden: the admin still finds what the pulls brought."""
    for model in (Identity, Account, Entitlement, Grant):
        page = client.get(reverse(f"admin:entitlements_{model._meta.model_name}_changelist"))
        assert page.status_code == 200


def test_every_admin_history_page_answers(client, alice, company):
    """Each History page the admin may view renders for an object of its model (two once answered 500)."""
    from django.contrib import admin

    from entitlements.models import Connector

    Connector.objects.create(
        name="ERP nightly", kind="access_file", application=company["applications"]["erp"]
    )
    failures = {}
    checked = 0
    for model in admin.site._registry:
        opts = model._meta
        obj = model._default_manager.order_by("pk").first()
        if obj is None or not alice.has_perm(f"{opts.app_label}.view_{opts.model_name}"):
            continue
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_history", args=[obj.pk])
        response = client.get(url)
        checked += 1
        if response.status_code != 200:
            failures[opts.label] = response.status_code
    assert checked > 5 and failures == {}
    assert {"entitlements.FinancialProcess", "entitlements.Connector"} <= {
        m._meta.label for m in admin.site._registry if m._default_manager.exists()
    }
