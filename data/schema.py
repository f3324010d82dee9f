"""Validation of an unpickled MMSA feature file (docs/REFERENCE.md §3.1) and its clean-up as in §3.2 steps 1-2.

:func:`validate_mmsa` checks the dict read from a pickle and normalises it in place, so that every later
stage can trust it:

* the splits ``train``, ``valid``, ``test`` and, in each, the keys ``text_bert``, ``audio``, ``vision``,
  ``audio_lengths``, ``vision_lengths``, ``regression_labels`` and ``id`` exist (SIMS files also carry
  ``regression_labels_T/A/V``, which are validated when present: all three or none);
* ``text_bert`` is (N, 3, L) = [input ids; attention mask of 1s then 0s starting with [CLS]; segment ids],
  ``audio``/``vision`` are (N, T, d), lengths and labels are (N,), all first dimensions agree, lengths
  lie in 1..T and labels in the dataset's range;
* features and labels become float32 and lengths int64, as the reference's loader casts them (docs/REFERENCE.md §3.2 step 1),
  converting in place of the original arrays so that only one copy is kept;
* ``-inf`` in audio becomes 0 (§3.2 step 2: MOSI's COVAREP audio has some). Any other non-finite value
  (nan, +inf, or -inf outside audio) is an error, unless ``fix_nonfinite`` is set: then it becomes 0 and
  the counts per split and key are logged as a warning and returned in a :class:`ValidationReport`.

Every error is a :class:`~utils.errors.DataError` naming the file, the split and the key.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from utils.errors import DataError

logger = logging.getLogger(__name__)

REQUIRED_SPLITS = ("train", "valid", "test")
#: Per-sample feature tensors: text_bert (N, 3, L), audio (N, T_a, d_a), vision (N, T_v, d_v).
FEATURE_KEYS = ("text_bert", "audio", "vision")
#: The valid frame count of each sequential non-text modality.
LENGTH_KEYS = {"audio": "audio_lengths", "vision": "vision_lengths"}
LABEL_KEY = "regression_labels"
#: SIMS's unimodal labels, by the reference's label-dict names.
UNIMODAL_LABEL_KEYS = {"T": "regression_labels_T", "A": "regression_labels_A", "V": "regression_labels_V"}
ID_KEY = "id"
REQUIRED_KEYS = (*FEATURE_KEYS, *LENGTH_KEYS.values(), LABEL_KEY, ID_KEY)

#: Rows of ``text_bert``: input ids, attention mask, segment ids.
TEXT_BERT_ROWS = 3
TEXT_IDS_ROW, TEXT_MASK_ROW, TEXT_SEGMENT_ROW = 0, 1, 2
#: Token positions of a ``text_bert`` row: [CLS] first, then the words, then [SEP] and the padding.
CLS_POSITION = 0
FIRST_WORD_POSITION = CLS_POSITION + 1
#: Special tokens around the words of a row: [CLS] ... [SEP].
SPECIAL_TOKENS = 2

#: Samples per chunk when scanning large feature arrays for non-finite values (bounds temporary memory).
_SCAN_CHUNK = 256


@dataclass
class ValidationReport:
    """What :func:`validate_mmsa` changed: audio -inf zeroed per split, other non-finite per (split, key)."""

    source: str
    audio_neg_inf_zeroed: dict[str, int] = field(default_factory=dict)
    nonfinite_fixed: dict[tuple[str, str], int] = field(default_factory=dict)
    has_unimodal_labels: bool = False


def _where(source: str, split: str, key: Optional[str] = None) -> str:
    return f"data file {source}, split '{split}'" + (f", key '{key}'" if key else "")


def _asarray(value: Any, where: str) -> np.ndarray:
    """``np.asarray(value)``; nested lists numpy cannot make an array of (ragged ones) are a DataError."""
    try:
        return np.asarray(value)
    except (ValueError, TypeError, OverflowError) as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(f"{where}: cannot be read as an array ({detail})") from None


def _as_float32(array: Any, where: str) -> np.ndarray:
    """``array`` as a writable float32 ndarray, reusing its memory when it already is one."""
    array = _asarray(array, where)
    if array.dtype.kind not in "biuf":
        raise DataError(f"{where}: expected numbers, got an array of dtype {array.dtype}")
    array = array.astype(np.float32, copy=False)
    if not array.flags.writeable:
        array = array.copy()
    return array


def _as_vector(array: np.ndarray, where: str) -> np.ndarray:
    """(N,) or (N, 1) -> (N,)."""
    if array.ndim == 2 and array.shape[1] == 1:
        return array[:, 0]
    if array.ndim != 1:
        raise DataError(f"{where}: expected shape (N,), got {array.shape}")
    return array


def _scrub_nonfinite(array: np.ndarray, *, zero_neg_inf: bool, fix: bool) -> tuple[int, dict[str, int]]:
    """Zero -inf when ``zero_neg_inf``, zero every other non-finite value when ``fix``; scans in chunks.

    Returns (number of -inf zeroed by ``zero_neg_inf``, counts of the other non-finite values by kind).
    """
    neg_inf_zeroed = 0
    counts = {"nan": 0, "+inf": 0, "-inf": 0}
    for start in range(0, len(array), _SCAN_CHUNK):
        chunk = array[start : start + _SCAN_CHUNK]
        if np.isfinite(chunk).all():
            continue
        if zero_neg_inf:
            neg_inf = np.isneginf(chunk)
            neg_inf_zeroed += int(neg_inf.sum())
            chunk[neg_inf] = 0.0
        nan, pos_inf, neg_inf = np.isnan(chunk), np.isposinf(chunk), np.isneginf(chunk)
        counts["nan"] += int(nan.sum())
        counts["+inf"] += int(pos_inf.sum())
        counts["-inf"] += int(neg_inf.sum())
        if fix:
            chunk[nan | pos_inf | neg_inf] = 0.0
    return neg_inf_zeroed, counts


def _check_text_bert_shape(text_bert: np.ndarray, where: str) -> None:
    if text_bert.ndim != 3 or text_bert.shape[1] != TEXT_BERT_ROWS or text_bert.shape[2] < 1:
        raise DataError(
            f"{where}: expected shape (N, {TEXT_BERT_ROWS}, L) = [input ids; attention mask; segment ids] "
            f"with L >= 1 (at least the [CLS] position), got {text_bert.shape}"
        )


def _check_text_bert_values(text_bert: np.ndarray, where: str) -> None:
    """Ids are non-negative integers; each attention mask is 1s ([CLS] first) followed by 0s."""
    ids, mask = text_bert[:, TEXT_IDS_ROW], text_bert[:, TEXT_MASK_ROW]  # (N, L) each
    bad = np.flatnonzero(((ids < 0) | (ids != np.round(ids))).any(axis=1))
    if bad.size:
        raise DataError(
            f"{where}: input ids (row {TEXT_IDS_ROW}) must be non-negative integers; sample {bad[0]} is not"
        )
    binary = np.isin(mask, (0.0, 1.0)).all(axis=1)
    ordered = binary & (mask[:, 0] == 1) & (np.diff(mask, axis=1) <= 0).all(axis=1)
    bad = np.flatnonzero(~ordered)
    if bad.size:
        raise DataError(
            f"{where}: the attention mask (row {TEXT_MASK_ROW}) must be 1s ([CLS], tokens, [SEP]) "
            f"followed by 0s (padding); sample {bad[0]} has {mask[bad[0]].tolist()}"
        )


def _check_lengths(lengths: Any, max_len: int, where: str) -> np.ndarray:
    """(N,) valid frame counts as int64, each in 1..max_len."""
    lengths = _as_vector(np.asarray(lengths), where)
    if lengths.dtype.kind not in "biuf":
        raise DataError(f"{where}: expected integers, got an array of dtype {lengths.dtype}")
    if lengths.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(lengths) | (lengths != np.round(lengths)))
        if bad.size:
            raise DataError(f"{where}: lengths must be whole numbers; sample {bad[0]} has {lengths[bad[0]]}")
    lengths = lengths.astype(np.int64)
    bad = np.flatnonzero((lengths < 1) | (lengths > max_len))
    if bad.size:
        raise DataError(
            f"{where}: lengths must lie in 1..{max_len} (the sequence axis); sample {bad[0]} has "
            f"{lengths[bad[0]]} ({bad.size} sample(s) out of range)"
        )
    return lengths


def _check_label_range(labels: np.ndarray, label_range: tuple[float, float], where: str) -> None:
    low, high = label_range
    bad = np.flatnonzero((labels < low) | (labels > high))
    if bad.size:
        raise DataError(
            f"{where}: labels must lie in [{low}, {high}] for this dataset; sample {bad[0]} has "
            f"{labels[bad[0]]} ({bad.size} label(s) out of range; wrong dataset or --data-path?)"
        )


def _validate_split(
    split_data: Any,
    *,
    source: str,
    split: str,
    label_range: Optional[tuple[float, float]],
    fix_nonfinite: bool,
    report: ValidationReport,
) -> None:
    where = _where(source, split)
    if not isinstance(split_data, Mapping):
        raise DataError(f"{where}: expected a dict of arrays, got {type(split_data).__name__}")
    missing = [key for key in REQUIRED_KEYS if key not in split_data]
    if missing:
        raise DataError(
            f"{where}: missing key(s) {', '.join(repr(k) for k in missing)} (an MMSA feature file has "
            f"{', '.join(REQUIRED_KEYS)})"
        )
    unimodal = [key for key in UNIMODAL_LABEL_KEYS.values() if key in split_data]
    if unimodal and len(unimodal) != len(UNIMODAL_LABEL_KEYS):
        absent = [k for k in UNIMODAL_LABEL_KEYS.values() if k not in split_data]
        raise DataError(
            f"{where}: has {', '.join(unimodal)} but not {', '.join(absent)} (SIMS has all three)"
        )
    label_keys = [LABEL_KEY, *unimodal]

    arrays: dict[str, np.ndarray] = {}
    for key in FEATURE_KEYS:
        arrays[key] = _as_float32(split_data[key], _where(source, split, key))
    for key in LENGTH_KEYS.values():
        arrays[key] = _asarray(split_data[key], _where(source, split, key))
    for key in label_keys:
        where_key = _where(source, split, key)
        arrays[key] = _as_vector(_as_float32(split_data[key], where_key), where_key)
    arrays[ID_KEY] = _asarray(split_data[ID_KEY], _where(source, split, ID_KEY))

    firsts = {key: (array.shape[0] if array.ndim else None) for key, array in arrays.items()}
    if len(set(firsts.values())) != 1:
        listed = ", ".join(f"{key}: {n}" for key, n in firsts.items())
        raise DataError(f"{where}: the first dimensions (number of samples) disagree ({listed})")
    if firsts[ID_KEY] == 0:
        raise DataError(f"{where}: the split has no samples")
    if arrays[ID_KEY].ndim != 1:
        raise DataError(f"{_where(source, split, ID_KEY)}: expected shape (N,), got {arrays[ID_KEY].shape}")

    _check_text_bert_shape(arrays["text_bert"], _where(source, split, "text_bert"))
    for modality in LENGTH_KEYS:
        if arrays[modality].ndim != 3:
            raise DataError(
                f"{_where(source, split, modality)}: expected shape (N, T, d), got {arrays[modality].shape}"
            )

    for key in (*FEATURE_KEYS, *label_keys):
        neg_inf_zeroed, counts = _scrub_nonfinite(
            arrays[key], zero_neg_inf=(key == "audio"), fix=fix_nonfinite
        )
        if neg_inf_zeroed:
            report.audio_neg_inf_zeroed[split] = neg_inf_zeroed
        total = sum(counts.values())
        if not total:
            continue
        kinds = ", ".join(f"{kind}: {n}" for kind, n in counts.items() if n)
        if not fix_nonfinite:
            raise DataError(
                f"{_where(source, split, key)}: {total} non-finite value(s) ({kinds}); "
                "pass --fix-nonfinite to replace them with 0"
            )
        report.nonfinite_fixed[(split, key)] = total
        logger.warning(
            "%s: replaced %d non-finite value(s) (%s) with 0", _where(source, split, key), total, kinds
        )

    _check_text_bert_values(arrays["text_bert"], _where(source, split, "text_bert"))
    for modality, key in LENGTH_KEYS.items():
        arrays[key] = _check_lengths(arrays[key], arrays[modality].shape[1], _where(source, split, key))
    if label_range is not None:
        for key in label_keys:
            _check_label_range(arrays[key], label_range, _where(source, split, key))

    split_data.update(arrays)


def validate_mmsa(
    raw: Any,
    *,
    source: str,
    label_range: Optional[tuple[float, float]] = None,
    fix_nonfinite: bool = False,
) -> ValidationReport:
    """Check the unpickled file ``raw`` and normalise its arrays in place (see the module docstring).

    ``source`` names the file in messages; ``label_range`` = (low, high) bounds every regression label
    (None skips the check). Returns what was changed.
    """
    if not isinstance(raw, Mapping):
        raise DataError(
            f"data file {source}: expected a dict with splits {REQUIRED_SPLITS}, got {type(raw).__name__}"
        )
    missing = [split for split in REQUIRED_SPLITS if split not in raw]
    if missing:
        raise DataError(
            f"data file {source}: missing split(s) {', '.join(repr(s) for s in missing)} "
            f"(an MMSA feature file has {', '.join(REQUIRED_SPLITS)}; found {', '.join(map(repr, raw))})"
        )
    report = ValidationReport(source=source)
    for split in REQUIRED_SPLITS:
        _validate_split(
            raw[split],
            source=source,
            split=split,
            label_range=label_range,
            fix_nonfinite=fix_nonfinite,
            report=report,
        )

    unimodal = {split: UNIMODAL_LABEL_KEYS["T"] in raw[split] for split in REQUIRED_SPLITS}
    if len(set(unimodal.values())) != 1:
        with_labels = [s for s, has in unimodal.items() if has]
        raise DataError(f"data file {source}: only split(s) {', '.join(with_labels)} have unimodal labels")
    report.has_unimodal_labels = unimodal["train"]

    for modality in LENGTH_KEYS:
        widths = {split: raw[split][modality].shape[2] for split in REQUIRED_SPLITS}
        if len(set(widths.values())) != 1:
            listed = ", ".join(f"{split}: {d}" for split, d in widths.items())
            raise DataError(
                f"data file {source}, key '{modality}': feature widths differ across splits ({listed})"
            )
    for split, count in report.audio_neg_inf_zeroed.items():
        logger.info(
            "%s: set %d audio -inf value(s) to 0 (as the reference does)", _where(source, split, "audio"), count
        )
    return report

