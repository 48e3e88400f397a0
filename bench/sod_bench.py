"""SoD engine benchmark: full scan against a hand-written SQL self-join, incremental and batch checks, in one run.

    .venv/bin/python bench/sod_bench.py [--scale 1.0] [--keep] [--explain] [--json PATH]

1. Creates a fresh PostgreSQL database (--db-name, default soxgov_sod_bench), runs ``manage.py migrate`` in a
   child process, then loads a synthetic company directly with ``INSERT ... SELECT generate_series`` (not through
   the import pipeline): 100k identities, 300k accounts over 20 applications (2% orphans), 20k entitlements,
   ~2M grants skewed towards popular entitlements, and 500 rules of 2-4 sides (mostly 2), each side 1-5
   entitlements, a third of the rules spanning applications. Rule members are drawn from entitlements held by
   0.2%-2% of the identities, so the violations number in the thousands to tens of thousands. VACUUM ANALYZE.
2. Measures in this process (Django set up once, so no process start-up is timed; time.perf_counter), with a
   CHECKPOINT before each measured step:
   - full scan: ``detect(Scope.everything())`` against a baseline written by hand as plain SQL (a self-join of
     each rule's sides over the grants of one holder, UNION ALL per side count, SELECT DISTINCT; no GROUP BY /
     HAVING), alternately, --repeat times each; the two violation sets must be identical (or the run fails);
   - ``run_check(Scope.everything())`` from an empty violations table (writes every violation, its history and
     its evidence), and again with nothing changed;
   - incremental: --samples random identities with grants; for each, one grant on a rule entitlement is added
     or deleted in its own committed transaction, then ``run_check`` of that one identity is timed end to end
     (including its commit); p50 / p95 / max;
   - batch: one grant changed for each of --batch random identities (10k at full size), then ``run_check`` of
     those identities.
3. Prints a table beside the goals (issue 4: full scan within 1.5x of the baseline; incremental p95 under 20 ms;
   the 10k batch under 2 s), the server settings that matter and the 1-minute load average with each figure,
   and drops the database unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from import_bench import APP_DIRS, code_changed, code_state  # noqa: E402  (bench/ is not a package)

GOAL_RATIO = 1.5
GOAL_P95_MS = 20.0
GOAL_BATCH_SECONDS = 2.0
DEFAULT_SEED = 20240601

# Full-size company (scaled by --scale).
IDENTITIES = 100_000
ACCOUNTS = 300_000
ENTITLEMENTS = 20_000
APPLICATIONS = 20
GRANTS_PER_ACCOUNT = 7.6  # exponential mean before de-duplication: ~2.0M grants at full size
ORPHAN_RATE = 0.02
RULES = 500
BATCH = 10_000
# Rule members come from entitlements held by this share of the identities (so violations stay realistic).
MEMBER_BAND = (0.002, 0.02)


@dataclass
class Step:
    name: str
    seconds: float
    load: float
    count: str = ""  # what the step found or changed
    kind: str = "measured"  # "baseline", "measured" or "info"
    ratio: float | None = None
    goal: str = ""
    verdict: str = ""
    extra: dict = field(default_factory=dict)


class Bench:
    def __init__(self, args):
        self.args = args
        self.db_url = f"postgres://{args.db_user}@{args.db_host}:{args.db_port}/{args.db_name}"
        self.steps: list[Step] = []
        self.info: dict = {}
        self.rng = random.Random(args.seed)
        self.work = Path(tempfile.mkdtemp(prefix="soxgov-sod-bench-"))
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("REDIS_URL", "DATABASE_URL", "DJANGO_SETTINGS_MODULE")
        }
        self.env.update(
            DATABASE_URL=self.db_url,
            DJANGO_SETTINGS_MODULE="soxgov.settings",
            # Production-like: DEBUG off (no query log); no REDIS_URL, so Celery runs eagerly.
            SOXGOV_DEBUG="0",
            SOXGOV_SECRET_KEY="bench-only-secret-key-not-for-production-0123456789",
            SOXGOV_ALLOWED_HOSTS="localhost",
            SOXGOV_IMPORT_DIR=str(self.work / "imports"),
            SOXGOV_VAR_DIR=str(self.work / "var"),
            SOXGOV_LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
        )
        s = args.scale
        self.n = {
            "identities": max(50, round(IDENTITIES * s)),
            "accounts": max(150, round(ACCOUNTS * s)),
            "entitlements": max(APPLICATIONS * 10, round(ENTITLEMENTS * s) // APPLICATIONS * APPLICATIONS),
            "rules": args.rules,
            "batch": args.batch if args.batch is not None else max(10, round(BATCH * s)),
        }

    # --- helpers ---------------------------------------------------------------------------------------

    def psql(self, sql: str, *, db: str | None = None) -> str:
        a = self.args
        cmd = ["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-h", a.db_host, "-p", str(a.db_port),
               "-U", a.db_user, "-d", db or a.db_name]  # fmt: skip
        result = subprocess.run(cmd, input=sql, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"psql failed:\n{sql[:2000]}\n{result.stderr}")
        return result.stdout.strip()

    def timed(self, what: str, fn):
        started = time.perf_counter()
        result = fn()
        print(f"  {what:<46} {time.perf_counter() - started:9.2f} s  (not measured)", flush=True)
        return result

    def server_settings(self) -> dict[str, str]:
        names = ("server_version", "shared_buffers", "work_mem", "temp_buffers", "maintenance_work_mem",
                 "effective_cache_size", "max_wal_size", "synchronous_commit", "jit",
                 "max_parallel_workers_per_gather", "random_page_cost")  # fmt: skip
        rows = self.psql(
            "SELECT name, current_setting(name) FROM pg_settings WHERE name IN ("
            + ", ".join(f"'{n}'" for n in names)
            + ")",
            db="postgres",
        )
        return dict(line.split("|", 1) for line in rows.splitlines() if "|" in line)

    # --- database and data -----------------------------------------------------------------------------

    def setup_database(self) -> None:
        a = self.args
        self.info["server"] = self.server_settings()
        print("server: " + ", ".join(f"{k}={v}" for k, v in sorted(self.info["server"].items())))
        print(f"database: {a.db_name} (fresh)", flush=True)
        self.psql(f'DROP DATABASE IF EXISTS "{a.db_name}" WITH (FORCE)', db="postgres")
        self.psql(f'CREATE DATABASE "{a.db_name}"', db="postgres")

        def migrate():
            cmd = [sys.executable, str(ROOT / "manage.py"), "migrate", "--no-input", "-v", "0"]
            result = subprocess.run(cmd, env=self.env, cwd=ROOT, capture_output=True, text=True)
            if result.returncode != 0:
                raise SystemExit(f"migrate failed:\n{result.stdout}\n{result.stderr}")

        self.timed("manage.py migrate", migrate)

    def load_company(self) -> None:
        n, seed = self.n, self.args.seed
        # Ids are 1..N in insertion order (fresh database, one ordered INSERT per table); checked below.
        sql = f"""
            SET session_replication_role = replica;  -- bulk load: no FK triggers (consistent by construction)
            SET work_mem = '256MB';
            SELECT setseed({(seed % 1999) / 1000 - 0.999});
            INSERT INTO entitlements_identity (kind, employee_id, email, display_name, department, title, status,
                                               created_at, updated_at)
            SELECT 'human', 'E' || lpad(i::text, 7, '0'), 'e' || i || '@bench.example', 'Last' || i || ', First',
                   'Dept ' || (i % 50), '', 'active', now(), now()
            FROM generate_series(1, {n["identities"]}) i ORDER BY i;
            INSERT INTO entitlements_application (name, description, sox_in_scope, criticality, created_at,
                                                  updated_at)
            SELECT 'SodBenchApp' || lpad(i::text, 2, '0'), '', true, 'high', now(), now()
            FROM generate_series(1, {APPLICATIONS}) i ORDER BY i;
            -- Entitlement j belongs to application (j-1) % apps + 1 and has popularity rank (j-1) / apps there.
            INSERT INTO entitlements_entitlement (entitlement_id, name, kind, description, privileged, sensitive,
                                                  created_at, updated_at, application_id)
            SELECT 'ENT' || lpad(j::text, 6, '0'), 'Entitlement ' || j, 'role', '', false, false, now(), now(),
                   (j - 1) % {APPLICATIONS} + 1
            FROM generate_series(1, {n["entitlements"]}) j ORDER BY j;
            INSERT INTO entitlements_account (account_id, name, status, privileged, first_seen, application_id,
                                              identity_id)
            SELECT 'acct' || lpad(k::text, 7, '0'), '', CASE WHEN random() < 0.05 THEN 'disabled' ELSE 'enabled' END,
                   false, now(), (k - 1) % {APPLICATIONS} + 1,
                   CASE WHEN random() < {ORPHAN_RATE} THEN NULL
                        ELSE 1 + floor(random() * {n["identities"]})::bigint END
            FROM generate_series(1, {n["accounts"]}) k ORDER BY k;
            -- Grants per account: exponential; entitlement rank ~ U^3 (rank 0 takes ~6% of an application's grants).
            INSERT INTO entitlements_grant (first_seen, account_id, entitlement_id)
            SELECT now(), account_id, entitlement_id FROM (
                SELECT DISTINCT a.k AS account_id,
                       floor({n["entitlements"] // APPLICATIONS} * power(random(), 3))::bigint * {APPLICATIONS}
                       + (a.k - 1) % {APPLICATIONS} + 1 AS entitlement_id
                FROM (SELECT k, floor(-ln(1 - random()) * {GRANTS_PER_ACCOUNT})::int AS n
                      FROM generate_series(1, {n["accounts"]}) k) a,
                     generate_series(1, a.n) x
            ) s ORDER BY account_id, entitlement_id;
            SET session_replication_role = origin;
        """
        self.timed("load company (INSERT ... SELECT)", lambda: self.psql(sql))
        counts = self.psql(
            "SELECT (SELECT count(*) || ',' || max(id) FROM entitlements_identity), "
            "(SELECT count(*) || ',' || max(id) FROM entitlements_account), "
            "(SELECT count(*) || ',' || max(id) FROM entitlements_entitlement), "
            "(SELECT count(*) FROM entitlements_grant), "
            "(SELECT count(*) FROM entitlements_account WHERE identity_id IS NULL)"
        ).split("|")
        for name, value in zip(("identities", "accounts", "entitlements"), counts[:3], strict=True):
            count, top = value.split(",")
            if count != top:
                raise SystemExit(f"{name}: ids are not 1..{count} (max {top}); is the database fresh?")
        self.info["company"] = {
            "identities": int(counts[0].split(",")[0]),
            "accounts": int(counts[1].split(",")[0]),
            "orphan_accounts": int(counts[4]),
            "entitlements": int(counts[2].split(",")[0]),
            "applications": APPLICATIONS,
            "grants": int(counts[3]),
        }

    def load_rules(self) -> None:
        """500 rules: 70% two sides, 20% three, 10% four; each side 1-5 entitlements (mostly 1-3); two thirds
        of the rules within one application (so orphan accounts can hit them too), a third across two or three."""
        n_identities = self.info["company"]["identities"]
        rows = self.psql("SELECT entitlement_id, count(*) FROM entitlements_grant GROUP BY entitlement_id")
        lo, hi = MEMBER_BAND
        band: dict[int, list[int]] = {}
        for line in rows.splitlines():
            ent, count = map(int, line.split("|"))
            if lo <= count / n_identities <= hi:
                band.setdefault((ent - 1) % APPLICATIONS + 1, []).append(ent)
        apps = sorted(a for a, ents in band.items() if len(ents) >= 20)
        if not apps:
            raise SystemExit("no entitlements in the member popularity band; scale too small?")
        rng = self.rng
        rules, sides, members = [], [], []
        side_id = 0
        for r in range(1, self.n["rules"] + 1):
            side_count = rng.choices((2, 3, 4), weights=(70, 20, 10))[0]
            rule_apps = [rng.choice(apps)] if rng.random() < 2 / 3 else rng.sample(apps, rng.choice((2, 3)))
            risk = rng.choice(("critical", "high", "high", "medium", "low"))
            rules.append(
                f"({r}, 'BENCH-{r:04d}', 'Bench rule {r}', '', '{risk}', 'Bench', true, {side_count}, now(), now())"
            )
            taken: set[int] = set()
            for position in range(side_count):
                side_id += 1
                sides.append(f"({side_id}, 'Side {position + 1}', {position}, {r})")
                size = rng.choices((1, 2, 3, 4, 5), weights=(25, 30, 25, 12, 8))[0]
                for _ in range(size):
                    ent = rng.choice(band[rng.choice(rule_apps)])
                    if ent not in taken:
                        taken.add(ent)
                        members.append(f"({ent}, {r}, {side_id})")
        sql = f"""
            INSERT INTO sod_rule (id, code, name, description, risk, process, enabled, side_count, created_at,
                                  updated_at) OVERRIDING SYSTEM VALUE VALUES {", ".join(rules)};
            INSERT INTO sod_ruleside (id, name, position, rule_id) OVERRIDING SYSTEM VALUE VALUES {", ".join(sides)};
            INSERT INTO sod_rulemember (entitlement_id, rule_id, side_id) VALUES {", ".join(members)};
            SELECT setval(pg_get_serial_sequence('sod_rule', 'id'), {len(rules)});
            SELECT setval(pg_get_serial_sequence('sod_ruleside', 'id'), {len(sides)});
        """
        self.timed("load rules", lambda: self.psql(sql))
        self.info["rules"] = {
            "rules": len(rules),
            "sides": len(sides),
            "members": len(members),
            "distinct_member_entitlements": len({m.split(",")[0] for m in members}),
            "member_band": f"entitlements held by {lo:.1%}-{hi:.1%} of identities",
            "side_counts": {k: sum(1 for x in rules if x.split(", ")[7] == str(k)) for k in (2, 3, 4)},
        }

    def vacuum(self) -> None:
        self.timed("VACUUM ANALYZE", lambda: self.psql("VACUUM ANALYZE"))

    # --- in-process measurements -----------------------------------------------------------------------

    def setup_django(self) -> None:
        os.environ.update(self.env)
        for k in ("REDIS_URL",):
            os.environ.pop(k, None)
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()

    def sql(self, statement: str, params=None, *, fetch: bool = False):
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if fetch else None

    def checkpoint(self) -> None:
        self.sql("CHECKPOINT")

    def step(self, name: str, fn, **kw) -> tuple[Step, object]:
        self.checkpoint()
        load = os.getloadavg()[0]
        started = time.perf_counter()
        result = fn()
        step = Step(name, time.perf_counter() - started, load, **kw)
        print(f"  {name:<46} {step.seconds:9.3f} s  load {load:4.1f}  {step.count}", flush=True)
        self.steps.append(step)
        return step, result

    def baseline_sql(self) -> str:
        max_sides = self.sql("SELECT coalesce(max(side_count), 0) FROM sod_rule WHERE enabled", fetch=True)
        return baseline_sql(max_sides[0][0])

    def baseline(self, sql: str) -> set:
        rows = self.sql(sql, fetch=True)
        return {(rule, None, holder) if orphan else (rule, holder, None) for rule, orphan, holder in rows}

    def full_scan(self) -> None:
        from sod.engine import Scope, detect

        sql = self.baseline_sql()
        self.info["baseline_sql"] = sql
        engine_runs, baseline_runs = [], []
        engine_set = baseline_set = None
        for i in range(self.args.repeat):
            order = ("engine", "baseline") if i % 2 == 0 else ("baseline", "engine")
            for which in order:
                if which == "engine":
                    s, engine_set = self.step(f"engine detect(everything) #{i + 1}", lambda: detect(Scope.everything()),
                                              kind="info")  # fmt: skip
                    engine_runs.append(s)
                else:
                    s, baseline_set = self.step(f"baseline self-join SQL #{i + 1}", lambda: self.baseline(sql),
                                                kind="info")  # fmt: skip
                    baseline_runs.append(s)
        identical = engine_set == baseline_set
        self.info["violations"] = {
            "engine": len(engine_set),
            "baseline": len(baseline_set),
            "identities": sum(1 for k in engine_set if k[1] is not None),
            "orphan_accounts": sum(1 for k in engine_set if k[2] is not None),
            "rules_hit": len({k[0] for k in engine_set}),
            "identical": identical,
        }
        print(
            f"  violations: engine {len(engine_set):,}, baseline {len(baseline_set):,} "
            f"({self.info['violations']['identities']:,} identity, {self.info['violations']['orphan_accounts']:,} "
            f"orphan account; {self.info['violations']['rules_hit']} rules hit); identical: "
            + ("yes" if identical else "NO"),
            flush=True,
        )
        if not identical:
            only_engine = sorted(engine_set - baseline_set)[:10]
            only_baseline = sorted(baseline_set - engine_set, key=str)[:10]
            raise SystemExit(
                f"FAILED: the engine and the baseline disagree: {len(engine_set - baseline_set)} only in the "
                f"engine (e.g. {only_engine}), {len(baseline_set - engine_set)} only in the baseline "
                f"(e.g. {only_baseline})"
            )
        count = f"{len(engine_set):,} violations"
        self.steps.append(_median_step("baseline: self-join SQL (median)", baseline_runs, count, "baseline"))
        self.steps.append(_median_step("engine: detect(everything) (median)", engine_runs, count, "measured"))
        if self.args.explain:
            self.explain(sql)

    def explain(self, baseline_sql: str) -> None:
        from django.db import connection

        from sod.engine import Scope, detect

        statements = []

        def capture(execute, sql, params, many, context):
            statements.append((sql, params))
            return execute(sql, params, many, context)

        with connection.execute_wrapper(capture):
            detect(Scope.everything())
        for label, (sql, params) in [(f"engine statement {i + 1}", s) for i, s in enumerate(statements)] + [
            ("baseline", (baseline_sql, None))
        ]:
            rows = self.sql("EXPLAIN (ANALYZE, BUFFERS) " + sql, params, fetch=True)
            print(f"\n  EXPLAIN ANALYZE {label}:\n" + "\n".join("    " + r[0] for r in rows), flush=True)

    def full_checks(self) -> None:
        from evidence.services import Actor
        from sod.checks import run_check
        from sod.engine import Scope
        from sod.models import Check, Violation

        actor = Actor.system("sod_bench")
        if Violation.objects.exists():
            raise SystemExit("expected an empty violations table")
        for name in ("run_check(everything), empty violations", "run_check(everything), no change"):
            step, check = self.step(
                name, lambda: run_check(Scope.everything(), trigger=Check.Trigger.MANUAL, actor=actor)
            )
            step.count = (
                f"{check.opened:,} opened, {check.resolved:,} resolved, {check.unchanged:,} unchanged"
            )
            print(f"    {step.count}")

    def rule_entitlements(self) -> None:
        self.sql("DROP TABLE IF EXISTS bench_rule_ent")
        self.sql(
            "CREATE UNLOGGED TABLE bench_rule_ent AS "
            "SELECT DISTINCT m.entitlement_id AS id, e.application_id FROM sod_rulemember m "
            "JOIN entitlements_entitlement e ON e.id = m.entitlement_id"
        )
        self.sql("CREATE INDEX ON bench_rule_ent (application_id, id)")
        self.sql("ANALYZE bench_rule_ent")

    def change_one(self, identity_id: int, add: bool) -> str:
        """Add or delete one grant on a rule entitlement for this identity; autocommit (its own transaction)."""
        delete = """
            DELETE FROM entitlements_grant WHERE id = (
                SELECT g.id FROM entitlements_account a JOIN entitlements_grant g ON g.account_id = a.id
                JOIN bench_rule_ent r ON r.id = g.entitlement_id
                WHERE a.identity_id = %s ORDER BY random() LIMIT 1)
            RETURNING id
        """
        insert = """
            INSERT INTO entitlements_grant (first_seen, account_id, entitlement_id)
            SELECT now(), a.id, r.id FROM entitlements_account a
            JOIN bench_rule_ent r ON r.application_id = a.application_id
            WHERE a.identity_id = %s
              AND NOT EXISTS (SELECT 1 FROM entitlements_grant g WHERE g.account_id = a.id AND g.entitlement_id = r.id)
            ORDER BY random() LIMIT 1
            RETURNING id
        """
        for kind, statement in (
            (("added", insert), ("deleted", delete)) if add else (("deleted", delete), ("added", insert))
        ):
            if self.sql(statement, [identity_id], fetch=True):
                return kind
        return "unchanged"

    def identities_with_grants(self) -> list[int]:
        rows = self.sql(
            "SELECT DISTINCT a.identity_id FROM entitlements_account a "
            "WHERE a.identity_id IS NOT NULL AND EXISTS "
            "(SELECT 1 FROM entitlements_grant g WHERE g.account_id = a.id) ORDER BY 1",
            fetch=True,
        )
        return [r[0] for r in rows]

    def incremental(self, candidates: list[int]) -> None:
        from django.db import connection

        from evidence.services import Actor
        from sod.checks import run_check
        from sod.engine import Scope
        from sod.models import Check

        actor = Actor.system("bench")
        warmup, samples = self.args.warmup, self.args.samples
        chosen = self.rng.sample(candidates, warmup + samples)
        times, changes = [], {"added": 0, "deleted": 0, "unchanged": 0}
        opened = resolved = 0
        self.checkpoint()
        load = os.getloadavg()[0]
        assert connection.get_autocommit()
        for i, identity_id in enumerate(chosen):
            kind = self.change_one(identity_id, add=i % 2 == 0)
            started = time.perf_counter()
            check = run_check(
                Scope(identity_ids=[identity_id], account_ids=()), trigger=Check.Trigger.IMPORT, actor=actor
            )
            elapsed = time.perf_counter() - started
            if i >= warmup:
                times.append(elapsed)
                changes[kind] += 1
                opened += check.opened
                resolved += check.resolved
        load_after = os.getloadavg()[0]
        times_ms = sorted(t * 1000 for t in times)
        p50 = statistics.median(times_ms)
        p95 = _percentile(times_ms, 95)
        self.info["incremental"] = {
            "samples": samples,
            "warmup_excluded": warmup,
            "changes": changes,
            "opened": opened,
            "resolved": resolved,
            "ms": {"p50": p50, "p95": p95, "max": times_ms[-1], "mean": statistics.fmean(times_ms),
                   "min": times_ms[0]},
            "load_after": load_after,
        }  # fmt: skip
        count = (
            f"{samples} identities ({changes['added']} grants added, {changes['deleted']} deleted); "
            f"{opened} opened, {resolved} resolved"
        )
        load = max(load, load_after)
        for label, value in (("p50", p50), ("p95", p95), ("max", times_ms[-1])):
            self.steps.append(Step(f"incremental run_check, 1 identity: {label}", value / 1000, load, count))
        print(
            f"  incremental run_check of 1 identity x {samples} (+{warmup} warm-up): p50 {p50:.1f} ms, "
            f"p95 {p95:.1f} ms, max {times_ms[-1]:.1f} ms  load {load:4.1f}  {count}",
            flush=True,
        )

    def batch(self, candidates: list[int]) -> None:
        from evidence.services import Actor
        from sod.checks import run_check
        from sod.engine import Scope
        from sod.models import Check

        size = min(self.n["batch"], len(candidates))
        ids = sorted(self.rng.sample(candidates, size))
        adds, deletes = ids[0::2], ids[1::2]

        def change():
            from django.db import transaction

            with transaction.atomic():
                deleted = self.sql(
                    """
                    DELETE FROM entitlements_grant WHERE id IN (
                        SELECT DISTINCT ON (a.identity_id) g.id
                        FROM entitlements_account a JOIN entitlements_grant g ON g.account_id = a.id
                        JOIN bench_rule_ent r ON r.id = g.entitlement_id
                        WHERE a.identity_id = ANY(%s) ORDER BY a.identity_id, random())
                    RETURNING id
                    """,
                    [deletes],
                    fetch=True,
                )
                added = self.sql(
                    """
                    INSERT INTO entitlements_grant (first_seen, account_id, entitlement_id)
                    SELECT DISTINCT ON (a.identity_id) now(), a.id, r.id
                    FROM entitlements_account a JOIN bench_rule_ent r ON r.application_id = a.application_id
                    WHERE a.identity_id = ANY(%s) AND NOT EXISTS (
                        SELECT 1 FROM entitlements_grant g WHERE g.account_id = a.id AND g.entitlement_id = r.id)
                    ORDER BY a.identity_id, random()
                    RETURNING id
                    """,
                    [adds],
                    fetch=True,
                )
            return len(added), len(deleted)

        added, deleted = self.timed(f"change grants of {size:,} identities", change)
        actor = Actor.system("bench")
        step, check = self.step(
            f"batch run_check, {size:,} identities",
            lambda: run_check(
                Scope(identity_ids=ids, account_ids=()), trigger=Check.Trigger.IMPORT, actor=actor
            ),
        )
        step.count = (
            f"{added:,} grants added, {deleted:,} deleted; {check.opened:,} opened, {check.resolved:,} resolved, "
            f"{check.unchanged:,} unchanged"
        )
        step.extra = {"identities": size, "grants_added": added, "grants_deleted": deleted,
                      "opened": check.opened, "resolved": check.resolved, "unchanged": check.unchanged}  # fmt: skip
        print(f"    {step.count}")

    def sizes(self) -> dict[str, str]:
        rows = self.sql(
            "SELECT c.relname, pg_size_pretty(pg_total_relation_size(c.oid)) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind = 'r' "
            "ORDER BY pg_total_relation_size(c.oid) DESC LIMIT 6",
            fetch=True,
        )
        return dict(rows)

    def cleanup(self) -> None:
        import shutil

        try:
            from django.db import connections

            connections.close_all()
        except Exception:
            pass
        shutil.rmtree(self.work, ignore_errors=True)
        if self.args.keep:
            print(f"kept: database {self.args.db_name}")
            return
        self.psql(f'DROP DATABASE IF EXISTS "{self.args.db_name}" WITH (FORCE)', db="postgres")
        print(f"dropped database {self.args.db_name}")


def baseline_sql(max_sides: int) -> str:
    """The hand-written reference, plain SQL without GROUP BY / HAVING: for each side count k, the holders of
    side 1 of a k-sided rule joined with the holders of side 2 ... side k of the same rule on the same holder
    (an identity through any of its accounts, or an orphan account on its own), SELECT DISTINCT; UNION ALL over
    k. Each side's holders are one DISTINCT derived table (rule, holder) of grants on that side's entitlements.
    Sides are told apart by position (0..k-1 within a rule, as ``sod.rules`` writes them and as the bench
    loads them); were they not, the two violation sets would differ and the run would fail."""

    def held(k: int, i: int) -> str:
        return f"""(
                SELECT DISTINCT m.rule_id, a.identity_id IS NULL AS orphan, coalesce(a.identity_id, a.id) AS holder
                FROM sod_rule r
                JOIN sod_ruleside s ON s.rule_id = r.id
                JOIN sod_rulemember m ON m.side_id = s.id
                JOIN entitlements_grant g ON g.entitlement_id = m.entitlement_id
                JOIN entitlements_account a ON a.id = g.account_id
                WHERE r.enabled AND r.side_count = {k} AND s.position = {i - 1}
            ) h{i}"""

    branches = []
    for k in range(1, max_sides + 1):
        joins = "".join(
            f"""
            JOIN {held(k, i)} ON h{i}.rule_id = h1.rule_id AND h{i}.orphan = h1.orphan AND h{i}.holder = h1.holder"""
            for i in range(2, k + 1)
        )
        branches.append(
            f"SELECT DISTINCT h1.rule_id, h1.orphan, h1.holder\n            FROM {held(k, 1)}{joins}"
        )
    return "\n            UNION ALL\n            ".join(branches)


def _percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    rank = max(1, -(-len(sorted_values) * pct // 100))
    return sorted_values[int(rank) - 1]


def _median_step(name: str, runs: list[Step], count: str, kind: str) -> Step:
    seconds = statistics.median(s.seconds for s in runs)
    step = Step(name, seconds, max(s.load for s in runs), count, kind)
    step.extra["runs"] = [round(s.seconds, 4) for s in runs]
    return step


def judge(steps: list[Step]) -> list[str]:
    base = next((s for s in steps if s.kind == "baseline"), None)
    lines = []
    for s in steps:
        if s.name.startswith("engine: detect") and base:
            s.ratio = s.seconds / base.seconds
            ok = s.ratio <= GOAL_RATIO
            s.goal = f"{s.ratio:.2f}x baseline <= {GOAL_RATIO}x"
        elif s.name.endswith(": p95"):
            ok = s.seconds * 1000 < GOAL_P95_MS
            s.goal = f"p95 {s.seconds * 1000:.1f} ms < {GOAL_P95_MS:.0f} ms"
        elif s.name.startswith("batch run_check"):
            ok = s.seconds < GOAL_BATCH_SECONDS
            s.goal = f"{s.seconds:.2f} s < {GOAL_BATCH_SECONDS:.0f} s"
        else:
            continue
        s.verdict = "met" if ok else "MISSED"
        lines.append(f"{s.name:<48} {s.verdict:<7} {s.goal}")
    return lines


def table(steps: list[Step]) -> str:
    head = f"| {'step':<48} | {'wall s':>8} | {'x base':>6} | {'load':>4} | {'result':<60} | goal |"
    sep = f"|{'-' * 50}|{'-' * 10}|{'-' * 8}|{'-' * 6}|{'-' * 62}|------|"
    out = [head, sep]
    for s in steps:
        if s.kind == "info":
            continue
        ratio = f"{s.ratio:.2f}" if s.ratio is not None else ("1.00" if s.kind == "baseline" else "")
        wall = f"{s.seconds:.4f}" if s.seconds < 1 else f"{s.seconds:.2f}"
        goal = f"{s.verdict}: {s.goal}" if s.verdict else ""
        out.append(f"| {s.name:<48} | {wall:>8} | {ratio:>6} | {s.load:>4.1f} | {s.count:<60} | {goal} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="size multiplier (0.05 = smoke check)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--rules", type=int, default=RULES)
    parser.add_argument(
        "--repeat", type=int, default=3, help="full-scan runs of the engine and of the baseline"
    )
    parser.add_argument("--samples", type=int, default=200, help="incremental checks measured")
    parser.add_argument("--warmup", type=int, default=5, help="incremental checks run first and not counted")
    parser.add_argument("--batch", type=int, help="identities in the batch (default 10,000 x scale)")
    parser.add_argument(
        "--explain", action="store_true", help="print EXPLAIN ANALYZE of the full-scan statements"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument(
        "--load-only", action="store_true", help="create and load the database, keep it, stop"
    )
    parser.add_argument("--db-name", default="soxgov_sod_bench")
    parser.add_argument("--db-host", default=os.environ.get("PGHOST", "127.0.0.1"))
    parser.add_argument("--db-port", type=int, default=int(os.environ.get("PGPORT", "5432")))
    parser.add_argument("--db-user", default=os.environ.get("PGUSER", "postgres"))
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"soxgov_sod_bench[a-z0-9_]*", args.db_name):
        parser.error("--db-name must be a plain lower-case identifier starting with soxgov_sod_bench")

    bench = Bench(args)
    started = time.perf_counter()
    code_before = code_state()
    print(
        f"code: commit {code_before['commit']}, {len(code_before['uncommitted'])} uncommitted change(s) in "
        f"{', '.join(APP_DIRS)}" + "".join(f"\n  {line}" for line in code_before["uncommitted"])
    )
    try:
        bench.setup_database()
        bench.load_company()
        bench.load_rules()
        bench.vacuum()
        c, r = bench.info["company"], bench.info["rules"]
        print(
            f"company: {c['identities']:,} identities, {c['accounts']:,} accounts ({c['orphan_accounts']:,} orphans), "
            f"{c['entitlements']:,} entitlements, {c['grants']:,} grants over {c['applications']} applications; "
            f"{r['rules']} rules ({r['side_counts']} by side count), {r['sides']:,} sides, {r['members']:,} members "
            f"on {r['distinct_member_entitlements']:,} entitlements ({r['member_band']})",
            flush=True,
        )
        if args.load_only:
            args.keep = True
            return 0
        bench.setup_django()
        print(
            "measured steps (in-process, CHECKPOINT before each; load = 1-minute load average):", flush=True
        )
        bench.full_scan()
        bench.full_checks()
        bench.rule_entitlements()
        candidates = bench.identities_with_grants()
        bench.incremental(candidates)
        bench.batch(candidates)
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
    print(f"\nresults (scale {args.scale:g}, {args.repeat} full-scan runs each, median shown):")
    print(table(steps))
    full_runs = [s for s in steps if s.kind == "info"]
    print("full-scan runs: " + ", ".join(f"{s.name.rsplit(' ', 1)[0]} {s.seconds:.2f} s (load {s.load:.1f})"
                                         for s in full_runs))  # fmt: skip
    print(f"violation sets identical: {'yes' if bench.info['violations']['identical'] else 'NO'}")
    print("\ngoals:")
    for line in goals:
        print(f"  {line}")
    print("server: " + ", ".join(f"{k}={v}" for k, v in sorted(bench.info["server"].items())))
    print("largest tables after the run: " + ", ".join(f"{k} {v}" for k, v in db_sizes.items()))
    print(f"\ntotal bench time {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"scale": args.scale, "seed": args.seed, "info": bench.info, "db_sizes": db_sizes,
                 "code": {k: v for k, v in code_before.items() if k != "mtimes"},
                 "code_changed_during_run": changed,
                 "steps": [s.__dict__ for s in steps]},
                indent=2, default=str,
            )
            + "\n"
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
