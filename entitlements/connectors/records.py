"""Normalised records: what every connector yields, whatever its source."""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple


class IdentityRecord(NamedTuple):
    row: int
    employee_id: str | None
    email: str | None
    display_name: str
    department: str
    title: str
    manager_employee_id: str | None
    status: str
    termination_date: dt.date | None
    kind: str
    owner_employee_id: str | None


class AccessRecord(NamedTuple):
    row: int
    application_id: int
    account_id: str
    account_name: str | None
    employee_id: str | None
    email: str | None
    account_status: str
    last_used_at: dt.datetime | None
    entitlement_id: str | None
    entitlement_name: str | None
    entitlement_type: str | None
    privileged: bool
