"""Review-campaign benchmark: launch of a 1M-item campaign against an INSERT ... SELECT baseline, the reviewer's
queue at any depth, and a bulk decision on 10k items, in one run.

    .venv/bin/python bench/campaign_bench.py [--scale 1.0] [--keep] [--explain] [--json PATH]

1. Creates a fresh PostgreSQL database (--db-name, default soxgov_campaign_bench), runs ``manage.py migrate`` in a
   child process, then loads a synthetic company directly with ``INSERT ... SELECT generate_series`` (the loader
   of bench/sod_bench.py, reshaped for reviews): 100k identities under 2,000 managers (identity 1, "the big
   manager", manages every fifth person and owns the non-human identities, so ~20% of the campaign routes to
   one reviewer), 300k accounts over 5 SOX in-scope applications (2% orphans), 2,000 entitlements, ~1M grants;
   3% of the people terminated, a fifth of the accounts unused for over 90 days, 4% privileged entitlements,
   live SoD violations on ~2.7% of the people. 2,000 reviewer users linked to the manager identities, a
   fallback reviewer and an admin (the "admin" group) who creates the campaign. VACUUM ANALYZE.
2. Measures in this process (Django set up once; time.perf_counter; CHECKPOINT before each timed step):
   - baseline: a hand-written ``INSERT INTO bench_item_baseline (LIKE reviews_reviewitem INCLUDING ALL) SELECT``
     straight from grants/accounts/entitlements/applications/identities, reviewer = the manager's user else the
     fallback, constant flags; then (not gated) the same into a copy that also has the six foreign keys;
   - ``reviews.services.campaign_launch`` of a manager-routed campaign over every SOX application, end to end
     (items, evidence event, commit, and the eager Celery ``notify_launched``, timed separately);
   - the reviewer queue ``GET /reviews/?campaign=<id>&status=pending`` through django.test.Client as the big
     manager (force_login) at the first page, a deep page (row 25% of their items: page 1,030 at full size) and
     the last page, with a keyset cursor built exactly as soxgov/pagination.py does (checked against the pager's
     own next link), full page and htmx fragment (HX-Request), p50/p95 over --requests requests after warm-ups;
   - ``reviews.services.decide`` certifying 10k of that reviewer's pending items with a comment.
3. Prints a table beside the goals (issue 5: launch within 2x of the baseline; queue p95 under 100 ms at any
   depth; 10k decisions under 5 s; issue 24: the launch with its recommendations within 1.3x of the same launch
   without them, which is the launch less what recommending adds to its INSERT ... SELECT; that is measured in the
   same run by inserting into an empty copy of the table with and without the recommendation), where the time goes (statement timings, queries per request), the load with
   each figure, and drops the database unless --keep.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from import_bench import APP_DIRS, code_changed, code_state  # noqa: E402  (bench/ is not a package)

GOAL_LAUNCH_RATIO = 2.0
GOAL_RECOMMEND_RATIO = 1.3  # issue 24: recommendations computed at launch cost at most 30%
GOAL_QUEUE_P95_MS = 100.0
GOAL_DECIDE_SECONDS = 5.0
DEFAULT_SEED = 20240605

# Full-size company (scaled by --scale).
IDENTITIES = 100_000
MANAGERS = 2_000
ACCOUNTS = 300_000
ENTITLEMENTS = 2_000
APPLICATIONS = 5
GRANTS_PER_ACCOUNT = 3.75  # exponential mean before de-duplication: ~1.0M grants at full size
ORPHAN_RATE = 0.02
TERMINATED_RATE = 0.03
DECIDE = 10_000
SOD_RULES = 10


@dataclass
class Step:
    name: str
    seconds: float
    load: float
    count: str = ""
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
        self.work = Path(tempfile.mkdtemp(prefix="soxgov-campaign-bench-"))
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("REDIS_URL", "DATABASE_URL", "DJANGO_SETTINGS_MODULE")
        }
        self.env.update(
            DATABASE_URL=self.db_url,
            DJANGO_SETTINGS_MODULE="soxgov.settings",
            # Production-like: DEBUG off (no query log, cached templates); no REDIS_URL, so Celery runs eagerly.
            SOXGOV_DEBUG="0",
            SOXGOV_SECRET_KEY="bench-only-secret-key-not-for-production-0123456789",
            SOXGOV_ALLOWED_HOSTS="localhost,testserver",
            SOXGOV_IMPORT_DIR=str(self.work / "imports"),
            SOXGOV_VAR_DIR=str(self.work / "var"),
            SOXGOV_LOG_LEVEL="WARNING",
            # Launch notifications are e-mailed too: keep them in memory instead of printing 2,000 mails.
            SOXGOV_EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
            PYTHONUNBUFFERED="1",
        )
        s = args.scale
        self.n = {
            "identities": max(500, round(IDENTITIES * s)),
            "managers": max(20, round(MANAGERS * s)),
            "accounts": max(1500, round(ACCOUNTS * s)),
            "entitlements": max(APPLICATIONS * 20, round(ENTITLEMENTS * s) // APPLICATIONS * APPLICATIONS),
            "decide": args.decide if args.decide is not None else max(50, round(DECIDE * s)),
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
        print(f"  {what:<52} {time.perf_counter() - started:9.2f} s  (not measured)", flush=True)
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

        def manage(*command: str):
            cmd = [sys.executable, str(ROOT / "manage.py"), *command, "--no-input", "-v", "0"]
            result = subprocess.run(cmd, env=self.env, cwd=ROOT, capture_output=True, text=True)
            if result.returncode != 0:
                raise SystemExit(f"{command[0]} failed:\n{result.stdout}\n{result.stderr}")

        self.timed("manage.py migrate", lambda: manage("migrate"))
        # DEBUG off serves hashed static names from the manifest, as in production: collect them first.
        self.timed("manage.py collectstatic (into the temporary var dir)", lambda: manage("collectstatic"))

    def load_company(self) -> None:
        n, seed = self.n, self.args.seed
        ids, mgrs, ents = n["identities"], n["managers"], n["entitlements"]
        per_app = ents // APPLICATIONS
        # Ids are 1..N in insertion order (fresh database, one ordered INSERT per table); checked below.
        # Identity 1 is "the big manager": the manager of every fifth person and the owner of every non-human
        # identity; managers 2..M report to it; everyone else to one of managers 2..M.
        manager_of = f"CASE WHEN i % 5 = 0 THEN 1 ELSE 2 + (i % {mgrs - 1}) END"
        sql = f"""
            SET session_replication_role = replica;  -- bulk load: no FK triggers (consistent by construction)
            SET work_mem = '256MB';
            SELECT setseed({(seed % 1999) / 1000 - 0.999});
            INSERT INTO entitlements_identity (kind, employee_id, email, display_name, department, title, status,
                                               termination_date, manager_id, owner_id, created_at, updated_at)
            SELECT CASE WHEN nh THEN 'service' ELSE 'human' END, 'E' || lpad(i::text, 7, '0'),
                   'e' || i || '@bench.example',
                   CASE WHEN nh THEN 'svc-' || i ELSE 'Last' || lpad((i * 7919 % {ids})::text, 6, '0') || ', First' || i END,
                   'Dept ' || (i % 50), CASE WHEN nh THEN '' ELSE 'Title' END,
                   CASE WHEN term THEN 'terminated' ELSE 'active' END,
                   CASE WHEN term THEN current_date - 30 END,
                   CASE WHEN nh OR i = 1 THEN NULL WHEN i <= {mgrs} THEN 1 ELSE {manager_of} END,
                   CASE WHEN nh THEN 1 END,
                   now(), now()
            FROM (SELECT i, i > {mgrs} AND i % 20 = 0 AS nh,
                         i > {mgrs} AND i % 20 <> 0 AND random() < {TERMINATED_RATE} AS term
                  FROM generate_series(1, {ids}) i) s
            ORDER BY i;
            -- The fallback reviewer's own identity (id N + 1, no accounts): a reviewer without one is refused.
            INSERT INTO entitlements_identity (kind, employee_id, email, display_name, department, title, status,
                                               created_at, updated_at)
            VALUES ('human', 'FALLBACK', 'fallback@bench.example', 'Fallback Reviewer', '', '', 'active', now(),
                    now());
            INSERT INTO entitlements_application (name, description, sox_in_scope, criticality, owner_id,
                                                  created_at, updated_at)
            SELECT 'CampBenchApp' || i, '', true, 'high', 1 + i, now(), now()
            FROM generate_series(1, {APPLICATIONS}) i ORDER BY i;
            -- Entitlement j belongs to application (j-1) % apps + 1 and has popularity rank (j-1) / apps there.
            INSERT INTO entitlements_entitlement (entitlement_id, name, kind, description, privileged, sensitive,
                                                  owner_id, created_at, updated_at, application_id)
            SELECT 'ENT' || lpad(j::text, 6, '0'), 'Entitlement ' || j, 'role', '', random() < 0.04,
                   random() < 0.02, NULL, now(), now(), (j - 1) % {APPLICATIONS} + 1
            FROM generate_series(1, {ents}) j ORDER BY j;
            INSERT INTO entitlements_account (account_id, name, status, privileged, last_used_at, first_seen,
                                              application_id, identity_id)
            SELECT 'acct' || lpad(k::text, 7, '0'), '', CASE WHEN random() < 0.05 THEN 'disabled' ELSE 'enabled' END,
                   random() < 0.02,
                   CASE WHEN random() < 0.1 THEN NULL ELSE now() - random() * interval '180 days' END,
                   now() - interval '400 days', (k - 1) % {APPLICATIONS} + 1,
                   CASE WHEN random() < {ORPHAN_RATE} THEN NULL ELSE 1 + floor(random() * {ids})::bigint END
            FROM generate_series(1, {n["accounts"]}) k ORDER BY k;
            -- Grants per account: exponential; entitlement rank ~ U^2 within the account's application.
            INSERT INTO entitlements_grant (first_seen, account_id, entitlement_id)
            SELECT now() - interval '200 days', account_id, entitlement_id FROM (
                SELECT DISTINCT a.k AS account_id,
                       floor({per_app} * power(random(), 2))::bigint * {APPLICATIONS}
                       + (a.k - 1) % {APPLICATIONS} + 1 AS entitlement_id
                FROM (SELECT k, 1 + floor(-ln(1 - random()) * {GRANTS_PER_ACCOUNT - 1})::int AS n
                      FROM generate_series(1, {n["accounts"]}) k) a,
                     generate_series(1, a.n) x
            ) s ORDER BY account_id, entitlement_id;
            -- SoD: {SOD_RULES} two-sided rules over popular entitlements of application 1, live violations on ~2.7% of
            -- the people and on some orphan accounts (flag sources for the launch; not a consistent SoD state).
            INSERT INTO sod_rule (id, code, name, description, risk, process, enabled, side_count, created_at,
                                  updated_at) OVERRIDING SYSTEM VALUE
            SELECT r, 'CB-' || r, 'Bench rule ' || r, '', 'high', 'Bench', true, 2, now(), now()
            FROM generate_series(1, {SOD_RULES}) r;
            INSERT INTO sod_ruleside (id, name, position, rule_id) OVERRIDING SYSTEM VALUE
            SELECT 2 * r + s - 1, 'Side ' || (s + 1), s, r FROM generate_series(1, {SOD_RULES}) r, generate_series(0, 1) s;
            INSERT INTO sod_rulemember (entitlement_id, rule_id, side_id)
            SELECT (2 * r + s) * {APPLICATIONS} + 1, r, 2 * r + s - 1
            FROM generate_series(1, {SOD_RULES}) r, generate_series(0, 1) s;
            INSERT INTO sod_violation (holder, status, opened_at, status_changed_at, resolution, identity_id, rule_id)
            SELECT 'identity ' || i, 'open', now(), now(), '', i, 1 + i % {SOD_RULES}
            FROM generate_series(1, {ids}) i WHERE i % 37 = 0;
            INSERT INTO sod_violation (holder, status, opened_at, status_changed_at, resolution, account_id, rule_id)
            SELECT 'account ' || id, 'open', now(), now(), '', id, 1 + id % {SOD_RULES}
            FROM entitlements_account WHERE identity_id IS NULL AND id % 11 = 0;
            SELECT setval(pg_get_serial_sequence('sod_rule', 'id'), {SOD_RULES});
            SELECT setval(pg_get_serial_sequence('sod_ruleside', 'id'), {2 * SOD_RULES});
            -- Users: one reviewer per manager identity (1..M), a fallback reviewer, an admin who creates campaigns.
            INSERT INTO soxgov_user (password, is_superuser, username, first_name, last_name, email, is_staff,
                                     is_active, date_joined, identity_id)
            SELECT '!', false, 'mgr' || j, 'Manager', 'No ' || j, 'e' || j || '@bench.example', false, true, now(), j
            FROM generate_series(1, {mgrs}) j ORDER BY j;
            INSERT INTO soxgov_user (password, is_superuser, username, first_name, last_name, email, is_staff,
                                     is_active, date_joined, identity_id)
            VALUES ('!', false, 'bench-fallback', 'Fallback', 'Reviewer', 'fallback@bench.example', false, true,
                    now(), {ids + 1}),
                   ('!', false, 'bench-admin', 'Bench', 'Admin', 'admin@bench.example', false, true, now(), NULL);
            INSERT INTO soxgov_user_groups (user_id, group_id)
            SELECT u.id, g.id FROM soxgov_user u JOIN auth_group g
              ON g.name = CASE WHEN u.username = 'bench-admin' THEN 'admin' ELSE 'reviewer' END;
            SET session_replication_role = origin;
        """
        self.timed("load company (INSERT ... SELECT)", lambda: self.psql(sql))
        counts = self.psql(
            "SELECT (SELECT count(*) || ',' || max(id) FROM entitlements_identity), "
            "(SELECT count(*) || ',' || max(id) FROM entitlements_account), "
            "(SELECT count(*) || ',' || max(id) FROM entitlements_entitlement), "
            "(SELECT count(*) FROM entitlements_grant), "
            "(SELECT count(*) FROM entitlements_account WHERE identity_id IS NULL), "
            "(SELECT count(*) FROM entitlements_identity WHERE status = 'terminated'), "
            "(SELECT count(*) FROM entitlements_identity WHERE kind <> 'human'), "
            "(SELECT count(*) FROM sod_violation), "
            "(SELECT count(*) FROM soxgov_user)"
        ).split("|")
        for name, value in zip(("identities", "accounts", "entitlements"), counts[:3], strict=True):
            count, top = value.split(",")
            if count != top:
                raise SystemExit(f"{name}: ids are not 1..{count} (max {top}); is the database fresh?")
        self.info["company"] = {
            "identities": int(counts[0].split(",")[0]),
            "managers": mgrs,
            "accounts": int(counts[1].split(",")[0]),
            "orphan_accounts": int(counts[4]),
            "entitlements": int(counts[2].split(",")[0]),
            "applications": APPLICATIONS,
            "grants": int(counts[3]),
            "terminated": int(counts[5]),
            "non_human": int(counts[6]),
            "violations": int(counts[7]),
            "users": int(counts[8]),
        }

    def vacuum(self) -> None:
        self.timed("VACUUM ANALYZE", lambda: self.psql("VACUUM ANALYZE"))

    # --- in-process measurements -----------------------------------------------------------------------

    def setup_django(self) -> None:
        os.environ.update(self.env)
        os.environ.pop("REDIS_URL", None)
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()

    def sql(self, statement: str, params=None, *, fetch: bool = False):
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if fetch else cursor.rowcount

    def checkpoint(self) -> None:
        self.sql("CHECKPOINT")

    def step(self, name: str, fn, **kw) -> tuple[Step, object]:
        self.checkpoint()
        load = os.getloadavg()[0]
        started = time.perf_counter()
        result = fn()
        step = Step(name, time.perf_counter() - started, load, **kw)
        print(f"  {name:<52} {step.seconds:9.3f} s  load {load:4.1f}  {step.count}", flush=True)
        self.steps.append(step)
        return step, result

    @contextmanager
    def statement_timer(self):
        """Every SQL statement's wall time (and the commit's), in order: where a step's time goes."""
        from django.db import connection

        timings: list[tuple[str, float, int]] = []

        def wrapper(execute, sql, params, many, context):
            started = time.perf_counter()
            try:
                return execute(sql, params, many, context)
            finally:
                rows = context["cursor"].rowcount if context.get("cursor") is not None else -1
                timings.append((" ".join(sql.split())[:110], time.perf_counter() - started, rows))

        original_commit = connection.commit

        def commit():
            started = time.perf_counter()
            try:
                return original_commit()
            finally:
                timings.append(
                    ("COMMIT (deferred foreign-key checks run here)", time.perf_counter() - started, -1)
                )

        connection.commit = commit
        try:
            with connection.execute_wrapper(wrapper):
                yield timings
        finally:
            del connection.commit  # back to the class's method

    @staticmethod
    def top(timings: list[tuple[str, float, int]], k: int = 6) -> list[dict]:
        return [
            {"sql": s, "seconds": round(t, 4), "rows": r}
            for s, t, r in sorted(timings, key=lambda x: -x[1])[:k]
        ]

    def users(self):
        from django.contrib.auth import get_user_model

        User = get_user_model()
        return (
            User.objects.get(username="bench-admin"),
            User.objects.get(username="bench-fallback"),
            User.objects.get(username="mgr1"),
        )

    def make_campaign(self, admin, fallback):
        import datetime as dt

        from django.utils import timezone

        from reviews.models import Campaign

        today = timezone.localdate()
        return Campaign.objects.create(
            name="Bench quarterly review",
            routing=Campaign.Routing.MANAGER,
            fallback_reviewer=fallback,
            created_by=admin,
            start_on=today,
            due_on=today + dt.timedelta(days=30),
        )

    BASELINE_COLUMNS = (
        "campaign_id, grant_id, account_id, entitlement_id, application_id, identity_id, identity_name, department, "
        "account_key, entitlement_key, entitlement_name, last_used_at, terminated, orphan, dormant, privileged, "
        "sod_conflict, new_access, non_human, reviewer_id, reviewer_identity_id, status, comment, signed_off"
    )

    def baseline_sql(self, table: str) -> str:
        """The hand-written reference: every grant of a SOX in-scope application, joined straight to its account,
        entitlement and (optional) identity; reviewer = the user linked to the identity's manager, else the
        fallback user; reviewer identity = that manager; every flag a constant FALSE (new_access TRUE)."""
        return f"""
            INSERT INTO {table} ({self.BASELINE_COLUMNS})
            SELECT %s, g.id, a.id, e.id, a.application_id, i.id,
                   COALESCE(i.display_name, 'Orphan account ' || a.account_id), COALESCE(i.department, ''),
                   a.account_id, e.entitlement_id, e.name, a.last_used_at,
                   FALSE, FALSE, FALSE, FALSE, FALSE, TRUE, FALSE,
                   COALESCE(mu.id, %s), mu.identity_id, 'pending', '', FALSE
            FROM entitlements_grant g
            JOIN entitlements_account a ON a.id = g.account_id
            JOIN entitlements_application app ON app.id = a.application_id AND app.sox_in_scope
            JOIN entitlements_entitlement e ON e.id = g.entitlement_id
            LEFT JOIN entitlements_identity i ON i.id = a.identity_id
            LEFT JOIN soxgov_user mu ON mu.identity_id = i.manager_id
        """

    def baseline(self, campaign_id: int, fallback_id: int) -> None:
        from django.db import connection, transaction

        self.sql("DROP TABLE IF EXISTS bench_item_baseline")
        self.sql("CREATE TABLE bench_item_baseline (LIKE reviews_reviewitem INCLUDING ALL)")
        indexes = self.sql(
            "SELECT count(*) FROM pg_indexes WHERE tablename = 'bench_item_baseline'", fetch=True
        )[0][0]

        def run():
            with transaction.atomic():
                return self.sql(self.baseline_sql("bench_item_baseline"), [campaign_id, fallback_id])

        step, rows = self.step("baseline: INSERT ... SELECT into a copy", run, kind="baseline")
        step.count = f"{rows:,} rows; copy has {indexes} indexes, the check constraint, no FKs"
        step.extra = {
            "rows": rows,
            "indexes": indexes,
            "sql": " ".join(self.baseline_sql("bench_item_baseline").split()),
        }
        print(f"    {step.count}")
        self.info["baseline_rows"] = rows

        # Not gated: the same with the review item table's six foreign keys (checked at COMMIT, deferred).
        self.sql("DROP TABLE bench_item_baseline")
        self.sql("CREATE TABLE bench_item_baseline (LIKE reviews_reviewitem INCLUDING ALL)")
        fks = self.sql(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'reviews_reviewitem'::regclass AND contype = 'f'",
            fetch=True,
        )
        for name, definition in fks:
            self.sql(f"ALTER TABLE bench_item_baseline ADD CONSTRAINT bench_{name[:50]} {definition}")
        with self.statement_timer() as timings:
            step, rows = self.step("baseline + the 6 foreign keys (info)", run, kind="info")
        commit = sum(t for s, t, _ in timings if s.startswith("COMMIT"))
        step.count = f"{rows:,} rows; of which COMMIT (deferred FK checks) {commit:.2f} s"
        step.extra = {"rows": rows, "commit_seconds": commit}
        print(f"    {step.count}")
        self.sql("DROP TABLE bench_item_baseline")
        connection.close()  # fresh session for the launch

    def launch(self, campaign, admin) -> None:
        from reviews import notify, services

        notify_times: list[float] = []
        original = notify.launched

        def timed_launched(campaign_id):
            started = time.perf_counter()
            try:
                return original(campaign_id)
            finally:
                notify_times.append(time.perf_counter() - started)

        notify.launched = timed_launched  # reviews.tasks.notify_launched calls notify.launched(...)
        try:
            with self.statement_timer() as timings:
                step, launched = self.step(
                    "campaign_launch, end to end (incl. notify)",
                    lambda: services.campaign_launch(campaign_id=campaign.pk, user=admin),
                )
        finally:
            notify.launched = original
        notified = notify_times[0] if notify_times else 0.0
        insert = sum(t for s, t, _ in timings if s.startswith("INSERT INTO reviews_reviewitem"))
        commit = sum(t for s, t, _ in timings if s.startswith("COMMIT"))
        step.count = f"{launched.item_count:,} items"
        step.extra = {"items": launched.item_count, "notify_seconds": notified, "insert_seconds": insert,
                      "commit_seconds": commit, "statements": len(timings), "top": self.top(timings, 8)}  # fmt: skip
        print(
            f"    {step.count}; INSERT ... SELECT {insert:.2f} s, COMMIT {commit:.2f} s, notify {notified:.2f} s"
        )
        self.steps.append(
            Step(
                "campaign_launch without notify (gated)",
                step.seconds - notified,
                step.load,
                step.count,
                extra={"insert_seconds": insert, "commit_seconds": commit},
            )
        )
        # The same INSERT ... SELECT into two copies of the table, with and without the recommendation (its joins
        # and wrapping SELECT): what recommending adds, taken off the launch for the launch without it.
        with_rec, without_rec = self.recommend_cost(launched)
        without = step.seconds - notified - max(0.0, with_rec - without_rec)
        self.steps.append(
            Step(
                "  launch INSERT ... SELECT without recommending",
                without_rec,
                step.load,
                f"into a copy of the table; with them {with_rec:.2f} s ({with_rec / without_rec:.2f}x)",
                kind="info",
            )
        )
        self.steps.append(
            Step(
                "  launch without recommendations (same run)",
                without,
                step.load,
                f"the launch less the {with_rec - without_rec:.2f} s recommending added to its INSERT",
                kind="info",
            )
        )
        self.steps.append(
            Step(
                "  launch with recommendations (gated: ratio)",
                step.seconds - notified,
                step.load,
                f"{(step.seconds - notified) / without:.2f}x the launch without them" if without > 0 else "",
                ratio=(step.seconds - notified) / without if without > 0 else None,
                kind="info",
            )
        )
        self.info["recommendations"] = dict(
            self.sql(
                "SELECT recommendation, count(*) FROM reviews_reviewitem WHERE campaign_id = %s GROUP BY 1",
                [launched.pk],
                fetch=True,
            )
        )
        print(f"    recommendations: {self.info['recommendations']}")
        from reviews.models import Notification

        self.steps.append(
            Step(
                "  of which notify_launched (eager Celery)",
                notified,
                step.load,
                f"{Notification.objects.filter(campaign_id=campaign.pk).count():,} notifications + e-mails",
                kind="info",
            )
        )
        self.info["launch_top_statements"] = step.extra["top"]
        for row in step.extra["top"]:
            print(f"      {row['seconds']:8.3f} s  {row['rows']:>9}  {row['sql']}")
        self.info["campaign"] = {"id": launched.pk, "items": launched.item_count}
        self.info["by_reviewer"] = self.sql(
            "SELECT count(DISTINCT reviewer_id), max(n), percentile_disc(0.5) WITHIN GROUP (ORDER BY n) FROM "
            "(SELECT reviewer_id, count(*) n FROM reviews_reviewitem WHERE campaign_id = %s GROUP BY 1) s",
            [launched.pk],
            fetch=True,
        )[0]
        flags = ", ".join(f"count(*) FILTER (WHERE {f})" for f in ("terminated", "orphan", "dormant", "privileged",
                                                                  "sod_conflict", "new_access", "non_human"))  # fmt: skip
        self.info["flags"] = dict(
            zip(
                ("terminated", "orphan", "dormant", "privileged", "sod_conflict", "new_access", "non_human"),
                self.sql(
                    f"SELECT {flags} FROM reviews_reviewitem WHERE campaign_id = %s",
                    [launched.pk],
                    fetch=True,
                )[0],
                strict=True,
            )
        )
        print(f"    reviewers {self.info['by_reviewer'][0]:,}, largest queue {self.info['by_reviewer'][1]:,}, "
              f"median {self.info['by_reviewer'][2]:,}; flags {self.info['flags']}")  # fmt: skip
        self.sql("VACUUM ANALYZE reviews_reviewitem")  # as autovacuum would after a 1M-row insert

    def recommend_cost(self, campaign) -> tuple[float, float]:
        """Seconds of the launch's INSERT ... SELECT into an empty copy of the item table, with and without the
        recommendation, interleaved twice (the minimum of each)."""
        from django.db import connection, transaction

        from reviews.scoping import ITEM_COLUMNS, item_source

        times: dict[bool, list[float]] = {True: [], False: []}
        for recommend in (False, True, False, True):
            sql, params = item_source(campaign, recommend=recommend)
            self.checkpoint()
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("CREATE TEMP TABLE bench_items (LIKE reviews_reviewitem INCLUDING ALL)")
                started = time.perf_counter()
                cursor.execute(f"INSERT INTO bench_items ({', '.join(ITEM_COLUMNS)}) {sql}", params)
                times[recommend].append(time.perf_counter() - started)
                cursor.execute("DROP TABLE bench_items")
        with_rec, without_rec = min(times[True]), min(times[False])
        print(
            f"    launch INSERT into a copy: with recommendations {with_rec:.2f} s, without {without_rec:.2f} s"
        )
        return with_rec, without_rec

    # --- the reviewer's queue ----------------------------------------------------------------------------

    @staticmethod
    def cursor_for(values: list) -> str:
        """Exactly soxgov.pagination._encode("n", values)."""
        raw = json.dumps({"d": "n", "v": values}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def queue(self, campaign_id: int, reviewer) -> None:
        from django.conf import settings
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

        from soxgov.pagination import _encode

        page = settings.SOXGOV_PAGE_SIZE
        keys = self.sql(
            "SELECT campaign_id, identity_name, id FROM reviews_reviewitem WHERE reviewer_id = %s AND campaign_id = %s "
            "AND status = 'pending' ORDER BY campaign_id, identity_name, id",
            [reviewer.pk, campaign_id],
            fetch=True,
        )
        total = len(keys)
        deep_row = max(page, (total // 4) // page * page)  # page 1,030 at full size
        last_row = max(page, (total - 1) // page * page)  # the start of the last page
        positions = [("first page", None), (f"deep page {deep_row // page + 1:,}", deep_row),
                     (f"last page {last_row // page + 1:,}", last_row)]  # fmt: skip
        base = f"/reviews/?campaign={campaign_id}&status=pending"
        client = Client()
        client.force_login(reviewer)
        # The cursor built here must be the pager's own: follow the first page's "Next" link and compare.
        first = client.get(base, secure=True)
        if first.status_code != 200:
            raise SystemExit(f"GET {base} answered {first.status_code}")
        links = re.findall(r'href="\?[^"]*cursor=([A-Za-z0-9_-]+)"[^>]*rel="next"', first.content.decode())
        own = self.cursor_for(list(keys[page - 1]))
        if not links or links[0] != own or own != _encode("n", list(keys[page - 1])):
            raise SystemExit(f"the constructed cursor {own} differs from the pager's next link {links[:1]}")
        self.info["queue"] = {"reviewer_pending_items": total, "page_size": page, "positions": {}}
        print(f"    queue of {reviewer.get_username()}: {total:,} pending items in the campaign ({total // page + 1:,} "
              f"pages of {page}); cursor construction matches the pager's next link", flush=True)  # fmt: skip
        self.checkpoint()
        for label, row in positions:
            url = base if row is None else f"{base}&cursor={self.cursor_for(list(keys[row - 1]))}"
            for htmx in (False, True):
                headers = {"HX-Request": "true"} if htmx else {}
                name = f"queue {label}{' (htmx fragment)' if htmx else ''}"
                load = os.getloadavg()[0]
                times = []
                for i in range(self.args.warmup + self.args.requests):
                    started = time.perf_counter()
                    response = client.get(url, secure=True, headers=headers)
                    elapsed = time.perf_counter() - started
                    if response.status_code != 200:
                        raise SystemExit(f"GET {url} answered {response.status_code}")
                    if i >= self.args.warmup:
                        times.append(elapsed * 1000)
                body = response.content.decode()
                shown = body.count('<tr data-item="')
                expected_first = keys[row][2] if row is not None else keys[0][2]
                if f'data-item="{expected_first}"' not in body:
                    raise SystemExit(f"{name}: the page does not start at item {expected_first}")
                with CaptureQueriesContext(connection) as captured:
                    client.get(url, secure=True, headers=headers)
                queries = [(float(q["time"]), " ".join(q["sql"].split())) for q in captured.captured_queries]
                sql_ms = sum(t for t, _ in queries) * 1000
                times.sort()
                p50, p95 = statistics.median(times), _percentile(times, 95)
                stats = {"p50": p50, "p95": p95, "max": times[-1], "min": times[0], "requests": len(times),
                         "rows_shown": shown, "bytes": len(body), "queries": len(queries), "sql_ms": sql_ms,
                         "slowest": [{"ms": round(t * 1000, 2), "sql": s[:300]} for t, s in
                                     sorted(queries, key=lambda q: -q[0])[:5]]}  # fmt: skip
                self.info["queue"]["positions"][name] = stats
                count = f"{shown} rows, {len(queries)} queries ({sql_ms:.0f} ms SQL), {len(body) // 1024} KB"
                for what, value in (("p50", p50), ("p95", p95)):
                    self.steps.append(Step(f"{name}: {what}", value / 1000, load, count, extra=stats))
                print(
                    f"  {name:<52} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  load {load:4.1f}  {count}",
                    flush=True,
                )
                if self.args.explain or p95 >= GOAL_QUEUE_P95_MS:
                    for q in stats["slowest"][:3]:
                        print(f"      {q['ms']:8.2f} ms  {q['sql'][:200]}")
        self.queue_queries = (positions, base, keys)

    def explain_queue(self, campaign_id: int, reviewer) -> None:
        """EXPLAIN (ANALYZE, BUFFERS) of every query of one deep-page request, slowest first."""
        from django.db import connection
        from django.test import Client
        from django.test.utils import CaptureQueriesContext

        positions, base, keys = self.queue_queries
        _label, row = positions[1]
        client = Client()
        client.force_login(reviewer)
        url = f"{base}&cursor={self.cursor_for(list(keys[row - 1]))}"
        with CaptureQueriesContext(connection) as captured:
            client.get(url, secure=True)
        statements = sorted(captured.captured_queries, key=lambda q: -float(q["time"]))[:4]
        for q in statements:
            if not q["sql"].lstrip().upper().startswith("SELECT"):
                continue
            rows = self.sql("EXPLAIN (ANALYZE, BUFFERS) " + q["sql"], fetch=True)
            print(f"\n  EXPLAIN ANALYZE ({float(q['time']) * 1000:.1f} ms in the request) {q['sql'][:300]}\n"
                  + "\n".join("    " + r[0] for r in rows), flush=True)  # fmt: skip

    # --- bulk decision -----------------------------------------------------------------------------------

    def decide(self, campaign_id: int, reviewer) -> None:
        from reviews import services
        from reviews.models import Decision, ReviewItem

        pending = list(
            ReviewItem.objects.filter(campaign_id=campaign_id, reviewer=reviewer, status="pending")
            .order_by("id")
            .values_list("id", flat=True)
        )
        size = min(self.n["decide"], len(pending))
        ids = sorted(self.rng.sample(pending, size))
        with self.statement_timer() as timings:
            step, decided = self.step(
                f"decide: certify {size:,} items with a comment",
                lambda: services.decide(
                    item_ids=ids, user=reviewer, certify=True, comment="Bench: access confirmed."
                ),
            )
        events = self.sql(
            "SELECT count(*) FROM evidence_evidenceevent WHERE action = 'review.item.certified'", fetch=True
        )[0][0]
        commit = sum(t for s, t, _ in timings if s.startswith("COMMIT"))
        sql_total = sum(t for s, t, _ in timings)
        step.count = (f"{decided:,} certified, {Decision.objects.count():,} decisions, {events:,} evidence events; "
                      f"SQL {sql_total:.2f} s incl. COMMIT {commit:.2f} s")  # fmt: skip
        step.extra = {"items": decided, "statements": len(timings), "sql_seconds": sql_total,
                      "commit_seconds": commit, "top": self.top(timings, 8)}  # fmt: skip
        print(f"    {step.count}")
        for row in step.extra["top"]:
            print(f"      {row['seconds']:8.3f} s  {row['rows']:>9}  {row['sql']}")

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


def _percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile."""
    rank = max(1, -(-len(sorted_values) * pct // 100))
    return sorted_values[int(rank) - 1]


def judge(steps: list[Step]) -> list[str]:
    base = next((s for s in steps if s.kind == "baseline"), None)
    lines = []
    for s in steps:
        if s.name.startswith("  launch with recommendations") and s.ratio is not None:
            ok = s.ratio <= GOAL_RECOMMEND_RATIO
            s.goal = f"{s.ratio:.2f}x the launch without them <= {GOAL_RECOMMEND_RATIO:g}x"
        elif s.name.startswith("campaign_launch") and base:
            s.ratio = s.seconds / base.seconds
            if "gated" not in s.name:
                continue
            ok = s.ratio <= GOAL_LAUNCH_RATIO
            s.goal = f"{s.ratio:.2f}x baseline <= {GOAL_LAUNCH_RATIO:g}x"
        elif s.name.startswith("queue") and s.name.endswith(": p95"):
            ok = s.seconds * 1000 < GOAL_QUEUE_P95_MS
            s.goal = f"p95 {s.seconds * 1000:.1f} ms < {GOAL_QUEUE_P95_MS:.0f} ms"
        elif s.name.startswith("decide"):
            ok = s.seconds < GOAL_DECIDE_SECONDS
            s.goal = f"{s.seconds:.2f} s < {GOAL_DECIDE_SECONDS:g} s"
        else:
            continue
        s.verdict = "met" if ok else "MISSED"
        lines.append(f"{s.name:<52} {s.verdict:<7} {s.goal}")
    return lines


def table(steps: list[Step]) -> str:
    head = f"| {'step':<52} | {'wall':>9} | {'x base':>6} | {'load':>4} | {'result':<70} | goal |"
    sep = f"|{'-' * 54}|{'-' * 11}|{'-' * 8}|{'-' * 6}|{'-' * 72}|------|"
    out = [head, sep]
    for s in steps:
        ratio = f"{s.ratio:.2f}" if s.ratio is not None else ("1.00" if s.kind == "baseline" else "")
        wall = f"{s.seconds * 1000:.1f} ms" if s.seconds < 1 else f"{s.seconds:.2f} s"
        goal = f"{s.verdict}: {s.goal}" if s.verdict else ""
        out.append(f"| {s.name:<52} | {wall:>9} | {ratio:>6} | {s.load:>4.1f} | {s.count:<70} | {goal} |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="size multiplier (0.05 = smoke check)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--requests", type=int, default=50, help="queue requests measured per series")
    parser.add_argument(
        "--warmup", type=int, default=5, help="queue requests per series run first, not counted"
    )
    parser.add_argument("--decide", type=int, help="items in the bulk decision (default 10,000 x scale)")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the deep-page queue queries")
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument(
        "--load-only", action="store_true", help="create and load the database, keep it, stop"
    )
    parser.add_argument("--db-name", default="soxgov_campaign_bench")
    parser.add_argument("--db-host", default=os.environ.get("PGHOST", "127.0.0.1"))
    parser.add_argument("--db-port", type=int, default=int(os.environ.get("PGPORT", "5432")))
    parser.add_argument("--db-user", default=os.environ.get("PGUSER", "postgres"))
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"soxgov_campaign_bench[a-z0-9_]*", args.db_name):
        parser.error("--db-name must be a plain lower-case identifier starting with soxgov_campaign_bench")

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
        bench.vacuum()
        c = bench.info["company"]
        print(
            f"company: {c['identities']:,} identities ({c['terminated']:,} terminated, {c['non_human']:,} non-human) "
            f"under {c['managers']:,} managers, {c['accounts']:,} accounts ({c['orphan_accounts']:,} orphans), "
            f"{c['entitlements']:,} entitlements, {c['grants']:,} grants over {c['applications']} SOX applications, "
            f"{c['violations']:,} live violations, {c['users']:,} users",
            flush=True,
        )
        if args.load_only:
            args.keep = True
            return 0
        bench.setup_django()
        admin, fallback, big = bench.users()
        print(
            "measured steps (in-process, CHECKPOINT before each; load = 1-minute load average):", flush=True
        )
        campaign = bench.make_campaign(admin, fallback)
        bench.baseline(campaign.pk, fallback.pk)
        bench.launch(campaign, admin)
        bench.queue(campaign.pk, big)
        if args.explain:
            bench.explain_queue(campaign.pk, big)
        bench.decide(campaign.pk, big)
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
    print(
        f"\nresults (scale {args.scale:g}; queue: {args.requests} requests per series after {args.warmup} warm-ups):"
    )
    print(table(steps))
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
