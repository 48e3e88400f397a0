"""The fault tests' machinery: a Redis of their own, a worker of their own with pause points, and the waits.

Nothing here sleeps to synchronise: a test waits for a file the worker wrote at a pause point, for a process
or a database session to be gone, or for a row to reach a state, each with a deadline and a failure message
that shows what the worker was doing.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKER_SCRIPT = Path(__file__).with_name("fault_worker.py")
APP_NAME = "soxgov-fault-worker"
DEADLINE = 60
POLL = 0.05


def wait_until(predicate, what: str, *, timeout: float = DEADLINE, explain=lambda: ""):
    """Poll ``predicate`` until it returns something truthy, which is returned; fail with ``explain()``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout:.0f}s\n{explain()}")
        time.sleep(POLL)


def sessions(pattern: str) -> int:
    """How many PostgreSQL sessions have an application_name LIKE ``pattern``."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE %s", [pattern])
        return cursor.fetchone()[0]


def sessions_of(worker: FaultWorker) -> int:
    return sessions(worker.session_names())


def wait_sessions_gone(pattern: str, explain=lambda: "") -> None:
    """PostgreSQL has noticed a dead process: its transaction rolled back, its locks (advisory too) are free."""
    wait_until(lambda: sessions(pattern) == 0, f"database sessions {pattern!r} gone", explain=explain)


PORTS = range(6391, 6400)


def free_port(tried=()) -> int:
    for port in PORTS:
        if port in tried:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port for a private Redis among {PORTS} (tried {sorted(tried)})")


class PrivateRedis:
    """A redis-server of the tests' own, without persistence: stopping it loses every queued message.

    It keeps its port across restarts (the worker is configured with it). Two test processes (pytest-xdist) may
    pick the same free port at once: the one whose server does not get it moves to another port.
    """

    def __init__(self, directory: Path):
        self.directory = directory
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        assert self.process is None, "this Redis is already running"
        if self.port is not None:
            if not self._serve(self.port):
                pytest.fail(f"redis-server could not take its port {self.port} again:\n{self.log()}")
            return
        tried: set[int] = set()
        while not self._serve(port := free_port(tried)):
            tried.add(port)
        self.port = port

    def _serve(self, port: int) -> bool:
        """Start redis-server on ``port``: True once it answers, False when it exited (the port was taken)."""
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--logfile",
                str(self.directory / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        process = self.process
        outcome = wait_until(
            lambda: "exited" if process.poll() is not None else self._ours(port) and "up",
            f"redis-server on port {port} answering",
            timeout=20,
            explain=self.log,
        )
        if outcome == "exited":
            self.process = None
            return False
        return True

    def _ours(self, port: int) -> bool:
        """Our server answers on ``port`` (not another test process's that got there first)."""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(b"INFO server\r\n")
                reply = conn.recv(65536).decode(errors="replace")
        except OSError:
            return False
        return f"process_id:{self.process.pid}\r\n" in reply

    def log(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else "(no redis log)"

    def flush(self) -> None:
        """Forget every queue, unacknowledged message and cache entry (FLUSHALL), keeping the server up."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as conn:
            conn.sendall(b"FLUSHALL\r\n")
            assert conn.recv(16).startswith(b"+OK")

    def stop(self) -> None:
        """Kill -9: whatever it held (queues, unacknowledged messages, the cache) is gone."""
        if self.process is None:
            return
        self.process.kill()
        self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid`` (from /proc: no psutil needed)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses; the fields after its last ")" are fixed.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its parent counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Faults:
    """The test's side of the pause-point protocol (see fault_worker.py)."""

    def __init__(self, directory: Path):
        self.directory = directory
        for sub in ("armed", "reached", "release"):
            (directory / sub).mkdir(parents=True, exist_ok=True)

    def arm(self, point: str) -> None:
        (self.directory / "armed" / point).touch()

    def reached(self, point: str, worker: FaultWorker) -> dict:
        note = self.directory / "reached" / f"{point}.json"
        released = note.with_suffix(".released")
        wait_until(
            lambda: note.exists() or released.exists(),
            f"the worker reaching pause point {point!r}",
            explain=worker.explain,
        )
        return json.loads((note if note.exists() else released).read_text())

    def release(self, point: str) -> None:
        (self.directory / "release" / point).touch()

    def _tasks(self) -> list[dict]:
        log = self.directory / "tasks.log"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def ended(self) -> list[dict]:
        """The task attempts the workers finished so far, oldest first."""
        return [t for t in self._tasks() if t["event"] == "ended"]

    def busy(self) -> list[dict]:
        """Task attempts started in a process still alive and not ended."""
        tasks = self._tasks()
        ended = {(t["pid"], t["id"]) for t in tasks if t["event"] == "ended"}
        return [
            t
            for t in tasks
            if t["event"] == "started" and (t["pid"], t["id"]) not in ended and alive(t["pid"])
        ]

    def reset(self) -> None:
        """Release anything still paused (a failed test must not leave a worker waiting), then forget it all."""
        paused = [(n, json.loads(n.read_text())["pid"]) for n in (self.directory / "reached").glob("*.json")]
        for note, _ in paused:
            self.release(note.stem)
        for note, pid in paused:
            wait_until(
                lambda n=note, p=pid: not n.exists() or not alive(p), f"{note.stem} released", timeout=10
            )
        for sub in ("armed", "reached", "release"):
            for path in (self.directory / sub).iterdir():
                path.unlink(missing_ok=True)
        (self.directory / "tasks.log").unlink(missing_ok=True)


class FaultWorker:
    """One `celery worker` (prefork, one child) on the tests' queue, against the test database."""

    count = 0

    def __init__(self, *, env: dict[str, str], queue: str, directory: Path):
        FaultWorker.count += 1
        self.tag = f"{APP_NAME}-{FaultWorker.count}"
        self.log_path = directory / f"{self.tag}.log"
        env = {**env, "FAULT_APP_NAME": self.tag}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(WORKER_SCRIPT), queue, f"{self.tag}@%h"],
                cwd=REPO_ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self.ready, f"worker {self.tag} ready", timeout=60, explain=self.explain)

    @property
    def pid(self) -> int:
        return self.process.pid

    def ready(self) -> bool:
        if self.process.poll() is not None:
            pytest.fail(f"worker {self.tag} exited with {self.process.returncode}\n{self.explain()}")
        return b" ready." in self.log_path.read_bytes()

    def running(self) -> bool:
        return self.process.poll() is None

    def log(self, limit: int = 8000) -> str:
        text = self.log_path.read_text(errors="replace")
        return text[-limit:] or "(the worker wrote nothing)"

    def explain(self) -> str:
        state = "running" if self.running() else f"exited with {self.process.returncode}"
        return f"--- worker {self.tag} (pid {self.pid}, {state}), log tail:\n{self.log()}"

    def session_names(self, pid: int | None = None) -> str:
        return f"{self.tag}-{pid}" if pid is not None else f"{self.tag}-%"

    def kill_child(self, pid: int) -> None:
        assert pid != self.pid and pid in _children(self.pid), f"{pid} is not a pool child of {self.pid}"
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: not alive(pid), f"pool child {pid} gone")

    def kill_main(self) -> None:
        """kill -9 of the main process, then of the children it can no longer look after."""
        children = _children(self.pid)
        os.kill(self.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        wait_until(lambda: not any(alive(c) for c in children), f"the children of worker {self.tag} gone")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill_main()
