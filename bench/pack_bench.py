"""Evidence-pack benchmark: the pack of a 1M-item campaign against PostgreSQL COPY and a bare openpyxl loop.

    .venv/bin/python bench/pack_bench.py [--scale 1.0] [--csv-repeats 3] [--only-csv] [--keep] [--breakdown]
                                         [--json PATH]

1. Creates a fresh PostgreSQL database (--db-name, default soxgov_pack_bench), runs ``manage.py migrate`` in a
   child process and loads the synthetic company of bench/campaign_bench.py (its loader, unchanged: 100k
   identities, 300k accounts over 5 SOX applications, ~1M grants), launches a manager-routed campaign over every
   application with ``reviews.services.campaign_launch`` (~1M review items) and decides --decide items of the
   big manager (90% certified with a comment, 10% revoked), so decisions and evidence events are not empty.
2. Measures, in this process (Django set up once; time.perf_counter; CHECKPOINT before each timed step):
   (a) baseline: ``COPY (<the review-items query of the pack>) TO STDOUT WITH CSV HEADER`` through psycopg2
       ``copy_expert`` into a file; the query is the SQL Django compiles for the pack's own
       ``values_list(<item fields>)`` (same columns, joins and ORDER BY);
   (b) the pack's CSV writer for review_items: ``evidence.packs._write_csv`` with the Table built by
       ``evidence.packs.campaign_tables(campaign)`` (on PostgreSQL: ``COPY (<the same query, each cell formatted
       in SQL>) TO STDOUT WITH (FORMAT csv)`` into the file, see evidence/pack_csv.py);
       (a) and (b) run alternately --csv-repeats times each (a, b, a, b, ...; default 3); every repetition
       is printed and kept in the JSON (the steps' ``extra.repeats``), the steps show the medians, and the
       goal is judged on median (b) / median (a). --only-csv stops here (the pack's CSV at full size in a few
       minutes): no (c)-(f), no --breakdown, and the "pack for 1M items" goal is not judged;
   (c) baseline: a bare openpyxl write-only loop over the same tuples, fetched the same way (the same
       ``values_list().iterator(chunk_size=5000)``, streamed, not held in memory); each tuple is appended as
       fetched except the two datetime columns, which become ISO strings (openpyxl refuses time-zone-aware
       datetimes, and the pack writes ISO strings too, so both write the same cell types); no formula
       neutralising, no per-cell conversion, no sheet splitting;
   (d) the pack's XLSX writer for review_items: ``evidence.packs._write_xlsx`` with the same Table;
   and in fresh child processes (wall from spawn to exit; peak RSS = the child's own ru_maxrss from os.wait4):
   (e) ``manage.py export_evidence_pack --campaign ID --out PATH``: the whole ``build_campaign_pack`` (every
       table in three formats, checkpoint, chain, manifests, zip) plus its evidence event; the pack's size;
   (f) the offline verifier shipped in the pack: ``python <bag>/verify_pack.py PACK.zip``.
   --breakdown also runs ``build_campaign_pack`` in-process with a timer around each phase (not gated).
3. Prints a table beside the goals (issue 7: a pack for 1M review items; XLSX within 1.3x of the bare openpyxl
   loop; CSV within 1.5x of COPY TO; peak memory under 200 MB), the load with each figure, and drops the
   database unless --keep.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from campaign_bench import Bench as CampaignBench  # noqa: E402  (bench/ is not a package)
from campaign_bench import Step  # noqa: E402
from import_bench import APP_DIRS, code_changed, code_state  # noqa: E402

GOAL_XLSX_RATIO = 1.3
GOAL_CSV_RATIO = 1.5
GOAL_PEAK_RSS_MB = 200
GOAL_ITEMS = 1_000_000
DEFAULT_SEED = 20240605
DECIDE = 10_000
REVOKE_SHARE = 0.1


def _mb(path: Path) -> float:
    return path.stat().st_size / 1e6


class PackBench(CampaignBench):
    def __init__(self, args):
        args.requests = args.warmup = 0  # campaign_bench's queue options: unused here
        super().__init__(args)
        self.n["decide"] = args.decide if args.decide is not None else max(50, round(DECIDE * args.scale))
        self.out = self.work / "out"
        self.out.mkdir()

    # --- the campaign --------------------------------------------------------------------------------------

    def prepare_campaign(self):
        from reviews import services
        from reviews.models import Campaign, ReviewItem

        admin, fallback, big = self.users()
        campaign = self.make_campaign(admin, fallback)
        self.prime_item_table(campaign)
        self.timed(
            "campaign_launch (reviews.services)",
            lambda: services.campaign_launch(campaign_id=campaign.pk, user=admin),
        )
        pending = list(
            ReviewItem.objects.filter(campaign=campaign, reviewer=big, status="pending")
            .order_by("id")
            .values_list("id", flat=True)
        )
        chosen = sorted(self.rng.sample(pending, min(self.n["decide"], len(pending))))
        revoke = set(chosen[:: round(1 / REVOKE_SHARE)])
        certify = [i for i in chosen if i not in revoke]

        def decide():
            for start in range(0, len(certify), 2000):
                services.decide(item_ids=certify[start : start + 2000], user=big, certify=True,
                                comment="Bench: access confirmed.")  # fmt: skip
            if revoke:
                services.decide(item_ids=sorted(revoke), user=big, certify=False,
                                comment='Bench: not needed any more =SUM(A1)')  # fmt: skip

        self.timed(f"decide {len(certify):,} certified + {len(revoke):,} revoked", decide)
        self.timed(
            "VACUUM ANALYZE",
            lambda: self.psql("VACUUM ANALYZE reviews_reviewitem; VACUUM ANALYZE reviews_decision; "
                              "VACUUM ANALYZE evidence_evidenceevent"),
        )  # fmt: skip
        campaign = Campaign.objects.get(pk=campaign.pk)
        counts = self.sql(
            "SELECT (SELECT count(*) FROM reviews_reviewitem WHERE campaign_id = %s), "
            "(SELECT count(*) FROM reviews_decision), (SELECT count(*) FROM evidence_evidenceevent), "
            "(SELECT count(*) FROM reviews_remediationtask)",
            [campaign.pk],
            fetch=True,
        )[0]
        self.info["campaign"] = dict(
            zip(
                ("id", "items", "decisions", "evidence_events", "remediation_tasks"),
                (campaign.pk, *counts),
                strict=True,
            )
        )
        print(f"campaign {campaign.pk}: {counts[0]:,} items, {counts[1]:,} decisions, {counts[2]:,} evidence "
              f"events, {counts[3]:,} remediation tasks", flush=True)  # fmt: skip
        return campaign

    def prime_item_table(self, campaign) -> None:
        """Work-around (see bench/README.md): into a review item table of 0 pages, the launch's INSERT ... SELECT
        slows down as it fills the table (quadratic: 90k of 972k items after 2.5 minutes; presumably planned for an
        empty table, so its NOT EXISTS subplan runs per row). One rolled-back row gives the table a page, as any
        database that ever held a campaign has, and the launch takes ~35 s."""
        from django.db import transaction

        from reviews.models import ReviewItem
        from reviews.scoping import item_source
        from reviews.services import ITEM_COLUMNS

        pages = self.sql("SELECT pg_relation_size('reviews_reviewitem') / 8192", fetch=True)[0][0]
        self.info["item_table_primed"] = pages == 0
        if pages:
            return
        sql, params = item_source(campaign)
        with transaction.atomic():
            self.sql(
                f"INSERT INTO {ReviewItem._meta.db_table} ({', '.join(ITEM_COLUMNS)}) {sql} LIMIT 1", params
            )
            transaction.set_rollback(True)
        print(
            "  review item table primed with one rolled-back row (0 pages: see bench/README.md)", flush=True
        )

    # --- in-process measurements ---------------------------------------------------------------------------

    def items_table(self, campaign):
        from evidence import packs

        tables, _subjects = self.timed("evidence.packs.campaign_tables(campaign)",
                                       lambda: packs.campaign_tables(campaign))  # fmt: skip
        table = next(t for t in tables if t.name == "review_items")
        self.info["item_fields"] = table.header
        return table

    def items_queryset(self, campaign, fields: list[str]):
        """The pack's own review-items query (campaign_tables: filter(campaign).order_by("pk").values_list)."""
        from reviews.models import ReviewItem

        return ReviewItem.objects.filter(campaign=campaign).order_by("pk").values_list(*fields)

    def datetime_columns(self, fields: list[str]) -> list[int]:
        from django.db import models

        from reviews.models import ReviewItem

        found = []
        for index, name in enumerate(fields):
            model, parts = ReviewItem, name.split("__")
            for part in parts[:-1]:
                model = model._meta.get_field(part).related_model
            field = model._meta.get_field("pk" if parts[-1] == "pk" else parts[-1])
            if isinstance(field, (models.DateTimeField, models.DateField, models.TimeField)):
                found.append(index)
        return found

    def copy_baseline_run(self, campaign, fields: list[str]):
        """(a): the pack's items query, unformatted, COPY'd into a file; returns what runs it and the file."""
        from django.db import connection

        queryset = self.items_queryset(campaign, fields)
        sql, params = queryset.query.sql_with_params()
        path = self.out / "baseline_copy.csv"
        with connection.cursor() as cursor:
            select = cursor.cursor.mogrify(sql, params).decode()
        copy = f"COPY ({select}) TO STDOUT WITH CSV HEADER"
        self.info["copy_sql"] = copy

        def run():
            with connection.cursor() as cursor, path.open("w", encoding="utf-8", newline="") as handle:
                cursor.cursor.copy_expert(copy, handle)
                rows = cursor.cursor.rowcount
            if rows is None or rows < 0:
                with path.open("rb") as handle:
                    rows = sum(1 for _ in handle) - 1
            return rows

        return run, path

    def once(self, fn) -> tuple[float, float, object]:
        """One repetition, timed as Bench.step times a step (CHECKPOINT first), not added to the table."""
        self.checkpoint()
        load = os.getloadavg()[0]
        started = time.perf_counter()
        result = fn()
        return time.perf_counter() - started, load, result

    def csv_steps(self, campaign, table) -> None:
        """(a) and (b) alternately, --csv-repeats times each; the steps hold the medians, judged by their
        ratio (one COPY of 1M rows varies by a second or more on a shared machine: one pair is no verdict)."""
        from evidence import packs

        baseline, baseline_path = self.copy_baseline_run(campaign, table.header)
        pack_path = self.out / "pack_review_items.csv"
        runs = {"a": [], "b": []}
        rows = {}
        repeats = self.args.csv_repeats
        for n in range(1, repeats + 1):
            for key, fn in (("a", baseline), ("b", lambda: packs._write_csv(table, pack_path))):
                seconds, load, rows[key] = self.once(fn)
                runs[key].append({"seconds": seconds, "load": load})
                print(f"    ({key}) repetition {n}/{repeats} {seconds:9.3f} s  load {load:4.1f}", flush=True)

        def summary(name, key, path, **kw):
            times = [r["seconds"] for r in runs[key]]
            step = Step(name, statistics.median(times), statistics.median(r["load"] for r in runs[key]), **kw)
            step.count = f"{rows[key]:,} rows, {_mb(path):,.0f} MB; median of {repeats}"
            step.extra = {"rows": rows[key], "bytes": path.stat().st_size, "repeats": runs[key]}
            self.steps.append(step)
            return step

        self.baseline_csv = summary("(a) baseline: COPY (items query) TO STDOUT, CSV", "a", baseline_path,
                                    kind="baseline")  # fmt: skip
        self.baseline_csv.extra["sql"] = self.info["copy_sql"][:2000]
        step = summary("(b) pack _write_csv(review_items)", "b", pack_path)
        step.ratio = step.seconds / self.baseline_csv.seconds
        minima = min(r["seconds"] for r in runs["b"]) / min(r["seconds"] for r in runs["a"])
        step.extra["ratio_of_minima"] = minima
        step.extra["ratio_per_pair"] = [
            b["seconds"] / a["seconds"] for a, b in zip(runs["a"], runs["b"], strict=True)
        ]
        print(f"    medians: (a) {self.baseline_csv.seconds:.3f} s, (b) {step.seconds:.3f} s: "
              f"{step.ratio:.2f}x COPY (by minima {minima:.2f}x)", flush=True)  # fmt: skip
        self.info["items_written"] = rows["b"]

    def fetch_only(self, table) -> None:
        """Not gated: the Table's rows iterated and dropped: what (d) pays before writing (and what the Python CSV
        writer, used before COPY, paid: 1.69x COPY at full size)."""

        def run():
            rows = 0
            for _row in table.rows():
                rows += 1
            return rows

        step, rows = self.step("    of which fetching: iterate table.rows() only", run, kind="info")
        step.count = f"{rows:,} rows (values_list().iterator(chunk_size=5000), list(row))"
        print(f"    {step.count}")

    def bare_xlsx(self, campaign, fields: list[str]) -> None:
        from openpyxl import Workbook

        dates = self.datetime_columns(fields)
        queryset = self.items_queryset(campaign, fields)
        path = self.out / "baseline_bare.xlsx"

        def run():
            workbook = Workbook(write_only=True)
            sheet = workbook.create_sheet("review_items")
            sheet.append(fields)
            rows = 0
            for row in queryset.iterator(chunk_size=5000):
                if dates:
                    row = list(row)
                    for i in dates:
                        if row[i] is not None:
                            row[i] = row[i].isoformat()
                sheet.append(row)
                rows += 1
            workbook.save(path)
            return rows

        step, rows = self.step("(c) baseline: bare openpyxl write-only loop", run, kind="baseline")
        step.count = f"{rows:,} rows, {_mb(path):,.1f} MB; datetime columns {dates} as ISO strings"
        step.extra = {"rows": rows, "bytes": path.stat().st_size, "datetime_columns": dates}
        print(f"    {step.count}")
        self.baseline_xlsx = step

    def pack_xlsx(self, table) -> None:
        from evidence import packs

        path = self.out / "pack_review_items.xlsx"
        step, _ = self.step("(d) pack _write_xlsx(review_items)", lambda: packs._write_xlsx(table, path))
        with zipfile.ZipFile(path) as book:
            sheets = [n for n in book.namelist() if n.startswith("xl/worksheets/sheet")]
        step.count = f"{_mb(path):,.1f} MB, {len(sheets)} sheet(s)"
        step.ratio = step.seconds / self.baseline_xlsx.seconds
        step.extra = {"bytes": path.stat().st_size, "sheets": len(sheets)}
        print(f"    {step.count}; {step.ratio:.2f}x the bare loop")

    # --- child processes -----------------------------------------------------------------------------------

    def child(self, name: str, cmd: list[str], *, cwd: Path = ROOT) -> tuple[Step, str]:
        """Run ``cmd`` in a fresh child: wall time, and that child's own peak RSS from os.wait4."""
        self.checkpoint()
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            load = os.getloadavg()[0]
            started = time.perf_counter()
            proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=self.env, cwd=cwd)
            _pid, status, usage = os.wait4(proc.pid, 0)
            seconds = time.perf_counter() - started
            proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; keep Popen from waiting again
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        rss_mb = usage.ru_maxrss / 1024
        step = Step(name, seconds, load, kind="child")
        step.extra = {"peak_rss_mb": rss_mb, "cpu_seconds": usage.ru_utime + usage.ru_stime,
                      "exit_code": proc.returncode, "stdout": stdout[-2000:], "stderr": stderr[-2000:]}  # fmt: skip
        print(f"  {name:<52} {seconds:9.3f} s  load {load:4.1f}  peak RSS {rss_mb:6.0f} MB  "
              f"cpu {step.extra['cpu_seconds']:.1f} s  exit {proc.returncode}", flush=True)  # fmt: skip
        if proc.returncode != 0:
            print(stdout[-3000:] + stderr[-3000:], flush=True)
        self.steps.append(step)
        return step, stdout

    def rest(self, campaign, items) -> None:
        """Everything after the CSV steps (what --only-csv skips)."""
        from django.db import connection

        self.fetch_only(items)
        self.bare_xlsx(campaign, items.header)
        self.pack_xlsx(items)
        connection.close()  # the child's checkpoint and export see a quiet database
        pack = self.export(campaign)
        self.verify(pack)
        if self.args.breakdown:
            self.breakdown(campaign)

    def export(self, campaign) -> Path:
        pack = self.out / "pack.zip"
        cmd = [sys.executable, str(ROOT / "manage.py"), "export_evidence_pack", "--campaign", str(campaign.pk),
               "--out", str(pack)]  # fmt: skip
        step, _stdout = self.child("(e) manage.py export_evidence_pack (whole pack)", cmd)
        if step.extra["exit_code"] != 0:
            raise SystemExit("export_evidence_pack failed")
        with zipfile.ZipFile(pack) as archive:
            members = {
                i.filename.split("/", 1)[1]: (i.file_size, i.compress_size) for i in archive.infolist()
            }
        raw = sum(size for size, _ in members.values())
        with zipfile.ZipFile(pack) as archive:
            member = next(n for n in archive.namelist() if n.endswith("/data/review_items.csv"))
            with archive.open(member) as handle:
                import csv
                import io

                self.info["items_in_pack"] = sum(1 for _ in csv.reader(io.TextIOWrapper(handle, "utf-8"))) - 1
        step.count = f"pack {_mb(pack):,.0f} MB zipped ({raw / 1e6:,.0f} MB unzipped, {len(members)} files)"
        step.extra.update(pack_bytes=pack.stat().st_size, unzipped_bytes=raw,
                          members={k: {"bytes": s, "zipped": c} for k, (s, c) in sorted(members.items())})  # fmt: skip
        step.count += f", {self.info['items_in_pack']:,} items"
        print(f"    {step.count}")
        for name, (size, zipped) in sorted(members.items(), key=lambda m: -m[1][0])[:8]:
            print(f"      {size / 1e6:9.1f} MB  -> {zipped / 1e6:8.1f} MB  {name}")
        self.export_step = step
        return pack

    def verify(self, pack: Path) -> None:
        folder = self.work / "verifier"
        folder.mkdir()
        with zipfile.ZipFile(pack) as archive:
            member = next(n for n in archive.namelist() if n.endswith("/verify_pack.py"))
            (folder / "verify_pack.py").write_bytes(archive.read(member))
        step, stdout = self.child("(f) offline verifier: python verify_pack.py PACK.zip",
                                  [sys.executable, str(folder / "verify_pack.py"), str(pack)], cwd=folder)  # fmt: skip
        ok = step.extra["exit_code"] == 0 and "the pack verifies" in stdout
        step.count = "the pack verifies" if ok else "FAILED: " + (step.extra["stderr"] or stdout)[-200:]
        for line in stdout.splitlines():
            print(f"    {line}")

    # --- optional: where the end-to-end time goes ------------------------------------------------------------

    @contextmanager
    def phase_timers(self, phases: dict):
        from evidence import packs

        originals = {}

        def wrap(name):
            original = getattr(packs, name)
            originals[name] = original

            def timed(*a, **kw):
                started = time.perf_counter()
                try:
                    return original(*a, **kw)
                finally:
                    label = name if not a or not hasattr(a[0], "name") else f"{name}({a[0].name})"
                    phases[label] = phases.get(label, 0.0) + time.perf_counter() - started

            setattr(packs, name, timed)

        for name in ("campaign_tables", "checkpoint_create", "_write_csv", "_write_json", "_write_xlsx",
                     "_write_tags", "_zip", "_sha256"):  # fmt: skip
            wrap(name)
        try:
            yield phases
        finally:
            for name, original in originals.items():
                setattr(packs, name, original)

    def breakdown(self, campaign) -> None:
        from evidence import packs
        from evidence.services import Actor

        phases: dict[str, float] = {}
        with self.phase_timers(phases):
            step, _ = self.step(
                "in-process build_campaign_pack (timed phases, info)",
                lambda: packs.build_campaign_pack(campaign, self.out / "pack-inprocess.zip",
                                                  actor=Actor.system("bench")),
                kind="info",
            )  # fmt: skip
        step.extra = {"phases": phases}
        # _sha256 is also called by _write_tags: report it inside the tags' time.
        for name, seconds in sorted(phases.items(), key=lambda p: -p[1])[:14]:
            print(f"      {seconds:8.2f} s  {name}")
        self.info["breakdown"] = phases


