"""Every row of an evidence pack is bound to the chained events in it: a forger who edits a row consistently in
every format and recomputes both manifests is still caught, and told which file and row give it away."""

import base64
import csv
import hashlib
import io
import json
import re
import shutil
import subprocess
import sys
import warnings
import zipfile

import pytest
from django.core.management import call_command
from openpyxl import load_workbook

from evidence import ed25519
from evidence.binding import cell_text, inert
from evidence.chain import canonical_json, key_fingerprint
from evidence.pack_csv import csv_writer
from evidence.verify_pack import PackError, read_pack
from evidence.verify_pack import verify as verify_pack
from reviews import remediation, services
from reviews.models import RemediationTask, ReviewItem

from .test_remediation import OTHERS, pull_erp

pytestmark = pytest.mark.usefixtures("pack_keys_trusted")

# A forger who signs with a key of their own (an insider who can run SOXGov's code, not read its key).
FORGER_SEED = bytes(range(32))
FORGER_PUBLIC = ed25519.public_key(FORGER_SEED)
FORGER = key_fingerprint(FORGER_PUBLIC)


def verify(files):
    """As an auditor who even trusts the forger's key: so what catches each forgery is the rows' binding."""
    return verify_pack(files, trust=(FORGER,))


@pytest.fixture
def reviewed(people, company, make_campaign, tmp_path, django_capture_on_commit_callbacks):
    """ERP pulled before the launch; Rita revokes the orphan (a formula in her reason), certifies the bot and
    delegates Bob's item to Vic, who certifies it; Carol's item stays pending with Vic; Rita signs off; the
    orphan's task gets a ticket and is closed by hand. Then the campaign's pack."""
    run = pull_erp(
        tmp_path,
        [["ERP", "bob", "E2", "GL_POST", "Post journal", "true"], *OTHERS],
        django_capture_on_commit_callbacks,
    )
    campaign = make_campaign(applications=list(company["applications"].values()))
    services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])
    items = {i.account_key: i for i in ReviewItem.objects.filter(campaign=campaign)}
    rita, vic = people["rita"], people["vic"]
    services.decide(item_ids=[items["ghost"].pk], user=rita, certify=False, comment='=HYPERLINK("http://x")')
    services.decide(item_ids=[items["svc-ledger"].pk], user=rita, certify=True, comment="Nightly ledger sync")
    services.delegate(item_ids=[items["bob"].pk], user=rita, to_user=vic, reason="Bob moved to Vic's team")
    services.decide(item_ids=[items["bob"].pk], user=vic, certify=True, comment="Still posts journals")
    services.sign_off(campaign_id=campaign.pk, user=rita, attested=True)
    task = RemediationTask.objects.get()
    remediation.task_update(task_id=task.pk, user=people["oscar"], ticket="CHG-7", notes="queued")
    remediation.task_close_manually(
        task_id=task.pk, user=people["oscar"], proof="Account disabled in CRM", ticket="CHG-7"
    )
    out = tmp_path / "pack.zip"
    call_command(
        "export_evidence_pack", "--campaign", str(campaign.pk), "--out", str(out), stdout=io.StringIO()
    )
    return {"pack": out, "campaign": campaign, "items": items, "run": run, "task": task}


_BUILT: dict = {}


@pytest.fixture
def built(request, tmp_path_factory):
    """The ``reviewed`` pack, built once per test process: the forgeries below only read and edit its files
    (building a pack is most of a test's time)."""
    if not _BUILT:
        reviewed = request.getfixturevalue("reviewed")
        copy = tmp_path_factory.mktemp("built") / "pack.zip"
        copy.write_bytes(reviewed["pack"].read_bytes())
        _BUILT.update(pack=copy, ghost=reviewed["items"]["ghost"].pk)
    return _BUILT


# --- What a forger does: edit rows in every format, then recompute both manifests and the statement ------------


def _matches(row: dict, match: dict) -> bool:
    return all(cell_text(row.get(column)) == cell_text(value) for column, value in match.items())


def _edit_csv(data: bytes, match, changes) -> bytes:
    rows = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    header, out = rows[0], io.StringIO()
    writer = csv_writer(out)
    writer.writerow(header)
    for cells in rows[1:]:
        row = dict(zip(header, cells, strict=True))
        # CSV cells are text already: compare them as the CSV shows the match.
        if all(row[c] == cell_text(v) for c, v in match.items()):
            if changes is None:
                continue
            row.update({c: cell_text(v) for c, v in changes.items()})
        writer.writerow([row[c] for c in header])
    return out.getvalue().encode("utf-8")


