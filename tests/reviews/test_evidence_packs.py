"""Self-verifying evidence packs: built, verified offline with the standard library only, tamper-evident."""

import io
import subprocess
import sys
import zipfile

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from openpyxl import load_workbook

from evidence import packs, signing
from evidence.models import EvidenceEvent, EvidencePack
from evidence.packs import Table, _write_xlsx
from evidence.verify_pack import PackError, read_pack, verify
from reviews import services
from reviews.models import ReviewItem

TABLES = ("campaign", "review_items", "decisions", "sign_offs", "sod_violations", "remediation",
          "population_source", "reviewer_statistics", "review_findings", "evidence_events")  # fmt: skip

pytestmark = pytest.mark.usefixtures("pack_keys_trusted")


@pytest.fixture
def decided(people, company, make_campaign):
    campaign = make_campaign(applications=list(company["applications"].values()))
    services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])
    items = {i.account_key: i for i in ReviewItem.objects.filter(campaign=campaign)}
    services.decide(
        item_ids=[items["ghost"].pk], user=people["rita"], certify=False, comment='=HYPERLINK("http://x")'
    )
    services.decide(item_ids=[items["svc-ledger"].pk], user=people["rita"], certify=True)
    return campaign


def export(campaign, tmp_path):
    out = tmp_path / "pack.zip"
    stdout = io.StringIO()
    call_command("export_evidence_pack", "--campaign", str(campaign.pk), "--out", str(out), stdout=stdout)
    return out, stdout.getvalue()


