"""Loading MMSA feature files into per-split datasets with the missing-feature view (docs/REFERENCE.md §3.2).

* :func:`load_mmsa` reads a pickle with the restricted unpickler (:mod:`data.safe_pickle`), checks the
  SHA-1 of official files (:mod:`data.integrity`), validates and cleans it (:mod:`data.schema`) and keeps
  one float32 copy of what the model reads. The precomputed BERT features ``text``, (N, L, 768), are unused
  because the model reads ``text_bert`` (§3.1), so only their width is kept. The last file loaded is cached
  in-process, so a sweep over missing rates reads a 1.2 GB file once. Its arrays are read-only.
* :class:`MMSADataset` is the reference's ``MMDataset`` for one split: it stores boolean keep-masks
  (:mod:`data.missing`) and builds the incomplete view of each item in ``__getitem__``, so no second
  copy of the audio/vision features is made. Items have the reference's field names (§3.2 step 5).
* :func:`build_loaders` makes one ``DataLoader`` per split with ``shuffle=True`` for all three splits, as
  the reference does (§3.2 step 6, §8 item 12); each loader has its own ``torch.Generator`` seeded from
  the run seed (exposed as ``loader.generator``, so its state can be saved and restored on resume), or,
  with ``global_rng=True`` (``--faithful-rng``), none: like the reference's, every iteration of a loader then
  draws its worker base seed and its shuffle seed from the global torch generator.
"""

from __future__ import annotations

import logging
import numbers
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from config import MODALITIES
from config.base import REFERENCE_MISSING_SEEDS
from data.integrity import IntegrityResult, check_integrity
from data.missing import check_missing_rate, check_protocol, frame_valid_mask, keep_mask, mask_frames, mask_text_ids
from data.safe_pickle import safe_load
from data.schema import (
    ID_KEY,
    LABEL_KEY,
    LENGTH_KEYS,
    REQUIRED_SPLITS,
    TEXT_IDS_ROW,
    TEXT_MASK_ROW,
    UNIMODAL_LABEL_KEYS,
    ValidationReport,
    validate_mmsa,
)
from utils.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

#: The reference's multimodal label name; SIMS adds "T", "A", "V" (UNIMODAL_LABEL_KEYS).
MULTIMODAL_LABEL = "M"
#: Items keep MMSA's entry names. ``<modality>_missing_mask`` holds the incomplete view's keep-mask (1 at the
#: KEPT positions, despite its name); ``<modality>_mask`` the valid frames of audio / vision (text's valid
#: tokens are row ``TEXT_MASK_ROW`` of ``text``).
KEPT_KEY = "{}_missing_mask"
VALID_KEY = "{}_mask"


def kept_key(modality: str) -> str:
    """The batch entry holding ``modality``'s keep-mask (1 = kept) in the incomplete view."""
    return KEPT_KEY.format(modality)


def valid_key(modality: str) -> str:
    """The batch entry holding the valid frames of ``modality`` (audio or vision)."""
    return VALID_KEY.format(modality)


def dropped_positions(batch: dict, modality: str):
    """(B, T) 1 where ``modality``'s position is valid but was dropped in the incomplete view (valid - kept):
    the positions the reconstruction losses read. Text positions include [CLS] and [SEP]."""
    valid = batch["text"][:, TEXT_MASK_ROW] if modality == "text" else batch[valid_key(modality)]
    return valid - batch[kept_key(modality)]


#: Largest seed numpy's RandomState accepts.
MAX_SEED = 2**32 - 1


@dataclass
class SplitArrays:
    """One split's arrays after validation. N samples, L tokens, T_a / T_v frames."""

    text_bert: np.ndarray  # (N, 3, L) float32: input ids, attention mask, segment ids
    audio: np.ndarray  # (N, T_a, d_a) float32
    vision: np.ndarray  # (N, T_v, d_v) float32
    audio_lengths: np.ndarray  # (N,) int64
    vision_lengths: np.ndarray  # (N,) int64
    labels: dict[str, np.ndarray]  # "M" (and "T", "A", "V" for SIMS): (N,) float32
    ids: np.ndarray  # (N,) "videoid$_$clipid"
    text_dim: Optional[int]  # width of the unused precomputed ``text`` features, when present

    @property
    def num_samples(self) -> int:
        return int(self.text_bert.shape[0])