def _edit_json(data: bytes, match, changes) -> bytes:
    rows = []
    for row in json.loads(data):
        if _matches(row, match):
            if changes is None:
                continue
            row.update(changes)
        rows.append(row)
    return json.dumps(rows, indent=1).encode("utf-8")


def _edit_xlsx(data: bytes, match, changes) -> bytes:
    book = load_workbook(io.BytesIO(data))  # saved back with shared strings, as Excel does
    for sheet in book.worksheets:
        header = [c.value for c in sheet[1]]
        for number in range(sheet.max_row, 1, -1):
            cells = sheet[number]
            row = {h: c.value for h, c in zip(header, cells, strict=False)}
            if not all(cell_text(row.get(c)) == cell_text(inert(v)) for c, v in match.items()):
                continue
            if changes is None:
                sheet.delete_rows(number)
                continue
            for column, value in changes.items():
                cells[header.index(column)].value = inert(value)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def forge(files, table, match, changes, formats=("csv", "json", "xlsx")):
    """Change (or with ``changes`` None, delete) the rows of ``table`` matching ``match``, in each format."""
    editors = {"csv": _edit_csv, "json": _edit_json, "xlsx": _edit_xlsx}
    for fmt in formats:
        name = f"data/{table}.{fmt}"
        edited = editors[fmt](files[name], match, changes)
        assert edited != files[name], f"nothing matched {match} in {name}"
        files[name] = edited


def reseal(files):
    """Recompute both manifests and the statement, signed with the forger's own key, as a forger would."""

    def sha(name):
        return hashlib.sha256(files[name]).hexdigest()

    der = bytes.fromhex("302a300506032b6570032100") + FORGER_PUBLIC
    body = base64.encodebytes(der).decode().replace("\n", "")
    files["signing-key.pem"] = f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n".encode()
    data = sorted(n for n in files if n.startswith("data/"))
    files["manifest-sha256.txt"] = "".join(f"{sha(n)} {n}\n" for n in data).encode()
    tags = [line.split(" ", 1)[1] for line in files["tagmanifest-sha256.txt"].decode().splitlines()]
    files["tagmanifest-sha256.txt"] = "".join(f"{sha(n)} {n}\n" for n in tags).encode()
    statement = json.loads(files["statement.json"])
    statement["tagmanifest_sha256"] = sha("tagmanifest-sha256.txt")
    statement["signing_key"] = {
        "algorithm": "Ed25519",
        "fingerprint": FORGER,
        "public_key": FORGER_PUBLIC.hex(),
    }
    files["statement.json"] = canonical_json(statement).encode()
    files["statement.sig"] = ed25519.sign(FORGER_SEED, files["statement.json"])


# --- The forged decision the issue describes ---------------------------------------------------------------


def test_a_revoke_edited_to_certify_in_every_format_with_both_manifests_recomputed_is_caught(built):
    files = read_pack(str(built["pack"]))
    ghost = built["ghost"]
    forge(files, "decisions", {"item_id": ghost, "action": "revoke"}, {"action": "certify"})
    forge(files, "review_items", {"id": ghost}, {"status": "certified"})
    reseal(files)

    with pytest.raises(PackError) as caught:
        verify(files)
    assert re.fullmatch(
        r"data/decisions\.csv, row \d+: action 'certify' but the chained event review\.item\.revoked #\d+ says "
        r"'revoke'",
        str(caught.value),
    ), caught.value

    # Only the items edited (the decision left alone): the item's row gives it away too.
    files = read_pack(str(built["pack"]))
    forge(files, "review_items", {"id": ghost}, {"status": "certified"}, formats=("xlsx",))
    forge(files, "review_items", {"id": ghost}, {"status": "certified"}, formats=("csv", "json"))
    reseal(files)
    with pytest.raises(
        PackError,
        match=r"data/review_items\.csv, row \d+: status 'certified' but the chained event review\.item\.revoked",
    ):
        verify(files)


# --- Each binding rule, broken once ------------------------------------------------------------------------

# A pending item has no event of its own: the launch event's digest over every launched item catches it.
LAUNCH_DIGEST = (
    r"data/review_items\.csv: the 4 items launched in campaign \d+ hash to [0-9a-f]{16}\.\.\., but the chained "
    r"event review\.campaign\.launched #\d+ says [0-9a-f]{16}\.\.\.: a row's grant, application, identity"
)

