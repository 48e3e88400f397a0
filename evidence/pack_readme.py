"""README.txt, the first file an auditor opens in a pack: what each file is, how to verify, what that proves."""

from __future__ import annotations

from evidence import binding

TABLES = {
    "campaign": "the campaign: name, kind, status, dates, routing, item count",
    "scope": "the period and the applications this pack covers",
    "review_items": "one row per grant reviewed: what the reviewer saw at launch (names, flags, last use), the "
    "reviewer, and the outcome (status, decided by, when, comment, signed off)",
    "decisions": "every certify, revoke and delegate, with actor, exact time and justification",
    "sign_offs": "each reviewer's sign-off of their part of a campaign: who, when, how many items",
    "remediation": "the work each revocation caused: status, ticket, when opened and closed, the pull that "
    "proved the access gone or the proof of a manual close",
    "sod_violations": "segregation-of-duties conflicts of the people in scope",
    "population_source": "where the reviewed population came from: per campaign, the last applied identities "
    "pull and, per application, the last applied access pull before the launch (run, input file SHA-256, "
    "change-set SHA-256, finish time, the chained event applying it, items reviewed)",
    "evidence_events": "the chained evidence events of everything above",
}

SIGNATURE_ROUTE = (
    "3. The pack's signature. [To be completed: how to check statement.json's signature with\n"
    "   `openssl pkeyutl -verify` and the signer's public key.]\n"
)


def text(label: str, tables: list[str]) -> str:
    listed = "".join(
        f"  data/{name}.csv, .xlsx, .json\n      {TABLES.get(name, '')}\n"
        for name in tables
        if name in TABLES
    )
    return f"""{label}
{"=" * len(label)}

This folder is an evidence pack exported by SOXGov: a BagIt bag (RFC 8493) that checks itself.

Files
-----
{listed}  data/chain.csv
      the evidence chain's links (sequence, prev_hash, hash) from the first event of this pack to the
      checkpoint below
  data/checkpoint.json
      the chain head (sequence and hash) signed when this pack was made
  manifest-sha256.txt, tagmanifest-sha256.txt
      the SHA-256 of every file under data/, and of the other files listed here
  statement.json
      what the pack states (scope, when it was made, the chain head, the SHA-256 of tagmanifest-sha256.txt):
      the document the pack's signature covers, so it is not itself in the tag manifest
  verify_pack.py, evidence_chain.py, evidence_binding.py
      the verifier (Python 3.11 or later, standard library only), the chain's hash encoding, and the rules
      that bind every data row to a chained event (below)
  bagit.txt, bag-info.txt
      BagIt's own files

Each table is in three formats with the same rows: XLSX to read (a new sheet starts beyond Excel's row
limit; text a spreadsheet would run as a formula starts with '), CSV and JSON for tools.

How to verify
-------------
1. With the verifier, from this folder (no installation, no network):

       python3 -I verify_pack.py

   or on the ZIP as received: python3 -I verify_pack.py PACK.zip. It prints what it checked and "the pack
   verifies", or FAILED naming the file and row at fault (exit 1). Opening the files in Excel does not
   change them; Excel's own lock files (~$...) are ignored.

2. With standard tools, for the files' integrity:

       sha256sum -c manifest-sha256.txt
       sha256sum -c tagmanifest-sha256.txt
       sha256sum tagmanifest-sha256.txt       (compare with "tagmanifest_sha256" in statement.json)

{SIGNATURE_ROUTE}
What the verifier proves
------------------------
- Integrity: every file is as the manifests list it, and the tag manifest is the one statement.json names.
- The events are the chain's: each event's hash is recomputed from its content, and the chain segment links
  every one of them up to the signed checkpoint, which is the chain head statement.json names.
- Every row of review items, decisions, sign-offs, remediation and population source agrees with the chained
  events in every format, row by row, and every chained decision, sign-off and remediation event has its row
  (rules below); the other tables say the same in their three files.

What it does not prove
----------------------
- Completeness beyond the population source: that the pulls listed there held every account and grant of
  the applications. Test that against the systems themselves (each pull's input file has its SHA-256).
- Anything about events outside this pack's scope, or after its checkpoint.
- That the signer's key is the company's: compare the key's fingerprint with the one published on SOXGov's
  integrity page (and in your audit request).

Binding rules
-------------
{binding.__doc__}"""
