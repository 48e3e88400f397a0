"""Incremental pulls: after the raw COPY, find the accounts whose rows may differ from what is applied.

A nightly access file repeats yesterday's file almost entirely. Normalising, checking and diffing all of its rows
costs tens of seconds at millions of grants; this module lets the pipeline stage only the accounts that can
have changed ("dirty") and leave the rest ("clean") as they are, after one cheap aggregate over the raw rows.

Per raw account group (application cell, account cell) the aggregate hashes every cell of every row but
``last_used_at`` (a sum of 64-bit row hashes, so row order does not matter; a row's hash chains its cells'
hashes) into a digest, which a pull stores on each account it stages (``Account.pull_digest``) when the
account's rows name one employee id and one e-mail. ``last_used_at`` moves every day for active accounts; it
is compared and updated on its own.

An account is clean only when all of this holds, so a clean account is one the full path would leave as it is:

- a database account with the same key carries the same digest: its rows are the rows a pull applied;
- its rows carry one ``last_used_at``, and a valid one;
- its identity link is what resolving its employee id and e-mail against today's identities gives (new hires
  and changed e-mails re-link accounts without the file changing);
- nothing but a pull changed the account or its grants since its application's last pull (grant or account
  history newer than that pull, or up to a day before it, makes it dirty; pulls write their history at
  exactly their run's start time, and those instants are skipped).

The incremental path is off for the whole run when an entitlement was edited outside a pull since the last
pull, when a row leaves an entitlement's name empty (whether other rows name it is the full path's call), when
an application of the file was last pulled more than MAX_PULLS_BETWEEN pulls ago, or (fastpath.py) when the
staged rows would rename or re-flag an entitlement that clean accounts also hold: the full path then re-reads
every row. One thing a skipped account does not repeat: the warning about an exact duplicate row (the
duplicate is merged either way). Dirty is always safe, only slower. The digest is a change
detector (a hash sum, not a cryptographic commitment); ``SOXGOV_IMPORT_INCREMENTAL=0`` makes every pull
re-read every row.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools

from django.conf import settings
from django.db import models

from entitlements.imports import sql
from entitlements.models import Account, Application, ConnectorRun, Entitlement, Grant, Identity

GROUPS = "soxgov_pull_account"
DIRTY = "soxgov_pull_dirty"
TOUCHED = "soxgov_pull_touched"
KEPT = "soxgov_pull_kept"
# Edits that wait on a pull's locks commit after it with an earlier time; a day covers any pull's duration.
MARGIN = dt.timedelta(days=1)
# Each pull since the scope's oldest last pull is a range boundary in the history queries; past this many the
# run reads every row instead.
MAX_PULLS_BETWEEN = 200
# Part of every digest: a new value makes every stored digest stale, so the next pull of each application
# re-reads every row. Raise it whenever a release changes what staging makes of an unchanged file, so that data
# an earlier release staged otherwise is put right. 2 (2026-11-30): cells no longer lose a "v" at their ends
# (fastpath.WS spelled the vertical tab as \v, which PostgreSQL reads as the letter v).
DIGEST_VERSION = 2

T_ACCOUNT = Account._meta.db_table
T_IDENTITY = Identity._meta.db_table
T_APPLICATION = Application._meta.db_table
H_GRANT = Grant.history.model._meta.db_table
H_ACCOUNT = Account.history.model._meta.db_table
H_ENTITLEMENT = Entitlement.history.model._meta.db_table
T_ENTITLEMENT = Entitlement._meta.db_table


@dataclasses.dataclass(frozen=True)
class Totals:
    """The file as the summary sees it: rows per application (None: a name that matches none), and whether a row
    names an entitlement but leaves its name empty."""

    rows_by_application: dict[int | None, int]
    unnamed: bool

    @property
    def rows(self) -> int:
        return sum(self.rows_by_application.values())

    @property
    def applications(self) -> set[int]:
        return {a for a in self.rows_by_application if a is not None}


@dataclasses.dataclass(frozen=True)
class Plan:
    """What the summary found. ``incremental``: only the dirty accounts' rows are staged."""

    incremental: bool
    dirty_rows: int
    clean_accounts: int
    totals: Totals

    @property
    def rows(self) -> int:
        return self.totals.rows


