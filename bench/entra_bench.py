"""Entra ID benchmark: a 100k-user, 20k-group tenant served by the Graph stand-in, a full pull and a delta pull,
each against importing the same rows as a CSV file in the same run.

    .venv/bin/python bench/entra_bench.py [--scale 1.0] [--keep] [--json PATH]

1. Starts the stand-in (tests/cloud/identity/stand_in.py) in a process of its own on loopback, over TLS, with a
   generated tenant: 100k users (every 100th disabled, managers), 20k groups (each user a direct member of 5,
   200 groups nested in another), 200 of the tenant's own service principals with owners, directory roles and
   eligibilities; Graph pages at 999.
2. Builds SOXGov: a fresh PostgreSQL database (migrate), the application, an Entra connector; and a copy of it
   (CREATE DATABASE ... TEMPLATE) for the CSV path, so both start from the same state.
3. Measures, each in a fresh child process (wall time and that child's own peak RSS):
   - full pull: ``manage.py connector_pull`` (msal token, users and groups read, mirror built, rows applied);
   - baseline: ``manage.py import_access`` of the very CSV that pull stored, into the copy;
   - the tenant changes (1%: users disabled, memberships removed and added, new hires), then
   - delta pull: ``connector_pull`` again (reads only the changes, yields the whole tenant);
   - baseline: ``import_access`` of the CSV the delta pull stored, into the copy.
4. Prints the figures (the goal: peak memory under 500 MB) and drops the databases unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from import_bench import code_state, measure, parse_counts  # noqa: E402  (bench/ is not a package)

GOAL_RSS_MB = 500.0
APPLICATION = "Entra ID"
CONNECTOR = "entra-bench"
TENANT = "0000aaaa-1111-4222-8333-00000000be7c"
CLIENT = "0000cccc-1111-4222-8333-00000000be7c"


# --- The tenant (in the stand-in's process) ----------------------------------------------------------------------


def oid(kind: str, n: int) -> str:
    return f"{kind}0000000-0000-4000-8000-{n:012d}"


def tenant_data(users: int, groups: int, per_user: int = 5) -> dict:
    people = []
    for n in range(users):
        people.append({
            "id": oid("a", n), "userPrincipalName": f"user{n}@example.com", "mail": f"user{n}@example.com",
            "displayName": f"User {n}", "accountEnabled": n % 100 != 7, "employeeId": f"E{n:07d}",
            "userType": "Member", "department": f"Dept {n % 50}", "jobTitle": "Clerk",
            "manager": oid("a", n // 10) if n >= 10 else None,
            "signInActivity": {"lastSignInDateTime": f"2026-{1 + n % 11:02d}-{1 + n % 28:02d}T08:00:00Z"},
        })  # fmt: skip
    members: list[list[str]] = [[] for _ in range(groups)]
    for n in range(users):
        for k in range(per_user):
            members[(n * 7 + k * 4001) % groups].append(oid("a", n))
    for g in range(0, min(400, groups - 1), 2):  # 200 groups nested in another
        members[g].append(oid("b", g + 1))
    sps = [
        {"id": oid("c", n), "appId": oid("d", n), "displayName": f"app-{n}", "accountEnabled": True,
         "servicePrincipalType": "ManagedIdentity" if n % 4 == 0 else "Application",
         "appOwnerOrganizationId": TENANT, "appRoles": [], "owners": [oid("a", n * 13 % users)]}
        for n in range(200)
    ]  # fmt: skip
    roles = [{"id": oid("f", n), "displayName": f"Directory role {n}"} for n in range(10)]
    return {
        "tenant_id": TENANT,
        "client_id": CLIENT,
        "users": people,
        "groups": [
            {
                "id": oid("b", g),
                "displayName": f"Group {g}",
                "isAssignableToRole": g < 5,
                "members": members[g],
            }
            for g in range(groups)
        ],
        "service_principals": sps,
        "app_role_assignments": [],
        "role_definitions": roles,
        "role_assignments": [
            {
                "principalId": oid("a", n * 997 % users),
                "roleDefinitionId": oid("f", n % 10),
                "directoryScopeId": "/",
            }
            for n in range(50)
        ]
        + [
            {"principalId": oid("b", g), "roleDefinitionId": oid("f", 1), "directoryScopeId": "/"}
            for g in range(5)
        ],
        "role_eligibilities": [
            {
                "principalId": oid("a", n * 991 % users),
                "roleDefinitionId": oid("f", 0),
                "status": "Provisioned",
            }
            for n in range(50)
        ],
    }


def change(tenant, users: int, groups: int) -> None:
    """1% of the tenant changes between the two pulls."""
    step = 200
    for n in range(0, users, step):
        tenant.disable_user(oid("a", n + 1))
        gid = oid("b", ((n + 2) * 7) % groups)
        if oid("a", n + 2) in tenant.groups[gid]["members"]:
            tenant.remove_member(gid, oid("a", n + 2))
        tenant.add_member(oid("b", (n * 13 + 5) % groups), oid("a", n + 3))
    for n in range(users, users + users // 2000):
        tenant.add_user({"id": oid("a", n), "userPrincipalName": f"user{n}@example.com", "mail": f"user{n}@example.com",
                         "displayName": f"New {n}", "accountEnabled": True, "employeeId": f"E{n:07d}",
                         "userType": "Member", "department": "Dept 0", "jobTitle": "Clerk", "manager": oid("a", 1)})  # fmt: skip
        tenant.add_member(oid("b", n % groups), oid("a", n))


def serve(users: int, groups: int, ready: Path, work: Path) -> int:
    """The stand-in's process: serve until killed; SIGUSR1 applies the 1% change."""
    from tests.cloud.identity.stand_in import GraphTenant, StandIn

    tenant = GraphTenant(tenant_data(users, groups))
    server = StandIn(tenant=tenant, page=999, directory=work)

    def on_change(*_):
        change(tenant, users, groups)
        (work / "changed").write_text(str(tenant.version))

    signal.signal(signal.SIGUSR1, on_change)
    with server:
        ready.write_text(json.dumps({"url": server.url, "ca_file": str(server.ca_file), "pid": os.getpid()}))
        while True:
            time.sleep(3600)