FORGERIES = {
    # rule: (table, which row, what changes (None: the row is deleted), what the verifier says)
    "decision actor": ("decisions", {"action": "revoke"}, {"actor__username": "vic"},
                       r"data/decisions\.csv, row \d+: actor__username 'vic' but the chained event review\.item\.revoked #\d+ says 'rita'"),
    "decision time": ("decisions", {"action": "revoke"}, {"at": "2020-01-01T00:00:00+00:00"},
                      r"data/decisions\.csv, row \d+: at '2020-01-01T00:00:00\+00:00' but the chained event review\.item\.revoked"),
    "decision justification": ("decisions", {"action": "revoke"}, {"comment": "No longer needed"},
                               r"data/decisions\.csv, row \d+: comment 'No longer needed' but the chained event review\.item\.revoked #\d+ says '\\'=HYPERLINK"),
    "decision id": ("decisions", {"action": "revoke"}, {"id": 99999},
                    r"data/decisions\.csv, row \d+: id '99999' but the chained event review\.item\.revoked"),
    "decision delegate": ("decisions", {"action": "delegate"}, {"delegated_to__username": "alice"},
                          r"data/decisions\.csv, row \d+: delegated_to__username 'alice' but the chained event review\.item\.delegated #\d+ says 'vic'"),
    "decision without its row": ("decisions", {"action": "revoke"}, None,
                                 r"data/decisions\.csv: the chained event review\.item\.revoked #\d+ \(item \d+\) has no row"),
    "item decided by": ("review_items", {"account_key": "ghost"}, {"decided_by__username": "vic"},
                        r"data/review_items\.csv, row \d+: decided_by__username 'vic' but the chained event review\.item\.revoked #\d+ says 'rita'"),
    "item decided at": ("review_items", {"account_key": "ghost"}, {"decided_at": "2020-01-01T00:00:00+00:00"},
                        r"data/review_items\.csv, row \d+: decided_at '2020-01-01T00:00:00\+00:00' but the chained event"),
    "item comment": ("review_items", {"account_key": "svc-ledger"}, {"comment": "checked"},
                     r"data/review_items\.csv, row \d+: comment 'checked' but the chained event review\.item\.certified"),
    "pending item shown decided": ("review_items", {"account_key": "carol"}, {"status": "certified"},
                                   r"data/review_items\.csv, row \d+: status 'certified' but the chain holds no decision of item \d+"),
    "item reviewer after delegation": ("review_items", {"account_key": "bob"}, {"reviewer__username": "rita"},
                                       r"data/review_items\.csv, row \d+: reviewer__username 'rita' but the chained event review\.item\.delegated #\d+ says 'vic'"),
    "item signed off without a sign-off": ("review_items", {"account_key": "carol"}, {"signed_off": True},
                                           r"data/review_items\.csv, row \d+: signed_off 'True' but the chain holds no sign-off by 'vic'"),
    "item with a decision missing": ("review_items", {"account_key": "ghost"}, None,
                                     r"data/review_items\.csv: the chained event review\.item\.revoked #\d+ names review item \d+, which has no row"),
    "items fewer than launched": ("review_items", {"account_key": "carol"}, None,
                                  r"data/review_items\.csv: 3 rows of campaign \d+, but the chained event review\.campaign\.launched #\d+ launched it with 4 items"),
    # What was decided, not only how: the access an item names is the one its events name.
    "decided item's entitlement swapped": ("review_items", {"account_key": "ghost"}, {"entitlement_key": "GL_POST"},
                                           r"data/review_items\.csv, row \d+: entitlement_key 'GL_POST' but the chained event review\.item\.revoked #\d+ says 'CRM_VIEW'"),
    "decided item's entitlement name swapped": ("review_items", {"account_key": "ghost"}, {"entitlement_name": "Read only"},
                                                r"data/review_items\.csv, row \d+: entitlement_name 'Read only' but the chained event review\.item\.revoked #\d+ says 'View customers'"),
    "decided item's identity renamed": ("review_items", {"account_key": "svc-ledger"}, {"identity_name": "Carol Other"},
                                        r"data/review_items\.csv, row \d+: identity_name 'Carol Other' but the chained event review\.item\.certified #\d+ says 'ledger-sync'"),
    "decided item's application swapped": ("review_items", {"account_key": "ghost"}, {"application__name": "ERP"},
                                           r"data/review_items\.csv, row \d+: application__name 'ERP' but the chained event review\.item\.revoked #\d+ says 'CRM'"),
    "decided item's grant swapped": ("review_items", {"account_key": "ghost"}, {"grant_id": 99999},
                                     r"data/review_items\.csv, row \d+: grant_id '99999' but the chained event review\.item\.revoked"),
    "decided item's flag hidden": ("review_items", {"account_key": "svc-ledger"}, {"privileged": False},
                                   r"data/review_items\.csv, row \d+: flags 'new_access, non_human' but the chained event review\.item\.certified #\d+ says 'privileged, new_access, non_human'"),
    "decided item's reviewer swapped": ("review_items", {"account_key": "svc-ledger"}, {"reviewer__username": "vic"},
                                        r"data/review_items\.csv, row \d+: reviewer__username 'vic' but the chained event review\.item\.certified #\d+ says 'rita'"),
    "pending item's entitlement swapped": ("review_items", {"account_key": "carol"}, {"entitlement_key": "GL_VIEW"},
                                           LAUNCH_DIGEST),
    "pending item's reviewer swapped": ("review_items", {"account_key": "carol"}, {"reviewer__username": "alice"},
                                        LAUNCH_DIGEST),
    "pending item's identity renamed": ("review_items", {"account_key": "carol"}, {"identity_name": "Dan Other"},
                                        LAUNCH_DIGEST),
    "pending item's flag raised": ("review_items", {"account_key": "carol"}, {"sod_conflict": True},
                                   LAUNCH_DIGEST),
    "pending item dropped": ("review_items", {"account_key": "carol"}, None,
                             r"data/review_items\.csv: 3 rows of campaign \d+, but the chained event review\.campaign\.launched #\d+ launched it with 4 items"),
    # What the reviewer was told, and how fast they decided, is bound too.
    "decision's recommendation softened": ("decisions", {"comment": "Nightly ledger sync"}, {"recommendation": "fine"},
                                           r"data/decisions\.csv, row \d+: recommendation 'fine' but the chained event review\.item\.certified #\d+ says 'careful'"),
    "decision's time to decide stretched": ("decisions", {"comment": "Nightly ledger sync"}, {"seconds_shown": 600},
                                            r"data/decisions\.csv, row \d+: seconds_shown '600' but the chained event review\.item\.certified #\d+ says ''"),
    "sign-off items": ("sign_offs", {"reviewer__username": "rita"}, {"items": 3},
                       r"data/sign_offs\.csv, row \d+: items '3' but the chained event review\.signoff\.recorded #\d+ says '2'"),
    "sign-off time": ("sign_offs", {"reviewer__username": "rita"}, {"at": "2020-01-01T00:00:00+00:00"},
                      r"data/sign_offs\.csv, row \d+: at '2020-01-01T00:00:00\+00:00' but the chained event review\.signoff\.recorded"),
    "sign-off by someone else": ("sign_offs", {"reviewer__username": "rita"}, {"reviewer__username": "vic"},
                                 r"data/sign_offs\.csv, row \d+: the sign-off of campaign \d+ by 'vic' has no chained event of its own"),
    "sign-off without its row": ("sign_offs", {"reviewer__username": "rita"}, None,
                                 r"data/sign_offs\.csv: the chained event review\.signoff\.recorded #\d+ \(sign-off by 'rita'\) has no row"),
    "remediation status": ("remediation", {"account_key": "ghost"}, {"status": "verified"},
                           r"data/remediation\.csv, row \d+: status 'verified' but the chained event remediation\.task\.closed_manually #\d+ says 'manual'"),
    "remediation proof": ("remediation", {"account_key": "ghost"}, {"proof": "Removed"},
                          r"data/remediation\.csv, row \d+: proof 'Removed' but the chained event remediation\.task\.closed_manually"),
    "remediation ticket": ("remediation", {"account_key": "ghost"}, {"ticket": "CHG-8"},
                           r"data/remediation\.csv, row \d+: ticket 'CHG-8' but the chained event remediation\.task\.closed_manually #\d+ says 'CHG-7'"),
    "remediation due date": ("remediation", {"account_key": "ghost"}, {"due_on": "2099-01-01"},
                             r"data/remediation\.csv, row \d+: due_on '2099-01-01' but the chained event remediation\.task\.opened"),
    "remediation without its row": ("remediation", {"account_key": "ghost"}, None,
                                    r"data/remediation\.csv: the chained event remediation\.task\.opened #\d+ \(remediation task \d+\) has no row"),
    "population input file": ("population_source", {"application": "ERP"}, {"input_sha256": "0" * 64},
                              r"data/population_source\.csv, row \d+: input_sha256 '0{64}' but the chained event import\.run\.applied #\d+"),
    "population application": ("population_source", {"application": "ERP"}, {"application": "CRM"},
                               r"data/population_source\.csv, row \d+: application 'CRM' but the chained event import\.run\.applied #\d+ applied ERP"),
}  # fmt: skip