@dataclass
class MMSAData:
    """A loaded feature file: the three splits, what validation changed, and the SHA-1 verdict."""

    path: Path
    splits: dict[str, SplitArrays]
    report: ValidationReport
    integrity: Optional[IntegrityResult]

    @property
    def feature_dims(self) -> tuple[Optional[int], int, int]:
        """(d_text or None, d_audio, d_vision); d_text is the width of the ``text`` array if present."""
        train = self.splits["train"]
        return (train.text_dim, int(train.audio.shape[2]), int(train.vision.shape[2]))

    @property
    def seq_lens(self) -> tuple[int, int, int]:
        """(L, T_a, T_v) of the train split, which is what the reference sets ``args.seq_lens`` to."""
        train = self.splits["train"]
        return (int(train.text_bert.shape[2]), int(train.audio.shape[1]), int(train.vision.shape[1]))

    @property
    def has_unimodal_labels(self) -> bool:
        return self.report.has_unimodal_labels


_cache: dict[tuple, MMSAData] = {}


def clear_load_cache() -> None:
    """Forget the in-process copy of the last loaded file."""
    _cache.clear()


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def _text_dim(text: Any) -> Optional[int]:
    """Width of the unused precomputed ``text`` features (N, L, d); None when absent or not 3-D."""
    try:
        shape = np.shape(text)
    except ValueError:  # ragged nested lists: unused features, so only their width is unknown
        return None
    return int(shape[-1]) if text is not None and len(shape) == 3 else None


def _split_arrays(split_data: dict) -> SplitArrays:
    text_dim = _text_dim(split_data.get("text"))
    labels = {MULTIMODAL_LABEL: split_data[LABEL_KEY]}
    labels.update({name: split_data[key] for name, key in UNIMODAL_LABEL_KEYS.items() if key in split_data})
    return SplitArrays(
        text_bert=_read_only(split_data["text_bert"]),
        audio=_read_only(split_data["audio"]),
        vision=_read_only(split_data["vision"]),
        audio_lengths=_read_only(split_data[LENGTH_KEYS["audio"]]),
        vision_lengths=_read_only(split_data[LENGTH_KEYS["vision"]]),
        labels={name: _read_only(values) for name, values in labels.items()},
        ids=_read_only(split_data[ID_KEY]),
        text_dim=text_dim,
    )


def load_mmsa(
    path: str | os.PathLike,
    *,
    label_range: Optional[tuple[float, float]] = None,
    fix_nonfinite: bool = False,
    strict_data: bool = False,
    check_hash: bool = True,
) -> MMSAData:
    """Read, hash-check and validate an MMSA feature pickle; the same call again returns the cached copy.

    ``label_range`` bounds the regression labels (e.g. ``cfg.label_range``); ``fix_nonfinite`` replaces
    nan/inf (other than audio -inf, always zeroed) with 0 instead of refusing the file; ``strict_data``
    refuses a file named like an official one whose SHA-1 differs; ``check_hash=False`` skips the SHA-1.
    """
    path = Path(path).expanduser().resolve()
    try:
        stat = path.stat()
    except OSError as exc:
        raise DataError(f"cannot read data file {path}: {exc.strerror or exc}") from None
    range_key = None if label_range is None else tuple(float(b) for b in label_range)
    options = (range_key, bool(fix_nonfinite), bool(strict_data), bool(check_hash))
    key = (str(path), stat.st_size, stat.st_mtime_ns, *options)
    if key in _cache:
        return _cache[key]
    clear_load_cache()  # release the previous file before reading the next one

    integrity = check_integrity(path, strict=strict_data) if check_hash else None
    raw = safe_load(path)
    report = validate_mmsa(raw, source=str(path), label_range=range_key, fix_nonfinite=fix_nonfinite)
    data = MMSAData(
        path=path,
        splits={split: _split_arrays(raw[split]) for split in REQUIRED_SPLITS},
        report=report,
        integrity=integrity,
    )
    _cache[key] = data
    return data


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_rates(missing_rates: Any) -> tuple[float, float, float]:
    rates = tuple(missing_rates)
    if len(rates) != len(MODALITIES):
        raise ConfigError(
            f"missing_rates must give one rate per modality (text, audio, vision), got {missing_rates!r}"
        )
    return tuple(check_missing_rate(rate, modality) for modality, rate in zip(MODALITIES, rates))


def _check_seeds(missing_seeds: Any) -> tuple[int, int, int]:
    seeds = tuple(missing_seeds)
    if len(seeds) != len(MODALITIES):
        raise ConfigError(
            f"missing_seeds must give one seed per modality (text, audio, vision), got {missing_seeds!r}"
        )
    for modality, seed in zip(MODALITIES, seeds):
        if not (_is_integer(seed) and 0 <= seed <= MAX_SEED):
            raise ConfigError(f"missing seed of {modality} must be an integer in [0, {MAX_SEED}], got {seed!r}")
    return tuple(int(s) for s in seeds)


