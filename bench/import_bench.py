"""Import benchmark: full import and a 1% delta against a raw psql COPY of the same rows, in one run.

    .venv/bin/python bench/import_bench.py [--scale 1.0] [--keep] [--profile [--cprofile]]

1. Generates (or reuses) a synthetic company with bench/generate.py (default 100k identities, 300k accounts,
   20k entitlements, 2M grants over 20 applications) in --data-dir.
2. Creates a fresh PostgreSQL database (--db-name, default soxgov_bench), runs ``manage.py migrate`` and creates
   the applications.
3. Measures, each step in its own fresh child process, wall time and that child's own peak RSS
   (``os.wait4`` returns the rusage of exactly the process waited for):
   - baseline: ``psql -c "\\copy bench_raw FROM file WITH (FORMAT csv, HEADER)"`` into an unindexed all-text
     table, for the identities file and the access file;
   - ``manage.py import_identities``, ``manage.py import_access`` (full, into the empty database, which is not
     gated), ``manage.py import_access`` of the 1% delta, the delta again (nothing changes: idempotence), and
     the next night's file (the same access, last_used_at moved for 30% of the accounts; no goal);
   - a CHECKPOINT before every measured step, so no step pays for the previous step's dirty pages, and a
     VACUUM ANALYZE after the full import (a nightly delta meets an analysed database; --no-vacuum skips it).
4. Checks the importer's printed counts against the generator's manifest, prints a table beside the goals
   (full import within 3x of raw COPY; 1% delta under 10 s; peak memory under 500 MB) and drops the database
   unless --keep.

--profile runs the imports through bench/phases.py instead (phase and SQL statement timers; with --cprofile
also cProfile, written next to the data), adds parse-only measurements, and prints where the time went.
Profiled timings include the instrumentation's overhead; use the plain run for the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import generate  # noqa: E402  (bench/ is not a package)

GOAL_RATIO = 3.0
GOAL_DELTA_SECONDS = 10.0
GOAL_RSS_MB = 500.0


@dataclass
class Step:
    name: str
    rows: int
    seconds: float
    rss_kb: int
    exit_code: int
    cpu_seconds: float = 0.0  # the child's own user + system CPU (the server's work is not in it)
    load: float = 0.0  # 1-minute load average when the step started (other work on the machine)
    stdout: str = ""
    stderr: str = ""
    kind: str = "import"  # "baseline", "import" or "other"
    goal: str = ""
    verdict: str = ""
    counts: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    @property
    def rss_mb(self) -> float:
        return self.rss_kb / 1024


def measure(name: str, cmd: list[str], *, env: dict, rows: int, kind: str = "import") -> Step:
    """Run ``cmd`` in a fresh child; wall time, and that child's own max RSS from wait4."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        load = os.getloadavg()[0]
        started = time.perf_counter()
        env = {**env, "BENCH_LAUNCHED_AT": repr(time.time())}
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=ROOT)
        _pid, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; keep Popen from waiting again
        out.seek(0)
        err.seek(0)
        step = Step(name, rows, seconds, usage.ru_maxrss, proc.returncode, usage.ru_utime + usage.ru_stime, load,
                    out.read(), err.read(), kind)  # fmt: skip
    status_text = "ok" if step.exit_code == 0 else f"EXIT {step.exit_code}"
    print(
        f"  {name:<38} {seconds:9.2f} s  {step.rows_per_s:>11,.0f} rows/s  {step.rss_mb:7.0f} MB  "
        f"cpu {step.cpu_seconds:6.2f} s  load {load:4.1f}  {status_text}",
        flush=True,
    )
    if step.exit_code != 0:
        print(_indent(step.stdout[-3000:] + step.stderr[-3000:]), flush=True)
    return step


def _indent(text: str) -> str:
    return "\n".join("      " + line for line in text.strip().splitlines())