@pytest.mark.parametrize("rule", FORGERIES)
def test_a_row_breaking_a_binding_rule_in_every_format_fails_naming_the_file_and_row(built, rule):
    table, match, changes, message = FORGERIES[rule]
    files = read_pack(str(built["pack"]))
    forge(files, table, match, changes)
    reseal(files)
    with pytest.raises(PackError) as caught:
        verify(files)
    assert re.match(message, str(caught.value)), caught.value


def test_an_event_or_summary_edited_only_in_its_spreadsheet_is_caught_against_the_other_formats(built):
    files = read_pack(str(built["pack"]))
    forge(
        files,
        "evidence_events",
        {"action": "review.item.revoked"},
        {"actor_name": "Vic (vic)"},
        ("csv", "xlsx"),
    )
    reseal(files)
    with pytest.raises(
        PackError,
        match=r"data/evidence_events\.csv, row \d+: actor_name 'Vic \(vic\)' but data/evidence_events\.json says",
    ):
        verify(files)

    files = read_pack(str(built["pack"]))
    forge(files, "campaign", {"field": "status"}, {"value": "closed"}, ("xlsx",))
    reseal(files)
    with pytest.raises(
        PackError,
        match=r"data/campaign\.xlsx, sheet 'campaign', row \d+: value 'closed' but data/campaign\.csv says 'active'",
    ):
        verify(files)


