"""SHA-1 check of the official MMSA feature files against the hashes the reference README lists (§2).

A file whose name is one of the official names (``unaligned_50.pkl`` of MOSI/MOSEI, ``unaligned_39.pkl``
of SIMS) but whose SHA-1 matches none of the official files is reported: a warning by default, a
:class:`~utils.errors.DataError` with ``strict=True`` (``--strict-data``), since results on a modified file
are not comparable with the paper. Files with other names (synthetic data, the derived
``unaligned_39_normalized.pkl``) are hashed and reported as unofficial, without a warning.

Hashing a 1.2 GB file takes seconds, so the digest is cached in a JSON file keyed by the absolute path and
checked against the file's size and ``mtime_ns``; any change re-hashes. The cache lives in
``$EMT_DLFR_CACHE_DIR``, else ``$XDG_CACHE_HOME/emt-dlfr``, else ``~/.cache/emt-dlfr`` (file
``sha1-cache.json``) and is written atomically; an unreadable or unwritable cache only costs a re-hash.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Optional

from utils.errors import DataError
from utils.io import atomic_write_json

logger = logging.getLogger(__name__)

CACHE_DIR_ENV = "EMT_DLFR_CACHE_DIR"
CACHE_SUBDIR = "emt-dlfr"
CACHE_FILE_NAME = "sha1-cache.json"
#: Bytes read per hashing step: bounded memory for files of any size.
HASH_CHUNK_BYTES = 8 << 20


class OfficialFile(NamedTuple):
    dataset: str
    relative_path: str
    sha1: str


#: The feature files the reference README lists, with their SHA-1 (docs/REFERENCE.md §2).
OFFICIAL_FILES = (
    OfficialFile("mosi", "MOSI/Processed/unaligned_50.pkl", "5da0b8440fc5a7c3a457859af27458beb993e088"),
    OfficialFile("mosei", "MOSEI/Processed/unaligned_50.pkl", "db3e2cff4d706a88ee156981c2100975513d4610"),
    OfficialFile("sims", "SIMS/Processed/unaligned_39.pkl", "a00c73e92f66896403c09dbad63e242d5af756f8"),
)


@dataclass(frozen=True)
class IntegrityResult:
    """``official`` is the matching official file (None if none); ``mismatch``: official name, other content."""

    path: Path
    sha1: str
    official: Optional[OfficialFile]
    mismatch: bool


def cache_path() -> Path:
    """The JSON file holding cached digests (see the module docstring for the search order)."""
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return Path(override).expanduser() / CACHE_FILE_NAME
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / CACHE_SUBDIR / CACHE_FILE_NAME


def compute_sha1(path: str | os.PathLike) -> str:
    """SHA-1 of the file's bytes, read in chunks of HASH_CHUNK_BYTES."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _read_cache(cache_file: Path) -> dict:
    try:
        entries = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return entries if isinstance(entries, dict) else {}


def file_sha1(path: str | os.PathLike) -> str:
    """SHA-1 of ``path``, from the cache when its size and mtime_ns are unchanged."""
    path = Path(path).resolve()
    try:
        stat = path.stat()
    except OSError as exc:
        raise DataError(f"cannot read data file {path}: {exc.strerror or exc}") from None
    cache_file = cache_path()
    entries = _read_cache(cache_file)
    key = str(path)
    entry = entries.get(key)
    if isinstance(entry, dict) and entry.get("size") == stat.st_size and entry.get("mtime_ns") == stat.st_mtime_ns:
        return str(entry["sha1"])
    logger.info("computing the SHA-1 of %s (%.1f MB; cached afterwards)", path, stat.st_size / 1e6)
    sha1 = compute_sha1(path)
    entries[key] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha1": sha1}
    try:
        atomic_write_json(cache_file, entries)
    except OSError as exc:
        logger.debug("could not write the SHA-1 cache %s: %s", cache_file, exc)
    return sha1


def check_integrity(path: str | os.PathLike, *, strict: bool = False) -> IntegrityResult:
    """Say whether ``path`` is an official feature file; warn (or raise, if ``strict``) on a modified one."""
    path = Path(path)
    sha1 = file_sha1(path)
    official = next((f for f in OFFICIAL_FILES if f.sha1 == sha1), None)
    same_place = [f for f in OFFICIAL_FILES if path.parts[-3:] == Path(f.relative_path).parts]
    same_name = same_place or [f for f in OFFICIAL_FILES if Path(f.relative_path).name == path.name]
    mismatch = official is None and bool(same_name)
    if official is not None:
        logger.info("data file %s is the official %s (SHA-1 %s)", path, official.relative_path, sha1)
    elif mismatch:
        expected = " or ".join(f"{f.sha1} ({f.dataset})" for f in same_name)
        message = (
            f"data file {path} has the name of an official feature file but SHA-1 {sha1}, expected {expected}; "
            "results on it are not comparable with the paper"
        )
        if strict:
            raise DataError(f"{message} (refused because of --strict-data)")
        logger.warning("%s", message)
    else:
        logger.info("data file %s is not one of the official feature files (SHA-1 %s)", path, sha1)
    return IntegrityResult(path=path, sha1=sha1, official=official, mismatch=mismatch)