class Bench:
    def __init__(self, args):
        self.args = args
        self.python = sys.executable
        self.manage = str(ROOT / "manage.py")
        self.db_url = f"postgres://{args.db_user}@{args.db_host}:{args.db_port}/{args.db_name}"
        self.steps: list[Step] = []
        self.work = Path(tempfile.mkdtemp(prefix="run-", dir=args.data_dir.parent))
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("REDIS_URL", "DATABASE_URL", "DJANGO_SETTINGS_MODULE")
        }
        self.env.update(
            DATABASE_URL=self.db_url,
            # Production-like: DEBUG off (no query log), so secrets and hosts must be given.
            SOXGOV_DEBUG="0",
            SOXGOV_SECRET_KEY="bench-only-secret-key-not-for-production-0123456789",
            SOXGOV_ALLOWED_HOSTS="localhost",
            SOXGOV_IMPORT_DIR=str(self.work / "imports"),
            SOXGOV_VAR_DIR=str(self.work / "var"),
            # The 1% delta removes well under 10%, but never let the gate hold a benchmark step.
            SOXGOV_DELETION_THRESHOLD_COUNT=str(10**9),
            SOXGOV_LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
            # As in production, the SoD check an import announces runs on a Celery worker, not in the import's
            # process: the children enqueue it on a private queue that no worker reads (bench/sod_bench.py
            # measures the check itself). Without a broker, Celery would run it inline, eagerly.
            REDIS_URL=args.redis_url,
            SOXGOV_CELERY_QUEUE=f"soxgov-import-bench-{os.getpid()}",
        )

    # --- helpers ---------------------------------------------------------------------------------------

    def psql(self, sql: str, *, db: str | None = None) -> str:
        a = self.args
        cmd = ["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-h", a.db_host, "-p", str(a.db_port),
               "-U", a.db_user, "-d", db or a.db_name, "-c", sql]  # fmt: skip
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()

    def psql_cmd(self, sql: str) -> list[str]:
        a = self.args
        return ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", a.db_host, "-p", str(a.db_port),
                "-U", a.db_user, "-d", a.db_name, "-c", sql]  # fmt: skip

    def manage_cmd(self, *args: str) -> list[str]:
        return [self.python, self.manage, *args]

    def checked(self, cmd: list[str], what: str) -> None:
        started = time.perf_counter()
        result = subprocess.run(cmd, env=self.env, cwd=ROOT, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"{what} failed:\n{result.stdout}\n{result.stderr}")
        print(f"  {what:<38} {time.perf_counter() - started:9.2f} s", flush=True)

    # --- phases ------------------------------------------------------------------------------------------

    def data(self) -> dict:
        a = self.args
        manifest_path = a.data_dir / "manifest.json"
        wanted = {
            "generator_version": generate.GENERATOR_VERSION,
            "scale": a.scale,
            "seed": a.seed,
            "applications": a.applications,
            "delta_rate": a.delta_rate,
        }
        if manifest_path.exists() and not a.fresh_data:
            manifest = json.loads(manifest_path.read_text())
            have = {k: manifest["parameters"].get(k) for k in wanted}
            if have == wanted and all(Path(f["path"]).exists() for f in manifest["files"].values()):
                print(f"data: reusing {a.data_dir} (generated in {manifest['seconds']} s)")
                return manifest
        print(f"data: generating into {a.data_dir} ...", flush=True)
        manifest = generate.generate(
            a.data_dir, scale=a.scale, seed=a.seed, applications=a.applications, delta_rate=a.delta_rate
        )
        mb = sum(f["bytes"] for f in manifest["files"].values()) / 1e6
        print(f"data: {mb:,.0f} MB in {manifest['seconds']} s")
        return manifest

    def server_settings(self) -> dict[str, str]:
        names = ("server_version", "shared_buffers", "work_mem", "temp_buffers", "maintenance_work_mem",
                 "max_wal_size", "synchronous_commit", "jit")  # fmt: skip
        rows = self.psql(
            "SELECT name, current_setting(name) FROM pg_settings WHERE name IN ("
            + ", ".join(f"'{n}'" for n in names)
            + ")",
            db="postgres",
        )
        return dict(line.split("|", 1) for line in rows.splitlines() if "|" in line)

    def setup_database(self, manifest: dict) -> None:
        a = self.args
        print("server: " + ", ".join(f"{k}={v}" for k, v in sorted(self.server_settings().items())))
        print(f"database: {a.db_name} (fresh)", flush=True)
        self.psql(f'DROP DATABASE IF EXISTS "{a.db_name}" WITH (FORCE)', db="postgres")
        self.psql(f'CREATE DATABASE "{a.db_name}"', db="postgres")
        self.checked(self.manage_cmd("migrate", "--no-input", "-v", "0"), "manage.py migrate")
        for setting in a.db_setting:
            name, _, value = setting.partition("=")
            if not re.fullmatch(r"[a-z_][a-z0-9_.]*", name) or not value or "'" in value:
                raise SystemExit(f"--db-setting {setting!r}: expected NAME=VALUE")
            self.psql(f"ALTER DATABASE \"{a.db_name}\" SET {name} = '{value}'", db="postgres")
            print(f"  database setting: {name} = {value}")
        if a.auto_explain is not None:
            for setting, value in (
                ("session_preload_libraries", "auto_explain"),
                ("auto_explain.log_min_duration", f"{a.auto_explain}ms"),
                ("auto_explain.log_analyze", "on"),
                ("auto_explain.log_buffers", "on"),
            ):
                self.psql(f"ALTER DATABASE \"{a.db_name}\" SET {setting} = '{value}'", db="postgres")
            log = (
                self.psql("SELECT pg_current_logfile()", db="postgres")
                or "the server log (see log_destination)"
            )
            print(f"  auto_explain: plans of statements over {a.auto_explain} ms go to {log}")
        names = json.dumps(manifest["application_names"])
        code = (
            "from entitlements.models import Application\n"
            f"for n in {names}:\n"
            "    Application.objects.create(name=n, sox_in_scope=True)\n"
        )
        self.checked(
            self.manage_cmd("shell", "-c", code), f"create {len(manifest['application_names'])} applications"
        )

    def baseline(self, manifest: dict) -> None:
        header = {"identities": generate.IDENTITY_HEADER, "access": generate.ACCESS_HEADER}
        for kind, fname, rows in (
            ("identities", "identities.csv", manifest["identities"]["rows"]),
            ("access", "access.csv", manifest["access"]["rows"]),
        ):
            table = f"bench_raw_{kind}"
            self.psql(
                f"DROP TABLE IF EXISTS {table}; CREATE TABLE {table} ({', '.join(c + ' text' for c in header[kind])})"
            )
            self.psql("CHECKPOINT")
            path = str(Path(manifest["files"][fname]["path"]).resolve()).replace("'", "''")
            step = measure(
                f"baseline psql \\copy: {kind}",
                self.psql_cmd(f"\\copy {table} FROM '{path}' WITH (FORMAT csv, HEADER)"),
                env=self.env,
                rows=rows,
                kind="baseline",
            )
            step.extra["copied"] = int(self.psql(f"SELECT COUNT(*) FROM {table}"))
            self.steps.append(step)
            self.psql(f"DROP TABLE {table}")

    def import_step(self, name: str, command: str, path: str, rows: int, expected: dict) -> Step:
        self.psql("CHECKPOINT")
        if self.args.profile:
            report = self.work / f"{command}-{len(self.steps)}.json"
            cmd = [self.python, str(ROOT / "bench" / "phases.py"), "run", str(report), command, path]
            if self.args.cprofile:
                cmd += ["--cprofile", str(self.args.data_dir / f"{command}-{len(self.steps)}.prof")]
        else:
            report, cmd = None, self.manage_cmd(command, path)
        step = measure(name, cmd, env=self.env, rows=rows)
        step.counts = parse_counts(step.stdout)
        step.extra["expected"] = expected
        step.extra["mismatches"] = [
            f"{obj} {what}: expected {want}, got {step.counts.get(obj, {}).get(what)}"
            for obj, wants in expected.items()
            for what, want in wants.items()
            if step.counts.get(obj, {}).get(what) != want
        ]
        for problem in step.extra["mismatches"]:
            print(f"      count mismatch: {problem}")
        if report and report.exists():
            step.extra["profile"] = json.loads(report.read_text())
        self.steps.append(step)
        return step

    def imports(self, manifest: dict) -> None:
        files = {k: str(Path(v["path"]).resolve()) for k, v in manifest["files"].items()}
        ident, full, delta = manifest["identities"], manifest["access"], manifest["delta"]
        startup = measure("manage.py startup (no-op command)", self.manage_cmd("shell", "-c", "pass"),
                          env=self.env, rows=0, kind="other")  # fmt: skip
        self.steps.append(startup)
        self.import_step(
            "import_identities (full)", "import_identities", files["identities.csv"], ident["rows"],
            {"identities": {"added": ident["rows"], "changed": 0}},
        )  # fmt: skip
        self.import_step(
            "import_access (full)", "import_access", files["access.csv"], full["rows"],
            {"accounts": {"added": full["accounts"], "removed": 0}, "grants": {"added": full["grants"], "removed": 0},
             "entitlements": {"added": full["entitlements"]}},
        )  # fmt: skip
        if not self.args.no_vacuum:
            self.checked(self.psql_cmd("VACUUM ANALYZE"), "VACUUM ANALYZE (not measured)")
        self.import_step(
            "import_access (1% delta)", "import_access", files["access_delta.csv"], delta["rows"],
            {"accounts": {"added": delta["accounts_added"], "removed": delta["accounts_removed"],
                          "changed": delta["accounts_changed"]},
             "grants": {"added": delta["grants_added"], "removed": delta["grants_removed"]},
             "entitlements": {"added": delta["entitlements_added"]}},
        )  # fmt: skip
        self.import_step(
            "import_access (delta again, no change)", "import_access", files["access_delta.csv"], delta["rows"],
            {"accounts": {"added": 0, "removed": 0, "changed": 0}, "grants": {"added": 0, "removed": 0},
             "entitlements": {"added": 0, "changed": 0}},
        )  # fmt: skip
        # The next night: the same access, last_used_at moved for the accounts used since (no goal; the figure
        # a steady nightly pull costs). last_used_at is no change in the counts: it is kept out of history.
        nightly = manifest["nightly"]
        self.import_step(
            f"import_access (nightly: {nightly['accounts_used']:,} used)", "import_access",
            files["access_nightly.csv"], nightly["rows"],
            {"accounts": {"added": 0, "removed": 0, "changed": 0}, "grants": {"added": 0, "removed": 0},
             "entitlements": {"added": 0, "changed": 0}},
        )  # fmt: skip

    def parse_only(self, manifest: dict) -> None:
        for kind, fname in (("identities", "identities.csv"), ("access", "access.csv")):
            out = self.work / f"parse-{kind}.json"
            path = str(Path(manifest["files"][fname]["path"]).resolve())
            step = measure(
                f"parse only (no database): {kind}",
                [self.python, str(ROOT / "bench" / "phases.py"), "parse", str(out), kind, path],
                env=self.env,
                rows=manifest[kind]["rows"],
                kind="other",
            )
            if out.exists():
                step.extra["parse"] = json.loads(out.read_text())
            self.steps.append(step)

    def sizes(self) -> dict[str, str]:
        rows = self.psql(
            "SELECT c.relname, pg_size_pretty(pg_total_relation_size(c.oid)) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r' "
            "AND c.relname LIKE 'entitlements_%' ORDER BY pg_total_relation_size(c.oid) DESC LIMIT 8"
        )
        return dict(line.split("|", 1) for line in rows.splitlines() if "|" in line)

    def empty_queue(self) -> int:
        """Drop the SoD checks the imports enqueued (nobody runs them); returns how many there were."""
        import redis

        client = redis.Redis.from_url(self.args.redis_url)
        queue = self.env["SOXGOV_CELERY_QUEUE"]
        pending = client.llen(queue)
        client.delete(queue)
        return pending

    def cleanup(self) -> None:
        print(f"SoD checks enqueued by the imports (not run here): {self.empty_queue()}")
        if self.args.keep:
            print(f"kept: database {self.args.db_name}, work dir {self.work}, data {self.args.data_dir}")
            return
        self.psql(f'DROP DATABASE IF EXISTS "{self.args.db_name}" WITH (FORCE)', db="postgres")
        shutil.rmtree(self.work, ignore_errors=True)
        print(
            f"dropped database {self.args.db_name}; removed {self.work} (data kept in {self.args.data_dir})"
        )


