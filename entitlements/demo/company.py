"""Builds the demo company: about 500 people, 30 non-human identities, 11 applications, and their access.

Deterministic (seeded random), backdated history so "what did X hold on date D" has answers, evidence for
everything it creates, and a few planted problems a control owner should find:

- a terminated person (Gregory Hale) whose ERP and bank accounts are still enabled and entitled;
- orphan accounts that match no identity (AP, Bank Portal, Directory);
- a service account without an owner (svc-legacy-ftp) and one whose owner has left (svc-old-reports);
- dormant accounts, and people who combine conflicting duties (create and approve journal entries, or
  create vendors and approve payments).
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone
from simple_history.utils import bulk_create_with_history, bulk_update_with_history

from entitlements.demo import catalogue
from entitlements.models import Account, Application, Entitlement, FinancialProcess, Grant, Identity
from evidence.services import Actor, Event, Subject, events_record

DOMAIN = "northwind.example"
REASON = "seed_demo"


def grant_subject(grant: Grant) -> Subject:
    account, entitlement = grant.account, grant.entitlement
    return Subject(
        "entitlements.grant",
        str(grant.pk),
        f"{account.account_id} holds {entitlement.name} in {account.application.name}",
    )


class AlreadySeeded(Exception):
    pass


@dataclass(eq=False)
class Person:
    first: str
    last: str
    department: str
    title: str
    manager: Person | None = None
    is_manager: bool = False
    status: str = Identity.Status.ACTIVE
    termination_date: dt.date | None = None
    hired: dt.datetime | None = None
    identity: Identity | None = None
    grants: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class Summary:
    counts: Counter
    planted: list[str]


class CompanyBuilder:
    def __init__(self, *, seed: int = 2026, people: int = 500):
        self.rng = random.Random(seed)
        self.target = people
        self.now = timezone.now()
        self.events: list[Event] = []
        self.counts: Counter = Counter()
        self.planted: list[str] = []
        self._used_names: set[tuple[str, str]] = set()
        self._usernames: set[str] = set()

    # --- people -----------------------------------------------------------------------------------------
    def _name(self) -> tuple[str, str]:
        while True:
            pair = (self.rng.choice(catalogue.FIRST_NAMES), self.rng.choice(catalogue.LAST_NAMES))
            if pair not in self._used_names:
                self._used_names.add(pair)
                return pair

    def _person(self, department, title, manager, *, name=None, is_manager=False) -> Person:
        first, last = name or self._name()
        self._used_names.add((first, last))
        hired = self.now - dt.timedelta(days=self.rng.randint(200, 2400))
        return Person(first, last, department, title, manager, is_manager, hired=hired)

    def build_org(self) -> list[Person]:
        ceo = self._person("Executive", "Chief Executive Officer", None, is_manager=True)
        cfo = self._person("Finance", "Chief Financial Officer", ceo, is_manager=True)
        cio = self._person("IT Operations", "Chief Information Officer", ceo, is_manager=True)
        people = [ceo, cfo, cio]
        finance_side = {"Accounting", "Finance", "Treasury", "Procurement"}
        remaining = self.target - len(people)
        for department, (share, titles, _) in catalogue.DEPARTMENTS.items():
            headcount = max(3, round(remaining * share))
            if department == "Finance":
                head = cfo
            elif department == "IT Operations":
                head = cio
            else:
                boss = cfo if department in finance_side else ceo
                head = self._person(department, f"Head of {department}", boss, is_manager=True)
                people.append(head)
            team_count = max(1, headcount // 9)
            managers = []
            for i in range(team_count):
                name = ("Rita", "Okafor") if department == "Accounting" and i == 0 else None
                title = "Accounting Manager" if name else f"{department} Manager"
                managers.append(self._person(department, title, head, name=name, is_manager=True))
            people.extend(managers)
            for i in range(headcount - team_count - 1):
                people.append(self._person(department, self.rng.choice(titles), managers[i % team_count]))
        personas = {
            ("Alice", "Nakamura"): ("IT Operations", "Identity Governance Lead", cio),
            ("Oscar", "Lindqvist"): ("Finance", "Internal Controls Manager", cfo),
            ("Gregory", "Hale"): (
                "Accounting",
                "Senior Accountant",
                next(p for p in people if p.first == "Rita"),
            ),
        }
        for name, (department, title, manager) in personas.items():
            people.append(self._person(department, title, manager, name=name))
        self._assign_statuses(people)
        return people

    def _assign_statuses(self, people: list[Person]) -> None:
        protected = {("Rita", "Okafor"), ("Alice", "Nakamura"), ("Oscar", "Lindqvist")}
        for person in people:
            if person.is_manager or (person.first, person.last) in protected:
                continue
            roll = self.rng.random()
            if (person.first, person.last) == ("Gregory", "Hale") or roll < 0.035:
                days_ago = (
                    45 if person.first == "Gregory" and person.last == "Hale" else self.rng.randint(5, 150)
                )
                person.status = Identity.Status.TERMINATED
                person.termination_date = (self.now - dt.timedelta(days=days_ago)).date()
            elif roll < 0.055:
                person.status = Identity.Status.LEAVE

    def _username(self, person: Person) -> str:
        base = f"{person.first[0]}{person.last}".lower()
        candidate, n = base, 1
        while candidate in self._usernames:
            n += 1
            candidate = f"{base}{n}"
        self._usernames.add(candidate)
        return candidate

    def save_people(self, people: list[Person]) -> None:
        emails: set[str] = set()
        # Create level by level so every manager exists before their reports.
        level = [p for p in people if p.manager is None]
        seq = 10000
        while level:
            rows = []
            for person in level:
                seq += 1
                email = f"{person.first}.{person.last}".lower()
                email = f"{email}{seq}" if email in emails else email
                emails.add(email)
                identity = Identity(
                    employee_id=f"E{seq}",
                    email=f"{email}@{DOMAIN}",
                    display_name=f"{person.first} {person.last}",
                    department=person.department,
                    title=person.title,
                    manager=person.manager.identity if person.manager else None,
                )
                identity._history_date = person.hired
                person.identity = identity
                rows.append(identity)
            bulk_create_with_history(rows, Identity, default_change_reason=REASON)
            for identity in rows:
                self._event(
                    "access.identity.added", identity, {"employee_id": identity.employee_id, "kind": "human"}
                )
            level = [p for p in people if p.manager is not None and p.manager in level]
        leavers = [p for p in people if p.status != Identity.Status.ACTIVE]
        for person in leavers:
            person.identity.status = person.status
            person.identity.termination_date = person.termination_date
            when = person.termination_date or (self.now - dt.timedelta(days=self.rng.randint(3, 60))).date()
            person.identity._history_date = timezone.make_aware(dt.datetime.combine(when, dt.time(18)))
            self._event(
                "access.identity.changed",
                person.identity,
                {"status": person.status, "termination_date": person.termination_date},
            )
        bulk_update_with_history(
            [p.identity for p in leavers],
            Identity,
            ["status", "termination_date"],
            default_change_reason=REASON,
        )
        self.counts["people"] = len(people)

    # --- applications and entitlements ---------------------------------------------------------------
    def save_applications(self, people: list[Person]) -> tuple[dict, dict]:
        heads = {
            p.department: p.identity for p in people if p.is_manager and p.title.startswith(("Head", "Chief"))
        }
        rita = next(p.identity for p in people if (p.first, p.last) == ("Rita", "Okafor"))
        # Normally installed by migration 0003; recreated here for databases emptied since (transactional tests).
        codes = {code for app in catalogue.APPLICATIONS for code in app[4]}
        processes = {
            code: FinancialProcess.objects.get_or_create(
                code=code, defaults={"name": code.replace("_", " ").capitalize()}
            )[0]
            for code in codes
        }
        applications, entitlements = {}, {}
        for name, description, sox, criticality, codes, owner_department in catalogue.APPLICATIONS:
            owner = rita if name == "Accounts Payable" else heads.get(owner_department, heads["Finance"])
            application = Application(
                name=name, description=description, sox_in_scope=sox, criticality=criticality, owner=owner
            )
            application._history_date = self.now - dt.timedelta(days=2500)
            application._change_reason = REASON
            application.save()
            application.financial_processes.set([processes[c] for c in codes])
            applications[name] = application
            self._event("config.application.created", application, {"sox_in_scope": sox, "processes": codes})
            rows = []
            for ent_id, ent_name, kind, privileged, sensitive in catalogue.ENTITLEMENTS[name]:
                entitlement = Entitlement(
                    application=application,
                    entitlement_id=ent_id,
                    name=ent_name,
                    kind=kind,
                    privileged=privileged,
                    sensitive=sensitive,
                    owner=owner,
                )
                entitlement._history_date = self.now - dt.timedelta(days=2500)
                rows.append(entitlement)
            bulk_create_with_history(rows, Entitlement, default_change_reason=REASON)
            for entitlement in rows:
                entitlements[(name, entitlement.entitlement_id)] = entitlement
                self._event(
                    "access.entitlement.added", entitlement, {"entitlement_id": entitlement.entitlement_id}
                )
        self.counts["applications"] = len(applications)
        self.counts["entitlements"] = len(entitlements)
        return applications, entitlements

    # --- non-human identities --------------------------------------------------------------------------
    def save_non_humans(self, people: list[Person]) -> list[tuple[Identity, list]]:
        by_department: dict[str, list[Person]] = {}
        for p in people:
            if p.status == Identity.Status.ACTIVE and not p.title.startswith("Chief"):
                by_department.setdefault(p.department, []).append(p)
        leavers = [p for p in people if p.status == Identity.Status.TERMINATED]
        leaver = next((p for p in leavers if p.department == "Finance"), leavers[0])
        result = []
        for employee_id, name, kind, department, grants in catalogue.NON_HUMAN:
            if employee_id == "SVC-LEGACY-FTP":
                owner = None
                self.planted.append(f"service account without an owner: {name}")
            elif employee_id == "SVC-OLD-REPORTS":
                owner = leaver.identity
                self.planted.append(f"service account whose owner has left: {name} (owner {owner})")
            else:
                owner = self.rng.choice(by_department[department]).identity
            identity = Identity(
                employee_id=employee_id,
                display_name=name,
                kind=kind,
                department=department or "",
                owner=owner,
                title={"service": "Service account", "system": "System", "bot": "Bot", "api_key": "API key"}[
                    kind
                ],
            )
            identity._history_date = self.now - dt.timedelta(days=self.rng.randint(300, 1500))
            result.append((identity, grants))
        bulk_create_with_history([i for i, _ in result], Identity, default_change_reason=REASON)
        for identity, _ in result:
            self._event(
                "access.identity.added",
                identity,
                {"employee_id": identity.employee_id, "kind": identity.kind},
            )
        self.counts["non_human"] = len(result)
        return result

    # --- accounts and grants ----------------------------------------------------------------------------
    def plan_access(self, people: list[Person]) -> None:
        for person in people:
            wanted = list(catalogue.EVERYONE)
            wanted += list(catalogue.DEPARTMENTS.get(person.department, (0, [], []))[2])
            for app, ent, share in wanted:
                if self.rng.random() < share:
                    person.grants.append((app, ent))
            if person.is_manager:
                person.grants += catalogue.MANAGER_EXTRAS.get(person.department, [])
            if (person.first, person.last) == ("Gregory", "Hale"):
                person.grants += [
                    ("ERP General Ledger", "GL_JE_CREATE"),
                    ("Bank Portal", "BANK_PAYMENT_CREATE"),
                ]
            person.grants = list(dict.fromkeys(person.grants))

    def save_access(self, people, non_humans, applications, entitlements) -> None:
        accounts: dict[tuple[str, int | str], Account] = {}
        planned_grants: list[tuple[Account, Entitlement, dt.datetime]] = []
        removals: list[tuple[Account, Entitlement, dt.datetime]] = []

        def account_for(app_name, key, identity, username, since, *, enabled=True, privileged=False):
            account = accounts.get((app_name, key))
            if account is None:
                account_id = username.upper() if app_name == "ERP General Ledger" else username
                roll = self.rng.random()
                last_used = (
                    None
                    if roll < 0.05
                    else self.now
                    - dt.timedelta(
                        days=self.rng.randint(100, 400) if roll < 0.15 else self.rng.randint(0, 30)
                    )
                )
                account = Account(
                    application=applications[app_name],
                    account_id=account_id,
                    name=username,
                    identity=identity,
                    status=Account.Status.ENABLED if enabled else Account.Status.DISABLED,
                    privileged=privileged,
                    last_used_at=last_used,
                    first_seen=since,
                )
                account._history_date = since
                accounts[(app_name, key)] = account
            return account

        for person in people:
            username = self._username(person)
            planted = (person.first, person.last) == ("Gregory", "Hale")
            for app_name, ent_id in person.grants:
                since = person.hired + dt.timedelta(days=self.rng.randint(1, 60))
                gone = person.status == Identity.Status.TERMINATED and not planted
                account = account_for(
                    app_name,
                    person.identity.pk,
                    person.identity,
                    username,
                    since,
                    enabled=not gone or app_name == "Corporate Directory",
                )
                entitlement = entitlements[(app_name, ent_id)]
                planned_grants.append((account, entitlement, since))
                if gone:
                    removed_at = timezone.make_aware(
                        dt.datetime.combine(person.termination_date, dt.time(17))
                    )
                    removals.append((account, entitlement, removed_at))
        if any((p.first, p.last) == ("Gregory", "Hale") for p in people):
            self.planted.append(
                "terminated person with enabled, entitled accounts: Gregory Hale (ERP, Bank Portal)"
            )
        for identity, grants in non_humans:
            since = identity._history_date + dt.timedelta(days=1)
            for app_name, ent_id in grants:
                account = account_for(app_name, identity.pk, identity, identity.display_name, since)
                planned_grants.append((account, entitlements[(app_name, ent_id)], since))
        for app_name, account_id, ent_id in [
            ("Accounts Payable", "temp.contractor7", "AP_PAYMENT_RUN"),
            ("Bank Portal", "jdoe_old", "BANK_VIEW"),
            ("Corporate Directory", "test.admin", "CN=Domain Admins"),
        ]:
            since = self.now - dt.timedelta(days=self.rng.randint(200, 900))
            account = account_for(app_name, account_id, None, account_id, since, privileged=True)
            planned_grants.append((account, entitlements[(app_name, ent_id)], since))
            self.planted.append(f"orphan account: {account_id} in {app_name}")

        account_rows = list(accounts.values())
        bulk_create_with_history(account_rows, Account, batch_size=1000, default_change_reason=REASON)
        for account in account_rows:
            self._event(
                "access.account.added",
                account,
                {"application": account.application.name, "identity_id": account.identity_id},
            )
        grant_rows = []
        for account, entitlement, since in planned_grants:
            grant = Grant(account=account, entitlement=entitlement, first_seen=since)
            grant._history_date = since
            grant_rows.append(grant)
        bulk_create_with_history(grant_rows, Grant, batch_size=2000, default_change_reason=REASON)
        for grant in grant_rows:
            self._event(
                "access.grant.added",
                grant_subject(grant),
                {
                    "account": grant.account.account_id,
                    "application": grant.account.application.name,
                    "entitlement": grant.entitlement.entitlement_id,
                },
            )
        by_pair = {(g.account_id, g.entitlement_id): g for g in grant_rows}
        for account, entitlement, removed_at in removals:
            grant = by_pair[(account.pk, entitlement.pk)]
            grant._history_date = removed_at
            grant._change_reason = f"{REASON}: removed at termination"
            subject = grant_subject(grant)
            grant.delete()
            self._event("access.grant.removed", subject, {"reason": "termination", "effective": removed_at})
        # The seeded access stands for a pull of every application today.
        Application.objects.filter(pk__in=[a.pk for a in applications.values()]).update(
            last_pulled_at=self.now
        )
        self.counts["accounts"] = len(account_rows)
        self.counts["grants"] = len(grant_rows) - len(removals)
        self.counts["grants_removed_at_termination"] = len(removals)
        self.counts["orphan_accounts"] = sum(1 for a in account_rows if a.identity_id is None)

    def _event(self, action, subject, payload):
        self.events.append(
            Event(action, subject if isinstance(subject, Subject) else Subject.of(subject), payload)
        )

    def build(self) -> Summary:
        if Identity.objects.exists():
            raise AlreadySeeded("the database already holds identities")
        with transaction.atomic():
            people = self.build_org()
            self.save_people(people)
            applications, entitlements = self.save_applications(people)
            non_humans = self.save_non_humans(people)
            self.plan_access(people)
            self.save_access(people, non_humans, applications, entitlements)
            self.counts["terminated"] = sum(1 for p in people if p.status == Identity.Status.TERMINATED)
            self._event(
                "demo.company.seeded",
                Subject("demo", "northwind", "Northwind demo company"),
                {"counts": dict(self.counts), "planted": self.planted},
            )
            events_record(actor=Actor.system("seed_demo"), events=self.events)
        return Summary(self.counts, self.planted)
