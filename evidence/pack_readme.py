"""README.txt, the first file an auditor opens in a pack: what each file is, how to verify, what that proves."""

from __future__ import annotations

from evidence import binding

TABLES = {
    "campaign": "the campaign: name, kind, status, dates, routing, item count",
    "scope": "the period and the applications this pack covers",
    "review_items": "one row per grant reviewed: what the reviewer saw at launch (names, flags, last use), the "
    "reviewer, and the outcome (status, decided by, when, comment, signed off)",
    "decisions": "every certify, revoke and delegate, with actor, exact time and justification (a decision changed "
    "before sign-off keeps both rows: the later one is the outcome); for a certify or revoke also what the "
    "reviewer was told (recommendation and reasons), how many items the one request decided (batch) and the "
    "seconds from the item first shown to the reviewer to the decision",
    "reviewer_statistics": "how each reviewer reviewed the campaign: decisions, share certified, share decided in "
    "bulk, median and fastest seconds per decision, decisions against the recommendation, high-risk items "
    "certified without a comment, decisions in the last hours before the due date, decisions by hour of day",
    "review_findings": "rubber-stamp findings raised on the reviewers (the rule, what was seen, the control "
    "exception opened and its status): the reviewers an auditor may want to sample first",
    "sign_offs": "each reviewer's sign-off of their part of a campaign: who, when, how many items",
    "remediation": "the work each revocation caused: status, ticket, when opened and closed, the pull that "
    "proved the access gone or the proof of a manual close; cancelled when the revocation was withdrawn before "
    "sign-off",
    "sod_violations": "segregation-of-duties conflicts of the people in scope",
    "population_source": "where the reviewed population came from: per campaign, the last applied identities "
    "pull and, per application, the last applied access pull before the launch (run, input file SHA-256, "
    "change-set SHA-256, finish time, the chained event applying it, items reviewed)",
    "evidence_events": "the chained evidence events of everything above",
}

SIGNATURE_ROUTE = """3. With OpenSSL (3.0 or later), for the signature: statement.sig is the raw Ed25519 signature of
   statement.json by the key in signing-key.pem.

       openssl pkeyutl -verify -pubin -inkey signing-key.pem -rawin -in statement.json -sigfile statement.sig
       openssl pkey -pubin -in signing-key.pem -outform DER | tail -c 32 | sha256sum

   The first prints "Signature Verified Successfully"; the second gives the key's fingerprint (the hex after
   "SHA256:"). Trust the pack only if that fingerprint is the one SOXGov publishes on its integrity page
   (and at /api/evidence/signing-keys/): anyone can sign with a key of their own.
"""


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
  statement.json, statement.sig
      what the pack states (scope, when it was made, the chain head, the SHA-256 of tagmanifest-sha256.txt,
      the signing key), and its Ed25519 signature (RFC 8032); they cover the tag manifest, so neither is in it
  signing-key.pem
      the public key that signed statement.json and data/checkpoint.json (its fingerprint: SHA256 of the
      raw 32-byte key, printed by the verifier)
  verify_pack.py, evidence_chain.py, evidence_binding.py, evidence_ed25519.py
      the verifier (Python 3.11 or later, standard library only; the keys SOXGov signs with and the SHA-256
      of the three modules it runs are built into it, so keep a copy and use it on later packs too), the
      chain's hash encoding, the rules that bind every data row to a chained event (below), and Ed25519
  bagit.txt, bag-info.txt
      BagIt's own files

Each table is in three formats with the same rows: XLSX to read (a new sheet starts beyond Excel's row
limit; text a spreadsheet would run as a formula starts with '), CSV and JSON for tools.

How to verify
-------------
1. With the verifier, from this folder (no installation, no network):

       python3 -I verify_pack.py

   or on the ZIP as received: python3 -I verify_pack.py PACK.zip. It prints what it checked, the
   fingerprint of the key it trusted, and "the pack verifies", or FAILED naming the file and row at fault
   (exit 1). A pack signed by a key it does not know fails; after checking that key's fingerprint with
   SOXGov, trust it with --trust SHA256:<fingerprint>. Opening the files in Excel does not
   change them; Excel's own lock files (~$...) are ignored.

2. With standard tools, for the files' integrity:

       sha256sum -c manifest-sha256.txt
       sha256sum -c tagmanifest-sha256.txt
       sha256sum tagmanifest-sha256.txt       (compare with "tagmanifest_sha256" in statement.json)

{SIGNATURE_ROUTE}
What the verifier proves
------------------------
- Integrity: every file is as the manifests list it, the tag manifest is the one statement.json names, and
  statement.json is signed by a trusted key (so is the checkpoint).
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
- The campaign summary (data/campaign.*), the period's scope and the SoD violations (data/sod_violations.*)
  are not bound to the chain: the verifier only checks that their three files say the same. Read a
  campaign's status and dates, and a violation's status, in their events (data/evidence_events.*).
- In a period pack, a pending review item's access (grant, application, account, entitlement, identity,
  flags, reviewer) is not bound: the launch digest that binds it needs the whole campaign, so check it in
  the campaign's own pack. Items of campaigns launched before SOXGov chained that digest are bound by their
  count and their decisions only.
- That the signer's key is the company's: compare the key's fingerprint with the one published on SOXGov's
  integrity page (and in your audit request).

Binding rules
-------------
{binding.__doc__}"""
