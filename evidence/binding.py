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
format 2 on, (v3) from the launch digest on; an event written before has none, and that field of its row is
then not bound (a campaign launched before has no digest: its pending items are bound by their count only).

decisions (id, item_id, action, actor__username, at, comment, delegated_to__username, recommendation, reasons,
        batch, seconds_shown)
    The decision events are ``review.item.certified``, ``review.item.revoked`` and ``review.item.delegated``.
    The n-th row of an item (rows in id order) binds to the item's n-th decision event: action ``certify`` /
    ``revoke`` / ``delegate`` as the event's action; id = payload ``decision`` (v2); actor__username = payload
    ``by`` (v2; before, the user name the event's actor name ends with, "Name (username)"); at = payload ``at``
    (v2); comment = payload ``comment`` (a delegation's: ``reason``); delegated_to__username = payload ``to``
    for a delegation, empty otherwise; recommendation, reasons, batch and seconds_shown = the payload's (v4:
    what the reviewer was told and how the decision was made). Every decision event in the pack has its row.
review_items (id, campaign_id, grant_id, application__name, identity_name, department, account_key,
        entitlement_key, entitlement_name, last_used_at, the flags, reviewer__username, status,
        decided_by__username, decided_at, comment, signed_off)
    campaign_id = payload ``campaign`` of each of the item's events that has one. The access: each of the
    item's decision events and its ``review.item.created`` event that has them gives grant_id (``grant``),
    application__name (``application``, v3), identity_name (``identity``), account_key (``account``),
    entitlement_key (``entitlement``), entitlement_name (``entitlement_name``, v3) and the flags (``flags``:
    the names of the flag columns that are ``True``). The item's last certify or revoke event gives status
    (``certified`` / ``revoked``), decided_by__username and reviewer__username (``by``: only the item's
    reviewer decides it), decided_at (``at``) and comment; without one the item is ``pending`` and those
    three cells are empty. With a delegation event, reviewer__username = the last one's ``to``. An item a
    standing micro-review added was routed to its ``review.item.created`` event's ``routed_to`` (v3): the
    first delegation's ``from``, or reviewer__username without one. signed_off is ``True`` exactly when the pack holds the
    ``review.signoff.recorded`` event of the item's campaign by its reviewer. Every item that a decision event
    names has its row. In a campaign's pack the rows number the launch event's ``items`` plus the campaign's
    ``review.item.created`` events (items a standing micro-review added later).
    The launch digest (v3), in a campaign's pack: the launch event's ``items_sha256`` is the SHA-256 of the
    campaign's launched items (every row without a ``review.item.created`` event): of the concatenation, in
    ascending id order, of each item's SHA-256 (32 bytes), taken over its cells id, grant_id,
    application__name, identity_name, department, account_key, entitlement_key, entitlement_name,
    last_used_at, terminated, orphan, dormant, privileged, sod_conflict, new_access, non_human, reviewer,
    each as a netstring (its UTF-8 length in decimal, ":", the text, ","). Each cell is its text as the CSV
    shows it (above), line ends as LF;
    last_used_at as the instant in UTC, ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (empty for none); reviewer is the
    user the item was routed to at launch: the ``from`` of its first delegation event, or reviewer__username
    without one. So every item, decided or pending, is bound to what was launched, and the rows' count to
    the launch's. A single digest names the campaign, not the row: a decided item's row is named by its
    events. Names are compared as the row shows them now: an application renamed or a reviewer's user name
    changed after launch fails the digest (the verifier says so), as it fails a decision's binding.
sign_offs (id, campaign_id, reviewer__username, at, items)
    Binds to the ``review.signoff.recorded`` event of the campaign whose payload ``reviewer`` is the row's
    reviewer (one per reviewer and campaign): items = payload ``items``; id = ``sign_off`` (v2); at = ``at``
    (v2). Every sign-off event in the pack has its row.
remediation (id, item_id, application__name, account_key, entitlement_key, identity_name, due_on, status, ticket,
        created_at, closed_at, closing_run_id, proof, attachment_sha256)
    Binds to the task's ``remediation.task.opened`` event: item_id = ``item``, account_key = ``account``,
    entitlement_key = ``entitlement``, due_on = ``due_on``, created_at = ``created_at`` (v2). Its closing event
    (``remediation.task.verified``, ``remediation.task.closed_manually`` or ``remediation.task.cancelled``: the
    revocation was withdrawn) gives status ``verified`` / ``manual`` / ``cancelled`` and closed_at = ``at``
    (v2); a verified task's closing_run_id = ``connector_run``; a manual close's (or a cancellation's) proof =
    ``proof`` and attachment_sha256 = ``attachment_sha256`` (both empty for a cancellation). Without one: status ``open`` and
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
import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections import defaultdict

FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\x00")

DECISION_ACTIONS = {
    "review.item.certified": "certify",
    "review.item.revoked": "revoke",
    "review.item.delegated": "delegate",
}
ITEM_STATUS = {"certify": "certified", "revoke": "revoked"}
ITEM_FLAGS = ("terminated", "orphan", "dormant", "privileged", "sod_conflict", "new_access", "non_human")
# What a certify or revoke event says the reviewer was told and how it was decided (v4), as the row shows it.
DECISION_TOLD = ("recommendation", "reasons", "batch", "seconds_shown")
# What a review item's access is (and what the reviewer saw), in the order the launch digest encodes it; the
# last, "reviewer", is the user the item was routed to at launch.
ITEM_SNAPSHOT = ("id", "grant_id", "application__name", "identity_name", "department", "account_key",
                 "entitlement_key", "entitlement_name", "last_used_at", *ITEM_FLAGS, "reviewer")  # fmt: skip
# Payload key of an item's events -> the review_items column it names.
ITEM_EVENT_FIELDS = {"grant": "grant_id", "application": "application__name", "identity": "identity_name",
                     "account": "account_key", "entitlement": "entitlement_key",
                     "entitlement_name": "entitlement_name"}  # fmt: skip
CLOSING_ACTIONS = {
    "remediation.task.verified": "verified",
    "remediation.task.closed_manually": "manual",
    "remediation.task.cancelled": "cancelled",
}

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


def canonical_instant(text: str) -> str:
    """A date-time cell as the launch digest encodes it: UTC, microseconds, ``Z`` (empty for none)."""
    moment = instant(text)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ") if moment else ""


def item_record(cells: dict) -> bytes:
    """One review item's line of the launch digest, from its cells as the pack's CSV shows them (``reviewer``:
    the username it was routed to at launch). See the module's docstring."""
    return item_line(
        canonical_instant(cells.get(column, "")) if column == "last_used_at" else cells.get(column, "")
        for column in ITEM_SNAPSHOT
    )


def item_line(texts) -> bytes:
    """One item's bytes in the launch digest, from its cells' texts in ITEM_SNAPSHOT order: each cell, line ends
    made LF, as a netstring (its UTF-8 length in decimal, ":", the text, ","). PostgreSQL builds the same bytes
    in SQL at launch (reviews/selectors.py)."""
    out = []
    for text in texts:
        data = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8")
        out.append(b"%d:%s," % (len(data), data))
    return b"".join(out)


class ItemDigest:
    """SHA-256 over a campaign's launched items, fed one item at a time in id order (SOXGov at launch, the
    verifier from the pack's rows alike)."""

    def __init__(self):
        self._hash = hashlib.sha256()
        self.count = 0

    def add(self, cells: dict) -> None:
        self._hash.update(hashlib.sha256(item_record(cells)).digest())
        self.count += 1

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


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
        self.created_items = {}  # item id -> its review.item.created event (not in the launch digest)
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
                event = self.created_items[key] = _Event(raw)
                self.created[str(event.payload.get("campaign"))] += 1

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


def _expect_access(row: dict, event: _Event) -> None:
    """The access an item's event names (those that name it) is the row's."""
    payload = event.payload
    for key, column in ITEM_EVENT_FIELDS.items():
        if key in payload:
            _expect(row, column, event, payload[key])
    if "flags" in payload:
        shown = ", ".join(flag for flag in ITEM_FLAGS if row.get(flag, "") == "True")
        wanted = ", ".join(flag for flag in ITEM_FLAGS if flag in payload["flags"])
        if shown != wanted:
            raise Mismatch(f"flags {shown!r} but the chained event {event} says {wanted!r}")


class _Checker(ABC):
    def __init__(self, events: Events, whole_campaign: bool):
        self.events = events
        self.whole_campaign = whole_campaign

    @abstractmethod
    def row(self, row: dict) -> None:
        """Check one row of the table; raise Mismatch naming what disagrees."""

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
        for told in DECISION_TOLD:
            if told in payload:
                _expect(row, told, event, payload[told])

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
        self.digests = defaultdict(ItemDigest)  # campaign id -> its launched items so far

    def row(self, row):
        item = row.get("id", "")
        campaign = row.get("campaign_id", "")
        self.rows[campaign] += 1
        chained = self.events.decisions.get(item, [])
        if chained:
            self.seen.add(item)
        created = self.events.created_items.get(item)
        for event in [created, *chained] if created else chained:
            if "campaign" in event.payload:
                _expect(row, "campaign_id", event, event.payload["campaign"])
            _expect_access(row, event)
        delegations = [e for e in chained if DECISION_ACTIONS[e.action] == "delegate"]
        routed = delegations[0].payload.get("from") if delegations else row.get("reviewer__username", "")
        if created is not None and "routed_to" in created.payload:
            if not same_text(cell_text(routed), cell_text(created.payload["routed_to"])):
                raise Mismatch(f"routed to {routed!r} but the chained event {created} says "
                               f"{cell_text(created.payload['routed_to'])!r}")  # fmt: skip
        elif created is None and self.whole_campaign:
            self.digests[campaign].add({**row, "reviewer": cell_text(routed)})
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
        if delegations:
            _expect(row, "reviewer__username", delegations[-1], delegations[-1].payload.get("to"))
        if decided:  # only the reviewer an item is assigned to decides it, and then it moves no more
            _expect(row, "reviewer__username", decided[-1], _by(decided[-1]))
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
                wanted = event.payload.get("items_sha256")
                digest = self.digests[campaign]
                if wanted is not None and digest.hexdigest() != wanted:
                    return [f"the {digest.count} items launched in campaign {campaign} hash to "
                            f"{digest.hexdigest()[:16]}..., but the chained event {event} says {wanted[:16]}...: "
                            "a row's grant, application, identity, department, account, entitlement, last use, "
                            "flags or launch reviewer is not what was launched"]  # fmt: skip
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
