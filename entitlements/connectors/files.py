"""File connectors: identities and access files in CSV or XLSX (the formats are documented in README.md)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from entitlements.connectors.base import BaseConnector
from entitlements.connectors.problems import ProblemLog
from entitlements.connectors.records import AccessRecord, IdentityRecord
from entitlements.connectors.tables import open_table
from entitlements.models import Account, Entitlement, Identity

IDENTITY_COLUMNS = (
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
)
ACCESS_COLUMNS = (
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
)
# The values a file may hold (lower-cased) -> the stored value: the models' choices, never a copy of them.
STATUSES = {value: value for value in Identity.Status.values}
KINDS = {value: value for value in Identity.Kind.values}
ACCOUNT_STATUSES = {value: value for value in Account.Status.values}
ENTITLEMENT_TYPES = {value: value for value in Entitlement.Kind.values}
BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False, "": False}
MAX_TEXT = 255


def map_header(header: list[str], columns: tuple[str, ...]) -> tuple[dict[str, int], list[str], list[str]]:
    """Column name -> position (case-insensitive, spaces ignored); also the repeated and the unknown names."""
    index: dict[str, int] = {}
    duplicates, unknown = [], []
    for position, raw in enumerate(header):
        name = raw.strip().lower()
        if name in columns:
            if name in index:
                duplicates.append(raw)
            index[name] = position
        elif name:
            unknown.append(raw)
    return index, duplicates, unknown


class _FileConnector(BaseConnector):
    columns: tuple[str, ...] = ()
    required: tuple[str, ...] = ()

    def __init__(self, path: Path, *, log: ProblemLog):
        super().__init__(log=log)
        self.path = Path(path)
        self.table = open_table(self.path, log=log)
        self.index = self._map_header(self.table.header)

    def _map_header(self, header: list[str]) -> dict[str, int]:
        index, duplicates, unknown = map_header(header, self.columns)
        for raw in duplicates:
            self.log.add(1, raw, None, "this column appears twice")
        for raw in unknown:
            self.log.warn(f"column {raw!r} is not used and was ignored")
        for name in self.required:
            if name not in index:
                self.log.add(1, name, None, "required column is missing")
        self.log.raise_if_any()
        return index

    def _cells(self) -> Iterator[tuple[int, dict[str, str]]]:
        index = self.index
        for row, cells in self.table.rows:
            width = len(cells)
            yield row, {name: cells[i].strip() if i < width else "" for name, i in index.items()}

    # Field parsers: return the value, or log a problem and return None.
    def _choice(self, row, column, value, choices, default):
        if value == "":
            return default
        found = choices.get(value.lower())
        if found is None:
            self.log.add(row, column, value, f"must be one of {', '.join(sorted(set(choices.values())))}")
        return found

    def _text(self, row, column, value, *, required=False, limit=MAX_TEXT):
        if value == "":
            if required:
                self.log.add(row, column, None, "is required")
            return None
        if len(value) > limit:
            self.log.add(row, column, value[:40] + "...", f"is longer than {limit} characters")
            return None
        return value

    def _date(self, row, column, value):
        if value == "":
            return None
        try:
            parsed = (
                parse_date(value[:10])
                if len(value) >= 10 and (len(value) == 10 or value[10] in "T ")
                else None
            )
        except ValueError:
            parsed = None
        if parsed is None:
            self.log.add(row, column, value, "is not a date (use ISO 8601: YYYY-MM-DD)")
        return parsed

    def _datetime(self, row, column, value):
        if value == "":
            return None
        try:
            parsed = parse_datetime(value)
            if parsed is None:
                day = parse_date(value)
                parsed = dt.datetime.combine(day, dt.time.min) if day else None
        except ValueError:
            parsed = None
        if parsed is None:
            self.log.add(row, column, value, "is not a date-time (use ISO 8601: YYYY-MM-DDTHH:MM:SS[+00:00])")
            return None
        if timezone.is_naive(parsed):
            parsed = timezone.make_aware(parsed, dt.UTC)
        try:
            parsed.astimezone(dt.UTC)  # stored in UTC: 9999-12-31T23:00-05:00 does not fit
        except OverflowError:
            self.log.add(
                row, column, value, "is out of range (in UTC it must fall within the years 1 to 9999)"
            )
            return None
        return parsed

    def _email(self, row, column, value):
        if value == "":
            return None
        if "@" not in value or " " in value or len(value) > 254:
            self.log.add(row, column, value, "is not an e-mail address")
            return None
        return value.lower()


class IdentityFileConnector(_FileConnector):
    kind = "identities"
    columns = IDENTITY_COLUMNS
    required = ()

    def _map_header(self, header):
        index = super()._map_header(header)
        if "employee_id" not in index and "email" not in index:
            self.log.refuse(1, "employee_id", None, "required column is missing (or give an email column)")
        return index

    def records(self) -> Iterator[IdentityRecord]:
        for row, c in self._cells():
            employee_id = self._text(row, "employee_id", c.get("employee_id", ""), limit=64)
            email = self._email(row, "email", c.get("email", ""))
            if employee_id is None and email is None and "employee_id" in c:
                self.log.add(row, "employee_id", None, "is required unless email is given")
            kind = self._choice(row, "kind", c.get("kind", ""), KINDS, "human")
            status = self._choice(row, "status", c.get("status", ""), STATUSES, "active")
            owner = self._text(row, "owner_employee_id", c.get("owner_employee_id", ""), limit=64)
            if kind not in (None, "human") and owner is None:
                self.log.add(row, "owner_employee_id", None, "is required for a non-human identity")
            if kind == "human" and owner is not None:
                self.log.add(row, "owner_employee_id", owner, "only non-human identities have an owner")
            display_name = self._text(row, "display_name", c.get("display_name", ""), limit=200)
            yield IdentityRecord(
                row=row,
                employee_id=employee_id,
                email=email,
                display_name=display_name or employee_id or email or "",
                department=self._text(row, "department", c.get("department", ""), limit=120) or "",
                title=self._text(row, "title", c.get("title", ""), limit=120) or "",
                manager_employee_id=self._text(
                    row, "manager_employee_id", c.get("manager_employee_id", ""), limit=64
                ),
                status=status or "active",
                termination_date=self._date(row, "termination_date", c.get("termination_date", "")),
                kind=kind or "human",
                owner_employee_id=owner,
            )


class AccessFileConnector(_FileConnector):
    kind = "access"
    columns = ACCESS_COLUMNS
    required = ("account_id",)

    def __init__(
        self, path: Path, *, log: ProblemLog, application_names: dict[str, int], default_application=None
    ):
        self.application_names = application_names  # lower-cased name -> id
        self.default_application = default_application
        self.seen_applications: set[int] = set()
        super().__init__(path, log=log)
        if "application" not in self.index and default_application is None:
            self.log.refuse(1, "application", None, "required column is missing (or give --application)")

    def applications(self) -> set[int]:
        scope = set(self.seen_applications)
        if self.default_application is not None:
            scope.add(self.default_application)
        return scope

    def records(self) -> Iterator[AccessRecord]:
        names, default, log = self.application_names, self.default_application, self.log
        for row, c in self._cells():
            app_name = c.get("application", "")
            if app_name:
                application_id = names.get(app_name.lower())
                if application_id is None:
                    log.add(row, "application", app_name, "no application has this name")
                    continue
            elif default is not None:
                application_id = default
            else:
                log.add(row, "application", None, "is required when --application is not given")
                continue
            self.seen_applications.add(application_id)
            account_id = self._text(row, "account_id", c["account_id"], required=True)
            entitlement_id = self._text(row, "entitlement_id", c.get("entitlement_id", ""))
            privileged_raw = c.get("privileged", "")
            privileged = BOOLEANS.get(privileged_raw.lower())
            if privileged is None:
                log.add(row, "privileged", privileged_raw, "must be true/false, yes/no or 1/0")
            if account_id is None:
                continue
            yield AccessRecord(
                row=row,
                application_id=application_id,
                account_id=account_id,
                account_name=self._text(row, "account_name", c.get("account_name", "")),
                employee_id=self._text(row, "employee_id", c.get("employee_id", ""), limit=64),
                email=self._email(row, "email", c.get("email", "")),
                account_status=self._choice(
                    row, "account_status", c.get("account_status", ""), ACCOUNT_STATUSES, "enabled"
                )
                or "enabled",
                last_used_at=self._datetime(row, "last_used_at", c.get("last_used_at", "")),
                entitlement_id=entitlement_id,
                entitlement_name=self._text(row, "entitlement_name", c.get("entitlement_name", "")),
                entitlement_type=self._choice(
                    row, "entitlement_type", c.get("entitlement_type", ""), ENTITLEMENT_TYPES, "role"
                ),
                privileged=bool(privileged),
            )