def test_a_statement_naming_another_tag_manifest_or_chain_head_fails(built):
    files = read_pack(str(built["pack"]))
    statement = json.loads(files["statement.json"])
    files["statement.json"] = canonical_json({**statement, "tagmanifest_sha256": "0" * 64}).encode()
    with pytest.raises(PackError, match=r"statement\.json: tagmanifest_sha256 is not the SHA-256"):
        verify(files)
    head = {**statement["chain_head"], "sequence": statement["chain_head"]["sequence"] - 1}
    files["statement.json"] = canonical_json({**statement, "chain_head": head}).encode()
    with pytest.raises(
        PackError, match=r"statement\.json: chain_head is not the head data/checkpoint\.json signed"
    ):
        verify(files)
    del files["statement.json"]
    with pytest.raises(PackError, match=r"statement\.json is missing"):
        verify(files)


def test_a_file_in_no_manifest_fails(built):
    files = read_pack(str(built["pack"]))
    files["notes.txt"] = b"trust me"
    with pytest.raises(PackError, match=r"notes\.txt: in the pack but in no manifest"):
        verify(files)


# --- The signature: statement.json signed by a key the auditor trusts --------------------------------------


def test_a_pack_re_signed_by_another_key_fails_unless_that_key_is_trusted_explicitly(built):
    files = read_pack(str(built["pack"]))
    reseal(files)  # nothing edited: only the forger's signature
    with pytest.raises(
        PackError, match=rf"statement\.sig: signed by {FORGER}, which this verifier does not trust"
    ):
        verify_pack(files)
    done = verify_pack(files, trust=(FORGER,))
    assert f"statement.sig: statement.json signed by {FORGER} (trusted with --trust)" in done


def test_a_statement_edited_after_signing_or_unsigned_fails(built):
    files = read_pack(str(built["pack"]))
    statement = json.loads(files["statement.json"])
    files["statement.json"] = canonical_json({**statement, "scope": {"campaign": 0}}).encode()
    with pytest.raises(
        PackError, match=r"statement\.sig: not a valid signature of statement\.json by SHA256:"
    ):
        verify_pack(files)
    files = read_pack(str(built["pack"]))
    del files["statement.sig"]
    with pytest.raises(PackError, match=r"statement\.sig is missing: the pack is not signed"):
        verify_pack(files)
    files = read_pack(str(built["pack"]))
    # The key file is vouched for by the tag manifest, and must be the key the statement names.
    files = read_pack(str(built["pack"]))
    deployment_pem = files["signing-key.pem"]
    reseal(files)
    files["signing-key.pem"] = deployment_pem
    with pytest.raises(PackError, match=r"signing-key\.pem: SHA-256 does not match tagmanifest-sha256\.txt"):
        verify_pack(files)


