"""How an evidence pack's data rows are bound to the chained evidence events in the same pack.

Standard library only: shipped in every pack as ``evidence_binding.py`` and run by its verify_pack.py. The
events (data/evidence_events.json) are trusted only after their hashes were recomputed and found in the chain
segment up to the signed checkpoint; every row of the tables below must then agree with them, in every format
(CSV, JSON, XLSX), so a row edited consistently in all files and both manifests is still caught.

Cells are compared as the pack's CSV shows them (a JSON or XLSX value is first written as that text): empty for
NULL, ``True``/``False``, integers in decimal, text that a spreadsheet would run prefixed with ``'``, line ends
as LF (XML, so XLSX, reads a CR as LF); date-times are compared as instants. "The item's events" are the events whose subject is ``reviews.reviewitem <item id>``,
in chain order; likewise for a task (``reviews.remediationtask``), a campaign (``reviews.campaign``) and a
connector run (``entitlements.connectorrun``). Fields marked (v2) are in the payloads SOXGov writes from pack
format 2 on; an event written before has none, and that field of its row is then not bound.

decisions (id, item_id, action, actor__username, at, comment, delegated_to__username)
    The decision events are ``review.item.certified``, ``review.item.revoked`` and ``review.item.delegated``.
    The n-th row of an item (rows in id order) binds to the item's n-th decision event: action ``certify`` /
    ``revoke`` / ``delegate`` as the event's action; id = payload ``decision`` (v2); actor__username = payload
    ``by`` (v2; before, the user name the event's actor name ends with, "Name (username)"); at = payload ``at``
    (v2); comment = payload ``comment`` (a delegation's: ``reason``); delegated_to__username = payload ``to``
    for a delegation, empty otherwise. Every decision event in the pack has its row.
review_items (id, campaign_id, ..., reviewer__username, status, decided_by__username, decided_at, comment,
        signed_off)
    campaign_id = payload ``campaign`` of each of the item's events that has one. The item's last certify or
    revoke event gives status (``certified`` / ``revoked``), decided_by__username (``by``), decided_at (``at``)
    and comment; without one the item is ``pending`` and those three cells are empty. With a delegation event,
    reviewer__username = the last one's ``to``. signed_off is ``True`` exactly when the pack holds the
    ``review.signoff.recorded`` event of the item's campaign by its reviewer. Every item that a decision event
    names has its row. In a campaign's pack the rows number the launch event's ``items`` plus the campaign's
    ``review.item.created`` events (items a standing micro-review added later).
sign_offs (id, campaign_id, reviewer__username, at, items)
    Binds to the ``review.signoff.recorded`` event of the campaign whose payload ``reviewer`` is the row's
    reviewer (one per reviewer and campaign): items = payload ``items``; id = ``sign_off`` (v2); at = ``at``
    (v2). Every sign-off event in the pack has its row.
remediation (id, item_id, application__name, account_key, entitlement_key, identity_name, due_on, status, ticket,
        created_at, closed_at, closing_run_id, proof, attachment_sha256)
    Binds to the task's ``remediation.task.opened`` event: item_id = ``item``, account_key = ``account``,
    entitlement_key = ``entitlement``, due_on = ``due_on``, created_at = ``created_at`` (v2). Its closing event
    (``remediation.task.verified`` or ``remediation.task.closed_manually``) gives status ``verified`` /
    ``manual`` and closed_at = ``at`` (v2); a verified task's closing_run_id = ``connector_run``; a manual
    close's proof = ``proof`` and attachment_sha256 = ``attachment_sha256``. Without one: status ``open`` and
    closed_at, closing_run_id and proof empty. ticket = the ``ticket`` of the task's last
    ``remediation.task.updated`` or ``remediation.task.closed_manually`` event, empty without one. Every
    opened event in the pack has its row.
population_source (campaign_id, application, kind, run_id, source_name, input_sha256, changes_sha256,
        finished_at, event, items)
    A row with a run_id binds to that run's ``import.run.applied`` event: event = its sequence, input_sha256
    and changes_sha256 = the payload's, and for an access run the application is one the payload lists. A row
    without a run_id says no applied pull was found; it binds to nothing.
evidence_events (every column)
    The n-th row of the CSV and of the XLSX equals the n-th event of evidence_events.json.

Every other table (the campaign summary or the period's scope, SoD violations) is only checked to say the same
in its three files.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import defaultdict

FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\x00")

DECISION_ACTIONS = {
    "review.item.certified": "certify",
    "review.item.revoked": "revoke",
    "review.item.delegated": "delegate",
}
ITEM_STATUS = {"certify": "certified", "revoke": "revoked"}
CLOSING_ACTIONS = {"remediation.task.verified": "verified", "remediation.task.closed_manually": "manual"}

# The tables whose rows are bound, in the order the verifier checks them; the columns each must have.
BOUND_COLUMNS = {
    "decisions": ("id", "item_id", "action", "actor__username", "at", "comment", "delegated_to__username"),
    "review_items": ("id", "campaign_id", "reviewer__username", "status", "decided_by__username", "decided_at",
                     "comment", "signed_off"),
    "sign_offs": ("id", "campaign_id", "reviewer__username", "at", "items"),
    "remediation": ("id", "item_id", "account_key", "entitlement_key", "due_on", "status", "ticket",
                    "created_at", "closed_at", "closing_run_id", "proof", "attachment_sha256"),
    "population_source": ("campaign_id", "application", "kind", "run_id", "input_sha256", "changes_sha256",
                          "event"),
}  # fmt: skip


class Mismatch(Exception):
    """A row that disagrees with the chain; the message says which column and which event."""


def inert(value):
    """A cell value a spreadsheet shows and never evaluates (the pack's writers and its verifier alike)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def cell_text(value) -> str:
    """A value as the pack's CSV shows it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(inert(value)) if isinstance(value, str) else str(value)


def instant(text: str):
    if not text:
        return None
    text = text[:-1] + "+00:00" if text.endswith("Z") else text
    moment = dt.datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


class _Event:
    __slots__ = ("action", "actor_name", "payload", "sequence", "subject_id", "subject_type")

    def __init__(self, raw: dict):
        self.sequence = raw["sequence"]
        self.action = raw["action"]
        self.subject_type = raw["subject_type"]
        self.subject_id = raw["subject_id"]
        self.actor_name = raw["actor_name"] or ""
        self.payload = json.loads(raw["payload"]) if raw["payload"] else {}

    def __str__(self) -> str:
        return f"{self.action} #{self.sequence}"


_USERNAME = re.compile(r"\(([^()]*)\)$")


class Events:
    """The pack's events, indexed by what rows bind to. Only events that rows bind to are kept."""

    def __init__(self, raw_events):
        self.decisions = defaultdict(list)  # item id -> decision events, in chain order
        self.sign_offs = {}  # (campaign id, reviewer) -> event
        self.opened = {}  # task id -> event
        self.closing = {}  # task id -> event
        self.ticket = {}  # task id -> the last event that set its ticket
        self.runs = {}  # run id -> import.run.applied event
        self.launched = {}  # campaign id -> event
        self.created = defaultdict(int)  # campaign id -> review.item.created events
        for raw in raw_events:
            action = raw["action"]
            kind, key = raw["subject_type"], raw["subject_id"]
            if action in DECISION_ACTIONS and kind == "reviews.reviewitem":
                self.decisions[key].append(_Event(raw))
            elif action == "review.signoff.recorded" and kind == "reviews.campaign":
                event = _Event(raw)
                self.sign_offs[(key, str(event.payload.get("reviewer", "")))] = event
            elif action == "remediation.task.opened" and kind == "reviews.remediationtask":
                self.opened[key] = _Event(raw)
            elif action in CLOSING_ACTIONS and kind == "reviews.remediationtask":
                self.closing[key] = self.ticket[key] = _Event(raw)
            elif action == "remediation.task.updated" and kind == "reviews.remediationtask":
                self.ticket[key] = _Event(raw)
            elif action == "import.run.applied" and kind == "entitlements.connectorrun":
                self.runs[key] = _Event(raw)
            elif action == "review.campaign.launched" and kind == "reviews.campaign":
                self.launched[key] = _Event(raw)
            elif action == "review.item.created" and kind == "reviews.reviewitem":
                self.created[str(_Event(raw).payload.get("campaign"))] += 1

    def checker(self, table: str, *, whole_campaign: bool = False):
        return _CHECKERS[table](self, whole_campaign)


def same_text(a: str, b: str) -> bool:
    """Equal, line ends aside: XML (so XLSX) reads a CR as LF."""
    return a == b or a.replace("\r\n", "\n").replace("\r", "\n") == b.replace("\r\n", "\n").replace(
        "\r", "\n"
    )


def _expect(row: dict, column: str, event: _Event, value) -> None:
    shown, wanted = row.get(column, ""), cell_text(value)
    if not same_text(shown, wanted):
        raise Mismatch(f"{column} {shown!r} but the chained event {event} says {wanted!r}")


def _expect_time(row: dict, column: str, event: _Event, value) -> None:
    shown = row.get(column, "")
    try:
        same = instant(shown) == instant(value or "")
    except ValueError:
        same = False
    if not same:
        raise Mismatch(f"{column} {shown!r} but the chained event {event} says {value or ''!r}")


def _by(event: _Event) -> str:
    if "by" in event.payload:
        return event.payload["by"]
    found = _USERNAME.search(event.actor_name)
    return found.group(1) if found else event.actor_name


class _Checker:
    def __init__(self, events: Events, whole_campaign: bool):
        self.events = events
        self.whole_campaign = whole_campaign

    def row(self, row: dict) -> None:
        raise NotImplementedError

    def finish(self) -> list[str]:
        """What is left once every row was seen: events without a row, counts that disagree."""
        return []


class _Decisions(_Checker):
    def __init__(self, events, whole_campaign):
        super().__init__(events, whole_campaign)
        self.seen = defaultdict(int)  # item id -> rows so far

    def row(self, row):
        item = row.get("item_id", "")
        n = self.seen[item]
        self.seen[item] = n + 1
        chained = self.events.decisions.get(item, [])
        if n >= len(chained):
            raise Mismatch(f"decision {row.get('id', '')!r} of item {item!r} has no chained decision event")
        event = chained[n]
        payload = event.payload
        action = DECISION_ACTIONS[event.action]
        _expect(row, "action", event, action)
        if "decision" in payload:
            _expect(row, "id", event, payload["decision"])
        _expect(row, "actor__username", event, _by(event))
        if "at" in payload:
            _expect_time(row, "at", event, payload["at"])
        _expect(row, "comment", event, payload.get("reason" if action == "delegate" else "comment", ""))
        _expect(row, "delegated_to__username", event, payload.get("to") if action == "delegate" else None)

    def finish(self):
        for item, chained in self.events.decisions.items():
            if self.seen.get(item, 0) < len(chained):
                event = chained[self.seen.get(item, 0)]
                return [f"the chained event {event} (item {item}) has no row"]
        return []


class _ReviewItems(_Checker):
    def __init__(self, events, whole_campaign):
        super().__init__(events, whole_campaign)
        self.seen = set()  # items with decision events that have a row (bounded by the events)
        self.rows = defaultdict(int)  # campaign id -> rows

    def row(self, row):
        item = row.get("id", "")
        self.rows[row.get("campaign_id", "")] += 1
        chained = self.events.decisions.get(item, [])
        if chained:
            self.seen.add(item)
        for event in chained:
            if "campaign" in event.payload:
                _expect(row, "campaign_id", event, event.payload["campaign"])
        decided = [e for e in chained if DECISION_ACTIONS[e.action] in ITEM_STATUS]
        if decided:
            event = decided[-1]
            _expect(row, "status", event, ITEM_STATUS[DECISION_ACTIONS[event.action]])
            _expect(row, "decided_by__username", event, _by(event))
            if "at" in event.payload:
                _expect_time(row, "decided_at", event, event.payload["at"])
            _expect(row, "comment", event, event.payload.get("comment", ""))
        else:
            for column, wanted in (("status", "pending"), ("decided_by__username", ""), ("decided_at", ""),
                                   ("comment", "")):  # fmt: skip
                if row.get(column, "") != wanted:
                    raise Mismatch(
                        f"{column} {row.get(column, '')!r} but the chain holds no decision of item {item}"
                    )
        delegations = [e for e in chained if DECISION_ACTIONS[e.action] == "delegate"]
        if delegations:
            _expect(row, "reviewer__username", delegations[-1], delegations[-1].payload.get("to"))
        key = (row.get("campaign_id", ""), row.get("reviewer__username", ""))
        sign_off = self.events.sign_offs.get(key)
        signed = row.get("signed_off", "")
        if sign_off is not None:
            _expect(row, "signed_off", sign_off, True)
        elif signed != "False":
            raise Mismatch(
                f"signed_off {signed!r} but the chain holds no sign-off by {key[1]!r} of campaign {key[0]}"
            )

    def finish(self):
        for item, chained in self.events.decisions.items():
            if item not in self.seen:
                return [f"the chained event {chained[0]} names review item {item}, which has no row"]
        if self.whole_campaign:
            for campaign, event in self.events.launched.items():
                expected = int(event.payload.get("items", 0)) + self.events.created.get(campaign, 0)
                if self.rows.get(campaign, 0) != expected:
                    return [f"{self.rows.get(campaign, 0)} rows of campaign {campaign}, but the chained event "
                            f"{event} launched it with {event.payload.get('items', 0)} items and "
                            f"{self.events.created.get(campaign, 0)} were added later"]  # fmt: skip
        return []


class _SignOffs(_Checker):
    def __init__(self, events, whole_campaign):
        super().__init__(events, whole_campaign)
        self.seen = set()

    def row(self, row):
        key = (row.get("campaign_id", ""), row.get("reviewer__username", ""))
        event = self.events.sign_offs.get(key)
        if event is None or key in self.seen:
            raise Mismatch(f"the sign-off of campaign {key[0]} by {key[1]!r} has no chained event of its own")
        self.seen.add(key)
        _expect(row, "items", event, event.payload.get("items"))
        if "sign_off" in event.payload:
            _expect(row, "id", event, event.payload["sign_off"])
        if "at" in event.payload:
            _expect_time(row, "at", event, event.payload["at"])

    def finish(self):
        for key, event in self.events.sign_offs.items():
            if key not in self.seen:
                return [f"the chained event {event} (sign-off by {key[1]!r}) has no row"]
        return []


class _Remediation(_Checker):
    def __init__(self, events, whole_campaign):
        super().__init__(events, whole_campaign)
        self.seen = set()

    def row(self, row):
        task = row.get("id", "")
        opened = self.events.opened.get(task)
        if opened is None or task in self.seen:
            raise Mismatch(
                f"remediation task {task!r} has no chained remediation.task.opened event of its own"
            )
        self.seen.add(task)
        payload = opened.payload
        for column, key in (("item_id", "item"), ("account_key", "account"), ("entitlement_key", "entitlement"),
                            ("due_on", "due_on")):  # fmt: skip
            _expect(row, column, opened, payload.get(key))
        if "created_at" in payload:
            _expect_time(row, "created_at", opened, payload["created_at"])
        closing = self.events.closing.get(task)
        if closing is None:
            for column in ("closed_at", "closing_run_id", "proof"):
                if row.get(column, ""):
                    raise Mismatch(f"{column} {row[column]!r} but the chain holds no closing of task {task}")
            _expect(row, "status", opened, "open")
        else:
            _expect(row, "status", closing, CLOSING_ACTIONS[closing.action])
            if "at" in closing.payload:
                _expect_time(row, "closed_at", closing, closing.payload["at"])
            if closing.action == "remediation.task.verified":
                _expect(row, "closing_run_id", closing, closing.payload.get("connector_run"))
            else:
                _expect(row, "proof", closing, closing.payload.get("proof"))
                _expect(row, "attachment_sha256", closing, closing.payload.get("attachment_sha256"))
        ticket = self.events.ticket.get(task)
        if ticket is None:
            if row.get("ticket", ""):
                raise Mismatch(f"ticket {row['ticket']!r} but the chain holds no ticket for task {task}")
        else:
            _expect(row, "ticket", ticket, ticket.payload.get("ticket"))

    def finish(self):
        for task, event in self.events.opened.items():
            if task not in self.seen:
                return [f"the chained event {event} (remediation task {task}) has no row"]
        return []


class _PopulationSource(_Checker):
    def row(self, row):
        run = row.get("run_id", "")
        if not run:
            return
        event = self.events.runs.get(run)
        if event is None:
            raise Mismatch(f"connector run {run} has no chained import.run.applied event")
        _expect(row, "event", event, event.sequence)
        _expect(row, "input_sha256", event, event.payload.get("input_sha256"))
        _expect(row, "changes_sha256", event, event.payload.get("changes_sha256"))
        listed = [cell_text(name).lower() for name in event.payload.get("applications", [])]
        if row.get("kind") == "access" and row.get("application", "").lower() not in listed:
            raise Mismatch(f"application {row.get('application', '')!r} but the chained event {event} applied "
                           f"{', '.join(event.payload.get('applications', [])) or 'no application'}")  # fmt: skip


_CHECKERS = {
    "decisions": _Decisions,
    "review_items": _ReviewItems,
    "sign_offs": _SignOffs,
    "remediation": _Remediation,
    "population_source": _PopulationSource,
}