APP_DIRS = ("entitlements", "evidence", "soxgov", "sod", "reviews")


def code_state() -> dict:
    """The application code measured: commit, uncommitted files, and the newest source file's time."""

    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return result.stdout.rstrip("\n") if result.returncode == 0 else "?"

    sources = [p for d in APP_DIRS for p in (ROOT / d).rglob("*.py") if "migrations" not in p.parts]
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted": git("status", "--porcelain", "--", *APP_DIRS).splitlines(),
        "mtimes": {str(p.relative_to(ROOT)): p.stat().st_mtime for p in sources},
    }


def code_changed(before: dict, after: dict) -> list[str]:
    return sorted(f for f, t in after["mtimes"].items() if before["mtimes"].get(f) != t)


def parse_counts(stdout: str) -> dict[str, dict[str, int]]:
    """'  grants: 611 added, 541 removed, 0 changed, 96795 unchanged' -> {'grants': {'added': 611, ...}}."""
    counts: dict[str, dict[str, int]] = {}
    for line in stdout.splitlines():
        m = re.match(r"^\s+(\w+): (.+)$", line)
        if m:
            counts[m.group(1)] = {
                what.replace(" ", "_"): int(n)
                for n, what in re.findall(r"(\d+) ([a-z ]+?)(?:,|$)", m.group(2))
            }
    return counts


