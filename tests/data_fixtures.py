"""Tiny hand-built MMSA feature files for the data-layer tests (format of docs/REFERENCE.md §3.1).

Splits have 6 / 4 / 5 samples, L = 8 tokens, T_a = 10 audio frames of width 3 and T_v = 7 vision frames of
width 4; some rows are full length (so the [SEP] sits at index -1) and some have length 1. Padding is zero.
Import the fixtures into a test module with ``from tests.data_fixtures import ...``.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from data.load_data import clear_load_cache

SPLIT_SIZES = {"train": 6, "valid": 4, "test": 5}
TEXT_LEN = 8
AUDIO_LEN, AUDIO_DIM = 10, 3
VISION_LEN, VISION_DIM = 7, 4
TEXT_FEATURE_DIM = 16
CLS_ID, SEP_ID = 101, 102


def make_split(n: int, rng: np.random.Generator, *, sims: bool = False) -> dict:
    """One split of N samples; token counts and frame lengths include the extremes (minimum and full)."""
    token_counts = np.resize([TEXT_LEN, 3, 5, TEXT_LEN - 1, 4], n)  # tokens incl. [CLS]/[SEP]
    text_bert = np.zeros((n, 3, TEXT_LEN), dtype=np.float32)
    for i, count in enumerate(token_counts):
        text_bert[i, 0, :count] = [CLS_ID, *rng.integers(1000, 2000, count - 2), SEP_ID]
        text_bert[i, 1, :count] = 1
    audio_lengths = np.resize([AUDIO_LEN, 1, 4, 7, 9], n).astype(np.int64)
    vision_lengths = np.resize([2, VISION_LEN, 1, 5], n).astype(np.int64)
    audio = np.zeros((n, AUDIO_LEN, AUDIO_DIM), dtype=np.float32)
    vision = np.zeros((n, VISION_LEN, VISION_DIM), dtype=np.float32)
    for i in range(n):
        audio[i, : audio_lengths[i]] = rng.normal(1.0, 2.0, (audio_lengths[i], AUDIO_DIM))
        vision[i, : vision_lengths[i]] = rng.normal(-0.5, 3.0, (vision_lengths[i], VISION_DIM))
    split = {
        "raw_text": np.array([f"utterance {i}" for i in range(n)], dtype=object),
        "id": np.array([f"video{i}$_${i % 3}" for i in range(n)], dtype=object),
        "text": rng.normal(size=(n, TEXT_LEN, TEXT_FEATURE_DIM)).astype(np.float32),
        "text_bert": text_bert,
        "audio": audio,
        "vision": vision,
        "audio_lengths": audio_lengths,
        "vision_lengths": vision_lengths,
        "regression_labels": rng.uniform(-1.0 if sims else -3.0, 1.0 if sims else 3.0, n).astype(np.float32),
        "classification_labels": np.zeros(n, dtype=np.float32),
        "annotations": np.array(["Neutral"] * n, dtype=object),
    }
    if sims:
        for suffix in "TAV":
            split[f"regression_labels_{suffix}"] = rng.uniform(-1.0, 1.0, n).astype(np.float32)
    return split


def make_mmsa(*, sims: bool = False, seed: int = 0) -> dict:
    """A whole MMSA-format dict with train / valid / test."""
    rng = np.random.default_rng(seed)
    return {split: make_split(n, rng, sims=sims) for split, n in SPLIT_SIZES.items()}


def write_pickle(path: Path, obj, protocol: int = pickle.HIGHEST_PROTOCOL) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


@pytest.fixture(autouse=True)
def isolated_data_state(tmp_path_factory, monkeypatch):
    """Every data test gets its own SHA-1 cache folder, no data-root variable and an empty load cache."""
    monkeypatch.setenv("EMT_DLFR_CACHE_DIR", str(tmp_path_factory.mktemp("sha1-cache")))
    monkeypatch.delenv("MMSA_DATA_ROOT", raising=False)
    clear_load_cache()
    yield
    clear_load_cache()


@pytest.fixture
def mmsa_raw() -> dict:
    return make_mmsa()


@pytest.fixture
def mmsa_file(tmp_path, mmsa_raw) -> Path:
    return write_pickle(tmp_path / "TINY" / "Processed" / "unaligned_8.pkl", mmsa_raw)


@pytest.fixture
def sims_file(tmp_path) -> Path:
    return write_pickle(tmp_path / "SIMS" / "Processed" / "unaligned_39.pkl", make_mmsa(sims=True, seed=1))