def test_code_a_forger_ships_in_the_pack_is_never_run_by_a_verifier_built_by_soxgov(built):
    """The second read's forgery: modules that accept anything, an unsigned statement, manifests recomputed."""
    files = read_pack(str(built["pack"]))
    files["evidence_ed25519.py"] += b"\n\ndef verify(*args):\n    return True\n"
    files["evidence_binding.py"] += b"\n\ndef same_text(*args):\n    return True\n"
    forge(files, "review_items", {"account_key": "carol"}, {"status": "certified"}, formats=("csv",))
    reseal(files)
    files["statement.sig"] = bytes(64)
    with pytest.raises(PackError, match=r"evidence_ed25519\.py: not the code this verifier was built with"):
        verify_pack(files, trust=(FORGER,))


def test_the_verifier_downloaded_from_soxgov_verifies_a_pack_and_refuses_one_whose_own_verifier_was_forged(
    built, personas, tmp_path
):
    from django.test import Client

    client = Client()
    client.force_login(personas["audrey"])
    response = client.get("/evidence/integrity/verify_pack.py")
    assert response.status_code == 200 and response["Content-Disposition"].endswith(
        'filename="verify_pack.py"'
    )
    verifier = tmp_path / "verify_pack.py"
    verifier.write_bytes(response.content)
    ok = _run([str(verifier), str(built["pack"])], cwd=tmp_path)
    assert ok.returncode == 0 and ok.stdout.endswith("the pack verifies\n"), ok.stderr

    # The forger's pack trusts the forger: its own verify_pack.py says so, and passes; SOXGov's copy does not.
    files = read_pack(str(built["pack"]))
    files["verify_pack.py"] = files["verify_pack.py"].replace(
        b"TRUSTED_KEYS: dict[str, str] = {",
        f"TRUSTED_KEYS: dict[str, str] = {{{FORGER!r}: {FORGER_PUBLIC.hex()!r}, ".encode(),
    )
    reseal(files)
    forged = tmp_path / "forged"
    for name in files:
        (forged / name).parent.mkdir(parents=True, exist_ok=True)
        (forged / name).write_bytes(files[name])
    assert _run(["verify_pack.py"], cwd=forged).returncode == 0  # the pack's own verifier is the forger's
    refused = _run([str(verifier), str(forged)], cwd=tmp_path)
    assert (
        refused.returncode == 1
        and f"signed by {FORGER}, which this verifier does not trust" in refused.stderr
    )


def test_a_zip_with_a_file_twice_or_outside_the_bag_folder_is_refused(built, tmp_path):
    with zipfile.ZipFile(built["pack"]) as archive:
        names = archive.namelist()
        contents = {name: archive.read(name) for name in names}
    root = names[0].split("/")[0]
    for extra, message in (
        (f"{root}/data/decisions.csv", "in the ZIP twice"),
        ("other/notes.txt", "outside"),
    ):
        forged = tmp_path / f"forged-{len(extra)}.zip"
        with zipfile.ZipFile(forged, "w") as archive, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zipfile warns of the duplicate name it is asked to write
            for name in names:
                archive.writestr(name, contents[name])
            archive.writestr(extra, b"id,item_id\n")
        with pytest.raises(PackError, match=message):
            read_pack(str(forged))


def test_a_formula_in_a_workbook_is_refused(built):
    files = read_pack(str(built["pack"]))
    book = load_workbook(io.BytesIO(files["data/decisions.xlsx"]))
    book.worksheets[0]["B2"] = '="revoke"'
    out = io.BytesIO()
    book.save(out)
    files["data/decisions.xlsx"] = out.getvalue()
    reseal(files)
    with pytest.raises(
        PackError, match=r"data/decisions\.xlsx.*cell B2: a formula, which a pack never holds"
    ):
        verify(files)


def test_the_statement_signature_checks_with_openssl_as_the_pack_readme_says(built, tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    with zipfile.ZipFile(built["pack"]) as archive:
        archive.extractall(tmp_path)
    [bag] = list(tmp_path.iterdir())
    command = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "signing-key.pem", "-rawin",
               "-in", "statement.json", "-sigfile", "statement.sig"]  # fmt: skip
    good = subprocess.run(command, cwd=bag, capture_output=True, text=True, check=False)
    assert good.returncode == 0 and "Signature Verified Successfully" in good.stdout, good.stderr
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-in", "signing-key.pem", "-outform", "DER"],
        cwd=bag,
        capture_output=True,
    ).stdout
    statement = json.loads((bag / "statement.json").read_text())
    assert "SHA256:" + hashlib.sha256(der[-32:]).hexdigest() == statement["signing_key"]["fingerprint"]
    (bag / "statement.json").write_text((bag / "statement.json").read_text().replace('"format"', '"formaT"'))
    bad = subprocess.run(command, cwd=bag, capture_output=True, text=True, check=False)
    assert bad.returncode != 0


