"""SQL source benchmark: pulling 1M grants from an ERP database against importing the same rows as a CSV file.

    .venv/bin/python bench/sql_bench.py [--scale 1.0] [--keep] [--json PATH]

1. Builds the source: a PostgreSQL database (``<db-name>_src``) holding PeopleSoft's PSOPRDEFN (100k users),
   PSROLEDEFN (2,000 roles) and PSROLEUSER (1M assignments), generated with generate_series; the access query
   is the one documented in docs/connectors-erp.md (read from the page, as the tests do).
2. Builds SOXGov: a fresh database (``<db-name>``, ``manage.py migrate``), the application, the 100k people
   (imported from a CSV, not measured), then a copy of it (``<db-name>_csv``, CREATE DATABASE ... TEMPLATE), so
   both paths start from the same state.
3. Exports the query's rows to a CSV file with psql (the baseline's input, not measured).
4. Measures, each in a fresh child process (wall time and that child's own peak RSS from wait4):
   - baseline: ``manage.py import_access rows.csv --application ...`` into the copy (the existing import path);
   - the pull: ``manage.py connector_pull`` of a SQL connector on that source, when the connector framework is
     installed; otherwise the same work by hand: SqlSource reads the source and writes the CSV, then the same
     process imports it (``--pull-by-hand`` forces this);
   - the read alone: SqlSource streaming the query's rows into a CSV file (no import).
5. Checks that every import added all the grants, prints the figures beside the baseline and the goals
   (pull within 1.5x of the CSV import, peak memory under 500 MB) and drops the databases unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from import_bench import code_state, measure, parse_counts  # noqa: E402  (bench/ is not a package)

from tests.sql import erp  # noqa: E402  (the documented query and the tables it reads)

GOAL_RATIO = 1.5
GOAL_RSS_MB = 500.0
APPLICATION = "PeopleSoft HCM"
CONNECTOR = "peoplesoft-bench"


class SqlBench:
    def __init__(self, args):
        self.args = args
        a = args
        self.server = f"postgres://{a.db_user}@{a.db_host}:{a.db_port}"
        self.work = Path(tempfile.mkdtemp(prefix="soxgov-sql-bench-"))
        self.users = max(1, round(a.users * a.scale))
        self.grants = max(self.users, round(a.grants * a.scale))
        self.roles = a.roles
        self.steps = []
        self.query = erp.documented_queries()["peoplesoft.access_query"]
        base = {
            k: v
            for k, v in os.environ.items()
            if k not in ("REDIS_URL", "DATABASE_URL", "DJANGO_SETTINGS_MODULE")
        }
        base.update(
            SOXGOV_DEBUG="0",
            SOXGOV_SECRET_KEY="bench-only-secret-key-not-for-production-0123456789",
            SOXGOV_ALLOWED_HOSTS="localhost",
            SOXGOV_VAR_DIR=str(self.work / "var"),
            SOXGOV_DELETION_THRESHOLD_COUNT=str(10**9),
            SOXGOV_LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
            # The SoD check an import announces goes to a private queue no worker reads (as in import_bench).
            REDIS_URL=a.redis_url,
            SOXGOV_CELERY_QUEUE=f"soxgov-sql-bench-{os.getpid()}",
        )
        self.env = {
            "pull": self._env(base, a.db_name, "pull"),
            "csv": self._env(base, f"{a.db_name}_csv", "csv"),
        }

    def _env(self, base: dict, db: str, store: str) -> dict:
        return {**base, "DATABASE_URL": f"{self.server}/{db}", "SOXGOV_IMPORT_DIR": str(self.work / store)}

    # --- helpers -------------------------------------------------------------------------------------------

    def psql(self, sql: str, *, db: str = "postgres", out=None) -> str:
        a = self.args
        cmd = ["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-h", a.db_host, "-p", str(a.db_port),
               "-U", a.db_user, "-d", db, "-c", sql]  # fmt: skip
        result = subprocess.run(cmd, stdout=out or subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:
            raise SystemExit(f"psql failed: {result.stderr.strip()}\n  in: {sql[:300]}")
        return (result.stdout or "").strip()

    def timed(self, what: str, fn, *args, **kwargs):
        started = time.perf_counter()
        result = fn(*args, **kwargs)
        print(f"  {what:<44} {time.perf_counter() - started:8.2f} s (not measured)", flush=True)
        return result

    def manage(self, env: str, *args: str) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=self.env[env], cwd=ROOT,
                                capture_output=True, text=True)  # fmt: skip
        if result.returncode != 0:
            raise SystemExit(
                f"manage.py {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result

    def has_framework(self) -> bool:
        return (ROOT / "entitlements" / "management" / "commands" / "connector_pull.py").exists()

    # --- setup ---------------------------------------------------------------------------------------------

    def source(self) -> None:
        db = f"{self.args.db_name}_src"
        self.psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        self.psql(f'CREATE DATABASE "{db}"')
        ddl = "; ".join(
            f"CREATE TABLE {table} ({columns.format(ts='TIMESTAMP')})"
            for table, (columns, _rows) in erp.TABLES["peoplesoft"].items()
        )
        u, g, r = self.users, self.grants, self.roles
        fill = f"""{ddl};
            INSERT INTO PSROLEDEFN
            SELECT CASE WHEN n = 0 THEN 'PeopleSoft Administrator' ELSE 'ROLE' || lpad(n::text, 5, '0') END,
                   'Role number ' || n, 'A'
            FROM generate_series(0, {r - 1}) n;
            INSERT INTO PSOPRDEFN
            SELECT 'U' || lpad(n::text, 7, '0'), 'User ' || n,
                   CASE WHEN n % 50 = 7 THEN ' ' ELSE 'E' || lpad(n::text, 7, '0') END,
                   'user' || n || '@example.com', (n % 40 = 3)::int,
                   CASE WHEN n % 10 = 0 THEN NULL ELSE timestamp '2026-01-01' + (n % 300) * interval '1 day' END
            FROM generate_series(1, {u}) n;
            -- Grant k of user n: role (7n + 131k) mod roles, distinct for each user (131 is prime to 2,000).
            INSERT INTO PSROLEUSER
            SELECT 'U' || lpad((i % {u} + 1)::text, 7, '0'),
                   CASE WHEN ((i % {u} + 1) * 7 + (i / {u}) * 131) % {r} = 0 THEN 'PeopleSoft Administrator'
                        ELSE 'ROLE' || lpad((((i % {u} + 1) * 7 + (i / {u}) * 131) % {r})::text, 5, '0') END,
                   'N'
            FROM generate_series(0, {g - 1}) i;
            CREATE INDEX ON PSROLEUSER (ROLEUSER);
            ANALYZE"""
        self.timed(f"source: {u:,} users, {r:,} roles, {g:,} grants", self.psql, fill, db=db)

    def soxgov(self) -> None:
        a = self.args
        for db in (a.db_name, f"{a.db_name}_csv"):
            self.psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        self.psql(f'CREATE DATABASE "{a.db_name}"')
        self.timed("soxgov: manage.py migrate", self.manage, "pull", "migrate", "--no-input", "-v", "0")
        code = f"from entitlements.models import Application\nApplication.objects.create(name={APPLICATION!r}, sox_in_scope=True)"
        self.manage("pull", "shell", "-c", code)
        people = self.work / "identities.csv"
        self.psql(
            f"\\copy (SELECT 'E' || lpad(n::text, 7, '0') AS employee_id, 'user' || n || '@example.com' AS email, "
            f"'Person ' || n AS display_name FROM generate_series(1, {self.users}) n) TO '{people}' WITH (FORMAT csv, HEADER)"
        )
        self.timed(
            f"soxgov: import_identities ({self.users:,})",
            self.manage,
            "pull",
            "import_identities",
            str(people),
        )
        self.psql("CHECKPOINT")
        self.timed("soxgov: copy for the CSV path (TEMPLATE)", self.psql,
                   f'CREATE DATABASE "{a.db_name}_csv" TEMPLATE "{a.db_name}"')  # fmt: skip

    def export(self) -> Path:
        path = self.work / "rows.csv"
        with path.open("w", encoding="utf-8") as out:
            self.timed("baseline input: COPY (query) TO STDOUT > rows.csv", self.psql,
                       f"COPY ({self.query}) TO STDOUT WITH (FORMAT csv, HEADER)", db=f"{self.args.db_name}_src",
                       out=out)  # fmt: skip
        return path

    # --- measured steps ------------------------------------------------------------------------------------

    def step(self, name: str, env: str, cmd: list[str], kind: str):
        self.psql("CHECKPOINT")
        step = measure(name, cmd, env=self.env[env], rows=self.grants, kind=kind)
        step.counts = parse_counts(step.stdout)
        self.steps.append(step)
        return step

    def run(self, csv_path: Path) -> None:
        a = self.args
        manage = [sys.executable, str(ROOT / "manage.py")]
        url = f"postgresql+psycopg2://{a.db_user}@{a.db_host}:{a.db_port}/{a.db_name}_src"
        self.step("baseline: import_access rows.csv", "csv",
                  [*manage, "import_access", str(csv_path), "--application", APPLICATION], "baseline")  # fmt: skip
        if self.has_framework() and not a.pull_by_hand:
            config = self.work / "connector.json"
            config.write_text(json.dumps({"url": url, "access_query": self.query}))
            self.manage("pull", "connector_add", "--name", CONNECTOR, "--kind", "sql", "--application", APPLICATION,
                        "--config", str(config))  # fmt: skip
            self.step("pull: connector_pull", "pull", [*manage, "connector_pull", CONNECTOR], "pull")
        else:
            self.step("pull by hand: SqlSource -> CSV -> import", "pull",
                      [sys.executable, __file__, "_pull", url, "--application", APPLICATION], "pull")  # fmt: skip
        self.step("read only: SqlSource -> CSV (no import)", "pull",
                  [sys.executable, __file__, "_read", url], "other")  # fmt: skip

    def cleanup(self) -> None:
        import redis

        client = redis.Redis.from_url(self.args.redis_url)
        client.delete(self.env["pull"]["SOXGOV_CELERY_QUEUE"])
        if self.args.keep:
            print(
                f"kept: databases {self.args.db_name}, {self.args.db_name}_csv, {self.args.db_name}_src; {self.work}"
            )
            return
        for db in (self.args.db_name, f"{self.args.db_name}_csv", f"{self.args.db_name}_src"):
            self.psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        shutil.rmtree(self.work, ignore_errors=True)

    def report(self) -> list[str]:
        baseline = next(s for s in self.steps if s.kind == "baseline")
        pull = next(s for s in self.steps if s.kind == "pull")
        print(f"\n{'step':<46} {'seconds':>9} {'rows/s':>11} {'peak RSS':>9} {'vs CSV':>7}  grants added")
        for s in self.steps:
            added = s.counts.get("grants", {}).get("added", "-")
            print(f"{s.name:<46} {s.seconds:9.2f} {s.rows_per_s:11,.0f} {s.rss_mb:6.0f} MB "
                  f"{s.seconds / baseline.seconds:6.2f}x  {added}")  # fmt: skip
        ratio = pull.seconds / baseline.seconds
        problems = [f"{s.name}: exit {s.exit_code}" for s in self.steps if s.exit_code != 0]
        problems += [f"{s.name}: {s.counts.get('grants', {}).get('added')} grants added, expected {self.grants:,}"
                     for s in (baseline, pull) if s.counts.get("grants", {}).get("added") != self.grants]  # fmt: skip
        goals = [
            f"pull within {GOAL_RATIO}x of the CSV import: {ratio:.2f}x ({'met' if ratio <= GOAL_RATIO else 'MISSED'})",
            f"pull peak RSS under {GOAL_RSS_MB:.0f} MB: {pull.rss_mb:.0f} MB "
            f"({'met' if pull.rss_mb < GOAL_RSS_MB else 'MISSED'})",
        ]
        print("\ngoals:\n  " + "\n  ".join(goals))
        print("counts: " + ("every import added all the grants" if not problems else "; ".join(problems)))
        return problems


# --- the child processes of the by-hand pull -------------------------------------------------------------------


def _read_to_csv(url: str, path: Path) -> int:
    """What a pull reads: SqlSource's rows, streamed into a CSV file in the access file's columns."""
    import csv

    from entitlements.connectors.files import ACCESS_COLUMNS
    from entitlements.connectors.sql import SqlSource

    query = erp.documented_queries()["peoplesoft.access_query"]
    source = SqlSource({"url": url, "access_query": query}, {})
    count = 0
    try:
        with path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.DictWriter(out, fieldnames=[c for c in ACCESS_COLUMNS if c != "application"])
            writer.writeheader()
            for row in source.access():
                writer.writerow(row)
                count += 1
    finally:
        source.close()
    return count


def child(argv: list[str]) -> int:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soxgov.settings")
    django.setup()
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["_pull", "_read"])
    parser.add_argument("url")
    parser.add_argument("--application")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as work:
        path = Path(work) / "pulled.csv"
        rows = _read_to_csv(args.url, path)
        print(f"read {rows} rows")
        if args.what == "_pull":
            from django.core.management import call_command

            call_command("import_access", str(path), application=args.application)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="fraction of the sizes below (0.05: a smoke run)"
    )
    parser.add_argument("--grants", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--roles", type=int, default=2_000)
    parser.add_argument("--db-name", default="soxgov_sqlbench")
    parser.add_argument("--db-host", default=os.environ.get("PGHOST", "127.0.0.1"))
    parser.add_argument("--db-port", type=int, default=int(os.environ.get("PGPORT", "5432")))
    parser.add_argument("--db-user", default=os.environ.get("PGUSER", "postgres"))
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/12",
                        help="broker the imports enqueue their SoD check on (a private queue, emptied after)")  # fmt: skip
    parser.add_argument("--pull-by-hand", action="store_true",
                        help="measure SqlSource + import_access even when connector_pull exists")  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the three databases and the work directory")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)

    bench = SqlBench(args)
    code = code_state()
    print(f"code: commit {code['commit']}, {len(code['uncommitted'])} uncommitted change(s)")
    print(f"pull path: {'connector_pull' if bench.has_framework() and not args.pull_by_hand else 'by hand'}")
    started = time.perf_counter()
    try:
        bench.source()
        bench.soxgov()
        rows_csv = bench.export()
        print("measured steps (each in a fresh child process; peak RSS is that child's own):", flush=True)
        bench.run(rows_csv)
    finally:
        bench.cleanup()
    problems = bench.report()
    print(f"\ntotal bench time {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(
            {"scale": args.scale, "grants": bench.grants, "users": bench.users, "roles": bench.roles,
             "code": {k: v for k, v in code.items() if k != "mtimes"},
             "steps": [{**{k: v for k, v in s.__dict__.items() if k not in ("stdout", "stderr")},
                        "rows_per_s": s.rows_per_s, "rss_mb": s.rss_mb} for s in bench.steps]},
            indent=2, default=str) + "\n")  # fmt: skip
    return 1 if problems else 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("_pull", "_read"):
        sys.exit(child(sys.argv[1:]))
    sys.exit(main())
