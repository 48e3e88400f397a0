"""Load test (issue 19): reviewers working their queues against gunicorn on loopback, with the production
settings, while a nightly import and an evidence pack run on a real Celery worker.

    .venv/bin/python bench/load_bench.py --users 200 --minutes 10      # the full run, ~17 minutes in all
    .venv/bin/python bench/load_bench.py --users 50 --minutes 1        # a short run while developing

1. Generates the company (bench/generate.py, --scale, cached under /tmp/soxgov-load/), creates a fresh
   PostgreSQL database (--db-name, default soxgov_load), migrates, collects static, writes an Ed25519 signing
   key, and loads the company through the real imports (``import_identities``, ``import_access``); then one
   reviewer user per manager, a manager-routed campaign over every SOX application launched with
   ``campaign_launch``, and the --users reviewers with the most pending items (bench/load/seed.py).
2. Starts a Celery worker (--celery-concurrency, on its own Redis database and queue) and gunicorn on
   127.0.0.1 with DEBUG off (--gunicorn-workers/--gunicorn-threads; the settings are printed).
3. Runs locust headless (bench/load/locustfile.py): --users reviewers, each signed in as itself through the
   login form, spawned at --spawn-rate a second, then --minutes at full strength.
4. --import-after seconds into the full-strength part, an admin posts the generator's next-night access file
   (every application, ~1% of grants changed, last use moved for 30% of accounts) to ``POST /api/runs/``;
   --pack-after seconds in, the campaign's evidence pack to ``POST /api/evidence/packs/``; both are followed
   through the API until the worker has finished them.
5. Checks: locust's p50/p95/p99 and failures (its CSV, and every request's time kept by the locustfile, so the
   windows while the import and the pack ran are shown too), the run applied, the pack done,
   ``manage.py verify_evidence``, and the decisions: those locust made, the Decision rows, the
   ``review.item.certified/revoked`` events, and every decided item's own event.

Prints PASS or MISS for each goal (p95 < 200 ms, 0 errors, chain intact, every decision evidenced) and exits 0;
it exits 1 only when something broke (a server did not start, the seed failed, the import or pack did not
finish). The database is dropped at the end unless --keep.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from generate import GENERATOR_VERSION, generate  # noqa: E402  (bench/ is not a package)
from import_bench import code_changed, code_state  # noqa: E402

GOAL_P95_MS = 200.0
PASSWORD = "load-test-password-7f3a9c"  # a throwaway database's users
BIN = Path(sys.executable).parent
DATA_ROOT = Path(tempfile.gettempdir()) / "soxgov-load"
SIGN_IN = ("login: form", "login: submit")


class Failed(Exception):
    """Something the load test needs broke: the run is void (exit 1)."""


class LoadBench:
    def __init__(self, args):
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="soxgov-load-"))
        self.db_url = f"postgres://{args.db_user}@{args.db_host}:{args.db_port}/{args.db_name}"
        self.base = f"http://127.0.0.1:{args.port}"
        self.processes: dict[str, subprocess.Popen] = {}
        self.info: dict = {"background": {}}
        keep = {
            k: v for k, v in os.environ.items() if not k.startswith(("SOXGOV_", "DATABASE_URL", "REDIS_URL"))
        }
        self.env = {
            **keep,
            "DJANGO_SETTINGS_MODULE": "soxgov.settings",
            "DATABASE_URL": self.db_url,
            # Production settings: DEBUG off, a real secret key, the host list, compressed manifest static files.
            "SOXGOV_DEBUG": "0",
            "SOXGOV_SECRET_KEY": "load-bench-secret-key-not-for-production-" + "x" * 24,
            "SOXGOV_ALLOWED_HOSTS": "127.0.0.1",
            "SOXGOV_BEHIND_TLS_PROXY": "0",
            # Plain HTTP on loopback: no TLS proxy in front, so no secure-only cookies, HTTPS redirect or HSTS.
            "SOXGOV_SECURE_COOKIES": "0",
            "SOXGOV_SECURE_SSL_REDIRECT": "0",
            "SOXGOV_HSTS_SECONDS": "0",
            "SOXGOV_DB_CONN_MAX_AGE": str(args.conn_max_age),
            "SOXGOV_VAR_DIR": str(self.work / "var"),
            "SOXGOV_SIGNING_KEY_FILE": str(self.work / "signing-key.pem"),
            # Launch and assignment notifications are e-mailed: keep them in memory.
            "SOXGOV_EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
            "SOXGOV_LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }
        # The servers use Redis; the seed runs its few tasks (SoD check after the import, launch mails) eagerly.
        self.server_env = {**self.env, "REDIS_URL": args.redis_url, "SOXGOV_CELERY_QUEUE": args.queue}

    # --- helpers -----------------------------------------------------------------------------------------

    def say(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def psql(self, sql: str, *, db: str | None = None) -> str:
        a = self.args
        cmd = ["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-h", a.db_host, "-p", str(a.db_port),
               "-U", a.db_user, "-d", db or a.db_name]  # fmt: skip
        result = subprocess.run(cmd, input=sql, capture_output=True, text=True)
        if result.returncode != 0:
            raise Failed(f"psql failed:\n{sql[:500]}\n{result.stderr}")
        return result.stdout.strip()

    def run(self, what: str, cmd: list[str], *, env: dict | None = None) -> str:
        started = time.perf_counter()
        result = subprocess.run(cmd, env=env or self.env, cwd=ROOT, capture_output=True, text=True)
        if result.returncode != 0:
            raise Failed(
                f"{what} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        self.say(f"{what}: {time.perf_counter() - started:.1f} s")
        return result.stdout

    def manage(self, *command: str) -> str:
        return self.run(f"manage.py {command[0]}", [sys.executable, str(ROOT / "manage.py"), *command])

    # --- 1. database and company -------------------------------------------------------------------------

    def data(self) -> dict:
        out = DATA_ROOT / f"scale-{self.args.scale:g}-v{GENERATOR_VERSION}"
        manifest = out / "manifest.json"
        if not manifest.exists():
            generate(out, scale=self.args.scale)
            self.say(f"generated the company into {out}")
        return json.loads(manifest.read_text())

    def setup(self) -> None:
        a = self.args
        settings = self.psql(
            "SELECT string_agg(name || '=' || setting || coalesce(unit, ''), ', ' ORDER BY name) FROM pg_settings "
            "WHERE name IN ('max_connections', 'shared_buffers', 'work_mem', 'effective_cache_size', "
            "'synchronous_commit', 'max_wal_size', 'jit', 'server_version')",
            db="postgres",
        )
        self.info["postgres"] = settings
        self.say(f"PostgreSQL: {settings}")
        self.psql(f'DROP DATABASE IF EXISTS "{a.db_name}" WITH (FORCE)', db="postgres")
        self.psql(f'CREATE DATABASE "{a.db_name}"', db="postgres")
        self.write_signing_key()
        self.manage("migrate", "--no-input", "-v", "0")
        self.static()

    def static(self) -> None:
        """collectstatic, or a copy of its output for the same inputs: with ``brotli`` installed (locust brings it)
        WhiteNoise compresses ~1,000 files twice, minutes of CPU on this machine."""
        from importlib.metadata import version

        digest = hashlib.sha256()
        for package in ("django", "djangorestframework", "drf-spectacular-sidecar", "whitenoise", "brotli"):
            try:
                digest.update(f"{package}={version(package)}\n".encode())
            except Exception:
                digest.update(f"{package}=none\n".encode())
        for path in sorted([*(ROOT / "static" / "soxgov").rglob("*"), ROOT / "static" / "package-lock.json"]):
            if path.is_file():
                digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
        cached = DATA_ROOT / f"static-{digest.hexdigest()[:16]}"
        target = Path(self.env["SOXGOV_VAR_DIR"]) / "staticfiles"
        if not cached.is_dir():
            self.manage("collectstatic", "--no-input", "-v", "0")
            shutil.copytree(target, cached.with_suffix(".tmp"), dirs_exist_ok=True)
            cached.with_suffix(".tmp").rename(cached)
        else:
            shutil.copytree(cached, target)
            self.say(f"static files: collected before, copied from {cached}")

    def write_signing_key(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path = Path(self.env["SOXGOV_SIGNING_KEY_FILE"])
        path.write_bytes(pem)
        path.chmod(0o600)

    def seed(self, manifest: dict) -> None:
        files = manifest["files"]
        seed = [sys.executable, str(ROOT / "bench" / "load" / "seed.py")]
        manifest_path = Path(files["access.csv"]["path"]).parent / "manifest.json"
        self.run("seed: applications", [*seed, "applications", str(manifest_path)])
        self.manage("import_identities", files["identities.csv"]["path"])
        self.manage("import_access", files["access.csv"]["path"])
        password = self.work / "password"
        password.write_text(PASSWORD)
        out = self.work / "seed.json"
        self.run(
            "seed: reviewers, campaign launch",
            [*seed, "reviewers", str(out), "--users", str(self.args.users), "--password-file", str(password)],
        )
        self.seeded = json.loads(out.read_text())
        (self.work / "reviewers.txt").write_text("\n".join(self.seeded["reviewers"]) + "\n")
        self.psql("VACUUM ANALYZE")
        pending = self.seeded["pending"]
        self.info["company"] = {
            "identities": manifest["identities"]["rows"],
            "grants": manifest["access"]["grants"],
            "campaign_items": self.seeded["items"],
            "users": self.seeded["users"],
            "queue_min": min(pending),
            "queue_median": statistics.median(pending),
            "queue_max": max(pending),
        }
        self.say(
            f"campaign {self.seeded['campaign']}: {self.seeded['items']:,} items; the {len(pending)} reviewers' "
            f"pending queues: min {min(pending)}, median {statistics.median(pending):g}, max {max(pending)}"
        )

    # --- 2. servers ---------------------------------------------------------------------------------------

    def start(self, name: str, cmd: list[str]) -> None:
        log = (self.work / f"{name}.log").open("wb")
        self.processes[name] = subprocess.Popen(
            cmd, cwd=ROOT, env=self.server_env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def servers(self) -> None:
        import redis

        a = self.args
        redis.Redis.from_url(a.redis_url).flushdb()  # this bench's own database: no stale tasks
        self.start("worker", [str(BIN / "celery"), "-A", "soxgov", "worker", "-Q", a.queue, "-n", f"{a.queue}@%h",
                              "-c", str(a.celery_concurrency), "-l", "WARNING", "--without-heartbeat",
                              "--without-gossip", "--without-mingle"])  # fmt: skip
        self.gunicorn = [str(BIN / "gunicorn"), "soxgov.wsgi:application", "--bind", f"127.0.0.1:{a.port}",
                         "--workers", str(a.gunicorn_workers), "--threads", str(a.gunicorn_threads),
                         "--worker-class", "gthread" if a.gunicorn_threads > 1 else "sync",
                         "--max-requests", str(a.max_requests), "--max-requests-jitter", str(a.max_requests // 10),
                         "--timeout", "120", "--graceful-timeout", "10", "--keep-alive", str(a.keep_alive),
                         "--backlog", "2048",
                         "--log-level", "warning"]  # fmt: skip
        self.start("gunicorn", self.gunicorn)
        self.say("gunicorn: " + " ".join(self.gunicorn[1:]))
        import requests

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.processes["gunicorn"].poll() is not None:
                raise Failed(f"gunicorn exited:\n{(self.work / 'gunicorn.log').read_text()[-3000:]}")
            try:
                if requests.get(f"{self.base}/login/", timeout=10).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.5)
        else:
            raise Failed("gunicorn did not answer /login/ within 60 s")
        # Every worker process up and its first request served before the clock starts.
        for _ in range(a.gunicorn_workers * 3):
            requests.get(f"{self.base}/login/", timeout=10)
        if self.processes["worker"].poll() is not None:
            raise Failed(f"celery worker exited:\n{(self.work / 'worker.log').read_text()[-3000:]}")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for name, process in self.processes.items():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                self.say(f"{name} killed after 30 s")

    # --- 3-4. the load, and the work in the background ---------------------------------------------------

    def load(self, manifest: dict) -> None:
        a = self.args
        self.ramp = a.users / a.spawn_rate
        total = round(self.ramp + a.minutes * 60)
        self.csv = self.work / "locust"
        env = {
            **self.server_env,
            "SOXGOV_LOAD_USERS": str(self.work / "reviewers.txt"),
            "SOXGOV_LOAD_PASSWORD": PASSWORD,
            "SOXGOV_LOAD_DECISIONS": str(self.work / "decisions.json"),
            "SOXGOV_LOAD_SAMPLES": str(self.work / "samples.csv"),
            "SOXGOV_LOAD_THINK": a.think,
        }
        cmd = [str(BIN / "locust"), "-f", str(ROOT / "bench" / "load" / "locustfile.py"), "--headless",
               "--users", str(a.users), "--spawn-rate", str(a.spawn_rate), "--run-time", f"{total}s",
               "--host", self.base, "--csv", str(self.csv), "--only-summary", "--stop-timeout", "15",
               "--loglevel", "WARNING"]  # fmt: skip
        self.say(
            f"locust: {a.users} reviewers, spawned over {self.ramp:.0f} s, then {a.minutes:g} min ({total} s)"
        )
        log = (self.work / "locust.log").open("wb")
        self.started = time.time()
        self.sample_cpu("start")
        locust = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes["locust"] = locust
        background = threading.Thread(target=self.background, args=(manifest,), daemon=True)
        background.start()
        while locust.poll() is None:
            time.sleep(5)
            elapsed = time.time() - self.started
            if int(elapsed) % 60 < 5:
                self.say(f"  {elapsed:4.0f} s of {total} s, load {os.getloadavg()[0]:.1f}")
        self.finished = time.time()
        self.sample_cpu("end")
        if locust.returncode not in (0, 1):  # 1: some requests failed, which the summary reports
            raise Failed(
                f"locust exited {locust.returncode}:\n{(self.work / 'locust.log').read_text()[-3000:]}"
            )
        background.join(timeout=a.background_timeout)
        if background.is_alive():
            raise Failed(
                f"the import or the pack had not finished {a.background_timeout} s after the load ended"
            )

    def sample_cpu(self, when: str) -> None:
        import psutil

        cpu = {"machine": psutil.cpu_times()}
        for name, process in self.processes.items():
            try:
                tree = psutil.Process(process.pid)
                procs = [tree, *tree.children(recursive=True)]
                cpu[name] = sum(p.cpu_times().user + p.cpu_times().system for p in procs)
            except psutil.NoSuchProcess:
                pass
        self.info.setdefault("cpu", {})[when] = cpu

    def api(self, method: str, path: str, **kw):
        import requests

        headers = {"Authorization": f"Token {self.token}"} if getattr(self, "token", None) else {}
        response = requests.request(method, f"{self.base}{path}", headers=headers, timeout=120, **kw)
        if response.status_code >= 400:
            raise Failed(f"{method} {path}: {response.status_code} {response.text[:500]}")
        return response.json()

    def background(self, manifest: dict) -> None:
        """The admin's nightly import and the auditor-facing pack, while the reviewers work."""
        try:
            a = self.args
            at = self.started + self.ramp
            self.token = None
            self.token = self.api(
                "post", "/api/auth/token/", json={"username": "load-admin", "password": PASSWORD}
            )["token"]
            jobs = {}
            plan = sorted([(at + a.import_after, "import"), (at + a.pack_after, "pack")])
            for when, what in plan:
                time.sleep(max(0.0, when - time.time()))
                posted = time.time()
                if what == "import":
                    path = Path(manifest["files"]["access_nightly.csv"]["path"])
                    with path.open("rb") as fh:
                        body = self.api(
                            "post",
                            "/api/runs/",
                            data={"kind": "access"},
                            files={"file": (path.name, fh, "text/csv")},
                        )
                    jobs[what] = (
                        f"/api/runs/{body['id']}/",
                        posted,
                        ("applied", "failed", "held", "rejected"),
                    )
                else:
                    body = self.api(
                        "post", "/api/evidence/packs/", json={"campaign": self.seeded["campaign"]}
                    )
                    jobs[what] = (f"/api/evidence/packs/{body['id']}/", posted, ("done", "failed"))
                self.say(f"  {what} posted ({time.time() - posted:.2f} s): {body.get('status')}")
            while jobs:
                time.sleep(1)
                for what, (path, posted, final) in list(jobs.items()):
                    body = self.api("get", path)
                    if body["status"] in final:
                        done = time.time()
                        self.info["background"][what] = {
                            "status": body["status"],
                            "posted": posted - self.started,
                            "done": done - self.started,
                            "seconds_seen": done - posted,
                            "seconds_own": _seconds(body.get("started_at"), body.get("finished_at")),
                            "body": {
                                k: body.get(k)
                                for k in ("counts", "error", "held_reason", "detail", "event_count")
                                if body.get(k)
                            },
                        }
                        self.say(f"  {what} {body['status']} after {done - posted:.1f} s")
                        del jobs[what]
        except Exception as exc:  # reported in the summary; the run is void
            self.info["background"]["error"] = repr(exc)
            self.say(f"  background work failed: {exc!r}")

    # --- 5. checks -------------------------------------------------------------------------------------------

    def checks(self) -> dict:
        result = subprocess.run(
            [sys.executable, str(ROOT / "manage.py"), "verify_evidence"], env=self.env, cwd=ROOT,
            capture_output=True, text=True,
        )  # fmt: skip
        verify = (result.stdout + result.stderr).strip()
        rows = self.psql(
            "SELECT (SELECT count(*) FROM reviews_decision WHERE action = 'certify'), "
            "(SELECT count(*) FROM reviews_decision WHERE action = 'revoke'), "
            "(SELECT count(*) FROM evidence_evidenceevent WHERE action = 'review.item.certified'), "
            "(SELECT count(*) FROM evidence_evidenceevent WHERE action = 'review.item.revoked'), "
            "(SELECT count(*) FROM reviews_reviewitem i WHERE i.status <> 'pending' AND NOT EXISTS ("
            "  SELECT 1 FROM evidence_evidenceevent e WHERE e.subject_type = 'reviews.reviewitem'"
            "  AND e.subject_id = i.id::text AND e.action = 'review.item.' || i.status)), "
            "(SELECT count(*) FROM reviews_reviewitem WHERE status <> 'pending'), "
            "(SELECT count(*) FROM evidence_evidenceevent)"
        ).split("|")
        made = json.loads((self.work / "decisions.json").read_text())
        return {
            "verify_rc": result.returncode,
            "verify": verify,
            "decisions_certify": int(rows[0]),
            "decisions_revoke": int(rows[1]),
            "events_certified": int(rows[2]),
            "events_revoked": int(rows[3]),
            "decided_without_event": int(rows[4]),
            "items_decided": int(rows[5]),
            "events_total": int(rows[6]),
            "locust": made,
        }

    def cleanup(self) -> None:
        self.stop()
        if self.args.out:
            self.args.out.mkdir(parents=True, exist_ok=True)
            for path in self.work.glob("*"):
                if path.is_file() and path.suffix in (".csv", ".log", ".json", ".txt"):
                    shutil.copy(path, self.args.out / path.name)
            self.say(f"kept the CSVs, logs and JSON in {self.args.out}")
        if self.args.keep:
            self.say(f"kept database {self.args.db_name} and {self.work}")
            return
        shutil.rmtree(self.work, ignore_errors=True)
        try:
            self.psql(f'DROP DATABASE IF EXISTS "{self.args.db_name}" WITH (FORCE)', db="postgres")
        except Failed as exc:
            self.say(str(exc))


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()