# --- What the pack holds, and the auditor's two ways to run the verifier --------------------------------------


def test_a_pack_holds_sign_offs_population_source_statement_and_readme(reviewed):
    files = read_pack(str(reviewed["pack"]))
    sign_offs = json.loads(files["data/sign_offs.json"])
    assert [(s["reviewer__username"], s["items"]) for s in sign_offs] == [("rita", 2)]
    population = {(p["kind"], p["application"]): p for p in json.loads(files["data/population_source.json"])}
    run = reviewed["run"]
    erp = population[("access", "ERP")]
    assert (erp["run_id"], erp["input_sha256"], erp["items"]) == (run.pk, run.input_sha256, 3)
    assert population[("access", "CRM")]["run_id"] is None  # never pulled: the auditor sees it
    assert population[("identities", "")]["run_id"] is None
    statement = json.loads(files["statement.json"])
    assert statement["scope"] == {"campaign": reviewed["campaign"].pk, "name": reviewed["campaign"].name}
    assert statement["tagmanifest_sha256"] == hashlib.sha256(files["tagmanifest-sha256.txt"]).hexdigest()
    assert b"statement.json" not in files["tagmanifest-sha256.txt"]
    assert b" README.txt\n" in files["tagmanifest-sha256.txt"]
    readme = files["README.txt"].decode()
    for needed in ("sha256sum -c manifest-sha256.txt", "python3 -I verify_pack.py", "What it does not prove",
                   "fingerprint", "data/population_source.csv", "openssl pkeyutl -verify",
                   "are not bound to the chain"):  # fmt: skip
        assert needed in readme, needed
    decisions = json.loads(files["data/decisions.json"])
    assert all(re.search(r"\.\d{6}\+00:00$|:\d\d\+00:00$", d["at"]) for d in decisions)  # full precision


def _run(args, cwd):
    return subprocess.run(
        [sys.executable, "-I", *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False
    )


def test_an_untouched_pack_verifies_from_the_zip_and_from_the_unzipped_folder_in_isolated_mode(
    reviewed, tmp_path
):
    folder = tmp_path / "unzipped"
    with zipfile.ZipFile(reviewed["pack"]) as archive:
        archive.extractall(folder)
    [bag] = list(folder.iterdir())

    from_zip = _run([str(bag / "verify_pack.py"), str(reviewed["pack"])], cwd=tmp_path)
    assert from_zip.returncode == 0, from_zip.stderr
    # Inside the folder, no argument: the folder itself; an Excel lock file beside a workbook is set aside.
    (bag / "data" / "~$decisions.xlsx").write_bytes(b"lock")
    in_folder = _run(["verify_pack.py"], cwd=bag)
    assert in_folder.returncode == 0, in_folder.stderr
    for output in (from_zip.stdout, in_folder.stdout):
        assert "ok: decisions: 4 rows in CSV, JSON and XLSX, bound to the chained events" in output
        assert "ok: sign_offs: 1 rows" in output and "ok: population_source: 3 rows" in output
        assert output.endswith("the pack verifies\n")
    assert "ignored: data/~$decisions.xlsx" in in_folder.stdout

    # The folder, edited as a forger would (one decision's actor in every format, manifests recomputed).
    files = read_pack(str(bag))
    forge(files, "decisions", {"action": "revoke"}, {"actor__username": "vic"})
    reseal(files)
    for name in files._replaced:
        (bag / name).write_bytes(files[name])
    forged = _run(["verify_pack.py"], cwd=bag)
    assert forged.returncode == 1
    assert forged.stderr.startswith(
        f"FAILED: statement.sig: signed by {FORGER}, which this verifier does not"
    ), forged.stderr
    # Even an auditor talked into trusting the forger's key is shown the edited row.
    forged = _run(["verify_pack.py", "--trust", FORGER], cwd=bag)
    assert forged.returncode == 1
    assert re.match(r"FAILED: data/decisions\.csv, row \d+: actor__username 'vic'", forged.stderr), (
        forged.stderr
    )


def test_a_decision_evidenced_before_pack_format_2_binds_by_item_action_actor_and_comment(
    people, make_campaign, tmp_path
):
    """Events written before decisions carried their id and exact time: the row binds by what they hold."""
    from django.db import transaction
    from django.utils import timezone

    from evidence.services import Actor, event_record
    from reviews.models import Decision

    campaign = make_campaign()
    services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])
    item = ReviewItem.objects.get(campaign=campaign, account_key="svc-ledger")
    rita, now = people["rita"], timezone.now()
    with transaction.atomic():  # what decide() wrote before: no decision id, no "by", no exact time
        ReviewItem.objects.filter(pk=item.pk).update(
            status="certified", decided_by=rita, decided_at=now, comment="Nightly sync"
        )
        Decision.objects.create(item=item, action="certify", actor=rita, at=now, comment="Nightly sync")
        event_record(
            actor=Actor.for_user(rita),
            action="review.item.certified",
            subject=item,
            payload={"campaign": campaign.pk, "grant": item.grant_id, "comment": "Nightly sync"},
        )
    out = tmp_path / "legacy.zip"
    call_command(
        "export_evidence_pack", "--campaign", str(campaign.pk), "--out", str(out), stdout=io.StringIO()
    )

    assert verify(read_pack(str(out)))[-1].startswith("sod_violations")
    files = read_pack(str(out))
    forge(files, "decisions", {"item_id": item.pk}, {"actor__username": "alice"})
    reseal(files)
    with pytest.raises(
        PackError,
        match=r"data/decisions\.csv, row 2: actor__username 'alice' but the chained event review\.item\.certified "
        r"#\d+ says 'rita'",
    ):
        verify(files)


