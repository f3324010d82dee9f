"""Write ``unaligned_39_normalized.pkl``: SIMS audio and vision z-normalised with train statistics (§3.3).

As the reference's ``preprocess/normalize_sims.py``: for audio and vision, the per-dimension mean mu and
standard deviation sigma are computed over the *valid* frames (``x[i, :length_i]``) of the train split
only; every valid frame of every split becomes (x - mu) / (sigma + 1e-6); padding frames and the text are
left untouched. sigma is the population standard deviation over frames (``np.std`` with its default
ddof=0, as the reference). Statistics are accumulated in float64 and the features stay float32.

The input is read with the restricted unpickler and validated (audio -inf becomes 0 first, as the loader
does); the output is written beside it, atomically::

    python -m preprocess.normalize_sims --data-root DIR      # DIR[/Datasets]/SIMS/Processed/unaligned_39.pkl
    python -m preprocess.normalize_sims --input FILE.pkl
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from config import get_config
from data.paths import resolve_data_path
from data.safe_pickle import safe_load
from data.schema import LENGTH_KEYS, REQUIRED_SPLITS, validate_mmsa
from utils.errors import DataError, UserError
from utils.io import atomic_write_bytes

logger = logging.getLogger(__name__)

#: Added to sigma so that constant dimensions do not divide by zero (reference value).
STD_EPSILON = 1e-6
OUTPUT_NAME = "unaligned_39_normalized.pkl"
#: Pickle protocol of the output: readable by every Python 3.4+ / numpy 1.x+ environment.
OUTPUT_PICKLE_PROTOCOL = 4


def valid_frames(features: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(N, T, d) features, (N,) lengths -> (sum of lengths, d) valid frames, in sample order."""
    valid = np.arange(features.shape[1])[None, :] < lengths[:, None]  # (N, T)
    return features[valid]


def train_statistics(features: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension (mean, population std), each (d,) float64, over the valid frames."""
    frames = valid_frames(features, lengths).astype(np.float64)
    return frames.mean(axis=0), frames.std(axis=0)


def normalize_in_place(features: np.ndarray, lengths: np.ndarray, mean: np.ndarray, std: np.ndarray) -> None:
    """x[i, :len_i] <- (x[i, :len_i] - mean) / (std + STD_EPSILON); padding frames are not touched."""
    for i, length in enumerate(lengths):
        frames = features[i, :length].astype(np.float64)
        features[i, :length] = (frames - mean) / (std + STD_EPSILON)


def normalize_sims_file(
    input_path: str | os.PathLike,
    output_path: Optional[str | os.PathLike] = None,
    *,
    fix_nonfinite: bool = False,
) -> Path:
    """Normalise ``input_path`` and write it to ``output_path`` (default: OUTPUT_NAME beside the input)."""
    input_path = Path(input_path)
    output_path = Path(output_path) if output_path is not None else input_path.with_name(OUTPUT_NAME)
    if output_path.resolve() == input_path.resolve():
        raise DataError(f"the normalised output would overwrite its input {input_path}; choose another --output")
    raw = safe_load(input_path)
    validate_mmsa(raw, source=str(input_path), fix_nonfinite=fix_nonfinite)
    for modality, length_key in LENGTH_KEYS.items():
        mean, std = train_statistics(raw["train"][modality], raw["train"][length_key])
        logger.info("%s: train statistics over %d dims", modality, mean.shape[0])
        for split in REQUIRED_SPLITS:
            normalize_in_place(raw[split][modality], raw[split][length_key], mean, std)
    atomic_write_bytes(output_path, pickle.dumps(raw, protocol=OUTPUT_PICKLE_PROTOCOL))
    return output_path


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m preprocess.normalize_sims",
        description="Z-normalise SIMS audio and vision with train statistics over valid frames (docs/REFERENCE.md §3.3).",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data-root", help="data root holding [Datasets/]SIMS/Processed/unaligned_39.pkl")
    source.add_argument("--input", help="an MMSA-format SIMS pickle")
    parser.add_argument("--output", help=f"output file (default: {OUTPUT_NAME} beside the input)")
    parser.add_argument("--fix-nonfinite", action="store_true", help="replace nan/inf with 0 instead of failing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.input:
            input_path = Path(args.input)
        else:
            input_path = resolve_data_path(get_config("sims"), data_root=args.data_root)
        written = normalize_sims_file(input_path, args.output, fix_nonfinite=args.fix_nonfinite)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
