"""SHA-1 check of official files and its on-disk cache."""

import hashlib
import json
import logging
import os

import pytest

import data.integrity as integrity
from data.integrity import CACHE_DIR_ENV, OFFICIAL_FILES, cache_path, check_integrity, file_sha1
from tests.data_fixtures import isolated_data_state  # noqa: F401 (fixture)
from utils.errors import DataError


@pytest.fixture
def counting_hasher(monkeypatch):
    calls = []
    real = integrity.compute_sha1

    def counted(path):
        calls.append(path)
        return real(path)

    monkeypatch.setattr(integrity, "compute_sha1", counted)
    return calls


def test_hash_matches_hashlib_and_reads_in_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(integrity, "HASH_CHUNK_BYTES", 7)
    payload = bytes(range(256)) * 3
    path = tmp_path / "f.bin"
    path.write_bytes(payload)
    assert integrity.compute_sha1(path) == hashlib.sha1(payload).hexdigest()


def test_second_call_uses_the_cache(tmp_path, counting_hasher):
    path = tmp_path / "f.pkl"
    path.write_bytes(b"abc")
    first = file_sha1(path)
    second = file_sha1(path)
    assert first == second == hashlib.sha1(b"abc").hexdigest()
    assert len(counting_hasher) == 1
    entries = json.loads(cache_path().read_text())
    assert entries[str(path.resolve())]["sha1"] == first


def test_cache_lives_in_the_overridden_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "c"))
    assert cache_path() == tmp_path / "c" / "sha1-cache.json"
    monkeypatch.delenv(CACHE_DIR_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_path() == tmp_path / "xdg" / "emt-dlfr" / "sha1-cache.json"


def test_changed_mtime_or_content_rehashes(tmp_path, counting_hasher):
    path = tmp_path / "f.pkl"
    path.write_bytes(b"abc")
    file_sha1(path)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert file_sha1(path) == hashlib.sha1(b"abc").hexdigest()
    assert len(counting_hasher) == 2
    path.write_bytes(b"abcd")
    assert file_sha1(path) == hashlib.sha1(b"abcd").hexdigest()
    assert len(counting_hasher) == 3


def test_corrupt_cache_is_ignored_and_rewritten(tmp_path, counting_hasher):
    cache_path().parent.mkdir(parents=True, exist_ok=True)
    cache_path().write_text("{not json")
    path = tmp_path / "f.pkl"
    path.write_bytes(b"abc")
    assert file_sha1(path) == hashlib.sha1(b"abc").hexdigest()
    assert str(path.resolve()) in json.loads(cache_path().read_text())


def test_official_name_with_other_content_warns_or_refuses(tmp_path, caplog):
    path = tmp_path / "MOSI" / "Processed" / "unaligned_50.pkl"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not the official file")
    with caplog.at_level(logging.WARNING, logger="data.integrity"):
        result = check_integrity(path)
    assert result.mismatch is True and result.official is None
    messages = [r.getMessage() for r in caplog.records]
    assert any("not comparable with the paper" in m and OFFICIAL_FILES[0].sha1 in m for m in messages)
    assert not any(OFFICIAL_FILES[1].sha1 in m for m in messages)  # the folder says MOSI, not MOSEI
    with pytest.raises(DataError, match=r"--strict-data"):
        check_integrity(path, strict=True)


def test_bare_official_name_is_compared_with_every_file_of_that_name(tmp_path, caplog):
    path = tmp_path / "unaligned_50.pkl"
    path.write_bytes(b"something else")
    with caplog.at_level(logging.WARNING, logger="data.integrity"):
        assert check_integrity(path).mismatch is True
    message = caplog.records[0].getMessage()
    assert OFFICIAL_FILES[0].sha1 in message and OFFICIAL_FILES[1].sha1 in message


def test_unknown_file_is_reported_unofficial_without_warning(tmp_path, caplog):
    path = tmp_path / "synthetic.pkl"
    path.write_bytes(b"data")
    with caplog.at_level(logging.WARNING, logger="data.integrity"):
        result = check_integrity(path, strict=True)
    assert result.official is None and result.mismatch is False
    assert not caplog.records


def test_official_hash_is_recognised(tmp_path, monkeypatch):
    path = tmp_path / "renamed.pkl"
    path.write_bytes(b"pretend official")
    monkeypatch.setattr(integrity, "compute_sha1", lambda p: OFFICIAL_FILES[2].sha1)
    result = check_integrity(path, strict=True)
    assert result.official == OFFICIAL_FILES[2] and result.official.dataset == "sims"
    assert result.mismatch is False