class MMSADataset(Dataset):
    """One split of an MMSA file with its incomplete view (the reference's ``MMDataset`` in missing mode).

    ``missing_rates`` = (text, audio, vision) drop probabilities in [0, 1], ``missing_seeds`` the numpy seeds
    of the static masks (the same for every split, as the reference). Pass ``data`` (from :func:`load_mmsa`)
    to share one loaded file between splits and rates; otherwise ``pkl_path`` is loaded with the given
    options. ``redraw_masks=True`` makes :meth:`set_epoch` redraw the masks; ``protocol="lnln"`` gives each
    sample and modality its own rate drawn from U[0, 1) (both off in the reference).
    """

    def __init__(
        self,
        pkl_path: Optional[str | os.PathLike],
        split: str,
        missing_rates: tuple[float, float, float],
        missing_seeds: tuple[int, int, int] = REFERENCE_MISSING_SEEDS,
        *,
        data: Optional[MMSAData] = None,
        label_range: Optional[tuple[float, float]] = None,
        fix_nonfinite: bool = False,
        strict_data: bool = False,
        check_hash: bool = True,
        redraw_masks: bool = False,
        protocol: str = "static",
    ):
        self.missing_rates = _check_rates(missing_rates)
        self.missing_seeds = _check_seeds(missing_seeds)
        check_protocol(protocol)
        if data is None:
            if pkl_path is None:
                raise ValueError("MMSADataset needs pkl_path or data")
            data = load_mmsa(
                pkl_path,
                label_range=label_range,
                fix_nonfinite=fix_nonfinite,
                strict_data=strict_data,
                check_hash=check_hash,
            )
        elif pkl_path is not None and Path(pkl_path).expanduser().resolve() != data.path:
            raise ValueError(f"pkl_path {pkl_path} is not the file of the given data ({data.path})")
        if split not in data.splits:
            raise DataError(
                f"data file {data.path} has no split {split!r} (splits: {', '.join(data.splits)})"
            )
        self.data = data
        self.split = split
        self.protocol = protocol
        self.redraw_masks = bool(redraw_masks)
        self.epoch = 0
        arrays = data.splits[split]
        self._arrays = arrays
        self._valid = {  # (N, T) bool valid positions per modality
            "text": arrays.text_bert[:, TEXT_MASK_ROW] == 1,
            "audio": frame_valid_mask(arrays.audio_lengths, arrays.audio.shape[1]),
            "vision": frame_valid_mask(arrays.vision_lengths, arrays.vision.shape[1]),
        }
        self.keep = self._draw_keep_masks(epoch=0)

        self.num_samples = arrays.num_samples
        self.seq_lens = (  # (L, T_a, T_v)
            int(arrays.text_bert.shape[2]),
            int(arrays.audio.shape[1]),
            int(arrays.vision.shape[1]),
        )
        self.feature_dims = (arrays.text_dim, int(arrays.audio.shape[2]), int(arrays.vision.shape[2]))
        self.has_unimodal_labels = len(arrays.labels) > 1

    def _draw_keep_masks(self, epoch: int) -> dict[str, np.ndarray]:
        """Per modality, the (N, T) bool keep-mask K."""
        return {
            modality: keep_mask(
                self._valid[modality],
                rate,
                seed,
                is_text=(modality == "text"),
                protocol=self.protocol,
                epoch=epoch,
            )
            for modality, rate, seed in zip(MODALITIES, self.missing_rates, self.missing_seeds)
        }

    def set_epoch(self, epoch: int) -> None:
        """Redraw the masks for ``epoch`` if ``redraw_masks`` is set (epoch 0: the static masks); else no-op.

        Call it before iterating the loader of that epoch (loaders without persistent workers pick it up).
        """
        if not (_is_integer(epoch) and epoch >= 0):
            raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
        if self.redraw_masks and epoch != self.epoch:
            self.keep = self._draw_keep_masks(epoch=int(epoch))
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __getitem__(self, index: int) -> dict[str, Any]:
        arrays, keep = self._arrays, self.keep
        text = arrays.text_bert[index]  # (3, L)
        text_keep = keep["text"][index].astype(np.float32)  # (L,)
        text_m = text.copy()
        text_m[TEXT_IDS_ROW] = mask_text_ids(text[TEXT_IDS_ROW], text[TEXT_MASK_ROW], text_keep)
        item: dict[str, Any] = {
            "text": torch.tensor(text),
            "text_m": torch.from_numpy(text_m),
            kept_key("text"): torch.from_numpy(text_keep),
        }
        for modality in LENGTH_KEYS:
            features = getattr(arrays, modality)[index]  # (T, d)
            modality_keep = keep[modality][index]  # (T,) bool
            item[modality] = torch.tensor(features)
            item[f"{modality}_m"] = torch.from_numpy(mask_frames(features, modality_keep))
            length = getattr(arrays, f"{modality}_lengths")[index]
            item[f"{modality}_lengths"] = torch.tensor(length, dtype=torch.int64)
            item[valid_key(modality)] = torch.from_numpy(self._valid[modality][index].astype(np.int64))
            item[kept_key(modality)] = torch.from_numpy(modality_keep.astype(np.int64))
        item["labels"] = {
            name: torch.tensor([values[index]], dtype=torch.float32) for name, values in arrays.labels.items()
        }
        item["index"] = int(index)
        sample_id = arrays.ids[index]
        if isinstance(sample_id, bytes):  # ids are only shown: bytes that are not UTF-8 must not fail a batch
            item["id"] = sample_id.decode("utf-8", errors="backslashreplace")
        else:
            item["id"] = str(sample_id)
        return item


