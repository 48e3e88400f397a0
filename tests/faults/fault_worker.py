"""A Celery worker with pause points, for the fault tests (tests/faults/).

Started as ``python tests/faults/fault_worker.py QUEUE NAME``. Before Celery forks its pool it wraps a few
functions of the code under test so that, at a point the test has armed, the process says where it is and
waits until the test releases it. That is how a test kills a worker, terminates its database session or
stops the broker at an exact place in a run, a pack build or a verification, without sleeping and hoping.

The protocol, in the directory ``FAULT_DIR``:
- the test arms a point by creating ``armed/POINT``;
- the first process to reach an armed point renames it to ``reached/POINT`` (atomic, so it fires once),
  then writes ``reached/POINT.json`` (its pid and what it was doing);
- it waits until ``release/POINT`` exists (or ``FAULT_PAUSE_LIMIT`` seconds pass), renames its note to
  ``reached/POINT.released`` and carries on.
An unarmed point costs one failed rename. Every task attempt also appends a line to ``tasks.log`` when it starts and when it ends.

Each process sets its own PostgreSQL application_name (``FAULT_APP_NAME``-PID), so a test can find the
sessions of exactly the process it paused (pg_stat_activity) and terminate them.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
FAULT_DIR = Path(os.environ["FAULT_DIR"])
APP_NAME = os.environ.get("FAULT_APP_NAME", "soxgov-fault-worker")
PAUSE_LIMIT = float(os.environ.get("FAULT_PAUSE_LIMIT", "120"))


def pause(point: str, **what) -> None:
    try:
        os.rename(FAULT_DIR / "armed" / point, FAULT_DIR / "reached" / point)
    except FileNotFoundError:
        return
    note = FAULT_DIR / "reached" / f"{point}.json"
    partial = note.with_suffix(".partial")
    partial.write_text(json.dumps({"pid": os.getpid(), "point": point, **what}, default=str))
    partial.rename(note)
    print(f"fault point {point} reached by pid {os.getpid()}: {what}", flush=True)
    release = FAULT_DIR / "release" / point
    deadline = time.monotonic() + PAUSE_LIMIT
    while not release.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    note.rename(note.with_suffix(".released"))
    print(f"fault point {point} released in pid {os.getpid()}", flush=True)


def _name_sessions(pid: int) -> None:
    """Tag this process's database sessions with its pid (before it opens any)."""
    from django.db import connections

    for alias in connections:
        connections[alias].settings_dict.setdefault("OPTIONS", {})["application_name"] = f"{APP_NAME}-{pid}"


def _task_event(event: str):
    """One line per task attempt started and ended in ``tasks.log``: the test's marker that an attempt is
    over, and how it knows the worker is idle."""

    def record(sender=None, task_id=None, args=None, state=None, **kwargs) -> None:
        line = {"event": event, "pid": os.getpid(), "id": task_id, "task": getattr(sender, "name", None)}
        line.update(args=args, state=state)
        with (FAULT_DIR / "tasks.log").open("a") as log:
            log.write(json.dumps(line, default=str) + "\n")

    return record


def _wrap(module, name: str, make):
    original = getattr(module, name, None)
    if original is None:
        print(
            f"fault worker: {module.__name__}.{name} not found, its pause point is not installed", flush=True
        )
        return
    setattr(module, name, functools.wraps(original)(make(original)))


def install() -> None:
    from django.db import transaction

    from entitlements import progress, services
    from entitlements.imports import access
    from evidence import pack_services, selectors

    def report(original):
        def wrapper(run_id, *, phase, percent, **kwargs):
            original(run_id, phase=phase, percent=percent, **kwargs)
            pause(f"phase-{phase}", run=run_id, percent=percent)

        return wrapper

    def staged(original):
        def wrapper(*args, **kwargs):
            result = original(*args, **kwargs)
            pause("staged")
            return result

        return wrapper

    def finish_applied(original):
        # Registered before the run's own after-commit work, so this pause sits between the commit of the
        # run's changes and whatever is sent to the broker afterwards.
        def wrapper(run, *args, **kwargs):
            transaction.on_commit(lambda: pause("applied-commit", run=run.pk))
            return original(run, *args, **kwargs)

        return wrapper

    def pack_progress(original):
        def wrapper(pack_id, percent, *args, **kwargs):
            original(pack_id, percent, *args, **kwargs)
            pause("pack-progress", pack=pack_id, percent=percent)

        return wrapper

    def chain_verify(original):
        def wrapper(*args, **kwargs):
            pause("verify")
            return original(*args, **kwargs)

        return wrapper

    _wrap(progress, "report", report)
    _wrap(access, "stage_fast", staged)
    _wrap(access, "stage", staged)
    _wrap(services, "_finish_applied", finish_applied)
    _wrap(pack_services, "_progress", pack_progress)
    _wrap(selectors, "chain_verify", chain_verify)


def main(argv: list[str]) -> None:
    queue, name = argv
    sys.path.insert(0, str(REPO_ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soxgov.settings")
    for sub in ("armed", "reached", "release"):
        (FAULT_DIR / sub).mkdir(parents=True, exist_ok=True)

    import django

    django.setup()
    _name_sessions(os.getpid())
    install()

    from celery.signals import task_postrun, task_prerun, worker_process_init

    from soxgov.celery import app

    worker_process_init.connect(lambda **kwargs: _name_sessions(os.getpid()), weak=False)
    task_prerun.connect(_task_event("started"), weak=False)
    task_postrun.connect(_task_event("ended"), weak=False)
    app.worker_main(
        [
            "worker",
            "--pool=prefork",
            "--concurrency=1",
            "-Q",
            queue,
            "-n",
            name,
            "-l",
            "info",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ]
    )


if __name__ == "__main__":
    main(sys.argv[1:])