def summarise(*, raw: str, app_names: str, cell, default: int | None, trim, dotted_i: str) -> Totals:
    """One row per raw account group of ``raw``: its digests and claim, normalised; and the file's totals.

    ``cell(name)`` is the SQL for a column's raw text (a text literal when the file lacks it); the raw table
    holds no NULLs (COPY ran with FORCE_NOT_NULL). One pass, no sort: a hash aggregate of a row hash and
    four MIN/MAX, which is what keeps a no-change pull of millions of rows to seconds. Nothing per group
    costs more than an md5 here: ``last_used_at`` is validated and cast later, only where it moved.
    ``trim(sql)`` is the SQL that cuts what Python's str.strip() cuts from a cell's ends.
    """
    # The run's application stands in for an empty cell only; a name that matches no application leaves the
    # group without one, so it is dirty and staging refuses it (as the full path does). So does a name holding
    # ``dotted_i``, the character PostgreSQL lowers otherwise than Python (staging steps aside for it).
    application_id = (
        f"CASE WHEN n.id IS NULL AND {trim('g.raw_app')} <> '' THEN NULL ELSE COALESCE(n.id, {int(default)}) END"
        if default is not None
        else "n.id"
    )

    # A row's hash chains one hash per cell, each seeded with the one before: column boundaries and order
    # count, as in a ROW() hash, at half its cost (measured: 1.2 s against 2.4 s over 2M rows).
    hashed = "0"
    for column in DIGESTED:
        hashed = f"hashtextextended({cell(column)}, {hashed})"
    # Whether a row names an entitlement but leaves its name empty: trimmed only when the name starts with a
    # space or a control character, as almost none does.
    name = cell("entitlement_name")
    unnamed = (
        f"CASE WHEN {name} = '' THEN {cell('entitlement_id')} <> '' WHEN ascii({name}) > 32 THEN FALSE "
        f"ELSE {cell('entitlement_id')} <> '' AND {trim(name)} = '' END"
    )
    sql.create_temp(
        GROUPS,
        """raw_app TEXT NOT NULL, raw_key TEXT NOT NULL, n BIGINT NOT NULL, digest VARCHAR(64),
        used TEXT NOT NULL, application_id BIGINT, account_key TEXT NOT NULL, employee_id TEXT, email TEXT,
        unnamed BOOLEAN NOT NULL, shared BOOLEAN NOT NULL DEFAULT FALSE""",
    )
    # The digest is two parts: the rows but last_used_at with DIGEST_VERSION (an md5, 32 characters), then
    # last_used_at (a 64-bit hash, 16 hex digits; a second md5 of every group cost 0.2-0.5 s more over 300k
    # groups). NULL unless last_used_at is the same on every row, which makes the account dirty: staging then
    # takes the latest, as the full path does.
    # The e-mail is lowered in the database's collation, as staging and the identities' LOWER(email) lower it:
    # MIN(... COLLATE "C") hands lower() the C collation, which lowers ASCII letters only.
    rows_part = f"md5('{int(DIGEST_VERSION)}:' || g.n || ':' || g.h)"
    used_part = "lpad(to_hex(hashtextextended(g.used_min, 0)), 16, '0')"
    sql.execute(
        f"""INSERT INTO {GROUPS} (raw_app, raw_key, n, digest, used, application_id, account_key, employee_id, email,
                                  unnamed)
        SELECT g.raw_app, g.raw_key, g.n, CASE WHEN g.used_min = g.used_max THEN {rows_part} || {used_part} END,
               {trim("g.used_min")}, {application_id}, {trim("g.raw_key")},
               NULLIF({trim("g.employee_id")}, ''), NULLIF(lower(({trim("g.email")}) COLLATE "default"), ''), g.unnamed
        FROM (SELECT {cell("application")} AS raw_app, {cell("account_id")} AS raw_key, COUNT(*) AS n,
                     SUM({hashed}) AS h,
                     MIN({cell("employee_id")} COLLATE "C") AS employee_id, MIN({cell("email")} COLLATE "C") AS email,
                     MIN({cell("last_used_at")} COLLATE "C") AS used_min,
                     MAX({cell("last_used_at")} COLLATE "C") AS used_max,
                     BOOL_OR({unnamed}) AS unnamed
              FROM {raw} GROUP BY 1, 2) g
        LEFT JOIN {app_names} n ON n.name = lower({trim("g.raw_app")}) AND strpos(g.raw_app, {dotted_i}) = 0"""
    )
    # Without statistics PostgreSQL plans merge joins over these temporary tables, sorting hundreds of
    # thousands of keys in the database's collation: seconds, where a hash join takes a fraction. Only the
    # join keys (the raw keys are only copied out of GROUPS): statistics of every text column cost 0.21 s over
    # 300k groups, of these two about 0.08 s.
    sql.execute(f"ANALYZE {GROUPS} (application_id, account_key)")
    # Everything the pull asks of the groups as a whole, in one scan of them (five took 0.31 s, one 0.08 s):
    # rows per application, empty entitlement names, and whether two raw groups can be one account (keys that
    # differ only in spaces, or the application's case). Such an account gets no digest (diff() joins on it)
    # and is always dirty; most files rule it out here, without the grouping UPDATE (0.2 s over 300k groups).
    totals = sql.fetchall(
        f"""SELECT application_id, SUM(n), BOOL_OR(unnamed), BOOL_OR(raw_key <> account_key)
                   OR (application_id IS NOT NULL AND MIN(raw_app COLLATE "C") <> MAX(raw_app COLLATE "C"))
            FROM {GROUPS} GROUP BY application_id"""
    )
    if any(possible for *_, possible in totals):
        sql.execute(
            f"""UPDATE {GROUPS} SET shared = TRUE WHERE (application_id, account_key) IN (
                SELECT application_id, account_key FROM {GROUPS} GROUP BY application_id, account_key
                HAVING COUNT(*) > 1)"""
        )
    return Totals(
        rows_by_application={application: int(n) for application, n, _, _ in totals},
        unnamed=any(unnamed for _, _, unnamed, _ in totals),
    )