def loader_seed(seed: int, split: str) -> int:
    """The shuffle seed of ``split``'s loader: a deterministic function of the run seed and the split name."""
    sequence = np.random.SeedSequence([seed, zlib.crc32(split.encode("utf-8"))])
    return int(sequence.generate_state(1, np.uint64)[0])


def build_loaders(
    datasets: dict[str, MMSADataset],
    batch_size: int,
    seed: int,
    num_workers: int = 0,
    pin_memory: bool = False,
    global_rng: bool = False,
) -> dict[str, DataLoader]:
    """One shuffling DataLoader per split (default collate), each with its own seeded ``torch.Generator``.

    The reference shuffles valid and test too (harmless for the metrics); its order came from the global
    torch seed, here from ``loader.generator``, seeded by :func:`loader_seed` so the same seed gives the
    same order. ``global_rng=True`` gives the loaders no generator, so each iteration draws from the global
    torch generator at the moment it starts, exactly as the reference's loaders do (``seed`` is then unused).
    Workers are not persistent, so :meth:`MMSADataset.set_epoch` reaches them. ``pin_memory``
    (for CUDA training) puts batches in page-locked memory, so that ``non_blocking`` copies to the GPU are
    asynchronous.
    """
    if not (_is_integer(batch_size) and batch_size >= 1):
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size!r}")
    if not (_is_integer(seed) and seed >= 0):
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    if not (_is_integer(num_workers) and num_workers >= 0):
        raise ConfigError(f"num_workers must be a non-negative integer, got {num_workers!r}")
    loaders = {}
    for split, dataset in datasets.items():
        generator = None
        if not global_rng:
            generator = torch.Generator()
            generator.manual_seed(loader_seed(int(seed), split))
        loaders[split] = DataLoader(
            dataset,
            batch_size=int(batch_size),
            shuffle=True,
            num_workers=int(num_workers),
            generator=generator,
            pin_memory=pin_memory,
        )
    return loaders


def ordered_loader(dataset: MMSADataset, batch_size: int, num_workers: int = 0) -> DataLoader:
    """A DataLoader over ``dataset`` in the file's sample order (prediction and evaluation passes)."""
    return DataLoader(dataset, batch_size=int(batch_size), shuffle=False, num_workers=int(num_workers))


def find_empty_modalities(dataset: MMSADataset) -> list[str]:
    """Modalities whose complete view (the view at rate 0) is all zeros in this split, with a warning each.

    Text counts as empty when every input id is 0. An empty modality is a sign of a broken file.
    """
    arrays = dataset.data.splits[dataset.split]
    complete = {
        "text": arrays.text_bert[:, TEXT_IDS_ROW],
        "audio": arrays.audio,
        "vision": arrays.vision,
    }
    empty = [modality for modality in MODALITIES if not np.any(complete[modality])]
    for modality in empty:
        logger.warning(
            "data file %s, split '%s': the %s features are all zeros even with nothing dropped; the file is "
            "probably broken",
            dataset.data.path,
            dataset.split,
            modality,
        )
    return empty
