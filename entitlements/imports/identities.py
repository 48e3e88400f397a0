"""Identity pulls: each run is the full truth for the identities in its scope.

The identities feed (a file, a directory, an HR database, Entra ID) is the truth for people and for the
non-human identities it lists: absent ones are marked terminated (never deleted), and managers and owners are
resolved by employee id within the file, so a file can be loaded into an empty database in one pass.

A source connector whose scope is "non_human" (AWS roles, GitHub Apps and bots; sources.py) is the truth only
for the non-human identities it brought itself (``Identity.connector``): its rows must be non-human, their
owners and managers are people the database already holds, an identity absent from its pull ends, and nothing
else is touched. Neither kind of run may take over an identity of the other (or of another connector) by
giving its employee id: that would let whoever controls one source rewrite an identity, or its owner, that
another source is accountable for.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from entitlements.connectors.problems import ProblemLog
from entitlements.imports import sql
from entitlements.models import Connector, Identity

STAGE = "soxgov_stage_identity"
ABSENT = "soxgov_absent_identity"
T_IDENTITY = Identity._meta.db_table
T_CONNECTOR = Connector._meta.db_table
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


@dataclass(frozen=True)
class Scope:
    """Whose identities a run is the truth for: the identities feed's (no connector) or one connector's."""

    connector_id: int | None = None
    connector_name: str = ""

    @property
    def non_human(self) -> bool:
        return self.connector_id is not None

    def where(self, alias: str) -> tuple[str, list]:
        """SQL condition (and its parameters) selecting the identities of this scope."""
        if self.connector_id is None:
            return f"{alias}.connector_id IS NULL", []
        return f"{alias}.connector_id = %s", [self.connector_id]

    @property
    def absent_reason(self) -> str:
        if self.non_human:
            return f"absent from the pull of connector {self.connector_name}"
        return "absent from the identities file"


FEED = Scope()


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


def check(*, log: ProblemLog, scope: Scope = FEED) -> None:
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
    if scope.non_human:
        _check_connector_rows(log, scope)
    else:
        _check_references(log, among=STAGE, where="this file")
        for row, value, name, connector in sql.fetchall(
            f"""SELECT s.row_no, s.employee_id, i.display_name, c.name FROM {STAGE} s
            JOIN {T_IDENTITY} i ON i.employee_id = s.employee_id JOIN {T_CONNECTOR} c ON c.id = i.connector_id
            ORDER BY 1 LIMIT 100"""
        ):
            log.add(
                row,
                "employee_id",
                value,
                f"is {name}, a non-human identity connector {connector} pulls; its pulls are its truth",
            )
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


def _check_references(log: ProblemLog, *, among: str, where: str) -> None:
    """Managers (any identity) and owners (a person) named by employee id must be found ``among`` a table."""
    person = "o.kind = 'human'"
    for column, key, match, what in (
        ("manager_employee_id", "manager_key", "1 = 1", "identity"),
        ("owner_employee_id", "owner_key", person, "person"),
    ):
        for row, value in sql.fetchall(
            f"""SELECT s.row_no, s.{key} FROM {STAGE} s WHERE s.{key} IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM {among} o WHERE o.employee_id = s.{key} AND {match}) ORDER BY 1 LIMIT 100"""
        ):
            log.add(row, column, value, f"no {what} in {where} has this employee id")


def _check_connector_rows(log: ProblemLog, scope: Scope) -> None:
    """A connector brings non-human identities only, keyed by employee id, never one that is not its own."""
    name = scope.connector_name
    only_non_human = (
        f"connector {name} brings only non-human identities; people come from the identities feed"
    )
    for (row,) in sql.fetchall(f"SELECT row_no FROM {STAGE} WHERE kind = 'human' ORDER BY 1 LIMIT 100"):
        log.add(row, "kind", "human", only_non_human)
    for (row,) in sql.fetchall(f"SELECT row_no FROM {STAGE} WHERE employee_id IS NULL ORDER BY 1 LIMIT 100"):
        log.add(row, "employee_id", None, "a connector's non-human identity needs an employee id")
    _check_references(log, among=T_IDENTITY, where="SOXGov")
    for row, value, holder, kind, connector in sql.fetchall(
        f"""SELECT s.row_no, s.employee_id, i.display_name, i.kind, c.name FROM {STAGE} s
        JOIN {T_IDENTITY} i ON i.employee_id = s.employee_id LEFT JOIN {T_CONNECTOR} c ON c.id = i.connector_id
        WHERE i.connector_id IS NULL OR i.connector_id <> %s ORDER BY 1 LIMIT 100""",
        [scope.connector_id],
    ):
        whose = (
            "a person"
            if kind == "human"
            else f"pulled by connector {connector}"
            if connector
            else "held by the identities feed"
        )
        taken = f"is the employee id of {holder} ({whose}); connector {name} may not take it over"
        log.add(row, "employee_id", value, taken)


def diff_and_apply(
    *, when, today, reason: str, user_id, log: ProblemLog, scope: Scope = FEED
) -> IdentityDiff:
    """Apply inside the caller's transaction (the caller rolls back to a savepoint when the gate holds)."""
    t, ts = sql.true(), sql.adapt_ts(when)
    h = dict(when=when, reason=reason, user_id=user_id)
    result = IdentityDiff(
        current=Identity.objects.exclude(status=Identity.Status.TERMINATED)
        .filter(connector_id=scope.connector_id)
        .count()
    )
    in_scope, scope_params = scope.where("i")
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
        AND {in_scope} AND NOT EXISTS (SELECT 1 FROM {STAGE} s WHERE s.pk = i.id)""",
        scope_params,
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
                                      termination_date, connector_id, created_at, updated_at)
        SELECT kind, employee_id, email, display_name, department, title, status, termination_date, %s, %s, %s
        FROM {STAGE} WHERE is_new = {t}""",
        [scope.connector_id, ts, ts],
    )
    sql.execute(
        f"""UPDATE {STAGE} SET pk = i.id FROM {T_IDENTITY} i WHERE {STAGE}.is_new = {t} AND (
            ({STAGE}.employee_id IS NOT NULL AND i.employee_id = {STAGE}.employee_id)
            OR ({STAGE}.employee_id IS NULL AND i.employee_id IS NULL AND LOWER(i.email) = {STAGE}.email))"""
    )
    if scope.non_human:  # people the database holds (checked)
        sql.execute(
            f"""UPDATE {STAGE} SET manager_pk = m.id FROM {T_IDENTITY} m
            WHERE m.employee_id = {STAGE}.manager_key"""
        )
        sql.execute(
            f"""UPDATE {STAGE} SET owner_pk = o.id FROM {T_IDENTITY} o
            WHERE o.employee_id = {STAGE}.owner_key AND o.kind = 'human'"""
        )
    else:  # identities of the same file
        sql.execute(
            f"UPDATE {STAGE} SET manager_pk = m.pk FROM {STAGE} m WHERE m.employee_id = {STAGE}.manager_key"
        )
        sql.execute(
            f"UPDATE {STAGE} SET owner_pk = o.pk FROM {STAGE} o WHERE o.employee_id = {STAGE}.owner_key"
        )
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


def changes_for_evidence(*, limit: int, scope: Scope = FEED) -> list[tuple[str, str, str, str, dict]]:
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
                {"employee_id": employee_id, "reason": scope.absent_reason},
            )
        )
    return out[:limit]
