"""Access pulls: stage the access file, diff it against the applications it covers, hold or apply.

An access file is the full truth for its applications: accounts and grants absent from it are removed.
Entitlements absent from it are kept (a role nobody holds still exists).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connection

from entitlements.connectors.problems import ProblemLog
from entitlements.imports import incremental, sql
from entitlements.models import Account, Application, Entitlement, Grant, Identity
from evidence import services as evidence

STAGE = "soxgov_stage_access"
S_ACCOUNT = "soxgov_stage_account"
S_ENTITLEMENT = "soxgov_stage_entitlement"
S_GRANT = "soxgov_stage_grant"
S_SCOPE = "soxgov_stage_scope"
R_GRANT = "soxgov_removed_grant"
R_ACCOUNT = "soxgov_removed_account"
# Grant keys (application, account, entitlement or '') on more than one staged row: filled by check().
REPEATED = "soxgov_stage_repeated"
# On an incremental pull, the current accounts whose grants are compared, with their applications: those staged
# and those removed (never both: a removed account is absent from the file).
LOOKED_AT = (
    f"SELECT pk AS id, application_id FROM {S_ACCOUNT} WHERE pk IS NOT NULL "
    f"UNION ALL SELECT id, application_id FROM {R_ACCOUNT}"
)
# On an incremental pull: the current grants of the accounts looked at (the only ones it can add or remove).
HELD = "soxgov_held_grant"

T_ACCOUNT = Account._meta.db_table
T_ENTITLEMENT = Entitlement._meta.db_table
T_GRANT = Grant._meta.db_table
T_IDENTITY = Identity._meta.db_table

STAGE_COLUMNS = (
    "row_no",
    "application_id",
    "account_key",
    "account_name",
    "employee_id",
    "email",
    "account_status",
    "last_used_at",
    "entitlement_key",
    "entitlement_name",
    "entitlement_type",
    "privileged",
)


@dataclass
class AccessDiff:
    scope: dict[int, str]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    removed_by_application: dict[int, int] = field(default_factory=dict)
    current_by_application: dict[int, int] = field(default_factory=dict)
    staged_by_application: dict[int, int] = field(default_factory=dict)
    removed_accounts_by_application: dict[int, int] = field(default_factory=dict)
    current_accounts_by_application: dict[int, int] = field(default_factory=dict)

    @property
    def total_changes(self) -> int:
        return sum(v for c in self.counts.values() for k, v in c.items() if k != "unchanged")


def create_stage() -> None:
    ts = sql.ts_type()
    sql.create_temp(
        STAGE,
        f"""row_no INTEGER NOT NULL, application_id BIGINT NOT NULL, account_key VARCHAR(255) NOT NULL,
        account_name VARCHAR(255), employee_id VARCHAR(64), email VARCHAR(254), account_status VARCHAR(16) NOT NULL,
        last_used_at {ts}, entitlement_key VARCHAR(255), entitlement_name VARCHAR(255), entitlement_type VARCHAR(16),
        privileged BOOLEAN NOT NULL""",
    )


def stage_fast(path, *, log: ProblemLog, application_names: dict[str, int], default_application, lock=None):
    """PostgreSQL and CSV: stage through COPY (see fastpath.py), returning a fastpath.FastStage; on an
    incremental pull only the accounts that can have changed are staged. None: use stage() instead."""
    from entitlements.imports import fastpath

    create_stage()
    return fastpath.stage_access(
        path,
        log=log,
        stage_table=STAGE,
        stage_columns=STAGE_COLUMNS,
        application_names=application_names,
        default_application=default_application,
        lock=lock,
    )


def stage(records, *, log: ProblemLog) -> int:
    create_stage()
    # Looked up once: going through the connection proxy per row costs seconds over millions of rows.
    adapt_datetime = connection.ops.adapt_datetimefield_value

    def adapt(value):
        return adapt_datetime(value) if value is not None else None

    rows = (
        (
            r.row,
            r.application_id,
            r.account_id,
            r.account_name,
            r.employee_id,
            r.email,
            r.account_status,
            adapt(r.last_used_at),
            r.entitlement_id,
            r.entitlement_name,
            r.entitlement_type,
            r.privileged,
        )
        for r in records
    )
    return sql.load(STAGE, STAGE_COLUMNS, rows)


def check(*, log: ProblemLog, scope: set[int]) -> None:
    """Set-based checks across rows: duplicates (merged, with a warning) and accounts claimed by two people."""
    sql.create_temp(S_SCOPE, "application_id BIGINT PRIMARY KEY, name VARCHAR(255)")
    for application_id, name in Application.objects.filter(pk__in=scope).values_list("pk", "name"):
        sql.execute(f"INSERT INTO {S_SCOPE} (application_id, name) VALUES (%s, %s)", [application_id, name])
    # Exact duplicates share their grant's key, so only keys on more than one row are grouped by every column
    # (2M rows: 2.1 s against 3.4 s, where the eleven-column GROUP BY of every row spilled to disk). A staged
    # entitlement key is never '' (an empty cell is NULL). diff() reads REPEATED too: without repeated grant
    # keys it need not make them distinct.
    sql.create_temp(
        REPEATED,
        "application_id BIGINT NOT NULL, account_key VARCHAR(255) NOT NULL, entitlement_key VARCHAR(255)",
    )
    sql.execute(
        f"""INSERT INTO {REPEATED} (application_id, account_key, entitlement_key)
        SELECT application_id, account_key, COALESCE(entitlement_key, '') FROM {STAGE}
        GROUP BY 1, 2, 3 HAVING COUNT(*) > 1"""
    )
    duplicates = sql.fetchall(
        f"""SELECT MIN(s.row_no), MAX(s.row_no), COUNT(*) FROM {STAGE} s
        JOIN {REPEATED} t ON t.application_id = s.application_id AND t.account_key = s.account_key
                    AND t.entitlement_key = COALESCE(s.entitlement_key, '')
        GROUP BY s.application_id, s.account_key, s.account_name, s.employee_id, s.email, s.account_status,
                 s.last_used_at, s.entitlement_key, s.entitlement_name, s.entitlement_type, s.privileged
        HAVING COUNT(*) > 1 ORDER BY 1 LIMIT 20"""
    )
    for first, last, n in duplicates:
        log.warn(f"row {last} repeats row {first} exactly ({n} copies); merged")
    # An account named with different keys on different rows: resolve each row's claim to an identity (by
    # employee id, else e-mail) and refuse the account if two rows claim different people. Only accounts with
    # more than one distinct key pair are resolved, so the common case costs one GROUP BY. "More than one
    # distinct value" is MIN <> MAX throughout: a hash aggregate, where COUNT(DISTINCT) sorts every row (2M
    # rows: 0.8-1.0 s against 1.9-2.6 s).
    conflicts = sql.fetchall(
        f"""WITH multi AS (
            SELECT application_id, account_key FROM {STAGE} GROUP BY application_id, account_key
            HAVING MIN(COALESCE(employee_id, '')) <> MAX(COALESCE(employee_id, ''))
                OR MIN(COALESCE(email, '')) <> MAX(COALESCE(email, '')))
        SELECT c.account_key, MIN(c.row_no), MAX(c.row_no), MIN(c.shown), MAX(c.shown)
        FROM (SELECT s.application_id, s.account_key, s.row_no, COALESCE(s.employee_id, s.email) AS shown,
                     CASE WHEN COALESCE(ie.id, im.id) IS NOT NULL THEN 'i' || CAST(COALESCE(ie.id, im.id) AS TEXT)
                          WHEN s.employee_id IS NOT NULL THEN 'e' || s.employee_id
                          WHEN s.email IS NOT NULL THEN 'm' || s.email END AS claim
              FROM {STAGE} s JOIN multi m ON m.application_id = s.application_id AND m.account_key = s.account_key
              LEFT JOIN {T_IDENTITY} ie ON ie.employee_id = s.employee_id
              LEFT JOIN {T_IDENTITY} im ON ie.id IS NULL AND s.email IS NOT NULL AND LOWER(im.email) = s.email) c
        GROUP BY c.application_id, c.account_key HAVING COUNT(DISTINCT c.claim) > 1
        ORDER BY 2 LIMIT 200"""
    )
    for account_key, first, last, one, other in conflicts:
        log.add(
            last,
            "employee_id",
            f"{one} / {other}",
            f"account {account_key!r} is claimed by two different people (also on row {first})",
        )
    conflicts = sql.fetchall(
        f"""SELECT MIN(account_key), entitlement_key, MIN(row_no), MAX(row_no) FROM {STAGE}
        WHERE entitlement_key IS NOT NULL GROUP BY application_id, entitlement_key
        HAVING MIN(COALESCE(entitlement_name, '')) <> MAX(COALESCE(entitlement_name, ''))
            OR MIN(entitlement_type) <> MAX(entitlement_type)
        ORDER BY 3 LIMIT 50"""
    )
    for _account, entitlement_key, first, last in conflicts:
        log.add(
            last,
            "entitlement_name",
            entitlement_key,
            f"entitlement {entitlement_key!r} has a different name or type than on row {first}",
        )


def _analyze(*tables: str) -> None:
    # PostgreSQL never auto-analyzes temporary tables; without statistics it plans nested loops over millions
    # of staged rows. SQLite plans well enough without. A table given as "name (columns)" gets statistics of
    # those columns only.
    if sql.vendor() == "postgresql":
        for table in tables:
            sql.execute(f"ANALYZE {table}")


def diff(*, scope: set[int], plan=None) -> AccessDiff:
    """Build per-object stage tables resolved against current data (one pass each) and count the changes.

    ``plan``: the fast path's incremental.Plan (None on the row-by-row path). On an incremental pull the stage
    holds only the dirty accounts: the clean ones are left alone and counted as unchanged, and removals are
    looked for among the dirty accounts and the accounts absent from the file.
    """
    t = sql.true()
    fast = plan is not None
    partial = fast and plan.incremental
    page_cost = (
        sql.scalar("SELECT current_setting('random_page_cost')") if sql.vendor() == "postgresql" else None
    )
    if partial:
        # A few dirty accounts against millions of current grants: index probes (nested loops), which the
        # import session otherwise turns off for its million-row statements (services._tune_session). With
        # the default random_page_cost (4, for spinning disks) PostgreSQL scans all the grants to find ten
        # thousand of them by id; the tables of a pull are in memory.
        sql.execute("SELECT set_config('enable_nestloop', 'on', true)")
        sql.execute("SELECT set_config('random_page_cost', '1.1', true)")
    # The stage's keys only: statistics of its names and flags, which no join or grouping here needs, cost as
    # much again (250k rows: 0.18 s against 0.11 s).
    _analyze(f"{STAGE} (application_id, account_key, entitlement_key, employee_id, email)", S_SCOPE)
    sql.create_temp(
        S_ACCOUNT,
        f"""application_id BIGINT NOT NULL, account_key VARCHAR(255) NOT NULL, row_no INTEGER, name VARCHAR(255),
        employee_id VARCHAR(64), email VARCHAR(254), status VARCHAR(16), last_used_at {sql.ts_type()},
        privileged BOOLEAN, identity_id BIGINT, pk BIGINT, is_new BOOLEAN, is_changed BOOLEAN, digest VARCHAR(64),
        PRIMARY KEY (application_id, account_key)""",
    )
    # The digest this pull leaves on each staged account (fast path only; see incremental.py). An incremental
    # pull stages the dirty groups only, which DIRTY holds with their digests.
    digests = (
        f"""LEFT JOIN {incremental.DIRTY if partial else incremental.GROUPS} pg
            ON pg.application_id = g.application_id AND pg.account_key = g.account_key AND NOT pg.shared"""
        if fast
        else ""
    )
    # One row per account. Any row saying "disabled" wins: the conservative reading of an account listed
    # twice. The identity is matched by employee id first, then by e-mail.
    sql.execute(
        f"""INSERT INTO {S_ACCOUNT} (application_id, account_key, row_no, name, employee_id, email, status,
                                     last_used_at, privileged, identity_id, pk, is_new, is_changed, digest)
        SELECT g.application_id, g.account_key, g.row_no, g.name, g.employee_id, g.email, g.status, g.last_used_at,
               g.privileged, COALESCE(ie.id, im.id), a.id, a.id IS NULL,
               a.id IS NOT NULL AND (a.name <> COALESCE(g.name, '')
                   OR COALESCE(a.identity_id, 0) <> COALESCE(ie.id, im.id, 0)
                   OR a.status <> g.status OR a.privileged <> g.privileged),
               CASE WHEN g.one_claim THEN {"pg.digest" if fast else "NULL"} END
        FROM (SELECT application_id, account_key, MIN(row_no) AS row_no, MAX(account_name) AS name,
                     MAX(employee_id) AS employee_id, MAX(email) AS email, MIN(account_status) AS status,
                     MAX(last_used_at) AS last_used_at, MAX(CASE WHEN privileged THEN 1 ELSE 0 END) = 1 AS privileged,
                     MIN(COALESCE(employee_id, '')) = MAX(COALESCE(employee_id, ''))
                         AND MIN(COALESCE(email, '')) = MAX(COALESCE(email, '')) AS one_claim
              FROM {STAGE} GROUP BY application_id, account_key) g
        LEFT JOIN {T_IDENTITY} ie ON ie.employee_id = g.employee_id
        LEFT JOIN {T_IDENTITY} im ON ie.id IS NULL AND g.email IS NOT NULL AND LOWER(im.email) = g.email
        LEFT JOIN {T_ACCOUNT} a ON a.application_id = g.application_id AND a.account_id = g.account_key
        {digests}"""
    )

    sql.create_temp(
        S_ENTITLEMENT,
        """application_id BIGINT NOT NULL, entitlement_key VARCHAR(255) NOT NULL, name VARCHAR(255),
        kind VARCHAR(16), privileged BOOLEAN, pk BIGINT, is_new BOOLEAN, is_changed BOOLEAN,
        PRIMARY KEY (application_id, entitlement_key)""",
    )
    # A pull only ever raises the privileged flag; lowering it is a decision for the entitlement's owner.
    sql.execute(
        f"""INSERT INTO {S_ENTITLEMENT} (application_id, entitlement_key, name, kind, privileged, pk, is_new, is_changed)
        SELECT g.application_id, g.entitlement_key, g.name, g.kind, g.privileged, e.id, e.id IS NULL,
               e.id IS NOT NULL AND (e.name <> COALESCE(g.name, e.name) OR e.kind <> g.kind
                                     OR (g.privileged = {t} AND e.privileged <> {t}))
        FROM (SELECT application_id, entitlement_key, MAX(entitlement_name) AS name, MAX(entitlement_type) AS kind,
                     MAX(CASE WHEN privileged THEN 1 ELSE 0 END) = 1 AS privileged
              FROM {STAGE} WHERE entitlement_key IS NOT NULL GROUP BY application_id, entitlement_key) g
        LEFT JOIN {T_ENTITLEMENT} e ON e.application_id = g.application_id AND e.entitlement_id = g.entitlement_key"""
    )
    _analyze(S_ACCOUNT, S_ENTITLEMENT)

    sql.create_temp(R_ACCOUNT, "id BIGINT PRIMARY KEY, application_id BIGINT NOT NULL")
    if partial:
        # Absent from the file altogether (a clean account is in the file, so it is never removed) ... Every
        # group of the file is either clean (KEPT names its account) or dirty, so the accounts are matched by id
        # against the clean ones first and only the rest by key against the dirty ones: hashing 300k ids costs
        # less than hashing 300k pairs of keys.
        sql.execute(
            f"""INSERT INTO {R_ACCOUNT} (id, application_id)
            SELECT a.id, a.application_id FROM {T_ACCOUNT} a JOIN {S_SCOPE} sc ON sc.application_id = a.application_id
            WHERE NOT EXISTS (SELECT 1 FROM {incremental.KEPT} k WHERE k.account_pk = a.id)
              AND NOT EXISTS (SELECT 1 FROM {incremental.DIRTY} d
                              WHERE d.application_id = a.application_id AND d.account_key = a.account_id)"""
        )
        # ... and grants are only looked for on the accounts staged or removed: read once, then joined by hash
        # (a quarter of a million index probes into the grants cost more). The applications come with the
        # accounts looked at, so the account table is not read for them.
        sql.create_temp(
            HELD,
            "id BIGINT NOT NULL, account_id BIGINT NOT NULL, entitlement_id BIGINT NOT NULL, application_id BIGINT",
        )
        sql.execute(
            f"""INSERT INTO {HELD} (id, account_id, entitlement_id, application_id)
            SELECT g.id, g.account_id, g.entitlement_id, l.application_id
            FROM ({LOOKED_AT}) l JOIN {T_GRANT} g ON g.account_id = l.id"""
        )
        _analyze(HELD)
    sql.create_temp(
        S_GRANT,
        """application_id BIGINT NOT NULL, account_key VARCHAR(255) NOT NULL, entitlement_key VARCHAR(255) NOT NULL,
        pk BIGINT""",
    )
    # No key on this table: the rows are unique (made so by DISTINCT when check() found a grant key on more
    # than one row; skipping it otherwise saves a third of the statement), and maintaining a three-column text
    # index over millions of rows cost more than the whole diff.
    repeated = sql.scalar(f"SELECT EXISTS (SELECT 1 FROM {REPEATED} WHERE entitlement_key <> '')")
    # Hash joins on an incremental pull too: probing the account stage's key once per staged row cost more
    # (0.38 s for 250k rows).
    with sql.planner_setting("enable_nestloop", "off"):
        sql.execute(
            f"""INSERT INTO {S_GRANT} (application_id, account_key, entitlement_key, pk)
            SELECT d.application_id, d.account_key, d.entitlement_key, g.id
            FROM (SELECT {"DISTINCT" if repeated else ""} application_id, account_key, entitlement_key FROM {STAGE}
                  WHERE entitlement_key IS NOT NULL) d
            JOIN {S_ACCOUNT} sa ON sa.application_id = d.application_id AND sa.account_key = d.account_key
            JOIN {S_ENTITLEMENT} se ON se.application_id = d.application_id AND se.entitlement_key = d.entitlement_key
            LEFT JOIN {HELD if partial else T_GRANT} g ON g.account_id = sa.pk AND g.entitlement_id = se.pk"""
        )
    _analyze(S_GRANT)
    sql.create_temp(R_GRANT, "id BIGINT PRIMARY KEY, application_id BIGINT")
    if partial:
        sql.execute(
            f"""INSERT INTO {R_GRANT} (id, application_id)
            SELECT h.id, h.application_id FROM {HELD} h WHERE NOT EXISTS (SELECT 1 FROM {S_GRANT} sg WHERE sg.pk = h.id)"""
        )
    else:
        sql.execute(
            f"""INSERT INTO {R_GRANT} (id, application_id)
            SELECT g.id, a.application_id FROM {T_GRANT} g JOIN {T_ACCOUNT} a ON a.id = g.account_id
            JOIN {S_SCOPE} sc ON sc.application_id = a.application_id
            WHERE NOT EXISTS (SELECT 1 FROM {S_GRANT} sg WHERE sg.pk = g.id)"""
        )
        sql.execute(
            f"""INSERT INTO {R_ACCOUNT} (id, application_id)
            SELECT a.id, a.application_id FROM {T_ACCOUNT} a JOIN {S_SCOPE} sc ON sc.application_id = a.application_id
            WHERE NOT EXISTS (SELECT 1 FROM {S_ACCOUNT} sa WHERE sa.pk = a.id)"""
        )
    _analyze(R_GRANT, R_ACCOUNT)

    result = AccessDiff(scope=dict(sql.fetchall(f"SELECT application_id, name FROM {S_SCOPE}")))
    count_flags = (
        "SUM(CASE WHEN is_new THEN 1 ELSE 0 END), SUM(CASE WHEN is_changed THEN 1 ELSE 0 END), COUNT(*)"
    )
    a_new, a_changed, a_total = (
        int(v or 0) for v in sql.fetchall(f"SELECT {count_flags} FROM {S_ACCOUNT}")[0]
    )
    e_new, e_changed, e_total = (
        int(v or 0) for v in sql.fetchall(f"SELECT {count_flags} FROM {S_ENTITLEMENT}")[0]
    )
    g_new, g_total = (
        int(v or 0)
        for v in sql.fetchall(f"SELECT SUM(CASE WHEN pk IS NULL THEN 1 ELSE 0 END), COUNT(*) FROM {S_GRANT}")[
            0
        ]
    )
    removed_accounts = sql.scalar(f"SELECT COUNT(*) FROM {R_ACCOUNT}")
    removed_grants = sql.scalar(f"SELECT COUNT(*) FROM {R_GRANT}")
    # Whole-table counts: read sequentially even where an incremental pull lowered random_page_cost (an
    # index-only scan of the accounts visits the heap for every row a recent pull wrote: 0.17 s against 0.08).
    with sql.planner_setting("random_page_cost", page_cost):
        result.current_by_application = {
            application_id: int(count)
            for application_id, count in sql.fetchall(
                # Counted per entitlement first, then through the entitlement: a hash aggregate of the grants'
                # entitlement ids into thousands of groups, where joining every grant row first cost three times
                # as much (2M grants: 0.21 s against 0.61 s).
                f"""SELECT e.application_id, SUM(g.n) FROM (
                    SELECT entitlement_id, COUNT(*) AS n FROM {T_GRANT} GROUP BY entitlement_id) g
                JOIN {T_ENTITLEMENT} e ON e.id = g.entitlement_id
                JOIN {S_SCOPE} sc ON sc.application_id = e.application_id GROUP BY e.application_id"""
            )
        }
        result.current_accounts_by_application = dict(
            sql.fetchall(
                f"""SELECT a.application_id, COUNT(*) FROM {T_ACCOUNT} a
                JOIN {S_SCOPE} sc ON sc.application_id = a.application_id GROUP BY a.application_id"""
            )
        )
    clean_accounts = clean_grants = 0
    if partial:
        # The clean accounts keep every grant they hold: all current grants but those of accounts looked at.
        looked_at = sql.scalar(f"SELECT COUNT(*) FROM {HELD}")
        clean_accounts = plan.clean_accounts
        clean_grants = sum(result.current_by_application.values()) - looked_at
        # The file's entitlements: those staged, and those of the grants that stay (the clean accounts' hold).
        # "Has a grant that stays" as a LIMIT 1 subquery: an index probe per entitlement that stops at the first
        # such grant (as EXISTS, PostgreSQL reads and groups every grant: 0.7 s against 0.15 s at 2M grants).
        e_total = e_new + sql.scalar(
            f"""SELECT COUNT(*) FROM {T_ENTITLEMENT} e JOIN {S_SCOPE} sc ON sc.application_id = e.application_id
            WHERE EXISTS (SELECT 1 FROM {S_ENTITLEMENT} se WHERE se.pk = e.id)
               OR (SELECT g.id FROM {T_GRANT} g WHERE g.entitlement_id = e.id
                   AND NOT EXISTS (SELECT 1 FROM {R_GRANT} r WHERE r.id = g.id) LIMIT 1) IS NOT NULL"""
        )
    result.counts = {
        "accounts": {
            "added": a_new,
            "removed": removed_accounts,
            "changed": a_changed,
            "unchanged": a_total - a_new - a_changed + clean_accounts,
        },
        "entitlements": {
            "added": e_new,
            "removed": 0,
            "changed": e_changed,
            "unchanged": e_total - e_new - e_changed,
        },
        "grants": {
            "added": g_new,
            "removed": removed_grants,
            "changed": 0,
            "unchanged": g_total - g_new + clean_grants,
        },
    }
    result.removed_by_application = dict(
        sql.fetchall(f"SELECT application_id, COUNT(*) FROM {R_GRANT} GROUP BY application_id")
    )
    result.removed_accounts_by_application = dict(
        sql.fetchall(f"SELECT application_id, COUNT(*) FROM {R_ACCOUNT} GROUP BY application_id")
    )
    # Rows per application in the file (the gate's "empty file" test): on the fast path every row is in the
    # summary, on an incremental pull only some are staged.
    result.staged_by_application = (
        dict(plan.totals.rows_by_application)
        if fast
        else dict(sql.fetchall(f"SELECT application_id, COUNT(*) FROM {STAGE} GROUP BY application_id"))
    )
    return result


def apply(*, when, reason: str, user_id, plan=None, new_grants: int = 0) -> None:
    """Apply the staged diff. Runs inside the caller's transaction, after diff().

    New rows are inserted in a stated order (entitlements by key, accounts in file order, grants by account
    and entitlement), so the same file gives the same ids and history order whichever plan PostgreSQL picks.
    A pull adding at least SOXGOV_IMPORT_BULK_GRANTS grants (``new_grants``, from the diff: a first load of a
    large application) has their foreign keys checked in one pass (sql.foreign_keys_checked_once), and then
    holds the grant, account and entitlement tables to itself from the grants' INSERT until it commits.
    """
    t, ts = sql.true(), sql.adapt_ts(when)
    h = dict(when=when, reason=reason, user_id=user_id)
    # Entitlements: insert new, update changed.
    sql.execute(
        f"""INSERT INTO {T_ENTITLEMENT} (application_id, entitlement_id, name, kind, description, privileged,
                                         sensitive, created_at, updated_at)
        SELECT application_id, entitlement_key, COALESCE(name, entitlement_key), COALESCE(kind, 'role'), '',
               privileged, FALSE, %s, %s
        FROM {S_ENTITLEMENT} WHERE is_new = {t} ORDER BY application_id, entitlement_key""",
        [ts, ts],
    )
    sql.execute(
        f"""UPDATE {S_ENTITLEMENT} SET pk = e.id FROM {T_ENTITLEMENT} e
        WHERE {S_ENTITLEMENT}.is_new = {t} AND e.application_id = {S_ENTITLEMENT}.application_id
          AND e.entitlement_id = {S_ENTITLEMENT}.entitlement_key"""
    )
    sql.history_insert(
        Entitlement,
        history_type="+",
        where=f"m.id IN (SELECT pk FROM {S_ENTITLEMENT} WHERE is_new = {t})",
        params=[],
        **h,
    )
    sql.execute(
        f"""UPDATE {T_ENTITLEMENT} SET name = COALESCE(se.name, {T_ENTITLEMENT}.name), kind = se.kind,
               privileged = ({T_ENTITLEMENT}.privileged = {t} OR se.privileged = {t}), updated_at = %s
        FROM {S_ENTITLEMENT} se WHERE se.is_changed = {t} AND se.pk = {T_ENTITLEMENT}.id""",
        [ts],
    )
    sql.history_insert(
        Entitlement,
        history_type="~",
        where=f"m.id IN (SELECT pk FROM {S_ENTITLEMENT} WHERE is_changed = {t})",
        params=[],
        **h,
    )

    # Grants and accounts that are gone: history first, then delete. Grants of removed accounts are in
    # R_GRANT already (the account is not in the file, so neither are they).
    sql.history_insert(Grant, history_type="-", where=f"m.id IN (SELECT id FROM {R_GRANT})", params=[], **h)
    sql.execute(f"DELETE FROM {T_GRANT} WHERE id IN (SELECT id FROM {R_GRANT})")
    sql.history_insert(
        Account, history_type="-", where=f"m.id IN (SELECT id FROM {R_ACCOUNT})", params=[], **h
    )
    sql.execute(f"DELETE FROM {T_ACCOUNT} WHERE id IN (SELECT id FROM {R_ACCOUNT})")

    # Accounts: insert new, update changed; last_used_at only where it moved (it is kept out of history).
    sql.execute(
        f"""INSERT INTO {T_ACCOUNT} (application_id, account_id, name, identity_id, status, privileged, last_used_at,
                                     first_seen, pull_digest)
        SELECT application_id, account_key, COALESCE(name, ''), identity_id, status, privileged, last_used_at, %s,
               digest
        FROM {S_ACCOUNT} WHERE is_new = {t} ORDER BY row_no""",
        [ts],
    )
    sql.execute(
        f"""UPDATE {S_ACCOUNT} SET pk = a.id FROM {T_ACCOUNT} a
        WHERE {S_ACCOUNT}.is_new = {t} AND a.application_id = {S_ACCOUNT}.application_id
          AND a.account_id = {S_ACCOUNT}.account_key"""
    )
    sql.history_insert(
        Account,
        history_type="+",
        where=f"m.id IN (SELECT pk FROM {S_ACCOUNT} WHERE is_new = {t})",
        params=[],
        **h,
    )
    # Existing accounts, one UPDATE (one new row version each): the changed ones take the file's details;
    # last_used_at moves where the file gives one (it is kept out of history); pull_digest records what this
    # pull read, for the next one to compare with (NULL on the row-by-row path: re-read next time).
    a = T_ACCOUNT
    sql.execute(
        f"""UPDATE {a} SET
            name = CASE WHEN sa.is_changed = {t} THEN COALESCE(sa.name, '') ELSE {a}.name END,
            identity_id = CASE WHEN sa.is_changed = {t} THEN sa.identity_id ELSE {a}.identity_id END,
            status = CASE WHEN sa.is_changed = {t} THEN sa.status ELSE {a}.status END,
            privileged = CASE WHEN sa.is_changed = {t} THEN sa.privileged ELSE {a}.privileged END,
            last_used_at = COALESCE(sa.last_used_at, {a}.last_used_at),
            pull_digest = sa.digest
        FROM {S_ACCOUNT} sa WHERE sa.pk = {a}.id AND sa.is_new <> {t} AND (
            sa.is_changed = {t}
            OR (sa.last_used_at IS NOT NULL AND ({a}.last_used_at IS NULL OR {a}.last_used_at <> sa.last_used_at))
            OR (({a}.pull_digest IS NULL) <> (sa.digest IS NULL)) OR {a}.pull_digest <> sa.digest)"""
    )
    sql.history_insert(
        Account,
        history_type="~",
        where=f"m.id IN (SELECT pk FROM {S_ACCOUNT} WHERE is_changed = {t})",
        params=[],
        **h,
    )
    if plan is not None and plan.incremental:
        incremental.refresh_last_used()

    # Grants: insert (first_seen = this run marks them), taking the keys of new accounts and entitlements from
    # their stage rows, which hold them now. In the order of the (account, entitlement) unique index, which
    # then fills page by page instead of at random: 10.3 s against 14.8 s for 2M grants, far more than the
    # sort costs.
    before = sql.scalar(f"SELECT COALESCE(MAX(id), 0) FROM {T_GRANT}")
    # Adding a key back reads the whole table (about 0.13 us a row per key here), where the per-row checks cost
    # about 5 us a new row per key: worth it once the new rows are more than about a thirtieth of the table;
    # a tenth leaves a wide margin (the table's size is the planner's estimate, which is enough for that).
    bulk = 0 < settings.SOXGOV_IMPORT_BULK_GRANTS <= new_grants and new_grants * 10 >= sql.estimated_rows(
        T_GRANT
    )
    keys = (
        sql.foreign_keys_checked_once(T_GRANT, advisory_lock=evidence.CHAIN_LOCK_KEY)
        if bulk
        else contextlib.nullcontext()
    )
    with keys:
        sql.execute(
            f"""INSERT INTO {T_GRANT} (account_id, entitlement_id, first_seen)
            SELECT sa.pk, se.pk, %s FROM {S_GRANT} g
            JOIN {S_ACCOUNT} sa ON sa.application_id = g.application_id AND sa.account_key = g.account_key
            JOIN {S_ENTITLEMENT} se ON se.application_id = g.application_id AND se.entitlement_key = g.entitlement_key
            WHERE g.pk IS NULL ORDER BY sa.pk, se.pk""",
            [ts],
        )
    # Pulls of the same applications are serialised (row locks on them), and only pulls insert grants here,
    # so the new rows are exactly those past the previous maximum id with this run's first_seen.
    sql.history_insert(
        Grant, history_type="+", where="m.id > %s AND m.first_seen = %s", params=[before, ts], **h
    )
    sql.execute(
        f"UPDATE {Application._meta.db_table} SET last_pulled_at = %s WHERE id IN (SELECT application_id FROM {S_SCOPE})",
        [ts],
    )


def removals_for_evidence(*, limit: int) -> list[tuple[str, str, str, str, dict]]:
    """Removed grants and accounts, named, before they are deleted: (action, type, id, text, payload)."""
    out = []
    for pk, account_key, ent_key, ent_name, app in sql.fetchall(
        f"""SELECT g.id, a.account_id, e.entitlement_id, e.name, sc.name FROM {R_GRANT} r
        JOIN {T_GRANT} g ON g.id = r.id JOIN {T_ACCOUNT} a ON a.id = g.account_id
        JOIN {T_ENTITLEMENT} e ON e.id = g.entitlement_id JOIN {S_SCOPE} sc ON sc.application_id = a.application_id
        ORDER BY g.id LIMIT %s""",
        [limit],
    ):
        out.append(
            (
                "access.grant.removed",
                "entitlements.grant",
                str(pk),
                f"{account_key} holds {ent_name} in {app}",
                {"application": app, "account": account_key, "entitlement": ent_key},
            )
        )
    for pk, account_key, app, identity_id in sql.fetchall(
        f"""SELECT a.id, a.account_id, sc.name, a.identity_id FROM {R_ACCOUNT} r JOIN {T_ACCOUNT} a ON a.id = r.id
        JOIN {S_SCOPE} sc ON sc.application_id = a.application_id ORDER BY a.id LIMIT %s""",
        [limit],
    ):
        out.append(
            (
                "access.account.removed",
                "entitlements.account",
                str(pk),
                f"{account_key} @ {app}",
                {"application": app, "account": account_key, "identity_id": identity_id},
            )
        )
    return out[:limit]


def additions_for_evidence(*, limit: int, when) -> list[tuple[str, str, str, str, dict]]:
    """Added and changed objects, named, after apply: (action, type, id, text, payload)."""
    t, ts = sql.true(), sql.adapt_ts(when)
    out = []
    for pk, key, app, identity_id, is_new in sql.fetchall(
        f"""SELECT sa.pk, sa.account_key, sc.name, sa.identity_id, sa.is_new FROM {S_ACCOUNT} sa
        JOIN {S_SCOPE} sc ON sc.application_id = sa.application_id
        WHERE sa.is_new = {t} OR sa.is_changed = {t} ORDER BY sa.row_no LIMIT %s""",
        [limit],
    ):
        action = "access.account.added" if is_new else "access.account.changed"
        out.append(
            (
                action,
                "entitlements.account",
                str(pk),
                f"{key} @ {app}",
                {"application": app, "account": key, "identity_id": identity_id},
            )
        )
    for pk, key, name, app, is_new in sql.fetchall(
        f"""SELECT se.pk, se.entitlement_key, se.name, sc.name, se.is_new FROM {S_ENTITLEMENT} se
        JOIN {S_SCOPE} sc ON sc.application_id = se.application_id
        WHERE se.is_new = {t} OR se.is_changed = {t} ORDER BY se.pk LIMIT %s""",
        [limit],
    ):
        action = "access.entitlement.added" if is_new else "access.entitlement.changed"
        out.append(
            (
                action,
                "entitlements.entitlement",
                str(pk),
                f"{name or key} ({app})",
                {"application": app, "entitlement": key},
            )
        )
    for pk, account_key, ent_key, ent_name, app in sql.fetchall(
        f"""SELECT g.id, a.account_id, e.entitlement_id, e.name, sc.name FROM {T_GRANT} g
        JOIN {T_ACCOUNT} a ON a.id = g.account_id JOIN {T_ENTITLEMENT} e ON e.id = g.entitlement_id
        JOIN {S_SCOPE} sc ON sc.application_id = a.application_id
        WHERE g.first_seen = %s ORDER BY g.id LIMIT %s""",
        [ts, limit],
    ):
        out.append(
            (
                "access.grant.added",
                "entitlements.grant",
                str(pk),
                f"{account_key} holds {ent_name} in {app}",
                {"application": app, "account": account_key, "entitlement": ent_key},
            )
        )
    return out[:limit]


def changed_identities() -> list[int]:
    """Identities whose grants this run changed (after apply): the SoD engine re-checks just these."""
    rows = sql.fetchall(
        f"""SELECT DISTINCT sa.identity_id FROM {S_ACCOUNT} sa WHERE sa.identity_id IS NOT NULL AND (
              sa.is_new = {sql.true()} OR sa.is_changed = {sql.true()}
              OR EXISTS (SELECT 1 FROM {S_GRANT} sg WHERE sg.application_id = sa.application_id
                         AND sg.account_key = sa.account_key AND sg.pk IS NULL))"""
    )
    return sorted(r[0] for r in rows)


def identities_losing_access() -> list[int]:
    """Before apply: identities that lose grants or whose accounts move to someone else."""
    rows = sql.fetchall(
        f"""SELECT a.identity_id FROM {R_GRANT} r JOIN {T_GRANT} g ON g.id = r.id
            JOIN {T_ACCOUNT} a ON a.id = g.account_id WHERE a.identity_id IS NOT NULL
        UNION SELECT a.identity_id FROM {S_ACCOUNT} sa JOIN {T_ACCOUNT} a ON a.id = sa.pk
            WHERE sa.is_changed = {sql.true()} AND a.identity_id IS NOT NULL"""
    )
    return sorted(r[0] for r in rows)
