"""Incremental pulls: after the raw COPY, find the accounts whose rows may differ from what is applied.

A nightly access file repeats yesterday's file almost entirely. Normalising, checking and diffing all of its rows
costs tens of seconds at millions of grants; this module lets the pipeline stage only the accounts that can
have changed ("dirty") and prove the rest ("clean") equal to the database in one aggregate over the raw rows.

Per raw account group (application cell, account cell) the aggregate computes a digest of everything that
decides the account's applied state: its name, employee id, e-mail and status cells, and the multiset of its
(entitlement id, privileged) cells (two sums of 64-bit hashes, so row order does not matter). The digest is
stored on the account when a pull applies it (``Account.pull_digest``). ``last_used_at`` is left out, because
it moves every day for active accounts; it is compared and updated on its own. Entitlement names and types are
summarised per entitlement over every row, so a renamed entitlement is found whichever accounts hold it.

An account is clean only when all of this holds, so a clean account is one the full path would leave as it is:

- its cells are the same on every row and pass the same validation as the staging SQL;
- the database account exists, carries the same digest, name and status, and its identity link is what
  resolving the cells against today's identities gives (new hires and changed e-mails re-link accounts);
- nothing but a pull changed the account or its grants since its application's last pull (grant or account
  history newer than that pull, or up to a day before it, makes it dirty; pulls write their history at
  exactly their run's start time, and those instants are skipped).

Anything this module cannot decide cheaply makes the account dirty or turns the incremental path off for the
run (entitlement cells that differ between rows or do not validate): dirty is always safe, only slower. The
digest is a change detector (hash sums, not a cryptographic commitment); ``SOXGOV_IMPORT_INCREMENTAL=0`` makes
every pull re-read every row.
"""

from __future__ import annotations

import datetime as dt
import itertools
from dataclasses import dataclass

from django.conf import settings
from django.db import models

from entitlements.imports import sql
from entitlements.models import Account, Application, ConnectorRun, Grant, Identity

GROUPS = "soxgov_pull_account"
ENTITLEMENTS = "soxgov_pull_entitlement"
DIRTY = "soxgov_pull_dirty"
TOUCHED = "soxgov_pull_touched"
# Edits that wait on a pull's locks commit after it with an earlier time; a day covers any pull's duration.
MARGIN = dt.timedelta(days=1)

T_ACCOUNT = Account._meta.db_table
T_IDENTITY = Identity._meta.db_table
T_APPLICATION = Application._meta.db_table
H_GRANT = Grant.history.model._meta.db_table
H_ACCOUNT = Account.history.model._meta.db_table

ENTITLEMENT_TYPES = "('', 'role', 'group', 'permission')"
PRIVILEGED_VALUES = "('', 'true', 'yes', '1', 'false', 'no', '0')"


@dataclass(frozen=True)
class Plan:
    """What the summary found. ``incremental``: only the dirty accounts' rows are staged."""

    incremental: bool
    rows: int
    dirty_rows: int
    clean_accounts: int