def run_offline_verifier(pack, tmp_path, *extra):
    """As an auditor would: unzip, then run the pack's own verifier with a bare Python (no SOXGov, no Django)."""
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(pack) as archive:
        archive.extractall(folder)
    [bag] = list(folder.iterdir())
    result = subprocess.run(
        [sys.executable, "-I", str(bag / "verify_pack.py"), str(pack), *extra],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    return result


def test_a_pack_holds_every_table_in_three_formats_and_verifies_offline(decided, tmp_path, settings):
    pack, out = export(decided, tmp_path)

    files = read_pack(str(pack))
    for table in TABLES:
        for ext in ("csv", "xlsx", "json"):
            assert f"data/{table}.{ext}" in files
    for tag in (
        "bagit.txt",
        "bag-info.txt",
        "manifest-sha256.txt",
        "tagmanifest-sha256.txt",
        "verify_pack.py",
    ):
        assert tag in files
    assert "data/chain.csv" in files and "data/checkpoint.json" in files
    result = run_offline_verifier(pack, tmp_path)
    assert result.returncode == 0, result.stderr
    fingerprint = signing.current_public_key().fingerprint
    assert f"statement.json signed by {fingerprint} (a key built into this verifier)" in result.stdout
    assert f"data/checkpoint.json: signed by {fingerprint}, a trusted key" in result.stdout
    assert "the pack verifies" in result.stdout
    event = EvidenceEvent.objects.get(action="evidence.pack.exported")
    assert event.payload_data["sha256"] in out


@pytest.mark.parametrize(
    "name", ["data/review_items.csv", "data/evidence_events.json", "data/decisions.xlsx"]
)
def test_changing_any_byte_of_a_pack_makes_the_verifier_fail_naming_the_file(decided, tmp_path, name):
    pack, _ = export(decided, tmp_path)
    files = read_pack(str(pack))
    data = bytearray(files[name])
    data[len(data) // 2] ^= 0x01
    files[name] = bytes(data)

    with pytest.raises(PackError, match=f"{name}: SHA-256 does not match manifest-sha256.txt"):
        verify(files)


def test_a_forged_event_with_a_fixed_up_manifest_is_still_caught(decided, tmp_path):
    import hashlib

    pack, _ = export(decided, tmp_path)
    files = read_pack(str(pack))
    files["data/evidence_events.json"] = files["data/evidence_events.json"].replace(b"rita", b"mallory", 1)
    digest = hashlib.sha256(files["data/evidence_events.json"]).hexdigest()
    manifest = files["manifest-sha256.txt"].decode().splitlines()
    files["manifest-sha256.txt"] = (
        "\n".join(
            f"{digest} data/evidence_events.json" if line.endswith(" data/evidence_events.json") else line
            for line in manifest
        ).encode()
        + b"\n"
    )
    # The forger would also have to fix the tag manifest, and then the event's hash gives it away.
    with pytest.raises(
        PackError, match=r"manifest-sha256\.txt: SHA-256 does not match tagmanifest-sha256\.txt"
    ):
        verify(files)
    tags = files["tagmanifest-sha256.txt"].decode().splitlines()
    files["tagmanifest-sha256.txt"] = (
        "\n".join(
            f"{hashlib.sha256(files['manifest-sha256.txt']).hexdigest()} manifest-sha256.txt"
            if line.endswith(" manifest-sha256.txt")
            else line
            for line in tags
        ).encode()
        + b"\n"
    )
    with pytest.raises(PackError, match=r"data/evidence_events.json: event \d+ does not match its hash"):
        verify(files)


def test_formula_cells_come_out_inert_in_csv_and_xlsx(decided, tmp_path):
    pack, _ = export(decided, tmp_path)
    files = read_pack(str(pack))
    assert '\'=HYPERLINK(""http://x"")' in files["data/review_items.csv"].decode()
    sheet = load_workbook(io.BytesIO(files["data/review_items.xlsx"]), read_only=True).active
    comments = [row[-2] for row in sheet.iter_rows(min_row=2, values_only=True)]
    assert '\'=HYPERLINK("http://x")' in comments
    assert not any(isinstance(c, str) and c.startswith("=") for c in comments)


def test_csv_rows_end_in_lf_and_a_field_holding_cr_or_lf_is_quoted(tmp_path):
    import datetime as dt

    moment = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    rows = [
        ["a\rb", "c\nd", "=1+1"],
        [None, "", True],
        [moment, moment.replace(microsecond=7), 'say "hi", ok'],
    ]
    table = Table("t", ["x", "y", "z"], lambda: iter(rows))
    path = tmp_path / "t.csv"

    assert packs._write_csv(table, path) == 3
    assert path.read_bytes() == (
        b'x,y,z\n"a\rb","c\nd",\'=1+1\n,,True\n'
        b'2026-01-02T03:04:05+00:00,2026-01-02T03:04:05.000007+00:00,"say ""hi"", ok"\n'
    )


AWKWARD_TEXT = [
    "=SUM(A1:A9)", "+1", "-2", "@cmd", "\tindented", "\rcarriage", 'say "hi", ok', "line one\nline two",
    "crlf\r\ninside", "bare\rcr", "", " leading space", "'already quoted", "Zoë, café ✓", "-", "plain",
    # On either side of the SQL's first test (above '@': no formula) and of its list of formula characters.
    "?just below @", "Above @", "42 starts with a digit", "✓ starts beyond ASCII",
]  # fmt: skip


@pytest.fixture
def awkward(decided, company):
    """The decided campaign, its items' text, times and flags set to what CSV writers get wrong."""
    import datetime as dt

    base = dt.datetime(2026, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
    # No, trimmed (.12), and six digits of microseconds: the SQL formats each its own way.
    times = [None, base, base.replace(microsecond=120000), base.replace(year=999, microsecond=1),
             base.replace(microsecond=654321)]  # fmt: skip
    texts = iter(AWKWARD_TEXT)  # each value in a cell of its own (the campaign has 4 items, 5 text columns)
    columns = ("comment", "department", "identity_name", "account_key", "entitlement_key")
    for n, item in enumerate(ReviewItem.objects.filter(campaign=decided).order_by("pk")):
        ReviewItem.objects.filter(pk=item.pk).update(
            **{column: next(texts, "x") for column in columns},
            last_used_at=times[1 + n % (len(times) - 1)],  # each item's a different date-time
            decided_at=times[(n + 2) % len(times)] if item.decided_at else None,
            dormant=n % 2 == 0,
            signed_off=n % 3 == 0,
        )
    return decided


@pytest.mark.skipif(connection.vendor != "postgresql", reason="COPY writes the pack's CSV on PostgreSQL only")
def test_copy_writes_every_pack_csv_byte_for_byte_as_the_python_writer(awkward, tmp_path):
    from evidence.checkpoints import checkpoint_create
    from evidence.models import Checkpoint
    from evidence.services import Actor

    tables, subjects = packs.campaign_tables(awkward)
    checkpoint = checkpoint_create(reason=Checkpoint.Reason.EVIDENCE_PACK, actor=Actor.system("test"))
    events, first = packs.events_table(subjects, checkpoint.sequence)
    tables.extend([events, packs.chain_table(first, checkpoint.sequence)])
    queried = [t for t in tables if t.cells is not None]
    assert [t.name for t in queried] == [
        "review_items", "decisions", "sign_offs", "remediation", "sod_violations", "evidence_events", "chain",
    ]  # fmt: skip

    for table in queried:
        by_copy, by_python = tmp_path / f"{table.name}.copy.csv", tmp_path / f"{table.name}.py.csv"
        assert packs._copy_csv(table, by_copy) == packs._python_csv(table, by_python), table.name
        assert by_copy.read_bytes() == by_python.read_bytes(), table.name

    items = (tmp_path / "review_items.copy.csv").read_bytes()
    for expected in (b",'=SUM(A1:A9),", b",'-2,", b",'@cmd,", b",'\tindented,", b'"\'\rcarriage"',
                     b'"line one\nline two"', b'"crlf\r\ninside"', b'"bare\rcr"', b'"say ""hi"", ok"', b",,",
                     b"2026-03-04T05:06:07+00:00", b"2026-03-04T05:06:07.120000+00:00",
                     b"0999-03-04T05:06:07.000001+00:00", b",True,", b",False,", b",?just below @,",
                     b",Above @,", b",42 starts with a digit,", ",✓ starts beyond ASCII,".encode(),
                     b"2026-03-04T05:06:07.654321+00:00",
                     '"Zoë, café ✓"'.encode()):  # fmt: skip
        assert expected in items, expected
    assert b"\r\n" not in items.replace(b'"crlf\r\ninside"', b"")  # rows end in LF

    # The SQL formats date-times from their text, which DateStyle shapes: the COPY sets its own, then puts the
    # session's back.
    review_items = next(t for t in queried if t.name == "review_items")
    with connection.cursor() as cursor:
        cursor.execute("SET DateStyle = 'SQL, DMY'")
        try:
            packs._copy_csv(review_items, tmp_path / "sql-datestyle.csv")
            cursor.execute("SHOW DateStyle")
            assert cursor.fetchone() == ("SQL, DMY",)
        finally:
            cursor.execute("RESET DateStyle")
    assert (tmp_path / "sql-datestyle.csv").read_bytes() == items


def test_xlsx_splits_across_sheets_beyond_the_row_limit(tmp_path):
    table = Table("items", ["n"], lambda: ([n] for n in range(7)))
    _write_xlsx(table, tmp_path / "t.xlsx", max_rows=3)  # header + 2 rows per sheet
    book = load_workbook(tmp_path / "t.xlsx", read_only=True)
    sheets = [[row[0] for row in ws.iter_rows(values_only=True)] for ws in book.worksheets]
    assert sheets == [["n", 0, 1], ["n", 2, 3], ["n", 4, 5], ["n", 6]]


def test_an_auditor_exports_with_a_post_and_downloads_but_may_not_decide(
    decided, people, tmp_path, settings, django_capture_on_commit_callbacks
):
    settings.SOXGOV_PACK_DIR = tmp_path / "packs"
    client = Client()
    client.force_login(people["audrey"])

    with django_capture_on_commit_callbacks(execute=True):
        assert client.get(f"/evidence/packs/campaign/{decided.pk}/").status_code == 405
        assert not EvidencePack.objects.exists()  # a GET builds nothing
        response = client.post(f"/evidence/packs/campaign/{decided.pk}/")

    pack = EvidencePack.objects.get()
    assert response.status_code == 302 and response["Location"] == pack.get_absolute_url()
    assert pack.status == "done" and len(pack.sha256) == 64  # eager Celery built it on commit
    download = client.get(f"/evidence/packs/{pack.pk}/download/")
    assert download.status_code == 200 and b"".join(download.streaming_content)[:2] == b"PK"
    assert client.post("/api/reviews/items/decide/", {"items": [1], "action": "certify"}).status_code == 403
    assert EvidenceEvent.objects.get(action="evidence.pack.exported").actor_user_id == people["audrey"].pk


def test_the_evidence_trail_filters_by_campaign_and_identity(decided, people, company):
    client = Client()
    client.force_login(people["audrey"])
    by_campaign = client.get("/api/evidence/events/", {"campaign": decided.pk}).json()["results"]
    assert {row["action"] for row in by_campaign} == {
        "review.campaign.launched",
        "review.item.revoked",
        "review.item.certified",
        "remediation.task.opened",
    }
    bot = company["identities"]["bot"]
    by_identity = client.get("/api/evidence/events/", {"identity": bot.pk}).json()["results"]
    assert [row["action"] for row in by_identity] == ["review.item.certified"]
    page = client.get("/evidence/", {"campaign": decided.pk, "since": "2000-01-01"})
    assert page.status_code == 200 and len(page.context["page"].items) == 4


def test_only_an_items_canonical_id_brings_its_events_into_a_campaign_scope(decided):
    from evidence.filters import EvidenceEventFilter
    from evidence.packs import campaign_tables
    from evidence.services import Actor, Event, Subject, events_record

    pk = ReviewItem.objects.filter(campaign=decided).order_by("pk").values_list("pk", flat=True).first()
    # Look-alikes of the item's id that str(pk) never writes; the 20-digit one would overflow a bigint cast.
    subject_ids = [str(pk), f"0{pk}", f"+{pk}", f" {pk}", f"{pk}.0", "abc", "", "0", "9" * 20]
    events_record(
        actor=Actor.system("test"),
        events=[Event("test.subject.recorded", Subject("reviews.reviewitem", s, "x")) for s in subject_ids],
    )
    recorded = EvidenceEvent.objects.filter(action="test.subject.recorded")

    _tables, subjects = campaign_tables(decided)
    in_pack = recorded.filter(subjects).values_list("subject_id", flat=True)
    trail = EvidenceEventFilter({"campaign": decided.pk}, queryset=recorded).qs.values_list(
        "subject_id", flat=True
    )
    assert list(in_pack) == list(trail) == [str(pk)]


def test_a_pack_for_a_period_and_applications_verifies_and_holds_their_rows(
    decided, company, tmp_path, settings
):
    import datetime as dt
    import json

    from django.utils import timezone

    today = timezone.localdate()
    out = tmp_path / "period.zip"
    call_command(
        "export_evidence_pack", "--since", str(today - dt.timedelta(days=1)), "--until", str(today),
        "--application", "CRM", "--out", str(out), stdout=io.StringIO(),
    )  # fmt: skip

    files = read_pack(str(out))
    assert any(line.startswith("statement.sig: statement.json signed by") for line in verify(files))
    items = json.loads(files["data/review_items.json"])
    assert [row["account_key"] for row in items] == ["ghost"]  # CRM only; ERP's items are out of scope
    assert b"applications CRM" in files["data/scope.csv"].replace(b",", b" ")
    with pytest.raises(Exception, match="at least one --application"):
        call_command(
            "export_evidence_pack",
            "--since",
            str(today),
            "--until",
            str(today),
            "--out",
            str(tmp_path / "x.zip"),
        )


def test_an_auditor_token_asks_for_a_pack_polls_it_and_downloads_what_the_pack_record_hashes(
    decided, people, tmp_path, settings, django_capture_on_commit_callbacks
):
    """The same export over the API, with the read-only token an auditor's tools use: a POST queues the pack
    (202; a GET of the old URL builds nothing), the record says when it is built, and the download is the ZIP
    whose SHA-256 the record holds."""
    import hashlib

    from evidence.services import Actor
    from soxgov.tokens import token_create

    settings.SOXGOV_PACK_DIR = tmp_path / "packs"
    client = Client()
    _, key = token_create(actor=Actor.system("tests"), reason="tests", user=people["audrey"])
    auth = {"Authorization": f"Token {key}"}

    with django_capture_on_commit_callbacks(execute=True):
        assert client.get(f"/api/evidence/packs/campaign/{decided.pk}/", headers=auth).status_code == 404
        assert not EvidencePack.objects.exists()
        asked = client.post(
            "/api/evidence/packs/", {"campaign": decided.pk}, content_type="application/json", headers=auth
        )
    assert (
        asked.status_code == 202 and asked.json()["status"] == "queued" and asked.json()["download"] is None
    )

    record = client.get(f"/api/evidence/packs/{asked.json()['id']}/", headers=auth).json()
    assert record["status"] == "done" and record["scope"] == {"campaign": decided.pk}
    download = client.get(record["download"], headers=auth)
    body = b"".join(download.streaming_content)
    assert download.status_code == 200 and body[:2] == b"PK"
    assert hashlib.sha256(body).hexdigest() == record["sha256"] and len(body) == record["size"]
    again = client.post(
        "/api/evidence/packs/", {"campaign": decided.pk}, content_type="application/json", headers=auth
    )
    assert again.status_code == 200 and again.json()["id"] == record["id"]  # asked twice: the same pack
    for body in ({}, {"campaign": "x"}, {"campaign": 10**9}):
        refused = client.post("/api/evidence/packs/", body, content_type="application/json", headers=auth)
        assert refused.status_code == 400 and "campaign" in refused.json(), body
    listed = client.get("/api/evidence/packs/", headers=auth).json()["results"]
    assert [p["id"] for p in listed] == [record["id"]]
