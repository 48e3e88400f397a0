"""Property: whatever bytes arrive, an import ends in a documented outcome and a refusal changes nothing.

Documented outcomes: the run is ``failed`` with listed problems (refused), ``held``, or ``applied``; no exception
escapes ``run_execute``. A refused or held run leaves identities, accounts, entitlements, grants, their history and
the evidence (other than the run's own events) as they were. An applied file imported again changes nothing.
Each example runs in a savepoint that is rolled back, so examples do not see each other's imports.

The CSV and XLSX generators build mostly plausible files (the real columns, keys that exist in the ``company``
fixture) salted with junk columns, bad enums and dates, awkward unicode and quoting, so that examples reach the
diff and apply paths and not only the header checks.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import zipfile

from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from entitlements import services
from entitlements.connectors.files import ACCESS_COLUMNS, IDENTITY_COLUMNS
from entitlements.connectors.problems import ImportRefused
from entitlements.models import ConnectorRun
from evidence.services import Actor
from tests.imports.conftest import changes, snapshot

PROPERTY_SETTINGS = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
NAMES = itertools.count()

JUNK_COLUMNS = [
    "",
    "notes",
    "Status ",
    "ID",
    "e-mail",
    "account",
    "privileged?",
    "\u00e9tat",
    "a,b",
    'q"uote',
]
EDGE_VALUES = [
    # invalid enums and booleans
    "retired",
    "robot",
    "locked",
    "superuser",
    "maybe",
    "TRUE",
    "Yes",
    "DISABLED",
    # dates: bad, and out of range once in UTC
    "2024-02-30",
    "31/12/2024",
    "9999-12-31T23:59:59-05:00",
    "0001-01-01T00:00:00+05:00",
    "0000-01-01",
    "T",
    "2024-13-01T25:61:00",
    # keys that do not exist
    "E404",
    "Payroll",
    "not an email",
    "a@b",
    # awkward text
    "",
    " ",
    '"',
    '""',
    ",",
    "a,b",
    "line\nbreak",
    "cr\rlf\r\n",
    "=1+1",
    '=HYPERLINK("http://x","y")',
    "\u00e9",
    "\U0001f600",
    "\u202e",
    "x" * 300,
    "\x00",
    "\ufeff",
]
PLAUSIBLE = {
    "employee_id": ["E1", "E2", "E3", "SVC1", "E4", "E5", ""],
    "email": ["", "rita@example.com", "bob@example.com", "new@example.com", "New@Example.com"],
    "status": ["", "active", "leave", "terminated"],
    "kind": ["", "human", "human", "service"],
    "owner_employee_id": ["", "", "E1", "E2"],
    "manager_employee_id": ["", "E1", "E2", "E3"],
    "termination_date": ["", "", "2024-01-31"],
    "application": ["ERP", "ERP", "CRM", "erp"],
    "account_id": ["bob", "carol", "svc-ledger", "ghost", "new1", "new2"],
    "account_status": ["", "enabled", "disabled"],
    "last_used_at": ["", "2024-05-06T07:08:09Z", "2024-05-06"],
    "entitlement_id": ["", "GL_POST", "CRM_VIEW", "NEW_ROLE"],
    "entitlement_name": ["", "Post journal", "View customers"],
    "entitlement_type": ["", "role", "group"],
    "privileged": ["", "true", "no", "1"],
}
FREE_TEXT = ["display_name", "department", "title", "account_name"]


def cell_for(column: str, junk_in_20: int):
    """A plausible value for the column, or (junk_in_20 times in 20) an edge value or random text."""
    key = column.strip().lower()
    plausible = st.sampled_from(PLAUSIBLE[key]) if key in PLAUSIBLE else st.text(max_size=12)
    junk = st.one_of(st.sampled_from(EDGE_VALUES), st.text(max_size=16))
    return st.integers(0, 19).flatmap(lambda n: junk if n < junk_in_20 else plausible)


@st.composite
def tables(draw, kind: str):
    columns = IDENTITY_COLUMNS if kind == "identities" else ACCESS_COLUMNS
    required = ["employee_id"] if kind == "identities" else ["account_id", "application"]
    header = draw(st.lists(st.sampled_from(columns), unique=True, max_size=len(columns)))
    header += [c for c in required if c not in header and draw(st.integers(0, 9)) > 0]
    header += draw(st.lists(st.one_of(st.sampled_from(JUNK_COLUMNS), st.text(max_size=8)), max_size=2))
    header = list(draw(st.permutations(header)))
    header = [draw(st.sampled_from([name, name.upper(), f" {name} "])) for name in header]
    junk_in_20 = draw(st.sampled_from([0, 0, 1, 4]))
    row = st.tuples(*[cell_for(name, junk_in_20) for name in header]).map(list)
    rows = draw(st.lists(row, max_size=10))
    for cells in rows:  # now and then a ragged row
        if cells and draw(st.integers(0, 9)) == 0:
            del cells[draw(st.integers(0, len(cells) - 1)) :]
    return [header, *rows]


@st.composite
def csv_files(draw, kind: str) -> bytes:
    rows = draw(tables(kind))
    if draw(st.integers(0, 4)):
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator=draw(st.sampled_from(["\n", "\r\n"]))).writerows(rows)
        text = buffer.getvalue()
    else:  # naive joining: unbalanced quotes, fields split by embedded commas and newlines
        text = "\n".join(",".join(row) for row in rows)
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    if data and draw(st.integers(0, 9)) == 0:  # a stray invalid byte somewhere
        at = draw(st.integers(0, 1 << 16)) % len(data)
        data = data[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xe9", b"\x80\x80"])) + data[at:]
    return data


def as_spreadsheet_value(draw, value: str):
    """What a spreadsheet user may have typed instead of the text: a number, a date, a boolean."""
    choice = draw(st.integers(0, 9))
    if choice == 0 and value.isascii() and value.isdigit():
        return int(value)
    if choice == 1 and value[:4].isdigit():
        return draw(
            st.one_of(
                st.dates(min_value=dt.date(1900, 1, 1)), st.datetimes(min_value=dt.datetime(1900, 1, 1))
            )
        )
    if choice == 2 and value.lower() in ("true", "false", "1", "no"):
        return value.lower() in ("true", "1")
    if choice == 3:
        return draw(st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False), st.integers()))
    return value


@st.composite
def xlsx_files(draw, kind: str) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    workbook = Workbook()
    sheet = workbook.active
    for index, row in enumerate(draw(tables(kind))):
        cells = [ILLEGAL_CHARACTERS_RE.sub("", value) for value in row]
        sheet.append(cells if index == 0 else [as_spreadsheet_value(draw, value) for value in cells])
    buffer = io.BytesIO()
    workbook.save(buffer)
    data = buffer.getvalue()
    mutation = draw(st.sampled_from(["none", "none", "none", "truncate", "flip", "extra"]))
    # Positions are drawn independently of len(data): openpyxl stamps the save time into the file, so its
    # length varies from run to run and a length-bounded draw would make the strategy non-deterministic.
    at = 4 + draw(st.integers(0, 1 << 20)) % (len(data) - 4)
    if mutation == "truncate":
        data = data[:at]
    elif mutation == "flip":
        data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1 :]
    elif mutation == "extra":
        out = io.BytesIO(data)
        with zipfile.ZipFile(out, "a") as archive:
            name = draw(st.sampled_from(["xl/evil.xml", "docProps/x.rels", "junk.bin"]))
            archive.writestr(name, draw(st.binary(max_size=200)))
        data = out.getvalue()
    return data


random_bytes = st.one_of(
    st.binary(max_size=3000),
    st.tuples(
        st.sampled_from([b"PK\x03\x04", b"\xef\xbb\xbf", b"account_id\n", b"employee_id,email\r\n"]),
        st.binary(max_size=1000),
    ).map(b"".join),
)
kinds = st.sampled_from(["access", "identities"])
applications = st.sampled_from([None, "ERP"])


def check_one_import(
    tmp_path, company, data: bytes, kind: str, application: str | None, *, suffix: str
) -> None:
    path = tmp_path / f"input-{next(NAMES)}{suffix}"
    path.write_bytes(data)
    app = company["applications"]["erp"] if application and kind == "access" else None

    def start():
        return services.run_create(
            kind=kind, source=path, source_name=path.name, actor=Actor.system("prop"), application=app
        )

    with transaction.atomic():
        before = snapshot()
        try:
            run = start()
        except ImportRefused:  # only the size limit refuses before a run exists
            assert snapshot() == before
            transaction.set_rollback(True)
            return
        run = services.run_execute(run_id=run.pk)  # must not raise
        assert run.status in (
            ConnectorRun.Status.FAILED,
            ConnectorRun.Status.HELD,
            ConnectorRun.Status.APPLIED,
        )
        if run.status == ConnectorRun.Status.FAILED:
            assert run.problems and run.problem_count >= len(run.problems), run.error
            assert run.error.startswith("refused"), run.error
            assert snapshot() == before
        elif run.status == ConnectorRun.Status.HELD:
            after = snapshot()
            assert after.pop("evidence") == before.pop("evidence") + 1
            assert after == before
        else:
            again = services.run_execute(run_id=start().pk)
            assert again.status == ConnectorRun.Status.APPLIED, (again.problems, again.held_reason)
            assert changes(again) == {}, again.counts
        transaction.set_rollback(True)


@PROPERTY_SETTINGS
@given(data=random_bytes, kind=kinds, application=applications)
def test_random_bytes_end_in_a_documented_outcome(tmp_path, company, data, kind, application):
    check_one_import(tmp_path, company, data, kind, application, suffix=".csv")


@PROPERTY_SETTINGS
@given(case=st.data(), kind=kinds, application=applications)
def test_random_csv_ends_in_a_documented_outcome_and_refusals_change_nothing(
    tmp_path, company, case, kind, application
):
    data = case.draw(csv_files(kind), label="file")
    check_one_import(tmp_path, company, data, kind, application, suffix=".csv")


@settings(PROPERTY_SETTINGS, max_examples=40)
@given(case=st.data(), kind=kinds, application=applications)
def test_random_xlsx_ends_in_a_documented_outcome_and_refusals_change_nothing(
    tmp_path, company, case, kind, application
):
    data = case.draw(xlsx_files(kind), label="file")
    check_one_import(tmp_path, company, data, kind, application, suffix=".xlsx")
