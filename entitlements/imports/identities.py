"""Identity pulls: the identities file is the full truth for people and non-human identities.

Absent identities are marked terminated (never deleted). Managers and owners are resolved by employee id within
the file, so a file can be loaded into an empty database in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from entitlements.connectors.problems import ProblemLog
from entitlements.imports import sql
from entitlements.models import Identity

STAGE = "soxgov_stage_identity"
ABSENT = "soxgov_absent_identity"
T_IDENTITY = Identity._meta.db_table
COLUMNS = (
    "row_no",
    "employee_id",
    "email",
    "display_name",
    "department",
    "title",
    "manager_key",
    "status",
    "termination_date",
    "kind",
    "owner_key",
)


@dataclass
class IdentityDiff:
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    current: int = 0
    absent: int = 0

    @property
    def total_changes(self) -> int:
        return sum(v for c in self.counts.values() for k, v in c.items() if k != "unchanged")


def stage(records, *, default_termination) -> int:
    sql.create_temp(
        STAGE,
        """row_no INTEGER NOT NULL, employee_id VARCHAR(64), email VARCHAR(254), display_name VARCHAR(200),
        department VARCHAR(120), title VARCHAR(120), manager_key VARCHAR(64), status VARCHAR(16),
        termination_date DATE, kind VARCHAR(16), owner_key VARCHAR(64),
        pk BIGINT, manager_pk BIGINT, owner_pk BIGINT, is_new BOOLEAN, is_changed BOOLEAN""",
    )
    rows = (
        (
            r.row,
            r.employee_id,
            r.email,
            r.display_name,
            r.department,
            r.title,
            r.manager_employee_id,
            r.status,
            sql.adapt_date(r.termination_date or (default_termination if r.status == "terminated" else None)),
            r.kind,
            r.owner_employee_id,
        )
        for r in records
    )
    return sql.load(STAGE, COLUMNS, rows)


def check(*, log: ProblemLog) -> None:
    duplicates = sql.fetchall(
        f"""SELECT MIN(row_no), MAX(row_no), COUNT(*) FROM {STAGE}
        GROUP BY employee_id, email, display_name, department, title, manager_key, status, termination_date, kind,
                 owner_key
        HAVING COUNT(*) > 1 ORDER BY 1 LIMIT 20"""
    )
    for first, last, n in duplicates:
        log.warn(f"row {last} repeats row {first} exactly ({n} copies); merged")
    # Keep one row of each exact duplicate group.
    sql.execute(
        f"""DELETE FROM {STAGE} WHERE row_no NOT IN (
            SELECT MIN(row_no) FROM {STAGE} GROUP BY employee_id, email, display_name, department, title,
                   manager_key, status, termination_date, kind, owner_key)"""
    )
    for key, column in (("employee_id", "employee_id"), ("LOWER(email)", "email")):
        for value, first, last in sql.fetchall(
            f"""SELECT {key}, MIN(row_no), MAX(row_no) FROM {STAGE} WHERE {key} IS NOT NULL
            GROUP BY {key} HAVING COUNT(*) > 1 ORDER BY 2 LIMIT 100"""
        ):
            log.add(last, column, value, f"also on row {first} with different details; each identity once")
    for row, value in sql.fetchall(
        f"""SELECT s.row_no, s.manager_key FROM {STAGE} s WHERE s.manager_key IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM {STAGE} m WHERE m.employee_id = s.manager_key) ORDER BY 1 LIMIT 100"""
    ):
        log.add(row, "manager_employee_id", value, "no identity in this file has this employee id")
    for row, value in sql.fetchall(
        f"""SELECT s.row_no, s.owner_key FROM {STAGE} s WHERE s.owner_key IS NOT NULL
        AND NOT EXISTS (SELECT 1 FROM {STAGE} o WHERE o.employee_id = s.owner_key AND o.kind = 'human')
        ORDER BY 1 LIMIT 100"""
    ):
        log.add(row, "owner_employee_id", value, "no person in this file has this employee id")
    for row, value in sql.fetchall(
        f"""SELECT row_no, employee_id FROM {STAGE} WHERE manager_key IS NOT NULL AND manager_key = employee_id
        ORDER BY 1 LIMIT 20"""
    ):
        log.add(row, "manager_employee_id", value, "an identity cannot be its own manager")
    # An e-mail address still held by another identity after this file applies: that identity is absent
    # (terminated, but it keeps its address) or keeps the address in the file. A swap within the file is fine.
    for row, value, holder in sql.fetchall(
        f"""SELECT s.row_no, s.email, i.display_name FROM {STAGE} s JOIN {T_IDENTITY} i ON LOWER(i.email) = s.email
        LEFT JOIN {STAGE} h ON h.employee_id IS NOT NULL AND h.employee_id = i.employee_id
        WHERE s.email IS NOT NULL
          AND NOT (s.employee_id IS NOT NULL AND s.employee_id = i.employee_id)
          AND NOT (s.employee_id IS NULL AND i.employee_id IS NULL)
          AND (h.row_no IS NULL OR COALESCE(h.email, '') = s.email)
        ORDER BY 1 LIMIT 100"""
    ):
        log.add(row, "email", value, f"is still the e-mail address of another identity ({holder})")


def diff_and_apply(*, when, today, reason: str, user_id, log: ProblemLog) -> IdentityDiff:
    """Apply inside the caller's transaction (the caller rolls back to a savepoint when the gate holds)."""
    t, ts = sql.true(), sql.adapt_ts(when)
    h = dict(when=when, reason=reason, user_id=user_id)
    result = IdentityDiff(current=Identity.objects.exclude(status=Identity.Status.TERMINATED).count())
    # Match existing identities: by employee id, else by e-mail between a row and an identity that both lack one.
    sql.execute(
        f"""UPDATE {STAGE} SET pk = i.id FROM {T_IDENTITY} i
        WHERE {STAGE}.employee_id IS NOT NULL AND i.employee_id = {STAGE}.employee_id"""
    )
    sql.execute(
        f"""UPDATE {STAGE} SET pk = i.id FROM {T_IDENTITY} i
        WHERE {STAGE}.pk IS NULL AND {STAGE}.employee_id IS NULL AND i.employee_id IS NULL
          AND LOWER(i.email) = {STAGE}.email"""
    )
    sql.execute(f"UPDATE {STAGE} SET is_new = (pk IS NULL)")
    # One row by employee id and another (without one) by e-mail can name the same identity: refuse.
    for row, employee_id, email, first in sql.fetchall(
        f"""SELECT s.row_no, s.employee_id, s.email, d.first_row FROM {STAGE} s JOIN (
            SELECT pk, MIN(row_no) AS first_row FROM {STAGE} WHERE pk IS NOT NULL GROUP BY pk HAVING COUNT(*) > 1
        ) d ON d.pk = s.pk WHERE s.row_no > d.first_row ORDER BY s.row_no LIMIT 100"""
    ):
        column = "employee_id" if employee_id is not None else "email"
        log.add(row, column, employee_id or email, f"is the same identity as row {first}; each identity once")
    log.raise_if_any()
    sql.create_temp(ABSENT, "id BIGINT PRIMARY KEY")
    sql.execute(
        f"""INSERT INTO {ABSENT} (id) SELECT i.id FROM {T_IDENTITY} i WHERE i.status <> 'terminated'
        AND NOT EXISTS (SELECT 1 FROM {STAGE} s WHERE s.pk = i.id)"""
    )
    result.absent = sql.scalar(f"SELECT COUNT(*) FROM {ABSENT}")
    # Unique e-mail is checked row by row, so two people swapping addresses, or a new hire taking the address
    # someone gives up, would collide half-way. Clear the addresses that move first (people with an employee
    # id can be without one briefly; their new address is set below, in the same transaction).
    sql.execute(
        f"""UPDATE {T_IDENTITY} SET email = NULL FROM {STAGE} s
        WHERE s.pk = {T_IDENTITY}.id AND s.is_new <> {t} AND {T_IDENTITY}.employee_id IS NOT NULL
          AND COALESCE({T_IDENTITY}.email, '') <> COALESCE(s.email, '')"""
    )
    sql.execute(
        f"""INSERT INTO {T_IDENTITY} (kind, employee_id, email, display_name, department, title, status,
                                      termination_date, created_at, updated_at)
        SELECT kind, employee_id, email, display_name, department, title, status, termination_date, %s, %s
        FROM {STAGE} WHERE is_new = {t}""",
        [ts, ts],
    )
    sql.execute(
        f"""UPDATE {STAGE} SET pk = i.id FROM {T_IDENTITY} i WHERE {STAGE}.is_new = {t} AND (
            ({STAGE}.employee_id IS NOT NULL AND i.employee_id = {STAGE}.employee_id)
            OR ({STAGE}.employee_id IS NULL AND i.employee_id IS NULL AND LOWER(i.email) = {STAGE}.email))"""
    )
    sql.execute(
        f"UPDATE {STAGE} SET manager_pk = m.pk FROM {STAGE} m WHERE m.employee_id = {STAGE}.manager_key"
    )
    sql.execute(f"UPDATE {STAGE} SET owner_pk = o.pk FROM {STAGE} o WHERE o.employee_id = {STAGE}.owner_key")
    sql.execute(
        f"""UPDATE {STAGE} SET is_changed = (
            COALESCE(i.email, '') <> COALESCE({STAGE}.email, '') OR i.display_name <> {STAGE}.display_name
            OR i.department <> {STAGE}.department OR i.title <> {STAGE}.title OR i.status <> {STAGE}.status
            OR COALESCE(i.termination_date, '1900-01-01') <> COALESCE({STAGE}.termination_date, '1900-01-01')
            OR i.kind <> {STAGE}.kind OR COALESCE(i.manager_id, 0) <> COALESCE({STAGE}.manager_pk, 0)
            OR COALESCE(i.owner_id, 0) <> COALESCE({STAGE}.owner_pk, 0))
        FROM {T_IDENTITY} i WHERE i.id = {STAGE}.pk AND {STAGE}.is_new <> {t}"""
    )
    sql.execute(
        f"""UPDATE {T_IDENTITY} SET email = s.email, display_name = s.display_name, department = s.department,
            title = s.title, status = s.status, termination_date = s.termination_date, kind = s.kind,
            manager_id = s.manager_pk, owner_id = s.owner_pk, updated_at = %s
        FROM {STAGE} s WHERE s.pk = {T_IDENTITY}.id AND (s.is_new = {t} OR s.is_changed = {t})""",
        [ts],
    )
    sql.execute(
        f"""UPDATE {T_IDENTITY} SET status = 'terminated', termination_date = %s, updated_at = %s
        WHERE id IN (SELECT id FROM {ABSENT})""",
        [sql.adapt_date(today), ts],
    )
    sql.history_insert(
        Identity,
        history_type="+",
        where=f"m.id IN (SELECT pk FROM {STAGE} WHERE is_new = {t})",
        params=[],
        **h,
    )
    sql.history_insert(
        Identity,
        history_type="~",
        where=f"m.id IN (SELECT pk FROM {STAGE} WHERE is_changed = {t})",
        params=[],
        **h,
    )
    sql.history_insert(Identity, history_type="~", where=f"m.id IN (SELECT id FROM {ABSENT})", params=[], **h)
    added, changed, total = (
        int(v or 0)
        for v in sql.fetchall(
            f"SELECT SUM(CASE WHEN is_new = {t} THEN 1 ELSE 0 END), SUM(CASE WHEN is_changed = {t} THEN 1 ELSE 0 END), COUNT(*) FROM {STAGE}"
        )[0]
    )
    result.counts = {
        "identities": {
            "added": added,
            "removed": 0,
            "terminated_absent": result.absent,
            "changed": changed,
            "unchanged": total - added - changed,
        },
    }
    return result


def changes_for_evidence(*, limit: int) -> list[tuple[str, str, str, str, dict]]:
    t = sql.true()
    out = []
    for pk, name, employee_id, is_new, status in sql.fetchall(
        f"""SELECT pk, display_name, employee_id, is_new, status FROM {STAGE}
        WHERE is_new = {t} OR is_changed = {t} ORDER BY row_no LIMIT %s""",
        [limit],
    ):
        action = "access.identity.added" if is_new else "access.identity.changed"
        out.append(
            (action, "entitlements.identity", str(pk), name, {"employee_id": employee_id, "status": status})
        )
    for pk, name, employee_id in sql.fetchall(
        f"""SELECT i.id, i.display_name, i.employee_id FROM {ABSENT} a JOIN {T_IDENTITY} i ON i.id = a.id
        ORDER BY i.id LIMIT %s""",
        [limit],
    ):
        out.append(
            (
                "access.identity.terminated",
                "entitlements.identity",
                str(pk),
                name,
                {"employee_id": employee_id, "reason": "absent from the identities file"},
            )
        )
    return out[:limit]
