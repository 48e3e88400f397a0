"""LDAP source benchmark: reading a 100k-user, 1M-membership directory against importing the same rows as CSV.

    .venv/bin/python bench/ldap_bench.py [--scale 1.0] [--keep]

1. Generates an LDIF (100k inetOrgPerson users with managers, 1,000 groupOfNames of 1,000 members each: 1M
   memberships; 10 roll-up groups nesting two of them each, so nesting is resolved too) and loads it offline
   with ``slapadd -q`` into a temporary slapd on a free loopback port (tests/ldap_servers.py). Not measured.
2. Measures, each in its own child process (wall time and the child's own peak RSS from ``os.wait4``):
   - the source read alone: ``LdapSource.identities()`` and ``access()``, rows counted and dropped;
   - the source read written to the identities and access CSV files, as a pull stores what it read;
   - importing those CSV files into a fresh PostgreSQL database: ``manage.py import_identities`` then
     ``import_access --application Directory`` (the baseline: the same rows as a file).
3. Prints the figures beside the goals: a pull (source read to CSV + the same import) within 1.5x of the CSV
   import, and the source's peak memory under 500 MB.

Needs slapd/slapadd (Debian ``slapd``), PostgreSQL (``postgres@127.0.0.1:5432``, trust; ``--db-*`` options)
and ``psql``; Redis for the SoD checks the imports enqueue (``--redis-url``; they are dropped, not run).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))

from import_bench import Bench, measure, parse_counts  # noqa: E402  (bench/ is not a package)

GOAL_RATIO = 1.5
GOAL_RSS_MB = 500.0
BASE = "dc=example,dc=com"
APPLICATION = "Directory"
READER = f"cn=reader,ou=system,{BASE}"
READER_PASSWORD = "reader-secret-2026"
PASSWORD_VARIABLE = "SOXGOV_BENCH_LDAP_PASSWORD"
SLAPD_INDEXES = "index objectClass eq"


def generate(path: Path, *, users: int, groups: int, members: int, seed: int) -> dict:
    """The directory as LDIF; returns what it holds (users, direct memberships, expected effective grants)."""
    rng = random.Random(seed)
    person = "uid=u{0:06d},ou=people," + BASE
    effective = 0
    with path.open("w") as out:
        out.write(
            f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n"
            f"dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people\n\n"
            f"dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups\n\n"
            f"dn: ou=system,{BASE}\nobjectClass: organizationalUnit\nou: system\n\n"
            f"dn: {READER}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: reader\n"
            f"userPassword: {READER_PASSWORD}\n\n"
        )
        for i in range(users):
            manager = f"manager: {person.format(i // 10)}\n" if i >= 10 else ""
            out.write(
                f"dn: {person.format(i)}\nobjectClass: inetOrgPerson\nuid: u{i:06d}\ncn: User {i}\nsn: {i}\n"
                f"employeeNumber: E{i:06d}\nmail: u{i:06d}@example.com\ndepartmentNumber: D{i % 50}\n"
                f"title: Clerk\n{manager}\n"
            )
        sizes = []
        for g in range(groups):
            chosen = rng.sample(range(users), min(members, users))
            sizes.append(len(chosen))
            effective += len(chosen)
            out.write(f"dn: cn=g{g:05d},ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: g{g:05d}\n")
            out.write("".join(f"member: {person.format(m)}\n" for m in chosen))
            out.write("\n")
        # Roll-ups nest two groups each (their members may overlap: counted once per roll-up).
        rollups = min(10, groups // 2)
        for r in range(rollups):
            inner = (2 * r, 2 * r + 1)
            out.write(
                f"dn: cn=rollup{r:02d},ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: rollup{r:02d}\n"
            )
            out.write("".join(f"member: cn=g{g:05d},ou=groups,{BASE}\n" for g in inner))
            out.write("\n")
    return {"users": users, "groups": groups + rollups, "memberships": sum(sizes), "rollups": rollups}


def connector_config(url: str, page_size: int, identities: bool = True) -> dict:
    return {
        "url": url,
        "flavour": "openldap",
        "base_dn": BASE,
        "bind_dn": READER,
        "identities": identities,
        "page_size": page_size,
        "timeout": 600,
    }


def pull_phases(bench) -> dict[str, float]:
    """Where the pull's time went, from its runs' own times and the evidence of the read."""
    row = bench.psql(
        "SELECT EXTRACT(EPOCH FROM (e.occurred_at - a.started_at)), "
        "EXTRACT(EPOCH FROM (i.finished_at - i.started_at)), "
        "EXTRACT(EPOCH FROM (a.finished_at - COALESCE(i.finished_at, e.occurred_at))) "
        "FROM entitlements_connectorrun a LEFT JOIN entitlements_connectorrun i ON i.parent_id = a.id "
        "JOIN evidence_evidenceevent e ON e.action = 'import.run.pulled' AND e.subject_id = a.id::text"
    )
    names = ("read the directory into CSV copies", "identities run", "access import")
    return dict(zip(names, (float(x or 0) for x in row.split("|")), strict=True)) if row else {}


def child_read(args) -> int:
    """Runs in the measured child: read the directory through LdapSource, optionally writing the CSV files."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soxgov.settings")
    from entitlements.connectors.files import ACCESS_COLUMNS, IDENTITY_COLUMNS
    from entitlements.connectors.ldap import LdapSource

    config = connector_config(args.url, args.page_size)
    problems = LdapSource.validate(config, {"bind_password"})
    if problems:
        raise SystemExit("\n".join(problems))
    source = LdapSource(config, {"bind_password": READER_PASSWORD})
    counts = {"identities": 0, "access": 0, "grants": 0}
    try:
        if args.out:
            out = Path(args.out)
            with (out / "identities.csv").open("w", newline="") as f:
                writer = csv.DictWriter(f, IDENTITY_COLUMNS, lineterminator="\n")
                writer.writeheader()
                for row in source.identities():
                    writer.writerow(row)
                    counts["identities"] += 1
            with (out / "access.csv").open("w", newline="") as f:
                writer = csv.DictWriter(f, ACCESS_COLUMNS, lineterminator="\n")
                writer.writeheader()
                for row in source.access():
                    writer.writerow({**row, "application": APPLICATION})
                    counts["access"] += 1
                    counts["grants"] += bool(row["entitlement_id"])
        else:
            for _ in source.identities():
                counts["identities"] += 1
            for row in source.access():
                counts["access"] += 1
                counts["grants"] += bool(row["entitlement_id"])
    finally:
        source.close()
    print(" ".join(f"{k}={v}" for k, v in counts.items()), f"pages={source.pages_read}")
    return 0