def test_a_pack_built_outside_any_transaction_reads_one_snapshot_and_verifies(
    committed_db, people, make_campaign, tmp_path
):
    """As the worker and the shell build it: the snapshot is a transaction of its own (REPEATABLE READ on
    PostgreSQL), and the checkpoint signed after it still covers every event in the pack."""
    campaign = make_campaign()
    services.campaign_launch(campaign_id=campaign.pk, user=people["alice"])
    item = ReviewItem.objects.get(campaign=campaign, account_key="svc-ledger")
    services.decide(item_ids=[item.pk], user=people["rita"], certify=False, comment="Not needed")
    out = tmp_path / "committed.zip"
    call_command(
        "export_evidence_pack", "--campaign", str(campaign.pk), "--out", str(out), stdout=io.StringIO()
    )

    done = verify(read_pack(str(out)))
    assert "decisions: 1 rows in CSV, JSON and XLSX, bound to the chained events" in done


def test_the_verifier_reads_every_sheet_of_a_split_workbook_and_shared_strings(tmp_path):
    from evidence.packs import Table, _write_xlsx
    from evidence.verify_pack import _xlsx_rows

    table = Table("items", ["n", "text", "flag"], lambda: ([n, f"=row {n}", n % 2 == 0] for n in range(7)))
    _write_xlsx(table, tmp_path / "split.xlsx", max_rows=3)  # header + 2 rows per sheet, inline strings
    _as_excel_saves_it(tmp_path / "split.xlsx", tmp_path / "shared.xlsx")
    files = read_pack(str(tmp_path))
    for name in ("split.xlsx", "shared.xlsx"):
        rows = [(where, row) for where, row in _xlsx_rows(files, name) if where is not None]
        assert [row for _, row in rows] == [
            {"n": str(n), "text": f"'=row {n}", "flag": str(n % 2 == 0)} for n in range(7)
        ], name
        assert rows[2][0] == "sheet 'items 2', row 2"


def _as_excel_saves_it(source, target):
    """The workbook with its strings in a shared-strings table, as Excel writes them (openpyxl writes inline)."""
    strings: list[str] = []

    def shared(found):
        strings.append(found.group(2))
        return f'<c r="{found.group(1)}" t="s"><v>{len(strings) - 1}</v></c>'

    inline = re.compile(
        r'<c r="([A-Z]+[0-9]+)" t="inlineStr"><is><t(?: xml:space="preserve")?>(.*?)</t></is></c>'
    )
    with zipfile.ZipFile(source) as book, zipfile.ZipFile(target, "w") as out:
        for name in book.namelist():
            data = book.read(name)
            if name.startswith("xl/worksheets/"):
                data = inline.sub(shared, data.decode()).encode()
            out.writestr(name, data)
        items = "".join(f"<si><t>{text}</t></si>" for text in strings)
        out.writestr(
            "xl/sharedStrings.xml",
            f'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">{items}</sst>',
        )
    assert strings and b't="s"' in zipfile.ZipFile(target).read("xl/worksheets/sheet1.xml")