def judge(steps: list[Step]) -> list[str]:
    """Attach goals and verdicts; return the list of goal lines."""
    baseline = {s.name.split(": ")[1]: s for s in steps if s.kind == "baseline"}
    lines = []
    for s in steps:
        if s.kind == "baseline":
            continue
        base = baseline.get("access" if "access" in s.name else "identities")
        if base and s.kind == "import":
            s.extra["ratio"] = s.seconds / base.seconds
        if s.kind != "import":
            continue
        checks = [(s.rss_mb < GOAL_RSS_MB, f"peak RSS {s.rss_mb:.0f} MB < {GOAL_RSS_MB:.0f} MB")]
        if s.name == "import_access (full)":
            checks.insert(
                0, (s.extra["ratio"] <= GOAL_RATIO, f"{s.extra['ratio']:.2f}x COPY <= {GOAL_RATIO:.0f}x")
            )
        if s.name == "import_access (1% delta)":
            checks.insert(
                0, (s.seconds < GOAL_DELTA_SECONDS, f"{s.seconds:.1f} s < {GOAL_DELTA_SECONDS:.0f} s")
            )
        ok = all(c for c, _ in checks) and s.exit_code == 0
        s.goal = "; ".join(text for _, text in checks)
        s.verdict = "met" if ok else "MISSED"
        if s.exit_code != 0:
            s.verdict = f"EXIT {s.exit_code}"
        lines.append(f"{s.name:<40} {s.verdict:<7} {s.goal}")
    return lines


