"""Offline verifier for a SOXGov evidence pack. Python standard library only: an auditor runs it on their own
machine, without SOXGov:

    python verify_pack.py PACK.zip [--key CHECKPOINT_KEY]

It checks (1) the BagIt manifests: every payload and tag file is present and has the SHA-256 the manifests list
(a changed byte anywhere names the file); (2) every evidence event in the pack: its hash is recomputed from its
content with the chain's encoding (evidence_chain.py, shipped in the pack); (3) the chain segment: each link
follows the one before, from the first event of the scope up to the checkpoint, whose head it must reach; and,
with --key, (4) the checkpoint's HMAC signature. Exit 0 when everything holds; 1 naming the first failure.
Files are read from the zip as they are checked and hashed block by block: of a pack's data, only the chain
segment and the evidence events are held in memory, whatever the number of review items.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.util
import io
import json
import sys
import zipfile
from collections.abc import Iterator, MutableMapping
from pathlib import PurePosixPath

BLOCK = 1 << 20


class PackError(Exception):
    pass


def _manifest(text: str, listed_in: str) -> dict[str, str]:
    entries = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        digest, _, name = line.partition(" ")
        name = name.strip()
        if len(digest) != 64 or not name:
            raise PackError(f"{listed_in}, line {number}: not '<sha256> <path>'")
        entries[name] = digest
    return entries


def _open(files, name: str):
    """A binary stream of one file: from the zip for PackFiles, so no large file is ever held whole."""
    return files.open(name) if isinstance(files, PackFiles) else io.BytesIO(files[name])


def _sha256(files, name: str) -> str:
    digest = hashlib.sha256()
    with _open(files, name) as handle:
        for block in iter(lambda: handle.read(BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_manifest(files, manifest_name: str) -> dict[str, str]:
    if manifest_name not in files:
        raise PackError(f"{manifest_name} is missing")
    listed = _manifest(files[manifest_name].decode("utf-8"), manifest_name)
    for name, digest in listed.items():
        if name not in files:
            raise PackError(f"{name}: listed in {manifest_name} but missing from the pack")
        if _sha256(files, name) != digest:
            raise PackError(f"{name}: SHA-256 does not match {manifest_name} (the file was changed)")
    return listed


def _load_chain_module(source: bytes):
    spec = importlib.util.spec_from_loader("evidence_chain", loader=None)
    module = importlib.util.module_from_spec(spec)
    sys.modules["evidence_chain"] = module  # dataclasses look their module up while the class is made
    exec(compile(source, "evidence_chain.py", "exec"), module.__dict__)
    return module


class PackFiles(MutableMapping):
    """The pack's files by their path inside the bag, read from the zip only when asked for (a pack of 1M items
    holds ~850 MB). Assigning bytes to a name replaces that file, as a forger would (the tests do)."""

    def __init__(self, path: str):
        self.path = path
        self._replaced: dict[str, bytes] = {}
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
        root = PurePosixPath(names[0]).parts[0] if names else ""
        self._members = {
            str(PurePosixPath(*PurePosixPath(name).parts[1:])): name
            for name in names
            if not name.endswith("/") and PurePosixPath(name).parts[0] == root
        }

    def open(self, name: str):
        """A binary stream of the file."""
        if name in self._replaced:
            return io.BytesIO(self._replaced[name])
        with zipfile.ZipFile(self.path) as archive:
            return archive.open(self._members[name])  # keeps the zip's file open until it is closed itself

    def __getitem__(self, name: str) -> bytes:
        if name not in self:
            raise KeyError(name)
        with self.open(name) as handle:
            return handle.read()

    def __setitem__(self, name: str, data: bytes) -> None:
        self._replaced[name] = data

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self._replaced.pop(name, None)
        self._members.pop(name, None)

    def __contains__(self, name) -> bool:  # without reading the file, as Mapping's would
        return name in self._replaced or name in self._members

    def __iter__(self) -> Iterator[str]:
        yield from self._members
        yield from (name for name in self._replaced if name not in self._members)

    def __len__(self) -> int:
        return len(self._members.keys() | self._replaced.keys())


def read_pack(path: str) -> PackFiles:
    return PackFiles(path)


def verify(files, key: str | None = None) -> list[str]:
    """Returns what was checked; raises PackError naming the first failure."""
    done = []
    if files.get("bagit.txt", b"").split(b"\n")[0].strip() != b"BagIt-Version: 1.0":
        raise PackError("bagit.txt: not a BagIt 1.0 bag")
    payload = _check_manifest(files, "manifest-sha256.txt")
    unlisted = [n for n in files if n.startswith("data/") and n not in payload]
    if unlisted:
        raise PackError(f"{unlisted[0]}: in the pack but not in manifest-sha256.txt")
    done.append(f"{len(payload)} payload files match manifest-sha256.txt")
    tags = _check_manifest(files, "tagmanifest-sha256.txt")
    done.append(f"{len(tags)} tag files match tagmanifest-sha256.txt")

    chain = _load_chain_module(files["evidence_chain.py"])
    checkpoint = json.loads(files["data/checkpoint.json"])
    by_sequence = {}
    previous = first = None
    for row in _chain_links(files):
        sequence = int(row["sequence"])
        if previous is not None:
            if sequence != previous[0] + 1:
                raise PackError(
                    f"data/chain.csv: sequence {sequence} follows {previous[0]} (a link is missing)"
                )
            if row["prev_hash"] != previous[1]:
                raise PackError(f"data/chain.csv: sequence {sequence} does not link to the event before it")
        by_sequence[sequence] = row["hash"]
        previous = (sequence, row["hash"])
        first = sequence if first is None else first
    if previous is None or previous[0] != checkpoint["sequence"] or previous[1] != checkpoint["head_hash"]:
        raise PackError("data/chain.csv: the segment does not end at the checkpoint's head")
    done.append(f"chain segment {first}..{previous[0]} links up to the checkpoint head")

    events = json.loads(files["data/evidence_events.json"])
    for event in events:
        fields = {name: event[name] for name in chain.HASHED_FIELDS}
        recomputed = chain.event_hash(fields)
        if recomputed != event["hash"]:
            raise PackError(f"data/evidence_events.json: event {event['sequence']} does not match its hash")
        if by_sequence.get(event["sequence"]) != recomputed:
            raise PackError(f"data/evidence_events.json: event {event['sequence']} is not the chain's event")
    done.append(f"{len(events)} evidence events recomputed and found in the chain")

    if key is not None:
        if not chain.checkpoint_valid(checkpoint, key.encode("utf-8")):
            raise PackError("data/checkpoint.json: the signature does not verify with this key")
        done.append("checkpoint signature verified")
    return done


def _chain_links(files) -> Iterator[dict[str, str]]:
    with _open(files, "data/chain.csv") as handle:
        yield from csv.DictReader(io.TextIOWrapper(handle, encoding="utf-8", newline=""))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pack", help="the evidence pack (.zip)")
    parser.add_argument("--key", help="the checkpoint signing key, to check the checkpoint's signature too")
    args = parser.parse_args(argv)
    try:
        for line in verify(read_pack(args.pack), args.key):
            print(f"ok: {line}")
    except (PackError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    print("the pack verifies")
    return 0


if __name__ == "__main__":
    sys.exit(main())