# Every cell but last_used_at, in file order; the application and account cells are the group's key.
DIGESTED = (
    "account_name",
    "employee_id",
    "email",
    "account_status",
    "entitlement_id",
    "entitlement_name",
    "entitlement_type",
    "privileged",
)


def plan(*, scope: set[int], totals: Totals, valid, cast) -> Plan:
    """Sort the groups into clean (KEPT) and dirty (DIRTY); decide whether to go incremental.

    ``valid(sql)`` is the SQL telling whether a trimmed ``last_used_at`` text is one the fast path accepts,
    ``cast(sql)`` the SQL that casts one: both are applied only to the clean accounts whose ``last_used_at``
    moved.
    """
    rows = totals.rows
    full = Plan(incremental=False, dirty_rows=rows, clean_accounts=0, totals=totals)
    if not (settings.SOXGOV_IMPORT_INCREMENTAL and scope):
        return full
    if not Application.objects.filter(pk__in=scope, last_pulled_at__isnull=False).exists():
        return full  # never pulled: no account carries a digest yet
    # A row that leaves an entitlement's name empty: the full path refuses the file if other rows name it, and
    # the clean accounts' rows are not read here, so only the full path can tell.
    if totals.unnamed:
        return full
    windows = _since_last_pulls(scope)
    if windows is None or _entitlements_edited(windows):
        return full
    _touched_outside_pulls(windows)
    # The accounts that stay as they are (KEPT): same rows as the pull that applied them, the same identity link
    # when resolved as diff() resolves it (employee id first, then e-mail), not edited outside pulls since,
    # and, where last_used_at moved, a valid one: it is validated like a staged one (a bad one makes the
    # account dirty, so that staging explains it). The CASE validates only where it moved; a condition on
    # ``g`` alone would be evaluated for every group, before the join.
    #
    # The identity link is checked from the account's side: when its linked identity carries the group's
    # employee id (or, for a group without one, its e-mail), resolving would give that identity again, as
    # employee ids and e-mails are unique among identities. Only the other groups (orphans, links by e-mail
    # where an employee id is given, moved links) resolve the claim, by index probes. Joining every group to
    # the identities twice cost more (300k groups: 1.4 s against 1.0 s for the statement).
    #
    # A digest's first 32 characters are its rows' part, so with those equal, "last_used_at moved" is the
    # whole digests differing. Equal whole digests are tested first: they are what almost every account has,
    # and comparing two columns costs less than cutting the parts out of both (300k groups: 0.87 s against
    # 1.3 s for the statement).
    #
    # One pass sorts every group into KEPT or DIRTY (a group matches at most one account, as account keys are
    # unique per application): the clean test once, where filling DIRTY by an anti-join with KEPT read all the
    # groups again (0.86 s against 1.05 s for both over 300k groups). The dirty groups carry what diff() reads
    # of them (their digests, whether they are in the file), so that it joins these thousands of rows instead
    # of the hundreds of thousands of GROUPS; the clean ones whose last_used_at moved carry what
    # refresh_last_used() writes: the value, cast here (an impossible date raises, and the fast path steps
    # aside), and the new digest.
    moved = "a.pull_digest <> g.digest"
    sql.create_temp(
        KEPT,
        f"""n BIGINT NOT NULL, account_pk BIGINT NOT NULL, used_moved BOOLEAN NOT NULL,
        last_used_at {sql.ts_type()}, digest VARCHAR(64)""",
    )
    sql.create_temp(
        DIRTY,
        """raw_app TEXT NOT NULL, raw_key TEXT NOT NULL, application_id BIGINT, account_key TEXT NOT NULL,
        digest VARCHAR(64), shared BOOLEAN NOT NULL, PRIMARY KEY (raw_app, raw_key)""",
    )
    sql.execute(
        f"""WITH sorted AS (
            SELECT g.n, g.raw_app, g.raw_key, g.application_id, g.account_key, g.digest, g.shared,
                   g.used, a.id AS account_pk, {moved} AS used_moved,
                   a.id IS NOT NULL AND COALESCE(
                       NOT g.shared
                       AND CASE WHEN i.employee_id = g.employee_id THEN TRUE
                                WHEN g.employee_id IS NULL AND LOWER(i.email) = g.email THEN TRUE
                                ELSE COALESCE(a.identity_id, 0) = COALESCE(
                                    (SELECT ie.id FROM {T_IDENTITY} ie WHERE ie.employee_id = g.employee_id),
                                    (SELECT im.id FROM {T_IDENTITY} im
                                     WHERE g.email IS NOT NULL AND LOWER(im.email) = g.email),
                                    0) END
                       AND NOT EXISTS (SELECT 1 FROM {TOUCHED} t WHERE t.id = a.id)
                       AND CASE WHEN {moved} THEN {valid("g.used")} ELSE TRUE END, FALSE) AS clean
            FROM {GROUPS} g
            LEFT JOIN {T_ACCOUNT} a ON a.application_id = g.application_id AND a.account_id = g.account_key
                AND (a.pull_digest = g.digest OR left(a.pull_digest, 32) = left(g.digest, 32))
            LEFT JOIN {T_IDENTITY} i ON i.id = a.identity_id),
        kept AS (
            INSERT INTO {KEPT} (n, account_pk, used_moved, last_used_at, digest)
            SELECT n, account_pk, used_moved, CASE WHEN used_moved AND used <> '' THEN {cast("used")} END,
                   CASE WHEN used_moved THEN digest END
            FROM sorted WHERE clean)
        INSERT INTO {DIRTY} (raw_app, raw_key, application_id, account_key, digest, shared)
        SELECT raw_app, raw_key, application_id, account_key, digest, shared FROM sorted WHERE NOT clean"""
    )
    sql.execute(f"ANALYZE {KEPT} (account_pk)")  # the removed accounts are matched on it (diff())
    sql.execute(f"ANALYZE {DIRTY}")
    clean, clean_rows = sql.fetchall(f"SELECT COUNT(*), COALESCE(SUM(n), 0) FROM {KEPT}")[0]
    dirty_rows = rows - int(clean_rows)
    return dataclasses.replace(full, incremental=True, dirty_rows=int(dirty_rows), clean_accounts=int(clean))