def table(steps: list[Step]) -> str:
    head = (
        f"| {'step':<40} | {'rows':>10} | {'wall s':>8} | {'rows/s':>10} | {'x COPY':>6} | {'peak RSS MB':>11} "
        f"| {'child CPU s':>11} | {'load':>4} | goal |"
    )
    sep = f"|{'-' * 42}|{'-' * 12}|{'-' * 10}|{'-' * 12}|{'-' * 8}|{'-' * 13}|{'-' * 13}|{'-' * 6}|------|"
    out = [head, sep]
    for s in steps:
        ratio = f"{s.extra['ratio']:.2f}" if "ratio" in s.extra else ("1.00" if s.kind == "baseline" else "")
        rate = f"{s.rows_per_s:,.0f}" if s.rows else ""
        rows = f"{s.rows:,}" if s.rows else ""
        goal = f"{s.verdict}: {s.goal}" if s.verdict else ""
        out.append(
            f"| {s.name:<40} | {rows:>10} | {s.seconds:>8.2f} | {rate:>10} | {ratio:>6} | {s.rss_mb:>11.0f} "
            f"| {s.cpu_seconds:>11.2f} | {s.load:>4.1f} | {goal} |"
        )
    return "\n".join(out)


def print_profiles(steps: list[Step], top: int) -> None:
    for s in steps:
        parse = s.extra.get("parse")
        if parse:
            print(f"\n{s.name} ({parse['file']}):")
            for label, v in parse.items():
                if isinstance(v, dict):
                    print(f"  {label:<42} {v['seconds']:8.2f} s")
        prof = s.extra.get("profile")
        if not prof:
            continue
        print(
            f"\n{s.name}: {prof['seconds']:.2f} s in the command (instrumented); process started in "
            f"{prof.get('startup_seconds') or 0:.2f} s, command done {prof.get('done_after_launch_seconds') or 0:.2f} s "
            f"after launch, process reaped after {s.seconds:.2f} s"
        )
        for label, v in sorted(prof["phases"].items(), key=lambda kv: -kv[1]["seconds"]):
            print(f"  {label:<42} {v['seconds']:8.2f} s  ({v['calls']} call{'s' if v['calls'] != 1 else ''})")
        print(f"  top {top} SQL statements:")
        for e in prof["sql"][:top]:
            print(f"    {e['seconds']:8.2f} s  x{e['calls']:<3} {e['sql'][:120]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="size multiplier (0.05 = smoke check)")
    parser.add_argument("--keep", action="store_true", help="keep the database and the run's work directory")
    parser.add_argument("--seed", type=int, default=generate.DEFAULT_SEED)
    parser.add_argument("--applications", type=int, default=generate.DEFAULT_APPLICATIONS)
    parser.add_argument("--delta-rate", type=float, default=generate.DEFAULT_DELTA_RATE)
    parser.add_argument("--data-dir", type=Path, help="default /tmp/soxgov-bench/scale-<scale>-seed-<seed>")
    parser.add_argument("--fresh-data", action="store_true", help="regenerate even if matching data exists")
    parser.add_argument("--db-name", default="soxgov_bench")
    parser.add_argument("--db-host", default=os.environ.get("PGHOST", "127.0.0.1"))
    parser.add_argument("--db-port", type=int, default=int(os.environ.get("PGPORT", "5432")))
    parser.add_argument("--db-user", default=os.environ.get("PGUSER", "postgres"))
    parser.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/12",
        help="broker the imports enqueue their SoD check on (a private queue, emptied before and after)",
    )
    parser.add_argument("--no-vacuum", action="store_true", help="skip VACUUM ANALYZE between full and delta")
    parser.add_argument("--profile", action="store_true", help="phase/SQL timers and parse-only measurements")
    parser.add_argument("--cprofile", action="store_true", help="with --profile: also cProfile each import")
    parser.add_argument(
        "--auto-explain",
        type=int,
        metavar="MS",
        help="log plans (EXPLAIN ANALYZE, buffers) of statements slower than MS to the server log, through "
        "ALTER DATABASE ... SET session_preload_libraries = 'auto_explain' on the bench database only",
    )
    parser.add_argument(
        "--db-setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="ALTER DATABASE <bench db> SET NAME = VALUE before the steps (an experiment without code changes, "
        "e.g. temp_buffers=1GB); repeatable",
    )
    parser.add_argument("--top", type=int, default=12, help="SQL statements listed per step with --profile")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.data_dir is None:
        args.data_dir = (
            Path(tempfile.gettempdir()) / "soxgov-bench" / f"scale-{args.scale:g}-seed-{args.seed}"
        )
    args.data_dir.mkdir(parents=True, exist_ok=True)
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", args.db_name):
        parser.error("--db-name must be a plain lower-case identifier")

    bench = Bench(args)
    started = time.perf_counter()
    code_before = code_state()
    print(
        f"code: commit {code_before['commit']}, {len(code_before['uncommitted'])} uncommitted change(s) in "
        f"{', '.join(APP_DIRS)}" + "".join(f"\n  {line}" for line in code_before["uncommitted"])
    )
    try:
        manifest = bench.data()
        sizes = manifest["parameters"]["sizes"]
        print(
            f"company: {manifest['identities']['rows']:,} identities, {manifest['access']['accounts']:,} accounts, "
            f"{manifest['access']['entitlements']:,} entitlements, {manifest['access']['grants']:,} grants "
            f"({manifest['access']['rows']:,} access rows) over {len(manifest['application_names'])} applications "
            f"(asked: {sizes}); delta: {manifest['delta']}"
        )
        bench.setup_database(manifest)
        print("measured steps (each in a fresh child process; peak RSS is that child's own):", flush=True)
        bench.baseline(manifest)
        bench.imports(manifest)
        if args.profile:
            bench.parse_only(manifest)
        db_sizes = bench.sizes()
    finally:
        bench.cleanup()

    steps = bench.steps
    goals = judge(steps)
    changed = code_changed(code_before, code_state())
    if changed:
        print(
            f"\nWARNING: application code changed during the run, figures mix versions: {', '.join(changed)}"
        )
    settings_note = f", database settings {' '.join(args.db_setting)}" if args.db_setting else ""
    print(
        f"\nresults (scale {args.scale:g}{settings_note}"
        f"{', PROFILED: instrumented timings' if args.profile else ''}):"
    )
    print(table(steps))
    print("\ngoals:")
    for line in goals:
        print(f"  {line}")
    mismatches = [m for s in steps for m in s.extra.get("mismatches", [])]
    print(
        "counts: "
        + ("all match the generator's manifest" if not mismatches else f"{len(mismatches)} mismatch(es)")
    )
    print("largest tables after the run: " + ", ".join(f"{k} {v}" for k, v in db_sizes.items()))
    if args.profile:
        print_profiles(steps, args.top)
    print(f"\ntotal bench time {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"scale": args.scale, "manifest": manifest, "db_sizes": db_sizes, "code_changed_during_run": changed,
                 "code": {k: v for k, v in code_before.items() if k != "mtimes"},
                 "steps": [{**{k: v for k, v in s.__dict__.items() if k not in ("stdout", "stderr")},
                            "rows_per_s": s.rows_per_s, "rss_mb": s.rss_mb} for s in steps]},
                indent=2, default=str,
            )
            + "\n"
        )  # fmt: skip
    failed = [s for s in steps if s.exit_code != 0]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