def main(argv: list[str] | None = None) -> int:
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "child-read":
        parser = argparse.ArgumentParser()
        parser.add_argument("child", choices=["child-read"])
        parser.add_argument("--url", required=True)
        parser.add_argument("--page-size", type=int, default=1000)
        parser.add_argument("--out")
        return child_read(parser.parse_args())

    from tests import ldap_servers

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="size multiplier (0.01 = smoke check)")
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument(
        "--no-identities", action="store_true", help="the connector feeds access only (no identities run)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database and the work directory")
    parser.add_argument("--data-dir", type=Path, help="default /tmp/soxgov-bench/ldap-scale-<scale>")
    parser.add_argument("--db-name", default="soxgov_ldap_bench")
    parser.add_argument("--db-host", default=os.environ.get("PGHOST", "127.0.0.1"))
    parser.add_argument("--db-port", type=int, default=int(os.environ.get("PGPORT", "5432")))
    parser.add_argument("--db-user", default=os.environ.get("PGUSER", "postgres"))
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/7"))
    args = parser.parse_args(argv)
    if not ldap_servers.slapd_available():
        raise SystemExit("slapd and slapadd are needed (Debian: apt-get install slapd)")
    args.data_dir = args.data_dir or Path(f"/tmp/soxgov-bench/ldap-scale-{args.scale}")
    args.data_dir.mkdir(parents=True, exist_ok=True)
    # Bench (import_bench.py) brings the fresh database, the environment and the step records.
    args.db_setting, args.auto_explain, args.profile, args.cprofile = [], None, False, False

    users = max(100, int(100_000 * args.scale))
    groups = max(4, int(1_000 * args.scale))
    ldif = args.data_dir / "directory.ldif"
    started = time.perf_counter()
    shape = generate(ldif, users=users, groups=groups, members=min(1_000, users), seed=args.seed)
    print(
        f"directory: {shape['users']:,} users, {shape['groups']:,} groups, {shape['memberships']:,} memberships "
        f"({ldif.stat().st_size / 1e6:,.0f} MB LDIF in {time.perf_counter() - started:.1f} s)",
        flush=True,
    )
    slapd_root = Path(tempfile.mkdtemp(prefix="slapd-", dir=args.data_dir))
    started = time.perf_counter()
    directory = ldap_servers.start_slapd(slapd_root, ldif, indexes=SLAPD_INDEXES, timeout=120)
    print(
        f"slapd: loaded with slapadd and started in {time.perf_counter() - started:.1f} s at {directory.url}"
    )

    bench = Bench(args)
    bench.env[PASSWORD_VARIABLE] = READER_PASSWORD
    csv_dir = bench.work / "read"
    csv_dir.mkdir(parents=True)
    me = [sys.executable, str(Path(__file__).resolve()), "child-read", "--url", directory.url]
    me += ["--page-size", str(args.page_size)]
    rows = shape["memberships"]
    try:
        read_only = measure("LdapSource read (rows dropped)", me, env=bench.env, rows=rows)
        read_csv = measure(
            "LdapSource read -> CSV files", [*me, "--out", str(csv_dir)], env=bench.env, rows=rows
        )

        # The pull: connector_pull reads the directory into stored CSV copies and imports them (identities
        # first, as a child run), in one process, into a fresh database.
        bench.setup_database({"application_names": [APPLICATION]})
        config = bench.work / "connector.json"
        config.write_text(json.dumps(connector_config(directory.url, args.page_size, not args.no_identities)))
        bench.checked(
            bench.manage_cmd(
                "connector_add", "--name", "corp-ldap", "--kind", "ldap", "--application", APPLICATION,
                "--config", str(config), "--secret", f"bind_password=env:{PASSWORD_VARIABLE}",
            ),
            "manage.py connector_add",
        )  # fmt: skip
        bench.psql("CHECKPOINT")
        pull = measure(
            "connector_pull (read + import)",
            bench.manage_cmd("connector_pull", "corp-ldap"),
            env=bench.env,
            rows=rows,
        )
        copies = dict(
            line.split("|", 1)
            for line in bench.psql(
                "SELECT kind, source_path FROM entitlements_connectorrun WHERE connector_id IS NOT NULL"
            ).splitlines()
        )
        phases = pull_phases(bench)
        directory.stop()  # the baseline does not share the machine with slapd

        # The baseline: the same rows (the pull's stored copies) imported as files into a fresh database.
        bench.setup_database({"application_names": [APPLICATION]})
        imported = []
        baseline_steps = [
            (
                "import_access (the pull's copy)",
                bench.manage_cmd("import_access", copies["access"], "--application", APPLICATION),
            )
        ]
        if "identities" in copies:
            identities_step = bench.manage_cmd("import_identities", copies["identities"])
            baseline_steps.insert(0, ("import_identities (the pull's copy)", identities_step))
        for name, cmd in baseline_steps:
            bench.psql("CHECKPOINT")
            imported.append(measure(name, cmd, env=bench.env, rows=rows))
        steps = [read_only, read_csv, pull, *imported]
        if any(s.exit_code for s in steps):
            return 1
        print(f"\nsource: {read_csv.stdout.strip()}")
        print(f"pull: {pull.stdout.strip().splitlines()[-6:]}")
        print(f"import_access: grants {parse_counts(imported[-1].stdout).get('grants')}")
        print("inside the pull: " + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items()))
        baseline = sum(s.seconds for s in imported)
        ratio = pull.seconds / baseline
        source_rss = max(read_only.rss_mb, read_csv.rss_mb)
        print("\n| step | wall | peak RSS |\n| --- | --- | --- |")
        for s in steps:
            print(f"| {s.name} | {s.seconds:.2f} s | {s.rss_mb:.0f} MB |")
        print(
            f"| baseline: the two imports | {baseline:.2f} s | |\n"
            f"\ngoal connector_pull within {GOAL_RATIO}x of importing the same rows as CSV: "
            f"{'met' if ratio <= GOAL_RATIO else 'MISSED'} ({ratio:.2f}x)\n"
            f"goal peak RSS under {GOAL_RSS_MB:.0f} MB: "
            f"{'met' if max(source_rss, pull.rss_mb) < GOAL_RSS_MB else 'MISSED'} "
            f"(source {source_rss:.0f} MB, whole pull {pull.rss_mb:.0f} MB)"
        )
        return 0
    finally:
        directory.stop()
        bench.cleanup()
        if not args.keep:
            shutil.rmtree(slapd_root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
