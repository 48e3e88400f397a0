"""Reviewers working their queues through the real pages: what issue 19's load test drives.

Each virtual user is one reviewer (its own username, taken in order from the file named by
``SOXGOV_LOAD_USERS``, one a line; password ``SOXGOV_LOAD_PASSWORD``). It signs in through the login form
(GET the form, POST it with the form's CSRF token, as a browser does), then works in cycles, with a reviewer's
think time (``SOXGOV_LOAD_THINK``, default ``5-25`` seconds, see bench/README.md) before every step:

1. open "My reviews" (``GET /reviews/``, the full page);
2. narrow it as the filter form or the pager does, through htmx (the ``HX-Request`` fragment): by a flag, by
   an application, by a name seen on the page, or the next page (the pager's keyset cursor);
3. open one pending item of the page (``GET /reviews/items/<id>/``: the item's context);
4. decide it from that page (``POST /reviews/decide/``, then follow the redirect back to the item, as the
   browser does): certify, or revoke with a justification; an item flagged terminated, orphan or SoD conflict
   is revoked with a justification, or certified with a comment, as the form requires;
5. one cycle in four: back to the queue (full page) and bulk-decide 3 to 8 ticked rows with a comment
   (``POST /reviews/decide/``, then follow the redirect to the queue).

A request fails when its status is not the expected one, or a decision's next page does not say "N item(s)
certified/revoked." (a refused decision answers 302 too, with an error message). Decisions made are counted
per action and written to ``SOXGOV_LOAD_DECISIONS`` (JSON), and every request's start, name, time and outcome
to ``SOXGOV_LOAD_SAMPLES`` (CSV), when the test stops, for the orchestrator
(bench/load_bench.py) to check against the review items and the evidence chain.

A reviewer whose queue runs out keeps browsing (queue, filter) without deciding.
"""

from __future__ import annotations

import csv
import html
import itertools
import json
import os
import random
import re
import threading
import time
from pathlib import Path

from locust import HttpUser, events, task

QUEUE = "/reviews/"
PENDING = "/reviews/?status=pending"
FLAGS = ("privileged", "dormant", "terminated", "orphan", "sod_conflict", "new_access", "non_human")
BULK_SHARE = 0.25
REVOKE_SHARE = 0.1  # of unflagged items decided one at a time
FLAGGED_REVOKE_SHARE = 0.6

_TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
_ROW = re.compile(r'<tr data-item="(\d+)"')
_APPLICATION = re.compile(r'<option value="(\d+)"[^>]*>[^<]*</option>')
_NEXT = re.compile(r'hx-get="([^"]*cursor=[^"]*)"[^>]*rel="next"')
_PERSON = re.compile(r"<strong>([^<,]+),")
_DONE = re.compile(r"(\d+) items? (certified|revoked)\.")
_ALERT = re.compile(r'<article role="alert"[^>]*>([^<]*)</article>')


def _think() -> tuple[float, float]:
    low, _, high = os.environ.get("SOXGOV_LOAD_THINK", "5-25").partition("-")
    return float(low), float(high or low)


def _usernames() -> list[str]:
    path = os.environ.get("SOXGOV_LOAD_USERS")
    if not path:
        return []
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]


_names = iter(_usernames())
_names_lock = threading.Lock()
decisions = {"certify": 0, "revoke": 0, "requests": 0, "refused": 0}


def _next_username() -> str:
    with _names_lock:
        try:
            return next(_names)
        except StopIteration:
            raise RuntimeError(
                "more virtual users than reviewers in SOXGOV_LOAD_USERS: each user must be its own reviewer"
            ) from None


def _rows(page: str) -> list[dict]:
    """Pending rows of a queue page or fragment: id, and whether it carries a flag that needs a comment."""
    rows = []
    starts = [m for m in _ROW.finditer(page)]
    for m, following in itertools.zip_longest(starts, starts[1:]):
        body = page[m.end() : following.start() if following else len(page)]
        if 'name="item"' not in body:
            continue  # decided: no checkbox
        rows.append({"id": int(m.group(1)), "flagged": "badge bad" in body})
    return rows