def judge(bench: PackBench) -> list[str]:
    lines = []
    items = bench.info.get("items_in_pack", 0)
    verified = any(s.name.startswith("(f)") and s.count == "the pack verifies" for s in bench.steps)
    if bench.args.only_csv:
        lines.append(f"{'pack for 1M review items':<52} {'n/a':<7} --only-csv: no pack built")
    elif bench.args.scale >= 1:
        ok = items >= 0.95 * GOAL_ITEMS and verified
        lines.append(f"{'pack for 1M review items':<52} {'met' if ok else 'MISSED':<7} {items:,} review items in "
                     f"the pack{', verified offline' if verified else ', NOT verified'}")  # fmt: skip
    else:
        lines.append(
            f"{'pack for 1M review items':<52} {'n/a':<7} scale {bench.args.scale:g}: {items:,} items"
        )
    for s in bench.steps:
        if s.name.startswith("(b)"):
            ok, s.goal = s.ratio <= GOAL_CSV_RATIO, f"{s.ratio:.2f}x COPY <= {GOAL_CSV_RATIO:g}x"
        elif s.name.startswith("(d)"):
            ok, s.goal = s.ratio <= GOAL_XLSX_RATIO, f"{s.ratio:.2f}x bare loop <= {GOAL_XLSX_RATIO:g}x"
        elif s.name.startswith("(e)"):
            rss = s.extra["peak_rss_mb"]
            ok, s.goal = rss < GOAL_PEAK_RSS_MB, f"peak RSS {rss:.0f} MB < {GOAL_PEAK_RSS_MB} MB"
        elif s.name.startswith("(f)"):
            rss = s.extra["peak_rss_mb"]
            s.goal = f"(not a goal) peak RSS {rss:.0f} MB vs {GOAL_PEAK_RSS_MB} MB"
            continue
        else:
            continue
        s.verdict = "met" if ok else "MISSED"
        lines.append(f"{s.name:<52} {s.verdict:<7} {s.goal}")
    return lines