def entitlements_agree(stage: str) -> bool:
    """After staging the dirty accounts: whether their rows leave every entitlement as it is (new ones aside).

    A staged row that renames, retypes or raises the privileged flag of an existing entitlement, or two staged
    rows that disagree, need the whole file: clean accounts hold the entitlement too, and the full path
    decides (applies the change everywhere, or refuses the file for rows that disagree).
    """
    t = sql.true()
    return not sql.scalar(
        f"""SELECT EXISTS (
            SELECT 1 FROM (SELECT application_id, entitlement_key, MAX(entitlement_name) AS name,
                                  MAX(entitlement_type) AS kind, MAX(CASE WHEN privileged THEN 1 ELSE 0 END) AS priv,
                                  MIN(COALESCE(entitlement_name, '')) <> MAX(COALESCE(entitlement_name, ''))
                                      AS names_differ,
                                  MIN(entitlement_type) <> MAX(entitlement_type) AS kinds_differ
                           FROM {stage} WHERE entitlement_key IS NOT NULL GROUP BY application_id, entitlement_key) s
            LEFT JOIN {T_ENTITLEMENT} e ON e.application_id = s.application_id AND e.entitlement_id = s.entitlement_key
            WHERE s.names_differ OR s.kinds_differ OR (e.id IS NOT NULL AND (e.name <> COALESCE(s.name, e.name)
                  OR e.kind <> s.kind OR (s.priv = 1 AND e.privileged <> {t}))))"""
    )