class Reviewer(HttpUser):
    """One reviewer, signed in through the form, working their queue until the test stops."""

    low, high = _think()

    def wait_time(self):
        return random.uniform(self.low, self.high)

    def on_start(self):
        self.username = _next_username()
        self.token = ""
        self.applications: list[str] = []
        self.exhausted = False
        with self.client.get(f"/login/?next={QUEUE}", name="login: form", catch_response=True) as r:
            if r.status_code != 200 or not self._take_token(r.text):
                r.failure(f"login form: {r.status_code}, no CSRF token")
                return
        with self.client.post(
            "/login/",
            data={
                "username": self.username,
                "password": os.environ.get("SOXGOV_LOAD_PASSWORD", ""),
                "csrfmiddlewaretoken": self.token,
                "next": QUEUE,
            },
            name="login: submit",
            allow_redirects=False,
            catch_response=True,
        ) as r:
            if r.status_code != 302 or r.headers.get("Location") != QUEUE:
                r.failure(f"{self.username} not signed in: {r.status_code} {r.headers.get('Location')}")

    def _take_token(self, page: str) -> bool:
        match = _TOKEN.search(page)
        if match:
            self.token = match.group(1)
        return bool(match)

    # --- steps --------------------------------------------------------------------------------------------

    def queue_page(self) -> list[dict]:
        with self.client.get(PENDING, name="queue: page", catch_response=True) as r:
            if r.status_code != 200 or 'id="decide-form"' not in r.text:
                r.failure(f"queue page: {r.status_code}")
                return []
            self._take_token(r.text)
            if not self.applications:
                form = r.text.split('name="application"', 1)[-1].split("</select>", 1)[0]
                self.applications = _APPLICATION.findall(form)
            self.page = r.text
            return _rows(r.text)

    def filter_queue(self, rows: list[dict]) -> list[dict]:
        """What the filter form and the pager send: an htmx GET answered with the results fragment."""
        choice = random.random()
        if choice < 0.3:
            query = f"status=pending&flag={random.choice(FLAGS)}"
            name = "queue: filter by flag (htmx)"
        elif choice < 0.55 and self.applications:
            query = f"status=pending&application={random.choice(self.applications)}"
            name = "queue: filter by application (htmx)"
        elif choice < 0.8:
            people = _PERSON.findall(self.page)
            query = f"status=pending&q={random.choice(people).strip() if people else 'a'}"
            name = "queue: search (htmx)"
        else:
            found = _NEXT.search(self.page)
            query = html.unescape(found.group(1)).lstrip("?") if found else "status=pending"
            name = "queue: next page (htmx)"
        with self.client.get(
            f"{QUEUE}?{query}", name=name, headers={"HX-Request": "true"}, catch_response=True
        ) as r:
            if r.status_code != 200 or 'class="queue"' not in r.text or "<html" in r.text:
                r.failure(f"{name}: {r.status_code}")
                return []
            return _rows(r.text)

    def open_item(self, item_id: int) -> bool:
        with self.client.get(f"/reviews/items/{item_id}/", name="item: detail", catch_response=True) as r:
            if r.status_code != 200 or "<h1>" not in r.text:
                r.failure(f"item {item_id}: {r.status_code}")
                return False
            self._take_token(r.text)
            return 'name="action" value="certify"' in r.text  # still mine to decide

    def decide(self, items: list[dict], *, back: str, name: str) -> None:
        flagged = any(i["flagged"] for i in items)
        revoke = random.random() < (FLAGGED_REVOKE_SHARE if flagged else REVOKE_SHARE)
        if len(items) > 1:
            revoke = False  # a bulk decision certifies what the reviewer has looked through
        comment = ""
        if revoke:
            comment = "No longer needed in this role."
        elif flagged or len(items) > 1:
            comment = "Confirmed with the team lead: still needed."
        action = "revoke" if revoke else "certify"
        data = {
            "csrfmiddlewaretoken": self.token,
            "action": action,
            "item": [i["id"] for i in items],
            "comment": comment,
            "next": back,
        }
        with self.client.post(
            "/reviews/decide/", data=data, name=name, allow_redirects=False, catch_response=True
        ) as r:
            if r.status_code != 302 or r.headers.get("Location") != back:
                r.failure(f"{name}: {r.status_code} to {r.headers.get('Location')}")
                return
        follow = "decide: back to the item" if len(items) == 1 else "decide: back to the queue"
        with self.client.get(back, name=follow, catch_response=True) as r:
            decisions["requests"] += 1
            done = _DONE.search(r.text) if r.status_code == 200 else None
            if not done or int(done.group(1)) != len(items):
                alert = _ALERT.search(r.text)
                decisions["refused"] += 1
                r.failure(
                    f"{action} of {len(items)} not confirmed: {alert.group(1) if alert else r.status_code}"
                )
                return
            decisions[action] += len(items)
            self._take_token(r.text)

    @task
    def work(self):
        rows = self.queue_page()
        if not rows:
            self.exhausted = True
        self.wait()
        narrowed = self.filter_queue(rows)
        if self.exhausted:
            return
        self.wait()
        pick = random.choice(narrowed or rows)
        if self.open_item(pick["id"]):
            self.wait()
            back = f"/reviews/items/{pick['id']}/"
            self.decide([pick], back=back, name="decide: one item")
        if random.random() < BULK_SHARE:
            self.wait()
            rows = [r for r in self.queue_page() if not r["flagged"]]
            if rows:
                self.wait()
                chosen = random.sample(rows, min(len(rows), random.randint(3, 8)))
                self.decide(chosen, back=PENDING, name="decide: bulk")


_samples: list[tuple[float, str, float, bool]] = []


@events.request.add_listener
def _keep_sample(request_type, name, response_time, exception, start_time=None, **kwargs):
    _samples.append((start_time or time.time(), name, response_time, exception is None))


@events.quitting.add_listener
def _write_results(environment, **kwargs):
    out = os.environ.get("SOXGOV_LOAD_DECISIONS")
    if out:
        Path(out).write_text(json.dumps(decisions) + "\n")
    out = os.environ.get("SOXGOV_LOAD_SAMPLES")
    if out:
        with open(out, "w", newline="") as fh:
            writer = csv.writer(fh)
            for started, name, ms, ok in _samples:
                writer.writerow((f"{started:.3f}", name, f"{ms:.1f}", int(ok)))