def table(steps: list[Step]) -> str:
    head = f"| {'step':<52} | {'wall':>9} | {'x base':>6} | {'peak RSS':>8} | {'load':>4} | {'result':<60} | goal |"
    sep = f"|{'-' * 54}|{'-' * 11}|{'-' * 8}|{'-' * 10}|{'-' * 6}|{'-' * 62}|------|"
    out = [head, sep]
    for s in steps:
        ratio = f"{s.ratio:.2f}" if s.ratio is not None else ("1.00" if s.kind == "baseline" else "")
        wall = f"{s.seconds * 1000:.1f} ms" if s.seconds < 1 else f"{s.seconds:.2f} s"
        rss = f"{s.extra['peak_rss_mb']:.0f} MB" if "peak_rss_mb" in s.extra else ""
        goal = f"{s.verdict}: {s.goal}" if s.verdict else s.goal
        out.append(
            f"| {s.name:<52} | {wall:>9} | {ratio:>6} | {rss:>8} | {s.load:>4.1f} | {s.count:<60} | {goal} |"
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="size multiplier (0.05 = smoke check)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--decide", type=int, help="items decided before the pack (default 10,000 x scale)")
    parser.add_argument("--breakdown", action="store_true",
                        help="also build the pack in-process with a timer around each phase")  # fmt: skip
    parser.add_argument(
        "--csv-repeats",
        type=int,
        default=3,
        help="runs of (a) and of (b), alternated; judged on median ratio",
    )
    parser.add_argument(
        "--only-csv", action="store_true", help="stop after the CSV steps (no fetch-only, XLSX, export, ...)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--db-name", default="soxgov_pack_bench")
    parser.add_argument("--db-host", default=os.environ.get("PGHOST", "127.0.0.1"))
    parser.add_argument("--db-port", type=int, default=int(os.environ.get("PGPORT", "5432")))
    parser.add_argument("--db-user", default=os.environ.get("PGUSER", "postgres"))
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.csv_repeats < 1:
        parser.error("--csv-repeats must be at least 1")
    if not re.fullmatch(r"soxgov_pack_bench[a-z0-9_]*", args.db_name):
        parser.error("--db-name must be a plain lower-case identifier starting with soxgov_pack_bench")

    bench = PackBench(args)
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
        print(f"company: {c['identities']:,} identities, {c['accounts']:,} accounts, {c['entitlements']:,} "
              f"entitlements, {c['grants']:,} grants over {c['applications']} SOX applications", flush=True)  # fmt: skip
        bench.setup_django()
        campaign = bench.prepare_campaign()
        print("measured steps (CHECKPOINT before each; load = 1-minute load average when the step started):",
              flush=True)  # fmt: skip
        items = bench.items_table(campaign)
        bench.csv_steps(campaign, items)
        if not args.only_csv:
            bench.rest(campaign, items)
        del items
        db_sizes = bench.sizes()
    finally:
        bench.cleanup()

    goals = judge(bench)
    changed = code_changed(code_before, code_state())
    if changed:
        print(
            f"\nWARNING: application code changed during the run, figures mix versions: {', '.join(changed)}"
        )
    print(f"\nresults (scale {args.scale:g}):")
    print(table(bench.steps))
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
                 "code_changed_during_run": changed, "goals": goals,
                 "steps": [s.__dict__ for s in bench.steps]},
                indent=2, default=str,
            )
            + "\n"
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