def refresh_last_used() -> None:
    """For the clean accounts whose ``last_used_at`` moved (it is left out of the rows' digest): store it where
    the file gives one, as the full path does, and the digest's last_used_at part in any case."""
    sql.execute(
        f"""UPDATE {T_ACCOUNT} SET last_used_at = COALESCE(k.last_used_at, {T_ACCOUNT}.last_used_at),
                                  pull_digest = k.digest
        FROM {KEPT} k WHERE k.used_moved AND {T_ACCOUNT}.id = k.account_pk"""
    )


def _since_last_pulls(scope: set[int]) -> tuple[str, list] | None:
    """SQL (alias ``h`` for a history table, ``p`` for the application) matching history written since the
    application's last pull less MARGIN, except at the instants pulls wrote theirs; and its parameters.

    Read through the history-date index over the ranges between pull times, so a first import's millions of
    history rows are never visited.
    """
    since = Application.objects.filter(pk__in=scope).aggregate(m=models.Min("last_pulled_at"))["m"] - MARGIN
    pulls = sorted(
        set(
            ConnectorRun.objects.filter(
                kind=ConnectorRun.Kind.ACCESS, status=ConnectorRun.Status.APPLIED, started_at__gte=since
            ).values_list("started_at", flat=True)
        )
    )
    if len(pulls) > MAX_PULLS_BETWEEN:
        return None  # an application of the file was last pulled long ago: read everything
    bounds = [since, *pulls]
    ranges = " OR ".join(
        ["(h.history_date > %s AND h.history_date < %s)"] * (len(bounds) - 1) + ["h.history_date > %s"]
    )
    params = [sql.adapt_ts(b) for pair in itertools.pairwise(bounds) for b in pair]
    params.append(sql.adapt_ts(bounds[-1]))
    scope_list = ", ".join(str(int(pk)) for pk in sorted(scope))
    recent = (
        f"p.id IN ({scope_list}) AND p.last_pulled_at IS NOT NULL AND ({ranges}) "
        f"AND h.history_date > p.last_pulled_at - INTERVAL '{MARGIN.days} days'"
    )
    return recent, params


def _entitlements_edited(windows) -> bool:
    recent, params = windows
    return bool(
        sql.scalar(
            f"""SELECT EXISTS (SELECT 1 FROM {T_APPLICATION} p JOIN {H_ENTITLEMENT} h ON h.application_id = p.id
            WHERE {recent})""",
            params,
        )
    )


def _touched_outside_pulls(windows) -> None:
    """Fill TOUCHED with the accounts whose account or grant history moved outside pulls (see above)."""
    recent, params = windows
    sql.create_temp(TOUCHED, "id BIGINT PRIMARY KEY")
    sql.execute(
        f"""INSERT INTO {TOUCHED} (id)
        SELECT h.account_id FROM {T_APPLICATION} p, {H_GRANT} h, {T_ACCOUNT} a
            WHERE a.id = h.account_id AND a.application_id = p.id AND {recent}
        UNION SELECT h.id FROM {T_APPLICATION} p, {H_ACCOUNT} h WHERE h.application_id = p.id AND {recent}""",
        params * 2,
    )
