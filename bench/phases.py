"""Where an import's time goes: run one import command with timers around its phases and SQL statements.

    .venv/bin/python bench/phases.py run OUT.json import_access PATH [--cprofile OUT.prof]
    .venv/bin/python bench/phases.py parse OUT.json access|identities PATH

``run`` executes the management command in this process exactly as manage.py would, with
- a timer around each pipeline function (storing the input, staging = parsing + COPY, check, diff, evidence
  queries, apply, the change digest, writing evidence), wrapped by monkey-patching module attributes;
- ``connection.execute_wrapper`` timing every SQL statement (COPY goes through the raw psycopg2 cursor, so it
  is not among them: it is the "stage" phase);
- optionally cProfile over the whole command (this slows the Python-heavy parts, parsing most of all).
``parse`` reads a file through the row-by-row connector (the path for XLSX, for CSV that the PostgreSQL fast
path hands back, and for SQLite) with no database at all: csv alone, records, records mapped to COPY values,
and rendered to COPY text by the same _CopySource the importer streams from (and two alternatives).

Nothing in the application is changed on disk; the patches live in this process only.
"""

from __future__ import annotations

import cProfile
import functools
import json
import os
import re
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soxgov.settings")


class Timers:
    def __init__(self):
        self.phases: dict[str, list[float]] = defaultdict(list)
        self.sql: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])

    def wrap(self, owner, name: str, label: str | None = None) -> None:
        original = getattr(owner, name, None)
        if original is None:  # not in this version of the application
            return
        label = label or name

        @functools.wraps(original)
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.phases[label].append(time.perf_counter() - started)

        setattr(owner, name, timed)

    def sql_wrapper(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            key = re.sub(r"\s+", " ", sql).strip()[:150]
            entry = self.sql[key]
            entry[0] += time.perf_counter() - started
            entry[1] += 1


def _since_launch() -> float | None:
    """Seconds since the benchmark launched this process (it passes its clock in BENCH_LAUNCHED_AT)."""
    launched = os.environ.get("BENCH_LAUNCHED_AT")
    return time.time() - float(launched) if launched else None


def _run(out: Path, command: str, args: list[str]) -> int:
    import django

    django.setup()
    ready = _since_launch()
    from django.core.management import call_command
    from django.db import connection

    from entitlements import services
    from entitlements.imports import access, fastpath, identities, incremental, sql
    from evidence import services as evidence_services

    timers = Timers()
    # Pipeline phases, in the order run_execute meets them.
    timers.wrap(services, "_store_input", "store input copy (sha256)")
    timers.wrap(access, "stage_fast", "access: stage_fast (COPY raw + SQL normalise)")
    timers.wrap(incremental, "summarise", "  of which incremental.summarise (per-account digests)")
    timers.wrap(incremental, "plan", "  of which incremental.plan (clean / dirty accounts)")
    timers.wrap(fastpath, "_normalise", "  of which fastpath._normalise (validate + stage rows)")
    timers.wrap(access, "stage", "access: stage (row-by-row parse + COPY)")
    timers.wrap(access, "check", "access: check")
    timers.wrap(access, "diff", "access: diff")
    timers.wrap(access, "removals_for_evidence", "access: removals_for_evidence")
    timers.wrap(access, "identities_losing_access", "access: identities_losing_access")
    timers.wrap(access, "apply", "access: apply")
    timers.wrap(access, "additions_for_evidence", "access: additions_for_evidence")
    timers.wrap(access, "changed_identities", "access: changed_identities")
    timers.wrap(identities, "stage", "identities: stage (parse + COPY)")
    timers.wrap(identities, "check", "identities: check")
    timers.wrap(identities, "diff_and_apply", "identities: diff_and_apply")
    timers.wrap(identities, "changes_for_evidence", "identities: changes_for_evidence")
    timers.wrap(services, "_history_marks", "history marks (_history_marks)")
    timers.wrap(services, "_changes_digest", "change digest (_changes_digest)")
    timers.wrap(services, "events_record", "evidence events_record")
    timers.wrap(evidence_services, "events_record", "evidence events_record (direct)")
    timers.wrap(sql, "history_insert", "  of which sql.history_insert")
    timers.wrap(services, "run_execute", "run_execute (total)")
    timers.wrap(services, "run_create", "run_create (total)")

    prof_path = None
    if "--cprofile" in args:
        i = args.index("--cprofile")
        prof_path = args[i + 1]
        args = args[:i] + args[i + 2 :]
    started = time.perf_counter()
    exit_code = 0
    profiler = cProfile.Profile() if prof_path else None
    with connection.execute_wrapper(timers.sql_wrapper):
        try:
            if profiler:
                profiler.enable()
            call_command(command, *args)
        except SystemExit as exc:
            exit_code = exc.code if isinstance(exc.code, int) else 1
        finally:
            if profiler:
                profiler.disable()
                profiler.dump_stats(prof_path)
    total = time.perf_counter() - started
    report = {
        "command": [command, *args],
        "exit_code": exit_code,
        "startup_seconds": ready,
        "done_after_launch_seconds": _since_launch(),
        "seconds": total,
        "cprofile": prof_path,
        "phases": {k: {"seconds": sum(v), "calls": len(v)} for k, v in timers.phases.items()},
        "sql": sorted(
            ({"sql": k, "seconds": v[0], "calls": v[1]} for k, v in timers.sql.items()),
            key=lambda e: -e["seconds"],
        ),
    }
    out.write_text(json.dumps(report, indent=2) + "\n")
    return exit_code


def _parse(out: Path, kind: str, path: Path) -> int:
    import django

    django.setup()
    from entitlements.connectors.files import AccessFileConnector, IdentityFileConnector
    from entitlements.connectors.problems import ProblemLog
    from entitlements.imports import sql

    manifest = json.loads((path.parent / "manifest.json").read_text())
    names = {name.lower(): i + 1 for i, name in enumerate(manifest["application_names"])}

    def connector():
        log = ProblemLog(path.name)
        if kind == "access":
            return AccessFileConnector(path, log=log, application_names=names)
        return IdentityFileConnector(path, log=log)

    def csv_only():
        # The csv module alone: the floor for any Python-side reader of this file.
        import csv

        with path.open(newline="", encoding="utf-8") as fh:
            return sum(1 for _ in csv.reader(fh))

    def records_only():
        return sum(1 for _ in connector().records())

    def staged_rows():
        # What stage() feeds to sql.load(): the records as tuples (sql._copy_line renders each as a COPY line).
        if kind == "access":
            return ((*r[:7], sql.adapt_ts(r.last_used_at), *r[8:]) for r in connector().records())
        return (tuple(r) for r in connector().records())

    def staged_rows_only():
        # The per-record mapping (adapt_ts) without rendering any text.
        return sum(1 for _ in staged_rows())

    def drain(source, size: int) -> int:
        chars = 0
        while chunk := source.read(size):
            chars += len(chunk)
        return chars

    def copy_source_default():
        # As load() streams it: _CopySource read in 8 KiB pieces (psycopg2's copy_expert default size),
        # rendered but discarded instead of sent.
        return drain(sql._CopySource(staged_rows()), 8192)

    def copy_source_1mib():
        # The same with copy_expert(..., size=1 MiB): fewer reads, and less re-slicing of the pending text.
        return drain(sql._CopySource(staged_rows()), 1 << 20)

    def csv_writer_batches():
        # The C csv.writer, one 2000-row batch per read (cannot tell None from "": needs FORCE_NOT_NULL).
        import csv
        import io
        import itertools

        rows, buffer = staged_rows(), io.StringIO()
        writer, chars = csv.writer(buffer, lineterminator="\n"), 0
        while True:
            writer.writerows(itertools.islice(rows, 2000))
            chunk = buffer.getvalue()
            if not chunk:
                return chars
            chars += len(chunk)
            buffer.seek(0)
            buffer.truncate()

    report = {"file": str(path), "kind": kind}
    for label, fn in (
        ("csv.reader only", csv_only),
        ("connector records (csv + validation)", records_only),
        ("records + tuples for COPY (adapt_ts)", staged_rows_only),
        ("records + _CopySource, read(8 KiB) (as load() does)", copy_source_default),
        ("records + _CopySource, read(1 MiB)", copy_source_1mib),
        ("records + csv.writer batches (C)", csv_writer_batches),
    ):
        started = time.perf_counter()
        result = fn()
        report[label] = {"seconds": time.perf_counter() - started, "result": result}
    out.write_text(json.dumps(report, indent=2) + "\n")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) >= 4 and argv[0] == "run":
        return _run(Path(argv[1]), argv[2], argv[3:])
    if len(argv) == 4 and argv[0] == "parse":
        return _parse(Path(argv[1]), argv[2], Path(argv[3]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
