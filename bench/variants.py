"""Time SQL variants against the import pipeline's own temporary tables, then roll everything back.

    DATABASE_URL=postgres://.../soxgov_bench .venv/bin/python bench/variants.py ACCESS.csv VARIANTS.py \
        [--upto stage|check|diff] [--repeat 2]

Runs an access pull of ACCESS.csv up to ``--upto`` (the fast path's staging, which includes the incremental
plan; then check(); then diff()) inside one transaction, exactly as ``services._execute_access`` does, and
then executes VARIANTS.py with these names defined:

- ``t(label, statement, params=(), explain=False)``: runs one statement in a savepoint that is rolled back
  (so an INSERT into a pipeline table can be timed again and again), prints its wall time and first rows, or
  its ``EXPLAIN (ANALYZE, BUFFERS)`` plan with ``explain=True``;
- ``sql`` (entitlements.imports.sql), ``incremental``, ``access``, ``fastpath``: the pipeline's modules, for
  their table names (``incremental.GROUPS``, ``access.STAGE`` ...) and SQL helpers;
- ``staged``: the fast path's result (rows, applications, the incremental plan).

Nothing is committed: the whole transaction is rolled back at the end. Point DATABASE_URL at a database that
holds the state you want to measure from, e.g. a copy of the bench database kept after its full import
(``import_bench.py --keep``, then ``CREATE DATABASE x TEMPLATE soxgov_bench`` to make copies to spend). This is
how the fourth round's statements in bench/README.md were measured before they were changed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soxgov.settings")


class _RollBack(Exception):
    pass


def _timer(connection, repeat: int):
    def t(label: str, statement: str, params=(), explain: bool = False) -> float:
        best = None
        for _ in range(1 if explain else repeat):
            with connection.cursor() as cursor:
                cursor.execute("SAVEPOINT soxgov_variant")
                started = time.perf_counter()
                cursor.execute(("EXPLAIN (ANALYZE, BUFFERS) " if explain else "") + statement, params)
                seconds = time.perf_counter() - started
                rows = cursor.fetchall() if cursor.description else []
                cursor.execute("ROLLBACK TO SAVEPOINT soxgov_variant")
            best = seconds if best is None else min(best, seconds)
        if explain:
            print(f"{best:8.3f} s  {label}")
            print("\n".join(row[0] for row in rows))
        else:
            shown = f"  -> {rows[:3]}" if rows else ""
            print(f"{best:8.3f} s  {label}{shown}")
        return best

    return t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("access_file", type=Path)
    parser.add_argument("variants", type=Path, help="a Python file calling t(label, statement, ...)")
    parser.add_argument("--upto", choices=("stage", "check", "diff"), default="stage")
    parser.add_argument("--repeat", type=int, default=2, help="runs per statement; the best is printed")
    args = parser.parse_args()

    import django

    django.setup()
    from django.db import connection, transaction

    from entitlements import services
    from entitlements.connectors.problems import ProblemLog
    from entitlements.imports import access, fastpath, incremental, sql
    from entitlements.models import Application

    if connection.vendor != "postgresql":
        print(
            "variants.py measures the PostgreSQL fast path: point DATABASE_URL at PostgreSQL", file=sys.stderr
        )
        return 2
    try:
        with transaction.atomic():
            services._tune_session()
            names = {name.lower(): pk for pk, name in Application.objects.values_list("pk", "name")}
            log = ProblemLog(args.access_file.name)
            started = time.perf_counter()
            staged = access.stage_fast(
                args.access_file, log=log, application_names=names, default_application=None
            )
            if staged is None:
                print("the fast path stepped aside for this file: nothing to measure", file=sys.stderr)
                return 1
            print(f"stage_fast {time.perf_counter() - started:.2f} s: {staged.plan}")
            if args.upto in ("check", "diff"):
                started = time.perf_counter()
                access.check(log=log, scope=staged.applications)
                print(f"check {time.perf_counter() - started:.2f} s")
            if args.upto == "diff":
                started = time.perf_counter()
                result = access.diff(scope=staged.applications, plan=staged.plan)
                print(f"diff {time.perf_counter() - started:.2f} s: {result.counts}")
            namespace = {
                "t": _timer(connection, args.repeat),
                "sql": sql,
                "incremental": incremental,
                "access": access,
                "fastpath": fastpath,
                "staged": staged,
            }
            exec(compile(args.variants.read_text(), str(args.variants), "exec"), namespace)
            raise _RollBack
    except _RollBack:
        print("rolled back: the database is as it was")
    return 0


if __name__ == "__main__":
    sys.exit(main())