def summarise(*, raw: str, app_names: str, cell, default: int | None, ws: str, timestamp: str) -> None:
    """One row per raw account group and per raw entitlement group of ``raw``, normalised and validated.

    ``cell(name)`` is the SQL for a column's raw text (``''`` when the file lacks it); the raw table holds no
    NULLs (COPY ran with FORCE_NOT_NULL).
    """
    application_id = f"COALESCE(n.id, {int(default)})" if default is not None else "n.id"

    def trimmed(expr: str) -> str:
        return f"btrim({expr}, {ws})"

    def edge_ascii(expr: str) -> str:
        # A value starting or ending in a non-ASCII character might carry a space only Python strips.
        return f"(ascii({expr}) > 127 OR ascii(right({expr}, 1)) > 127)"

    hashed = f"{cell('entitlement_id')} || E'\\x1f' || {cell('privileged')}"
    uniform = [f'min({cell(c)} COLLATE "C") = max({cell(c)} COLLATE "C")' for c in _ACCOUNT_CELLS]
    sql.create_temp(
        GROUPS,
        f"""raw_app TEXT NOT NULL, raw_key TEXT NOT NULL, n BIGINT NOT NULL, first_row BIGINT NOT NULL,
        uniform BOOLEAN NOT NULL, digest VARCHAR(32), application_id BIGINT, account_key TEXT NOT NULL,
        name TEXT NOT NULL, employee_id TEXT, email TEXT, status TEXT NOT NULL, last_used_at {sql.ts_type()},
        valid BOOLEAN NOT NULL, keys_per_account BIGINT, clean BOOLEAN NOT NULL DEFAULT FALSE""",
    )
    has_zone = r"'(Z|[+-]\d{2}(:?\d{2})?)$'"
    g_name, g_emp, g_mail, g_status, g_used = (trimmed(f"g.{c}") for c in _ACCOUNT_CELLS)
    invalid = [
        f"{application_id} IS NULL",
        f"{trimmed('g.raw_key')} = ''",
        f"length({trimmed('g.raw_key')}) > 255",
        f"length({g_name}) > 255",
        f"length({g_emp}) > 64",
        f"{g_mail} <> '' AND ({g_mail} NOT LIKE '%%@%%' OR {g_mail} LIKE '%% %%' OR length({g_mail}) > 254)",
        f"lower({g_status}) NOT IN ('', 'enabled', 'disabled')",
        f"{g_used} <> '' AND {g_used} !~ {timestamp}",
        f"left({g_used}, 4) IN ('0000', '0001', '9999')",
        *(edge_ascii(f"g.{c}") for c in ("raw_app", "raw_key", *_ACCOUNT_CELLS)),
    ]
    # Non-uniform groups are dirty whatever their cells say; only uniform ones need valid cells to be clean.
    # The timestamp is cast only where it validated (a bad one makes the group dirty and staging explains it).
    sql.execute(
        f"""INSERT INTO {GROUPS} (raw_app, raw_key, n, first_row, uniform, digest, application_id, account_key,
                                  name, employee_id, email, status, last_used_at, valid)
        SELECT g.raw_app, g.raw_key, g.n, g.first_row, g.uniform,
               CASE WHEN g.uniform THEN md5(concat_ws('|', g.n, g.h0, g.h1, g.account_name, g.employee_id,
                                                      g.email, g.account_status)) END,
               {application_id}, {trimmed("g.raw_key")}, {g_name}, NULLIF({g_emp}, ''), NULLIF(lower({g_mail}), ''),
               COALESCE(NULLIF(lower({g_status}), ''), 'enabled'),
               CASE WHEN v.ok AND {g_used} <> '' THEN
                    CASE WHEN {g_used} ~ {has_zone} THEN {g_used}::timestamptz
                         ELSE ({g_used}::timestamp AT TIME ZONE 'UTC') END END,
               v.ok
        FROM (SELECT {cell("application")} AS raw_app, {cell("account_id")} AS raw_key, COUNT(*) AS n,
                     MIN(row_no) AS first_row, {" AND ".join(uniform)} AS uniform,
                     SUM(hashtextextended({hashed}, 0)) AS h0, SUM(hashtextextended({hashed}, 1)) AS h1,
                     {", ".join(f'MIN({cell(c)} COLLATE "C") AS {c}' for c in _ACCOUNT_CELLS)}
              FROM {raw} GROUP BY 1, 2) g
        LEFT JOIN {app_names} n ON n.name = lower({trimmed("g.raw_app")})
        CROSS JOIN LATERAL (SELECT g.uniform AND NOT ({" OR ".join(f"({c})" for c in invalid)}) AS ok) v"""
    )
    sql.execute(
        f"""UPDATE {GROUPS} SET keys_per_account = c.k FROM (
            SELECT application_id, account_key, COUNT(*) AS k FROM {GROUPS} GROUP BY application_id, account_key) c
        WHERE c.application_id = {GROUPS}.application_id AND c.account_key = {GROUPS}.account_key"""
    )

    sql.create_temp(
        ENTITLEMENTS,
        """application_id BIGINT, entitlement_key TEXT NOT NULL, name TEXT, kind TEXT, privileged BOOLEAN,
        valid BOOLEAN NOT NULL""",
    )
    e_name, e_type, e_priv = (trimmed(f"g.{c}_min") for c in ("name", "type", "priv"))
    e_invalid = [
        f"{application_id} IS NULL",
        "g.name_min <> g.name_max OR g.type_min <> g.type_max OR g.priv_min <> g.priv_max",
        f"length({trimmed('g.raw_ent')}) > 255",
        f"length({e_name}) > 255",
        f"lower({e_type}) NOT IN {ENTITLEMENT_TYPES}",
        f"lower({e_priv}) NOT IN {PRIVILEGED_VALUES}",
        *(edge_ascii(f"g.{c}") for c in ("raw_app", "raw_ent", "name_min", "type_min", "priv_min")),
    ]
    sql.execute(
        f"""INSERT INTO {ENTITLEMENTS} (application_id, entitlement_key, name, kind, privileged, valid)
        SELECT {application_id}, {trimmed("g.raw_ent")}, NULLIF({e_name}, ''),
               COALESCE(NULLIF(lower({e_type}), ''), 'role'), lower({e_priv}) IN ('true', 'yes', '1'),
               NOT ({" OR ".join(f"({c})" for c in e_invalid)})
        FROM (SELECT {cell("application")} AS raw_app, {cell("entitlement_id")} AS raw_ent,
                     MIN({cell("entitlement_name")} COLLATE "C") AS name_min,
                     MAX({cell("entitlement_name")} COLLATE "C") AS name_max,
                     MIN({cell("entitlement_type")} COLLATE "C") AS type_min,
                     MAX({cell("entitlement_type")} COLLATE "C") AS type_max,
                     MIN({cell("privileged")} COLLATE "C") AS priv_min,
                     MAX({cell("privileged")} COLLATE "C") AS priv_max
              FROM {raw} WHERE {cell("entitlement_id")} <> '' GROUP BY 1, 2) g
        LEFT JOIN {app_names} n ON n.name = lower({trimmed("g.raw_app")})
        WHERE {trimmed("g.raw_ent")} <> ''"""
    )
    sql.execute(f"ANALYZE {GROUPS}")


