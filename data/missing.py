"""The missing-feature protocol of the reference's loader (§3.2 step 3, §8 items 5-7).

For each modality with valid-position mask M (N, T) (text: the BERT attention mask, row 1 of
``text_bert``; audio/vision: ``t < length``), rate r and seed s, the reference calls ``np.random.seed(s)``
and draws U = ``np.random.uniform(size=(N, T))`` once, then keeps K = (U > r) * M. So every valid position
is dropped with probability r, independently. For text it forces K[:, 0] = 1 ([CLS]) and
K[i, argmin(M_i) - 1] = 1 ([SEP]; for a full-length row argmin is 0, so index -1 is forced, which is
still the [SEP]). Dropped token ids become [UNK] = 100 and pads stay 0: ids_m = K * ids + 100 * (M - K);
the attention mask and segment ids are unchanged. Dropped audio/vision frames become zero vectors,
x_m = K[..., None] * x, and the lengths are unchanged.

Seeding. ``np.random.seed(s)`` re-seeds numpy's legacy global ``RandomState``; here a fresh
``np.random.RandomState(s)`` is used instead, which produces the identical stream (the global generator is
a ``RandomState`` and ``uniform(size=...)`` with the default bounds returns its ``random_sample`` draws
unchanged), so the masks are bit-identical to the reference's while the caller's global RNG state is left
untouched. The reference (re)seeds per modality and per split with the same seed, so train, valid and test
each use the first N * T draws of the same stream. One U serves every rate, so masks are nested: what is
dropped at rate 0.1 is also dropped at 0.2.

Two options beyond the reference, off by default:

* per-epoch redrawing: epoch e > 0 draws U from a ``RandomState`` seeded with
  ``SeedSequence([s, e])``; epoch 0 is the static mask above;
* the LNLN training protocol (``protocol="lnln"``): after U, the same generator draws one rate per sample
  r_i ~ U[0, 1), and K = (U > r_i) * M, so each sample and modality has its own missing rate.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional

import numpy as np

from data.schema import CLS_POSITION
from utils.errors import ConfigError

#: BERT's [UNK] token id; the same in the uncased English and the Chinese vocabularies (docs/REFERENCE.md §3.2).
UNK_ID = 100
#: Missing-mask protocols: the reference's fixed rate, or one rate per training sample (LNLN).
PROTOCOLS = ("static", "lnln")


def check_missing_rate(rate: Any, modality: Optional[str] = None) -> float:
    """A missing rate as a float; a ConfigError unless it is a number in [0, 1]. The one check of a rate
    (the config's sweep grid, run.py's rates, a dataset's rates)."""
    where = f" of {modality}" if modality else ""
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not math.isfinite(rate):
        raise ConfigError(f"missing rate{where} must be a number in [0, 1], got {rate!r}")
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"missing rate {rate}{where} is outside [0, 1]")
    return float(rate)


def check_protocol(protocol: str) -> None:
    """A ConfigError unless ``protocol`` names a missing-mask protocol (the config and the dataset call it)."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"missing-mask protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")


def mask_rng(seed: int, epoch: int = 0) -> np.random.RandomState:
    """The generator of a modality's masks: ``RandomState(seed)`` at epoch 0 (the reference's)."""
    if epoch == 0:
        return np.random.RandomState(seed)
    return np.random.RandomState(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def frame_valid_mask(lengths: np.ndarray, max_len: int) -> np.ndarray:
    """(N,) lengths -> (N, max_len) bool, True where t < length."""
    return np.arange(max_len)[None, :] < np.asarray(lengths)[:, None]


def keep_mask(
    valid: np.ndarray,
    rate: float,
    seed: int,
    *,
    is_text: bool,
    protocol: str = "static",
    epoch: int = 0,
) -> np.ndarray:
    """(N, T) bool keep-mask K over the (N, T) bool valid mask, as described in the module docstring.

    ``rate`` is ignored by the LNLN protocol, which draws one rate per sample.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    valid = np.asarray(valid, dtype=bool)
    rng = mask_rng(seed, epoch)
    uniform = rng.uniform(size=valid.shape)  # (N, T), the reference's single draw
    if protocol == "lnln":
        threshold = rng.uniform(size=(valid.shape[0], 1))  # (N, 1): one rate per sample
    else:
        threshold = rate
    keep = (uniform > threshold) & valid
    if is_text:
        rows = np.arange(valid.shape[0])
        keep[:, CLS_POSITION] = True
        keep[rows, np.argmin(valid, axis=1) - 1] = True  # [SEP]; index -1 for a full-length row
    return keep


def mask_text_ids(ids: np.ndarray, attention: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """ids_m = K * ids + UNK_ID * (M - K): dropped tokens -> [UNK], pads stay 0. Any matching shapes."""
    keep = keep.astype(ids.dtype)
    return keep * ids + UNK_ID * (attention - keep)


def mask_frames(features: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """x_m = K[..., None] * x: (..., T, d) features, (..., T) keep -> dropped frames are zero vectors."""
    return features * keep[..., None].astype(features.dtype)
