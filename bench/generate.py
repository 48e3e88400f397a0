"""Synthetic company for the import benchmark: an identities file, a full access file and a ~1% delta.

Deterministic (one seed drives everything), streaming (rows are written as they are made; memory holds only
per-application entitlement metadata, O(entitlements), never the rows), and fast (about 1 s per 100k grants).

    .venv/bin/python bench/generate.py OUT_DIR [--scale 1.0] [--seed 20240601]

Writes OUT_DIR/identities.csv, access.csv, access_delta.csv, access_nightly.csv and manifest.json. The manifest holds the exact
sizes and the changes the delta should produce, so the benchmark can check the importer's counts.

Formats are the public contract (README "File formats"):
  identities: employee_id,email,display_name,department,title,manager_employee_id,status,termination_date,kind,
              owner_employee_id
  access:     application,account_id,account_name,employee_id,email,account_status,last_used_at,entitlement_id,
              entitlement_name,entitlement_type,privileged

The company: identities E0000000..; every 20th identity is non-human (service, system, bot, api_key) owned by
the person before it; people report up an 8-ary tree; ~3% terminated, ~2% on leave. Accounts are spread evenly
over the applications and link to a random identity by employee id and e-mail (85%), e-mail only (8%, some
upper-cased), employee id only (5%) or neither matching (2%, orphans). Grants per account follow an exponential
distribution (mean grants/accounts; ~7% of accounts hold nothing and appear as one row with no entitlement) and
favour popular entitlements. The delta, made in the same pass from an independent random stream (so the base
files do not depend on the delta settings): each grant is dropped with probability rate/2 and a new grant is
added next to it with probability rate/2; 0.05% of accounts disappear, 0.2% flip enabled/disabled, 0.2% are
re-linked to someone else, and each application gains 0.05% new accounts. The nightly file is the delta as the
next night's pull sees it: the same accounts and grants, with last_used_at moved to a later time for the
accounts used since (USED_SHARE of them, from a third random stream), which is what most nightly files change.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
import time
from pathlib import Path

IDENTITY_HEADER = [
    "employee_id",
    "email",
    "display_name",
    "department",
    "title",
    "manager_employee_id",
    "status",
    "termination_date",
    "kind",
    "owner_employee_id",
]
ACCESS_HEADER = [
    "application",
    "account_id",
    "account_name",
    "employee_id",
    "email",
    "account_status",
    "last_used_at",
    "entitlement_id",
    "entitlement_name",
    "entitlement_type",
    "privileged",
]

DEFAULTS = {"identities": 100_000, "accounts": 300_000, "entitlements": 20_000, "grants": 2_000_000}
DEFAULT_APPLICATIONS = 20
DEFAULT_SEED = 20240601
DEFAULT_DELTA_RATE = 0.01
# Bump when the output for given parameters changes, so cached data is regenerated (import_bench.py).
GENERATOR_VERSION = 3
# Share of the delta's accounts whose last_used_at moves in the nightly file.
USED_SHARE = 0.3

FIRST = [
    "Ada",
    "Alan",
    "Alice",
    "Amir",
    "Ana",
    "Ben",
    "Bea",
    "Carl",
    "Chen",
    "Chloe",
    "Dan",
    "Dara",
    "Eli",
    "Emma",
    "Eva",
    "Femi",
    "Finn",
    "Gia",
    "Hana",
    "Hugo",
    "Ian",
    "Ines",
    "Ivan",
    "Jack",
    "Jana",
    "Jin",
    "Kai",
    "Kara",
    "Lars",
    "Lea",
    "Leo",
    "Liam",
    "Lina",
    "Lola",
    "Luca",
    "Maya",
    "Mia",
    "Milo",
    "Nia",
    "Noah",
    "Nora",
    "Olga",
    "Omar",
    "Pia",
    "Raj",
    "Rosa",
    "Sam",
    "Sara",
    "Sven",
    "Tara",
    "Theo",
    "Uma",
    "Vera",
    "Wei",
    "Yara",
    "Yuki",
    "Zoe",
    "Zane",
]
LAST = [
    "Abara",
    "Bauer",
    "Becker",
    "Chen",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "Garcia",
    "Gupta",
    "Haddad",
    "Hansen",
    "Ito",
    "Jensen",
    "Kim",
    "Kowalski",
    "Larsen",
    "Lopez",
    "Meyer",
    "Moreau",
    "Muller",
    "Nakamura",
    "Nguyen",
    "Novak",
    "Okafor",
    "Olsen",
    "Patel",
    "Perez",
    "Quinn",
    "Rossi",
    "Sato",
    "Schmidt",
    "Silva",
    "Smith",
    "Suzuki",
    "Tanaka",
    "Torres",
    "Varga",
    "Wagner",
    "Weber",
    "Wong",
    "Yilmaz",
    "Zhang",
    "O'Brien",
]
DEPARTMENTS = (
    "Finance",
    "Accounting",
    "Treasury",
    "Tax",
    "Payroll",
    "HR",
    "IT Operations",
    "Engineering",
    "Security",
    "Sales",
    "Marketing",
    "Procurement",
    "Legal",
    "Internal Audit",
    "Customer Support",
    "Logistics",
)
TITLES = ("Analyst", "Senior Analyst", "Manager", "Director", "Engineer", "Specialist", "Clerk", "Controller")
NON_HUMAN_KINDS = ("service", "system", "bot", "api_key")
ENTITLEMENT_TYPES = ("role", "group", "permission")
ENTITLEMENT_WORDS = (
    "Read",
    "Write",
    "Approve",
    "Post",
    "Admin",
    "Report",
    "Export",
    "Configure",
    "Audit",
    "Release",
    "Vendor",
    "Payment",
    "Journal",
    "Ledger",
    "Payroll",
)
NON_HUMAN_EVERY = 20  # identity i is non-human when i % 20 == 19
MANAGER_FANOUT = 8


# --- Identities ---------------------------------------------------------------------------------------------


def employee_id(i: int) -> str:
    return f"E{i:07d}"


def _is_non_human(i: int) -> bool:
    return i % NON_HUMAN_EVERY == NON_HUMAN_EVERY - 1


def _names(i: int) -> tuple[str, str]:
    # A cheap deterministic mix, so names need no random draw (and access rows can recompute them).
    h = (i * 2654435761) & 0xFFFFFFFF
    return FIRST[h % len(FIRST)], LAST[(h >> 8) % len(LAST)]


def email(i: int) -> str:
    if _is_non_human(i):
        return f"svc.{i}@example.com"
    first, last = _names(i)
    return f"{first}.{last}.{i}@example.com".lower().replace("'", "")


def display_name(i: int) -> str:
    if _is_non_human(i):
        return f"{NON_HUMAN_KINDS[(i // NON_HUMAN_EVERY) % 4]}-{i}"
    first, last = _names(i)
    return f"{last}, {first}"  # a comma: CSV quoting is exercised on every human row


def _manager(i: int) -> int | None:
    if i == 0 or _is_non_human(i):
        return None
    m = (i - 1) // MANAGER_FANOUT
    if _is_non_human(m):
        m -= 1
    return m


def write_identities(path: Path, n: int, rng: random.Random) -> dict:
    counts = {"rows": 0, "human": 0, "non_human": 0, "terminated": 0, "leave": 0}
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(IDENTITY_HEADER)
        batch = []
        for i in range(n):
            r = rng.random()
            status, term = "active", ""
            if r < 0.03:
                status = "terminated"
                term = f"2024-{1 + int(r * 400) % 12:02d}-{1 + int(r * 9000) % 28:02d}"
                counts["terminated"] += 1
            elif r < 0.05:
                status = "leave"
                counts["leave"] += 1
            manager = _manager(i)
            if _is_non_human(i):
                counts["non_human"] += 1
                kind = NON_HUMAN_KINDS[(i // NON_HUMAN_EVERY) % 4]
                # Technical identities have no title: an empty field that must stay "" (not NULL) on import.
                row = [employee_id(i), email(i), display_name(i), DEPARTMENTS[i % len(DEPARTMENTS)], "", "",
                       status, term, kind, employee_id(i - 1)]  # fmt: skip
            else:
                counts["human"] += 1
                row = [employee_id(i), email(i), display_name(i), DEPARTMENTS[(i // 7) % len(DEPARTMENTS)],
                       TITLES[(i // 3) % len(TITLES)], "" if manager is None else employee_id(manager), status,
                       term, "human", ""]  # fmt: skip
            batch.append(row)
            if len(batch) >= 5000:
                w.writerows(batch)
                batch.clear()
        w.writerows(batch)
        counts["rows"] = n
    return counts


# --- Access ---------------------------------------------------------------------------------------------------


def application_names(count: int) -> list[str]:
    return [f"BenchApp{p + 1:02d}" for p in range(count)]


class _App:
    """Per-application entitlement metadata: the only state that lives for a whole application."""

    def __init__(self, p: int, name: str, n_entitlements: int):
        self.name = name
        self.ent_ids = [
            f"{name[-2:]}-{ENTITLEMENT_TYPES[e % 3][0].upper()}{e:05d}" for e in range(n_entitlements)
        ]
        self.ent_rest = []  # (name, type, privileged) per entitlement
        for e in range(n_entitlements):
            words = f"{ENTITLEMENT_WORDS[e % len(ENTITLEMENT_WORDS)]} {ENTITLEMENT_WORDS[(e // 15) % 15]}"
            privileged = "true" if e % 25 == 0 else "false"
            self.ent_rest.append((f"{name} {words} {e}", ENTITLEMENT_TYPES[e % 3], privileged))


def _privileged(ents: list[int]) -> bool:
    return any(e % 25 == 0 for e in ents)


def _pick_entitlements(rng: random.Random, n_ent: int, k: int, exclude=()) -> list[int]:
    """k distinct entitlement indexes, skewed towards low (popular) indexes."""
    k = min(k, max(n_ent // 2, 1))
    chosen: set[int] = set()
    tries = 0
    while len(chosen) < k and tries < k * 20:
        e = int(n_ent * rng.random() ** 2)
        tries += 1
        if e not in exclude:
            chosen.add(e)
    return sorted(chosen)


def _link(rng: random.Random, j: int, n_identities: int) -> tuple[str, str, str, int | None]:
    """(employee_id, email, account_name, identity index it resolves to) for a new account."""
    i = rng.randrange(n_identities)
    r = rng.random()
    if r < 0.02:  # orphan: the person is unknown to HR
        return f"X{j:07d}", f"former.{j}@contractor.example.net", f"Former user {j}", None
    if r < 0.10:  # e-mail only, some in upper case (matched case-insensitively)
        mail = email(i)
        return "", mail.upper() if r < 0.04 else mail, display_name(i), i
    if r < 0.15:  # employee id only
        return employee_id(i), "", display_name(i), i
    return employee_id(i), email(i), display_name(i), i


def _last_used(rng: random.Random) -> str:
    if rng.random() < 0.1:
        return ""
    d = rng.randrange(600)  # days back from 2025-06-30, roughly
    month, day = 12 - (d // 28) % 12, 1 + d % 28
    year = 2025 - d // 336
    return f"{year}-{month:02d}-{day:02d}T{d % 24:02d}:{(d * 7) % 60:02d}:00+00:00"


def _used_again(rng: random.Random, n: int) -> str:
    """A last_used_at later than any _last_used() value (those end in December 2025)."""
    return f"2026-01-02T{n % 24:02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}+00:00"


def write_access(
    full_path: Path,
    delta_path: Path,
    nightly_path: Path,
    *,
    n_identities: int,
    n_accounts: int,
    n_entitlements: int,
    n_grants: int,
    n_applications: int,
    delta_rate: float,
    rng: random.Random,
    drng: random.Random,
    nrng: random.Random,
) -> dict:
    names = application_names(n_applications)
    mean_k = n_grants / max(n_accounts, 1)
    full = {"rows": 0, "accounts": 0, "grants": 0, "entitlements": 0, "accounts_without_grants": 0}
    delta = {
        "rows": 0,
        "grants_added": 0,
        "grants_removed": 0,
        "accounts_added": 0,
        "accounts_removed": 0,
        "accounts_changed": 0,
        "accounts_disabled_or_enabled": 0,
        "accounts_relinked": 0,
        "entitlements_added": 0,
    }
    nightly = {"rows": 0, "accounts_used": 0}
    half = delta_rate / 2
    with (
        full_path.open("w", newline="", encoding="utf-8") as f_full,
        delta_path.open("w", newline="", encoding="utf-8") as f_delta,
        nightly_path.open("w", newline="", encoding="utf-8") as f_nightly,
    ):
        wf = csv.writer(f_full, lineterminator="\n")
        wd = csv.writer(f_delta, lineterminator="\n")
        wn = csv.writer(f_nightly, lineterminator="\n")
        for writer in (wf, wd, wn):
            writer.writerow(ACCESS_HEADER)
        bf: list[list[str]] = []
        bd: list[list[str]] = []
        bn: list[list[str]] = []

        def to_delta(rows: list[list[str]]) -> None:
            """The delta's rows of one account, and the nightly file's: the same, but for a moved last_used_at."""
            delta["rows"] += len(rows)
            bd.extend(rows)
            nightly["rows"] += len(rows)
            if nrng.random() < USED_SHARE:
                nightly["accounts_used"] += 1
                used = _used_again(nrng, nightly["accounts_used"])
                rows = [[*r[:6], used, *r[7:]] for r in rows]
            bn.extend(rows)

        def rows_for(app, acct, name, emp, mail, status, used, ents):
            if not ents:
                return [[app.name, acct, name, emp, mail, status, used, "", "", "", "false"]]
            ids, rest = app.ent_ids, app.ent_rest
            return [[app.name, acct, name, emp, mail, status, used, ids[e], *rest[e]] for e in ents]

        for p, app_name in enumerate(names):
            # Spread remainders so the totals are exact.
            n_ent = n_entitlements * (p + 1) // n_applications - n_entitlements * p // n_applications
            n_acc = n_accounts * (p + 1) // n_applications - n_accounts * p // n_applications
            app = _App(p, app_name, max(n_ent, 1))
            n_ent = len(app.ent_ids)
            used: set[int] = set()  # entitlements held in the full file
            d_used: set[int] = set()  # ... and in the delta
            for j in range(n_acc):
                acct = f"{app_name.lower()}-{j:07d}"
                emp, mail, acct_name, who = _link(rng, j, n_identities)
                status = "disabled" if rng.random() < 0.03 else "enabled"
                last = _last_used(rng)
                k = int(rng.expovariate(1 / mean_k) + 0.5) if mean_k > 0 else 0
                ents = _pick_entitlements(rng, n_ent, k) if k else []
                used.update(ents)
                full["accounts"] += 1
                full["grants"] += len(ents)
                full["accounts_without_grants"] += not ents
                rows = rows_for(app, acct, acct_name, emp, mail, status, last, ents)
                full["rows"] += len(rows)
                bf.extend(rows)

                # The delta, from its own random stream.
                r = drng.random()
                if r < 0.0005:
                    delta["accounts_removed"] += 1
                    delta["grants_removed"] += len(ents)
                else:
                    d_status, d_emp, d_mail, d_name, d_who = status, emp, mail, acct_name, who
                    if r < 0.0025:
                        d_status = "enabled" if status == "disabled" else "disabled"
                        delta["accounts_disabled_or_enabled"] += 1
                    elif r < 0.0045:
                        i = drng.randrange(n_identities)
                        d_emp, d_mail, d_name, d_who = employee_id(i), email(i), display_name(i), i
                        delta["accounts_relinked"] += d_who != who
                    held = set(ents)
                    d_ents: list[int] = []
                    for e in ents:
                        if drng.random() >= half:
                            d_ents.append(e)
                        else:
                            delta["grants_removed"] += 1
                        if drng.random() < half:
                            extra = _pick_entitlements(drng, n_ent, 1, exclude=held)
                            if extra:
                                held.add(extra[0])
                                d_ents.append(extra[0])
                                delta["grants_added"] += 1
                    d_ents.sort()
                    d_used.update(d_ents)
                    # What the importer compares: name, identity, status, privileged (any privileged grant).
                    if (d_name, d_who, d_status, _privileged(d_ents)) != (
                        acct_name,
                        who,
                        status,
                        _privileged(ents),
                    ):
                        delta["accounts_changed"] += 1
                    to_delta(rows_for(app, acct, d_name, d_emp, d_mail, d_status, last, d_ents))
                if len(bf) >= 5000:
                    wf.writerows(bf)
                    bf.clear()
                if len(bd) >= 5000:
                    wd.writerows(bd)
                    bd.clear()
                    wn.writerows(bn)
                    bn.clear()
            # New accounts in the delta, after the application's existing ones.
            for j in range(n_acc, n_acc + max(1, round(n_acc * 0.0005))):
                acct = f"{app_name.lower()}-{j:07d}"
                emp, mail, acct_name, _who = _link(drng, j, n_identities)
                k = max(1, int(drng.expovariate(1 / mean_k) + 0.5)) if mean_k > 0 else 0
                ents = _pick_entitlements(drng, n_ent, k) if k else []
                d_used.update(ents)
                delta["accounts_added"] += 1
                delta["grants_added"] += len(ents)
                to_delta(rows_for(app, acct, acct_name, emp, mail, "enabled", _last_used(drng), ents))
            full["entitlements"] += len(used)
            delta["entitlements_added"] += len(d_used - used)
        wf.writerows(bf)
        wd.writerows(bd)
        wn.writerows(bn)
    return {"full": full, "delta": delta, "nightly": nightly}


# --- Entry points -------------------------------------------------------------------------------------------


def sizes_for(scale: float) -> dict[str, int]:
    return {k: max(1, round(v * scale)) for k, v in DEFAULTS.items()}


def generate(
    out_dir: Path,
    *,
    scale: float = 1.0,
    seed: int = DEFAULT_SEED,
    applications: int = DEFAULT_APPLICATIONS,
    delta_rate: float = DEFAULT_DELTA_RATE,
    sizes: dict[str, int] | None = None,
) -> dict:
    """Write the three files and manifest.json into ``out_dir``; return the manifest."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sizes = {**sizes_for(scale), **(sizes or {})}
    started = time.perf_counter()
    rng = random.Random(seed)
    drng = random.Random(seed + 1)
    identities = write_identities(out_dir / "identities.csv", sizes["identities"], rng)
    access = write_access(
        out_dir / "access.csv",
        out_dir / "access_delta.csv",
        out_dir / "access_nightly.csv",
        n_identities=sizes["identities"],
        n_accounts=sizes["accounts"],
        n_entitlements=sizes["entitlements"],
        n_grants=sizes["grants"],
        n_applications=applications,
        delta_rate=delta_rate,
        rng=rng,
        drng=drng,
        nrng=random.Random(seed + 2),
    )
    manifest = {
        "parameters": {
            "generator_version": GENERATOR_VERSION,
            "scale": scale,
            "seed": seed,
            "applications": applications,
            "delta_rate": delta_rate,
            "sizes": sizes,
        },
        "application_names": application_names(applications),
        "files": {
            name: {"path": str(out_dir / name), "bytes": (out_dir / name).stat().st_size}
            for name in ("identities.csv", "access.csv", "access_delta.csv", "access_nightly.csv")
        },
        "identities": identities,
        "access": access["full"],
        "delta": access["delta"],
        "nightly": access["nightly"],
        "seconds": round(time.perf_counter() - started, 2),
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiplies every default size (default 1.0)"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--applications", type=int, default=DEFAULT_APPLICATIONS)
    parser.add_argument("--delta-rate", type=float, default=DEFAULT_DELTA_RATE)
    for name in DEFAULTS:
        parser.add_argument(f"--{name}", type=int, help=f"override the number of {name}")
    args = parser.parse_args(argv)
    overrides = {k: getattr(args, k) for k in DEFAULTS if getattr(args, k) is not None}
    manifest = generate(
        args.out_dir,
        scale=args.scale,
        seed=args.seed,
        applications=args.applications,
        delta_rate=args.delta_rate,
        sizes=overrides,
    )
    json.dump({k: manifest[k] for k in ("identities", "access", "delta", "seconds")}, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