_ACCOUNT_CELLS = ("account_name", "employee_id", "email", "account_status", "last_used_at")


def applications() -> set[int]:
    return {r[0] for r in sql.fetchall(f"SELECT DISTINCT application_id FROM {GROUPS}") if r[0] is not None}


def entitlements_summarised() -> bool:
    """Whether every entitlement key has one valid name, type and privileged flag across the whole file."""
    return not sql.scalar(
        f"""SELECT EXISTS (SELECT 1 FROM {ENTITLEMENTS} WHERE NOT valid)
            OR EXISTS (SELECT 1 FROM {ENTITLEMENTS} GROUP BY application_id, entitlement_key
                       HAVING COUNT(DISTINCT ROW(name, kind, privileged)) > 1)"""
    )


def plan(*, scope: set[int]) -> Plan:
    """Mark clean groups and fill DIRTY with the raw keys of the rest; decide whether to go incremental."""
    rows = int(sql.scalar(f"SELECT COALESCE(SUM(n), 0) FROM {GROUPS}"))
    if not (settings.SOXGOV_IMPORT_INCREMENTAL and scope and entitlements_summarised()):
        return Plan(incremental=False, rows=rows, dirty_rows=rows, clean_accounts=0)
    pulled = Application.objects.filter(pk__in=scope, last_pulled_at__isnull=False)
    if not pulled.exists():  # never pulled: no account carries a digest yet
        return Plan(incremental=False, rows=rows, dirty_rows=rows, clean_accounts=0)
    _touched_outside_pulls(scope)
    # The identity is resolved as diff() resolves it: by employee id first, then by e-mail.
    sql.execute(
        f"""WITH resolved AS (
            SELECT g.raw_app, g.raw_key, COALESCE(ie.id, im.id) AS identity_id FROM {GROUPS} g
            LEFT JOIN {T_IDENTITY} ie ON ie.employee_id = g.employee_id
            LEFT JOIN {T_IDENTITY} im ON ie.id IS NULL AND g.email IS NOT NULL AND LOWER(im.email) = g.email
            WHERE g.valid AND g.keys_per_account = 1)
        UPDATE {GROUPS} g SET clean = TRUE FROM resolved r, {T_ACCOUNT} a
        WHERE r.raw_app = g.raw_app AND r.raw_key = g.raw_key
          AND a.application_id = g.application_id AND a.account_id = g.account_key
          AND a.pull_digest = g.digest AND a.name = g.name AND a.status = g.status
          AND COALESCE(a.identity_id, 0) = COALESCE(r.identity_id, 0)
          AND NOT EXISTS (SELECT 1 FROM {TOUCHED} t WHERE t.id = a.id)"""
    )
    sql.create_temp(DIRTY, "raw_app TEXT NOT NULL, raw_key TEXT NOT NULL, PRIMARY KEY (raw_app, raw_key)")
    sql.execute(
        f"INSERT INTO {DIRTY} (raw_app, raw_key) SELECT raw_app, raw_key FROM {GROUPS} WHERE NOT clean"
    )
    sql.execute(f"ANALYZE {DIRTY}")
    dirty_rows, clean = sql.fetchall(
        f"SELECT COALESCE(SUM(n) FILTER (WHERE NOT clean), 0), COUNT(*) FILTER (WHERE clean) FROM {GROUPS}"
    )[0]
    return Plan(incremental=True, rows=rows, dirty_rows=int(dirty_rows), clean_accounts=int(clean))


