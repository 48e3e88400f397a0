"""The input store: every run reads a content-addressed copy of its file, named by the SHA-256 of its bytes."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from django.test import override_settings

from entitlements import services
from entitlements.connectors.problems import ImportRefused
from entitlements.models import ConnectorRun
from evidence.services import Actor

pytestmark = pytest.mark.django_db

CONTENT = b"application,account_id\r\nERP,alice\r\nERP,\xc3\xa9lodie\r\n"


def queue(source, name="erp.csv"):
    return services.run_create(kind="access", source=source, source_name=name, actor=Actor.system("tests"))


def test_a_path_is_stored_byte_for_byte_under_the_sha256_of_its_bytes(tmp_path, import_store):
    source = tmp_path / "erp.CSV"
    source.write_bytes(CONTENT)
    run = queue(source, name=source.name)
    digest = hashlib.sha256(CONTENT).hexdigest()
    assert (run.input_sha256, run.input_bytes) == (digest, len(CONTENT))
    assert run.source_path == str(import_store / f"{digest}.csv")
    assert (import_store / f"{digest}.csv").read_bytes() == CONTENT
    assert sorted(p.name for p in import_store.iterdir()) == [f"{digest}.csv"]


def test_an_upload_and_a_path_with_the_same_bytes_share_one_stored_copy(tmp_path, import_store):
    source = tmp_path / "erp.csv"
    source.write_bytes(CONTENT)
    from_path, from_upload = queue(source), queue(io.BytesIO(CONTENT))
    assert from_path.input_sha256 == from_upload.input_sha256 == hashlib.sha256(CONTENT).hexdigest()
    assert from_upload.input_bytes == len(CONTENT)
    assert from_path.source_path == from_upload.source_path
    assert len(list(import_store.iterdir())) == 1


def test_the_source_changing_later_does_not_change_the_stored_copy(tmp_path, import_store):
    source = tmp_path / "erp.csv"
    source.write_bytes(CONTENT)
    run = queue(source)
    source.write_bytes(b"application,account_id\nERP,mallory\n")
    assert Path(run.source_path).read_bytes() == CONTENT


@pytest.mark.parametrize("as_upload", [False, True], ids=["path", "upload"])
def test_a_file_over_the_limit_leaves_nothing_in_the_store(tmp_path, import_store, as_upload):
    source = tmp_path / "erp.csv"
    source.write_bytes(CONTENT)
    with override_settings(SOXGOV_IMPORT_MAX_BYTES=len(CONTENT) - 1), pytest.raises(ImportRefused) as info:
        queue(io.BytesIO(CONTENT) if as_upload else source)
    assert info.value.problems[0].reason == f"file is larger than the limit of {len(CONTENT) - 1} bytes"
    assert list(import_store.iterdir()) == []
    assert not ConnectorRun.objects.exists()


def test_a_missing_source_raises_and_leaves_nothing_in_the_store(tmp_path, import_store):
    with pytest.raises(FileNotFoundError):
        queue(tmp_path / "absent.csv")
    assert list(import_store.iterdir()) == []
    assert not ConnectorRun.objects.exists()