def _percentile(values: list[float], pct: float) -> float:
    """Nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * pct // 100))
    return ordered[int(rank) - 1]


def samples(path: Path) -> list[tuple[float, str, float, bool]]:
    with path.open() as fh:
        return [(float(t), name, float(ms), ok == "1") for t, name, ms, ok in csv.reader(fh)]


def window(rows, start: float, end: float, *, sign_in: bool = True) -> dict:
    picked = [r for r in rows if start <= r[0] < end and (sign_in or r[1] not in SIGN_IN)]
    times = [r[2] for r in picked]
    return {
        "requests": len(picked),
        "failures": sum(1 for r in picked if not r[3]),
        "rps": len(picked) / (end - start) if end > start else 0.0,
        "p50": _percentile(times, 50),
        "p95": _percentile(times, 95),
        "p99": _percentile(times, 99),
    }


def report(bench: LoadBench, checks: dict, code_before: dict) -> list[str]:
    a = bench.args
    with (bench.work / "locust_stats.csv").open() as fh:
        stats = list(csv.DictReader(fh))
    with (bench.work / "locust_failures.csv").open() as fh:
        failures = list(csv.DictReader(fh))
    total = next(r for r in stats if r["Name"] == "Aggregated")
    rows = samples(bench.work / "samples.csv")
    t0 = bench.started
    steady = t0 + bench.ramp
    end = bench.finished
    whole = window(rows, t0, end)
    full = window(rows, steady, end)
    no_sign_in = window(rows, t0, end, sign_in=False)
    out = []
    p = out.append
    p("")
    p(f"LOAD TEST: {a.users} reviewers, spawned at {a.spawn_rate:g}/s ({bench.ramp:.0f} s), then {a.minutes:g} min; "
      f"think time {a.think} s; scale {a.scale:g}")  # fmt: skip
    c = bench.info["company"]
    p(f"company: {c['identities']:,} identities, campaign of {c['campaign_items']:,} items, {c['users']:,} users; "
      f"queues of the reviewers under load: {c['queue_min']}..{c['queue_max']} (median {c['queue_median']:g})")  # fmt: skip
    p(f"gunicorn: {' '.join(bench.gunicorn[1:])}")
    p(
        f"celery: -c {a.celery_concurrency}; CONN_MAX_AGE {a.conn_max_age}; PostgreSQL: {bench.info['postgres']}"
    )
    p(f"code: commit {code_before['commit']}, {len(code_before['uncommitted'])} uncommitted change(s)")
    p("")
    p(
        f"| {'window':<44} | {'requests':>8} | {'rps':>6} | {'p50 ms':>7} | {'p95 ms':>7} | {'p99 ms':>7} | {'errors':>6} |"
    )
    p(f"|{'-' * 46}|{'-' * 10}|{'-' * 8}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 8}|")

    def line(label, w):
        p(f"| {label:<44} | {w['requests']:>8,} | {w['rps']:>6.1f} | {w['p50']:>7.0f} | {w['p95']:>7.0f} | "
          f"{w['p99']:>7.0f} | {w['failures']:>6} |")  # fmt: skip

    line("locust's own totals (CSV, whole run)", {
        "requests": int(total["Request Count"]), "failures": int(total["Failure Count"]),
        "rps": float(total["Requests/s"]), "p50": float(total["50%"]), "p95": float(total["95%"]),
        "p99": float(total["99%"])})  # fmt: skip
    line("whole run (every request)", whole)
    line("whole run, sign-in left out", no_sign_in)
    line(f"full strength ({a.users} reviewers)", full)
    for what in ("import", "pack"):
        job = bench.info["background"].get(what)
        if job:
            line(
                f"while the {what} ran ({job['seconds_seen']:.0f} s)",
                window(rows, t0 + job["posted"], t0 + job["done"]),
            )
    p("")
    p("per minute from the start (s: sign-ins going on; I: import running; P: pack building):")
    jobs = {w: bench.info["background"].get(w) for w in ("import", "pack")}
    for minute in range(int((end - t0) // 60) + 1):
        lo, hi = t0 + 60 * minute, min(end, t0 + 60 * (minute + 1))
        w = window(rows, lo, hi)
        marks = "s" if lo < steady else " "
        for letter, job in (("I", jobs["import"]), ("P", jobs["pack"])):
            marks += letter if job and t0 + job["posted"] < hi and t0 + job["done"] > lo else " "
        p(f"  {minute:>3} {marks} {w['requests']:>6,} requests {w['rps']:>5.1f}/s  p50 {w['p50']:>7.0f}  "
          f"p95 {w['p95']:>7.0f} ms  errors {w['failures']}")  # fmt: skip
    p("")
    p(
        f"| {'endpoint':<44} | {'requests':>8} | {'p50 ms':>7} | {'p95 ms':>7} | {'p99 ms':>7} | {'max ms':>7} | {'errors':>6} |"
    )
    p(f"|{'-' * 46}|{'-' * 10}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 8}|")
    for r in stats:
        if r["Name"] == "Aggregated":
            continue
        p(f"| {r['Type'] + ' ' + r['Name']:<44} | {int(r['Request Count']):>8,} | {float(r['50%']):>7.0f} | "
          f"{float(r['95%']):>7.0f} | {float(r['99%']):>7.0f} | {float(r['Max Response Time']):>7.0f} | "
          f"{int(r['Failure Count']):>6} |")  # fmt: skip
    for f in failures[:10]:
        p(f"  failure x{f['Occurrences']}: {f['Method']} {f['Name']}: {f['Error'][:200]}")
    p("")
    for what in ("import", "pack"):
        job = bench.info["background"].get(what)
        if job:
            own = (
                f"{job['seconds_own']:.1f} s on the worker"
                if job["seconds_own"] is not None
                else "worker time n/a"
            )
            p(f"{what}: {job['status']}, {job['seconds_seen']:.1f} s from POST to seen finished ({own}); "
              f"posted at {job['posted']:.0f} s {json.dumps(job['body'])[:300]}")  # fmt: skip
    if "error" in bench.info["background"]:
        p(f"background work FAILED: {bench.info['background']['error']}")
    cpu = bench.info.get("cpu", {})
    if "start" in cpu and "end" in cpu:
        before, after = cpu["start"], cpu["end"]
        wall = bench.finished - bench.started
        busy = lambda t: t.user + t.nice + t.system + t.irq + t.softirq + t.steal  # noqa: E731
        machine = (busy(after["machine"]) - busy(before["machine"])) / wall
        parts = ", ".join(
            f"{name} {(after[name] - before.get(name, 0)) / wall:.2f}" for name in ("gunicorn", "worker", "locust")
            if name in after
        )  # fmt: skip
        p(f"CPU (cores busy on average over the run, of 2): machine {machine:.2f}; {parts} (gunicorn: live workers "
          f"only; PostgreSQL is the rest with other sessions' work); load average at the end {os.getloadavg()[0]:.1f}")  # fmt: skip
    made = checks["locust"]
    # A reviewer stopped between its POST and the page that confirms it leaves a decision locust did not count:
    # at most one bulk (8 items) per reviewer.
    confirmed, in_flight = made["certify"] + made["revoke"], 8 * a.users
    decisions = checks["decisions_certify"] + checks["decisions_revoke"]
    events = checks["events_certified"] + checks["events_revoked"]
    p(f"decisions: locust made {made['certify']:,} certify + {made['revoke']:,} revoke in {made['requests']:,} "
      f"POSTs ({made['refused']} refused; confirmed by the next page, so one stopped in between is not counted); Decision rows {checks['decisions_certify']:,} + {checks['decisions_revoke']:,}; "
      f"review.item.certified/revoked events {checks['events_certified']:,} + {checks['events_revoked']:,}; "
      f"decided items {checks['items_decided']:,}, of which without their event {checks['decided_without_event']}")  # fmt: skip
    p(f"verify_evidence (rc {checks['verify_rc']}): {checks['verify'][:300]}")
    p("")
    total_failures = int(total["Failure Count"])
    p95_all = float(total["95%"])
    goals = [
        (f"p95 < {GOAL_P95_MS:.0f} ms (every request, whole run: {p95_all:.0f} ms)", p95_all < GOAL_P95_MS),
        (f"p95 < {GOAL_P95_MS:.0f} ms at full strength, sign-in included ({full['p95']:.0f} ms)", full["p95"] < GOAL_P95_MS),
        (f"0 errors ({total_failures})", total_failures == 0),
        ("nightly import applied", bench.info["background"].get("import", {}).get("status") == "applied"),
        ("evidence pack done", bench.info["background"].get("pack", {}).get("status") == "done"),
        ("evidence chain intact (verify_evidence)", checks["verify_rc"] == 0),
        (f"every decision evidenced ({decisions:,} decisions, {events:,} events, "
         f"{checks['decided_without_event']} decided items without)",
         decisions == events == checks["items_decided"] and checks["decided_without_event"] == 0
         and confirmed <= decisions <= confirmed + in_flight),
    ]  # fmt: skip
    p("goals:")
    for text, ok in goals:
        p(f"  {'PASS' if ok else 'MISS'}  {text}")
    changed = code_changed(code_before, code_state())
    if changed:
        p(f"WARNING: application code changed during the run: {', '.join(changed)}")
    bench.info.update(
        stats=stats, windows={"whole": whole, "full": full, "no_sign_in": no_sign_in}, checks=checks,
        goals=[{"goal": t, "met": ok} for t, ok in goals],
    )  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=200, help="concurrent reviewers (each its own user)")
    parser.add_argument("--minutes", type=float, default=10, help="minutes at full strength, after the spawn")
    parser.add_argument("--spawn-rate", type=float, default=1, help="reviewers signing in per second")
    parser.add_argument(
        "--think", default="5-25", help="think time before each step, seconds (uniform LOW-HIGH)"
    )
    parser.add_argument("--scale", type=float, default=0.05, help="company size (bench/generate.py scale)")
    parser.add_argument("--import-after", type=float, default=60, help="seconds into full strength")
    parser.add_argument("--pack-after", type=float, default=90, help="seconds into full strength")
    parser.add_argument("--background-timeout", type=float, default=900)
    parser.add_argument("--gunicorn-workers", type=int, default=3)
    parser.add_argument("--gunicorn-threads", type=int, default=4, help="1: sync workers; more: gthread")
    parser.add_argument(
        "--keep-alive", type=int, default=75, help="gunicorn keep-alive seconds (longer than the think time)"
    )
    parser.add_argument(
        "--max-requests", type=int, default=5000, help="gunicorn recycles a worker after this"
    )
    parser.add_argument("--conn-max-age", type=int, default=60, help="SOXGOV_DB_CONN_MAX_AGE")
    parser.add_argument("--celery-concurrency", type=int, default=2)
    parser.add_argument("--port", type=int, default=8719)
    parser.add_argument("--db-name", default="soxgov_load")
    parser.add_argument("--db-host", default=os.environ.get("PGHOST", "127.0.0.1"))
    parser.add_argument("--db-port", type=int, default=int(os.environ.get("PGPORT", "5432")))
    parser.add_argument("--db-user", default=os.environ.get("PGUSER", "postgres"))
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/6", help="its own database: flushed")
    parser.add_argument("--queue", default="soxgov-load", help="the Celery queue the worker reads")
    parser.add_argument("--keep", action="store_true", help="keep the database and the work directory")
    parser.add_argument(
        "--setup-only",
        action="store_true",
        help="create and seed the database, keep it, print its settings, stop",
    )
    parser.add_argument("--out", type=Path, help="copy locust's CSVs, the logs and the JSON here")
    parser.add_argument("--json", type=Path, help="write every figure as JSON here")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"soxgov_load[a-z0-9_]*", args.db_name):
        parser.error("--db-name must be a plain lower-case identifier starting with soxgov_load")

    bench = LoadBench(args)
    code_before = code_state()
    started = time.perf_counter()
    try:
        manifest = bench.data()
        bench.setup()
        bench.seed(manifest)
        if args.setup_only:
            args.keep = True
            env = {k: v for k, v in bench.env.items() if k.startswith(("SOXGOV_", "DATABASE_URL"))}
            print("set up; to use it:\n" + " ".join(f"{k}={v}" for k, v in sorted(env.items())))
            return 0
        bench.servers()
        bench.load(manifest)
        bench.stop()
        checks = bench.checks()
        lines = report(bench, checks, code_before)
        print("\n".join(lines), flush=True)
        (bench.work / "summary.txt").write_text("\n".join(lines) + "\n")
        if args.json:
            args.json.write_text(json.dumps(bench.info, indent=2, default=str) + "\n")
    except Failed as exc:
        print(f"\nLOAD TEST VOID: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        bench.cleanup()
        print(f"total {time.perf_counter() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