def refresh_last_used() -> None:
    """Move ``last_used_at`` of the clean accounts (left out of their digest) where the file moved it."""
    sql.execute(
        f"""UPDATE {T_ACCOUNT} SET last_used_at = g.last_used_at FROM {GROUPS} g
        WHERE g.clean AND g.last_used_at IS NOT NULL AND {T_ACCOUNT}.application_id = g.application_id
          AND {T_ACCOUNT}.account_id = g.account_key
          AND ({T_ACCOUNT}.last_used_at IS NULL OR {T_ACCOUNT}.last_used_at <> g.last_used_at)"""
    )


def _touched_outside_pulls(scope: set[int]) -> None:
    """Fill TOUCHED with the accounts whose account or grant history moved since their application's last
    pull (less MARGIN) other than by a pull.

    A pull writes its history at its own time (its run's ``started_at``), so the history-date index is read
    over the ranges between pull times: a first import's millions of rows are never visited.
    """
    sql.create_temp(TOUCHED, "id BIGINT PRIMARY KEY")
    since = Application.objects.filter(pk__in=scope).aggregate(m=models.Min("last_pulled_at"))["m"] - MARGIN
    pulls = sorted(
        set(
            ConnectorRun.objects.filter(
                kind=ConnectorRun.Kind.ACCESS, status=ConnectorRun.Status.APPLIED, started_at__gte=since
            ).values_list("started_at", flat=True)
        )
    )
    bounds = [since, *pulls]
    ranges = " OR ".join(
        ["(h.history_date > %s AND h.history_date < %s)"] * (len(bounds) - 1) + ["h.history_date > %s"]
    )
    params = [sql.adapt_ts(b) for pair in itertools.pairwise(bounds) for b in pair]
    params.append(sql.adapt_ts(bounds[-1]))
    recent = f"({ranges}) AND h.history_date > p.last_pulled_at - INTERVAL '{MARGIN.days} days'"
    scope_list = ", ".join(str(int(pk)) for pk in sorted(scope))
    sql.execute(
        f"""INSERT INTO {TOUCHED} (id)
        SELECT h.account_id FROM {T_APPLICATION} p
            CROSS JOIN LATERAL (SELECT h.account_id FROM {H_GRANT} h WHERE {recent}) h
            JOIN {T_ACCOUNT} a ON a.id = h.account_id AND a.application_id = p.id
            WHERE p.id IN ({scope_list}) AND p.last_pulled_at IS NOT NULL
        UNION SELECT h.id FROM {T_APPLICATION} p
            CROSS JOIN LATERAL (SELECT h.id FROM {H_ACCOUNT} h WHERE h.application_id = p.id AND {recent}) h
            WHERE p.id IN ({scope_list}) AND p.last_pulled_at IS NOT NULL""",
        params * 2,
    )
