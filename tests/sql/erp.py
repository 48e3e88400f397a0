"""Small copies of the ERP tables docs/connectors-erp.md queries, and the rows those queries must return.

The tables keep the real names and the columns the queries read (SAP's DATS dates as 'YYYYMMDD' text,
PeopleSoft's single-space blanks, EBS's end dates). The queries themselves are read from the docs page, so a
change there is tested as written. Dates in the data are either long past or far in the future (9999), so the
expected rows do not depend on the day the tests run.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs" / "connectors-erp.md"
_QUERY = re.compile(r"<!-- query: (?P<name>[\w.]+) -->\s*```sql\n(?P<sql>.*?)\n```", re.S)


def documented_queries() -> dict[str, str]:
    """{"sap.access_query": "SELECT ...", ...}: every SQL block marked ``<!-- query: NAME -->`` in the docs."""
    found: dict[str, str] = {}
    for match in _QUERY.finditer(DOCS.read_text(encoding="utf-8")):
        assert match["name"] not in found, f"{DOCS.name}: query {match['name']} appears twice"
        found[match["name"]] = match["sql"]
    return found


D = dt.date
T = dt.datetime
FAR = D(4712, 12, 31)  # EBS's "open" effective end date

# table -> (DDL columns, rows). {ts} is the dialect's date-time type (MariaDB's TIMESTAMP has implicit defaults).
TABLES: dict[str, dict[str, tuple[str, list[tuple]]]] = {
    "sap": {
        "USR02": (
            "MANDT VARCHAR(3), BNAME VARCHAR(12), USTYP VARCHAR(1), UFLAG SMALLINT, GLTGV VARCHAR(8), "
            "GLTGB VARCHAR(8), TRDAT VARCHAR(8), LTIME VARCHAR(6), PRIMARY KEY (MANDT, BNAME)",
            [
                ("100", "JSMITH", "A", 0, "20200101", "00000000", "20261120", "081500"),
                ("100", "MLOCKED", "A", 64, "20200101", "99991231", "20260301", "170000"),
                ("100", "EXPIRED", "A", 0, "20200101", "20210630", "20210629", "120000"),
                ("100", "BATCH_GL", "B", 0, "00000000", "00000000", "00000000", "000000"),
                ("100", "RFC_HR", "C", 128, "00000000", "00000000", "20261001", "000001"),
                ("100", "ADMIN01", "S", 0, "00000000", "00000000", None, None),
                ("100", "NOTYET", "A", 0, "99990101", "00000000", "00000000", "000000"),
                ("200", "JSMITH", "A", 0, "20200101", "00000000", "20261120", "081500"),  # another client
            ],
        ),
        "USR21": (
            "MANDT VARCHAR(3), BNAME VARCHAR(12), PERSNUMBER VARCHAR(10), ADDRNUMBER VARCHAR(10)",
            [("100", "JSMITH", "P1", "A1"), ("100", "MLOCKED", "P2", "A2"), ("200", "JSMITH", "P9", "A9")],
        ),
        "ADR6": (
            "CLIENT VARCHAR(3), ADDRNUMBER VARCHAR(10), PERSNUMBER VARCHAR(10), FLGDEFAULT VARCHAR(1), "
            "SMTP_ADDR VARCHAR(241)",
            [
                ("100", "A1", "P1", "X", "john.smith@example.com"),
                ("100", "A1", "P1", " ", "js.private@example.com"),  # not the default address
                ("100", "A2", "P2", "X", "mary.locked@example.com"),
                ("200", "A9", "P9", "X", "other.client@example.com"),
            ],
        ),
        "AGR_USERS": (
            "MANDT VARCHAR(3), AGR_NAME VARCHAR(30), UNAME VARCHAR(12), FROM_DAT VARCHAR(8), TO_DAT VARCHAR(8), "
            "COL_FLAG VARCHAR(1)",
            [
                ("100", "Z_FI_AP_CLERK", "JSMITH", "20200101", "99991231", " "),
                ("100", "Z_FI_VENDOR_MAINT", "JSMITH", "20200101", "99991231", " "),
                ("100", "Z_OLD_ROLE", "JSMITH", "20150101", "20200101", " "),  # assignment ended
                ("100", "Z_FUTURE_ROLE", "JSMITH", "99990101", "99991231", " "),  # not yet in force
                ("100", "Z_FI_AP_CLERK", "MLOCKED", "20200101", "99991231", " "),
                ("100", "Z_GL_POSTING", "BATCH_GL", "20200101", "99991231", " "),
                ("100", "Z_BASIS_ADMIN", "ADMIN01", "20200101", "99991231", " "),
                ("200", "Z_FI_AP_CLERK", "JSMITH", "20200101", "99991231", " "),
            ],
        ),
        "AGR_TEXTS": (
            "MANDT VARCHAR(3), AGR_NAME VARCHAR(30), SPRAS VARCHAR(1), LINE VARCHAR(5), TEXT VARCHAR(80)",
            [
                ("100", "Z_FI_AP_CLERK", "E", "00000", "AP clerk"),
                ("100", "Z_FI_AP_CLERK", "D", "00000", "Kreditorenbuchhalter"),
                ("100", "Z_FI_AP_CLERK", "E", "00001", "Long text, second line"),
                ("100", "Z_FI_VENDOR_MAINT", "E", "00000", "Maintain vendors"),
                ("100", "Z_BASIS_ADMIN", "E", "00000", "Basis administration"),
            ],
        ),
        "UST04": (
            "MANDT VARCHAR(3), BNAME VARCHAR(12), PROFILE VARCHAR(12)",
            [
                ("100", "BATCH_GL", "SAP_ALL"),
                ("100", "BATCH_GL", "Z_GL_PROF"),
                ("100", "JSMITH", "T_FI_PROF"),
            ],
        ),
    },
    "ebs": {
        "FND_USER": (
            "USER_ID INTEGER PRIMARY KEY, USER_NAME VARCHAR(100), DESCRIPTION VARCHAR(240), "
            "EMAIL_ADDRESS VARCHAR(240), EMPLOYEE_ID INTEGER, START_DATE {ts} NOT NULL, END_DATE {ts} NULL, "
            "LAST_LOGON_DATE {ts} NULL",
            [
                (
                    0,
                    "SYSADMIN",
                    "System Administrator",
                    None,
                    None,
                    T(2000, 1, 1),
                    None,
                    T(2026, 11, 30, 22, 10),
                ),
                (1001, "JSMITH", "John Smith", None, 501, T(2020, 1, 1), None, T(2026, 11, 20, 8, 15)),
                (
                    1002,
                    "AJONES",
                    None,
                    "a.jones@example.com",
                    502,
                    T(2018, 1, 1),
                    T(2021, 6, 30),
                    T(2021, 6, 29, 16, 45),
                ),
                (1003, "NNEWMAN", "Nina Newman", None, 503, T(2025, 1, 1), None, None),
                (1004, "NOTYET", "Starts later", None, None, T(9999, 1, 1), None, None),
            ],
        ),
        "FND_RESPONSIBILITY_VL": (
            "RESPONSIBILITY_ID INTEGER, APPLICATION_ID INTEGER, RESPONSIBILITY_KEY VARCHAR(30), "
            "RESPONSIBILITY_NAME VARCHAR(100), START_DATE {ts} NOT NULL, END_DATE {ts} NULL",
            [
                (20420, 1, "SYSTEM_ADMINISTRATOR", "System Administrator", T(2000, 1, 1), None),
                (50001, 101, "GL_SUPERUSER", "General Ledger Super User", T(2000, 1, 1), None),
                (50002, 200, "AP_MANAGER", "Payables Manager", T(2000, 1, 1), None),
                (50003, 200, "AP_INQUIRY_OLD", "Payables Inquiry (retired)", T(2000, 1, 1), T(2019, 1, 1)),
                (50004, 222, "AR_MANAGER", "Receivables Manager", T(2000, 1, 1), None),
            ],
        ),
        "FND_USER_RESP_GROUPS_DIRECT": (
            "USER_ID INTEGER, RESPONSIBILITY_ID INTEGER, RESPONSIBILITY_APPLICATION_ID INTEGER, "
            "SECURITY_GROUP_ID INTEGER, START_DATE {ts} NOT NULL, END_DATE {ts} NULL",
            [
                (0, 20420, 1, 0, T(2000, 1, 1), None),
                (1001, 50001, 101, 0, T(2020, 1, 1), None),
                (1001, 50002, 200, 0, T(2020, 1, 1), T(2022, 1, 1)),  # assignment end-dated
                (1001, 50003, 200, 0, T(2015, 1, 1), None),  # responsibility end-dated
                (1001, 50004, 222, 0, T(9999, 1, 1), None),  # starts later
                (1002, 50002, 200, 0, T(2018, 1, 1), None),  # user end-dated: still listed, account disabled
            ],
        ),
        "PER_ALL_PEOPLE_F": (
            "PERSON_ID INTEGER, EFFECTIVE_START_DATE DATE, EFFECTIVE_END_DATE DATE, EMPLOYEE_NUMBER VARCHAR(30), "
            "FULL_NAME VARCHAR(240), EMAIL_ADDRESS VARCHAR(240)",
            [
                (501, D(2015, 1, 1), D(2019, 12, 31), "E501", "Smith, John", "old.john@example.com"),
                (501, D(2020, 1, 1), FAR, "E501", "Smith, John", "john.smith@example.com"),
                (502, D(2018, 1, 1), D(2021, 6, 30), "E502", "Jones, Anne", "anne.jones@example.com"),
                (502, D(2021, 7, 1), FAR, "E502", "Jones, Anne", "anne.jones@example.com"),  # ex-employee row
                (503, D(2025, 1, 1), FAR, "E503", "Newman, Nina", "nina.newman@example.com"),
                (504, D(2010, 1, 1), FAR, "E504", "Diaz, Carla", "carla.diaz@example.com"),
                (505, D(2020, 1, 1), FAR, None, "Contractor, Casey", None),  # contingent worker
            ],
        ),
        "PER_PERIODS_OF_SERVICE": (
            "PERIOD_OF_SERVICE_ID INTEGER, PERSON_ID INTEGER, DATE_START DATE, ACTUAL_TERMINATION_DATE DATE",
            [
                (1, 501, D(2015, 1, 1), None),
                (2, 502, D(2010, 1, 1), D(2012, 12, 31)),  # an earlier employment
                (3, 502, D(2018, 1, 1), D(2021, 6, 30)),
                (4, 503, D(2025, 1, 1), None),
                (5, 504, D(2010, 1, 1), None),
            ],
        ),
        "PER_ALL_ASSIGNMENTS_F": (
            "ASSIGNMENT_ID INTEGER, PERSON_ID INTEGER, EFFECTIVE_START_DATE DATE, EFFECTIVE_END_DATE DATE, "
            "PRIMARY_FLAG VARCHAR(1), ASSIGNMENT_TYPE VARCHAR(1), SUPERVISOR_ID INTEGER",
            [
                (1, 501, D(2015, 1, 1), D(2019, 12, 31), "Y", "E", 502),  # an earlier supervisor
                (2, 501, D(2020, 1, 1), FAR, "Y", "E", 504),
                (3, 501, D(2020, 1, 1), FAR, "N", "E", 503),  # secondary assignment
                (4, 502, D(2018, 1, 1), D(2021, 6, 30), "Y", "E", 504),
                (5, 503, D(2025, 1, 1), FAR, "Y", "E", 504),
                (6, 504, D(2010, 1, 1), FAR, "Y", "E", None),
            ],
        ),
    },
    "peoplesoft": {
        "PSOPRDEFN": (
            "OPRID VARCHAR(30) PRIMARY KEY, OPRDEFNDESC VARCHAR(30), EMPLID VARCHAR(11), EMAILID VARCHAR(70), "
            "ACCTLOCK SMALLINT, LASTSIGNONDTTM {ts} NULL",
            [
                ("JSMITH", "John Smith", "E501", "john.smith@example.com", 0, T(2026, 11, 20, 8, 15)),
                ("PSADMIN", "PeopleSoft admin", " ", " ", 0, T(2026, 12, 1, 6, 0)),
                ("AJONES", "Anne Jones", "E502", " ", 1, T(2021, 6, 29, 16, 45)),
                ("NNEWMAN", "Nina Newman", "E503", " ", 0, None),
            ],
        ),
        "PSROLEDEFN": (
            "ROLENAME VARCHAR(30) PRIMARY KEY, DESCR VARCHAR(30), ROLESTATUS VARCHAR(1)",
            [
                ("AP Clerk", "Payables clerk", "A"),
                ("Vendor Maintenance", "Maintain vendors", "A"),
                ("PeopleSoft Administrator", "PeopleSoft Administrator", "A"),
                ("Old Role", "Retired role", "I"),
                ("Employee", "Self service", "A"),
            ],
        ),
        "PSROLEUSER": (
            "ROLEUSER VARCHAR(30), ROLENAME VARCHAR(30), DYNAMIC_SW VARCHAR(1)",
            [
                ("JSMITH", "AP Clerk", "N"),
                ("JSMITH", "Vendor Maintenance", "N"),
                ("JSMITH", "Old Role", "N"),  # inactive role: grants nothing
                ("JSMITH", "Employee", "Y"),
                ("PSADMIN", "PeopleSoft Administrator", "N"),
                ("AJONES", "AP Clerk", "N"),
            ],
        ),
    },
}

# What the documented queries return, as SqlSource yields it (text). Columns in this order:
ACCESS_FIELDS = (
    "account_id", "account_name", "employee_id", "email", "account_status", "last_used_at",
    "entitlement_id", "entitlement_name", "entitlement_type", "privileged",
)  # fmt: skip
IDENTITY_FIELDS = (
    "employee_id",
    "email",
    "display_name",
    "status",
    "termination_date",
    "manager_employee_id",
)

EXPECTED: dict[str, list[tuple]] = {
    "sap.access_query": [
        ("ADMIN01", "ADMIN01 (service)", "", "", "enabled", "",
         "Z_BASIS_ADMIN", "Basis administration", "role", "true"),
        ("BATCH_GL", "BATCH_GL (system)", "SAP:BATCH_GL", "", "enabled", "",
         "SAP_ALL", "Profile SAP_ALL", "permission", "true"),
        ("BATCH_GL", "BATCH_GL (system)", "SAP:BATCH_GL", "", "enabled", "", "Z_GL_POSTING", "", "role", "false"),
        ("EXPIRED", "EXPIRED (dialog)", "", "", "disabled", "2021-06-29T12:00:00", "", "", "", ""),
        ("JSMITH", "JSMITH (dialog)", "", "john.smith@example.com", "enabled", "2026-11-20T08:15:00",
         "Z_FI_AP_CLERK", "AP clerk", "role", "false"),
        ("JSMITH", "JSMITH (dialog)", "", "john.smith@example.com", "enabled", "2026-11-20T08:15:00",
         "Z_FI_VENDOR_MAINT", "Maintain vendors", "role", "false"),
        ("MLOCKED", "MLOCKED (dialog)", "", "mary.locked@example.com", "disabled", "2026-03-01T17:00:00",
         "Z_FI_AP_CLERK", "AP clerk", "role", "false"),
        ("NOTYET", "NOTYET (dialog)", "", "", "disabled", "", "", "", "", ""),
        ("RFC_HR", "RFC_HR (communication)", "SAP:RFC_HR", "", "disabled", "2026-10-01T00:00:01",
         "", "", "", ""),
    ],
    "ebs.access_query": [
        ("AJONES", "AJONES", "E502", "a.jones@example.com", "disabled", "2021-06-29T16:45:00",
         "AP_MANAGER", "Payables Manager", "role", "false"),
        ("JSMITH", "John Smith", "E501", "john.smith@example.com", "enabled", "2026-11-20T08:15:00",
         "GL_SUPERUSER", "General Ledger Super User", "role", "true"),
        ("NNEWMAN", "Nina Newman", "E503", "nina.newman@example.com", "enabled", "", "", "", "role", "false"),
        ("NOTYET", "Starts later", "", "", "disabled", "", "", "", "role", "false"),
        ("SYSADMIN", "System Administrator", "", "", "enabled", "2026-11-30T22:10:00",
         "SYSTEM_ADMINISTRATOR", "System Administrator", "role", "true"),
    ],
    "ebs.identities_query": [
        ("E501", "john.smith@example.com", "Smith, John", "active", "", "E504"),
        ("E502", "anne.jones@example.com", "Jones, Anne", "terminated", "2021-06-30", ""),
        ("E503", "nina.newman@example.com", "Newman, Nina", "active", "", "E504"),
        ("E504", "carla.diaz@example.com", "Diaz, Carla", "active", "", ""),
    ],
    "peoplesoft.access_query": [
        ("AJONES", "Anne Jones", "E502", "", "disabled", "2021-06-29T16:45:00",
         "AP Clerk", "Payables clerk", "role", "false"),
        ("JSMITH", "John Smith", "E501", "john.smith@example.com", "enabled", "2026-11-20T08:15:00",
         "AP Clerk", "Payables clerk", "role", "false"),
        ("JSMITH", "John Smith", "E501", "john.smith@example.com", "enabled", "2026-11-20T08:15:00",
         "Employee", "Self service", "role", "false"),
        ("JSMITH", "John Smith", "E501", "john.smith@example.com", "enabled", "2026-11-20T08:15:00",
         "Vendor Maintenance", "Maintain vendors", "role", "false"),
        ("NNEWMAN", "Nina Newman", "E503", "", "enabled", "", "", "", "role", "false"),
        ("PSADMIN", "PeopleSoft admin", "", "", "enabled", "2026-12-01T06:00:00",
         "PeopleSoft Administrator", "PeopleSoft Administrator", "role", "true"),
    ],
}  # fmt: skip


def load(server, erp: str) -> None:
    """(Re)create ``erp``'s tables on ``server`` (a servers.MariaDbServer or PostgresDatabase) with the rows above."""
    ts = "TIMESTAMP" if server.dialect == "postgresql" else "DATETIME"
    with server.admin(server.database) as connection, connection.cursor() as cursor:
        for table, (columns, rows) in TABLES[erp].items():
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
            cursor.execute(f"CREATE TABLE {table} ({columns.format(ts=ts)})")
            if rows:
                marks = ", ".join(["%s"] * len(rows[0]))
                cursor.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)


def execute(server, sql: str, params: tuple = ()) -> int:
    """A change in the ERP's database, as its administrators would make it; the number of rows touched."""
    with server.admin(server.database) as connection, connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