# --- The benchmark ---------------------------------------------------------------------------------------------


class EntraBench:
    def __init__(self, args):
        self.args = args
        a = args
        self.server = f"postgres://{a.db_user}@{a.db_host}:{a.db_port}"
        self.work = Path(tempfile.mkdtemp(prefix="soxgov-entra-bench-"))
        self.users = max(10, round(a.users * a.scale))
        self.groups = max(10, round(a.groups * a.scale))
        self.steps = []
        self.stand_in: subprocess.Popen | None = None
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
            SOXGOV_SECRET_FILE_ROOTS=str(self.work),  # the client secret's file lies there
            SOXGOV_DELETION_THRESHOLD_COUNT=str(10**9),
            SOXGOV_LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
            REDIS_URL=a.redis_url,
            SOXGOV_CELERY_QUEUE=f"soxgov-entra-bench-{os.getpid()}",
        )
        self.env = {
            "pull": {**base, "DATABASE_URL": f"{self.server}/{a.db_name}", "SOXGOV_IMPORT_DIR": str(self.work / "pull")},
            "csv": {**base, "DATABASE_URL": f"{self.server}/{a.db_name}_csv", "SOXGOV_IMPORT_DIR": str(self.work / "csv")},
        }  # fmt: skip

    def psql(self, sql: str, *, db: str = "postgres") -> str:
        a = self.args
        cmd = ["psql", "-X", "-q", "-tA", "-v", "ON_ERROR_STOP=1", "-h", a.db_host, "-p", str(a.db_port),
               "-U", a.db_user, "-d", db, "-c", sql]  # fmt: skip
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"psql failed: {result.stderr.strip()}\n  in: {sql[:300]}")
        return result.stdout.strip()

    def manage(self, env: str, *args: str) -> str:
        result = subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=self.env[env], cwd=ROOT,
                                capture_output=True, text=True)  # fmt: skip
        if result.returncode != 0:
            raise SystemExit(
                f"manage.py {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )
        return result.stdout

    def start_stand_in(self) -> dict:
        ready = self.work / "ready.json"
        self.stand_in = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "_serve",
                str(self.users),
                str(self.groups),
                str(ready),
                str(self.work),
            ],
            cwd=ROOT,
        )
        started = time.perf_counter()
        while not ready.exists():
            if self.stand_in.poll() is not None or time.perf_counter() - started > 600:
                raise SystemExit("the stand-in did not start")
            time.sleep(0.2)
        info = json.loads(ready.read_text())
        print(f"  stand-in: {self.users:,} users, {self.groups:,} groups at {info['url']} "
              f"({time.perf_counter() - started:.1f} s to generate, not measured)", flush=True)  # fmt: skip
        return info

    def soxgov(self, info: dict) -> None:
        a = self.args
        for db in (a.db_name, f"{a.db_name}_csv"):
            self.psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        self.psql(f'CREATE DATABASE "{a.db_name}"')
        self.manage("pull", "migrate", "--no-input", "-v", "0")
        self.manage("pull", "shell", "-c", "from entitlements.models import Application\n"
                    f"Application.objects.create(name={APPLICATION!r}, sox_in_scope=True)")  # fmt: skip
        self.psql(f'CREATE DATABASE "{a.db_name}_csv" TEMPLATE "{a.db_name}"')
        config = self.work / "connector.json"
        config.write_text(json.dumps({"tenant_id": TENANT, "client_id": CLIENT, "authority_host": info["url"],
                                      "graph_url": info["url"], "ca_file": info["ca_file"]}))  # fmt: skip
        secret = self.work / "client_secret"
        from tests.cloud.identity.stand_in import SECRET

        secret.write_text(SECRET)
        self.manage("pull", "connector_add", "--name", CONNECTOR, "--kind", "entra", "--application", APPLICATION,
                    "--config", str(config), "--secret", f"client_secret=file:{secret}")  # fmt: skip

    def stored_csv(self) -> tuple[Path, int]:
        out = self.manage("pull", "shell", "-c", "from entitlements.models import ConnectorRun\n"
                          "r = ConnectorRun.objects.filter(kind='access').order_by('-pk').first()\n"
                          "print(r.source_path, r.rows_total)")  # fmt: skip
        path, rows = out.split()[-2:]
        return Path(path), int(rows)

    def step(self, name: str, env: str, cmd: list[str], kind: str, rows: int):
        self.psql("CHECKPOINT")
        step = measure(name, cmd, env=self.env[env], rows=rows, kind=kind)
        step.counts = parse_counts(step.stdout)
        self.steps.append(step)
        return step

    def run(self) -> None:
        manage = [sys.executable, str(ROOT / "manage.py")]
        estimate = self.users * 5
        self.step(
            "full pull: connector_pull", "pull", [*manage, "connector_pull", CONNECTOR], "pull", estimate
        )
        path, rows = self.stored_csv()
        self.steps[-1].rows = rows
        self.step("baseline: import_access (same rows)", "csv",
                  [*manage, "import_access", str(path), "--application", APPLICATION], "baseline", rows)  # fmt: skip
        changed = self.work / "changed"
        self.stand_in.send_signal(signal.SIGUSR1)
        while not changed.exists():
            time.sleep(0.2)
        self.step("delta pull: connector_pull", "pull", [*manage, "connector_pull", CONNECTOR], "pull", rows)
        path, rows = self.stored_csv()
        self.steps[-1].rows = rows
        self.step("baseline: import_access (delta's rows)", "csv",
                  [*manage, "import_access", str(path), "--application", APPLICATION], "baseline", rows)  # fmt: skip

    def cleanup(self) -> None:
        if self.stand_in is not None and self.stand_in.poll() is None:
            self.stand_in.terminate()
            self.stand_in.wait(30)
        try:
            import redis

            redis.Redis.from_url(self.args.redis_url).delete(self.env["pull"]["SOXGOV_CELERY_QUEUE"])
        except Exception as exc:  # the queue is private; a broker that is gone leaves nothing behind
            print(f"  (could not empty the private queue: {exc})")
        if self.args.keep:
            print(f"kept: databases {self.args.db_name}, {self.args.db_name}_csv; {self.work}")
            return
        for db in (self.args.db_name, f"{self.args.db_name}_csv"):
            self.psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        shutil.rmtree(self.work, ignore_errors=True)

    def report(self) -> list[str]:
        print(f"\n{'step':<42} {'seconds':>9} {'rows':>9} {'rows/s':>9} {'peak RSS':>9}  grants")
        for s in self.steps:
            grants = s.counts.get("grants", {})
            summary = ", ".join(f"{n} {what}" for what, n in grants.items() if what in ("added", "removed"))
            print(
                f"{s.name:<42} {s.seconds:9.2f} {s.rows:9,} {s.rows_per_s:9,.0f} {s.rss_mb:6.0f} MB  {summary}"
            )
        full, full_csv, delta, delta_csv = self.steps
        print(f"\nfull pull vs CSV import of the same rows: {full.seconds / full_csv.seconds:.2f}x")
        print(f"delta pull vs CSV import of the same rows: {delta.seconds / delta_csv.seconds:.2f}x")
        problems = [f"{s.name}: exit {s.exit_code}" for s in self.steps if s.exit_code != 0]
        worst = max(s.rss_mb for s in (full, delta))
        print(
            f"goal: pull peak RSS under {GOAL_RSS_MB:.0f} MB: {worst:.0f} MB ({'met' if worst < GOAL_RSS_MB else 'MISSED'})"
        )
        if full.counts.get("grants") != full_csv.counts.get("grants"):
            problems.append("the full pull and its CSV import disagree on grants")
        if delta.counts.get("grants") != delta_csv.counts.get("grants"):
            problems.append("the delta pull and its CSV import disagree on grants")
        print("counts: " + ("pulls and CSV imports agree" if not problems else "; ".join(problems)))
        return problems


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_serve":
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soxgov.settings")
        return serve(int(argv[1]), int(argv[2]), Path(argv[3]), Path(argv[4]))
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--scale", type=float, default=1.0, help="fraction of the sizes below (0.05: a smoke run)"
    )
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=20_000)
    parser.add_argument("--db-name", default="soxgov_entrabench")
    parser.add_argument("--db-host", default=os.environ.get("PGHOST", "127.0.0.1"))
    parser.add_argument("--db-port", type=int, default=int(os.environ.get("PGPORT", "5432")))
    parser.add_argument("--db-user", default=os.environ.get("PGUSER", "postgres"))
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    bench = EntraBench(args)
    code = code_state()
    print(f"code: commit {code['commit']}, {len(code['uncommitted'])} uncommitted change(s)")
    started = time.perf_counter()
    try:
        info = bench.start_stand_in()
        bench.soxgov(info)
        print("measured steps (each in a fresh child process; peak RSS is that child's own):", flush=True)
        bench.run()
    finally:
        bench.cleanup()
    problems = bench.report()
    print(f"\ntotal bench time {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(
            {"scale": args.scale, "users": bench.users, "groups": bench.groups,
             "code": {k: v for k, v in code.items() if k != "mtimes"},
             "steps": [{**{k: v for k, v in s.__dict__.items() if k not in ("stdout", "stderr")},
                        "rows_per_s": s.rows_per_s, "rss_mb": s.rss_mb} for s in bench.steps]},
            indent=2, default=str) + "\n")  # fmt: skip
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
