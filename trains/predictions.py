"""Per-sample predictions of a model on one split, in the data file's sample order.

The reference's test loader shuffles, and its metrics never see which clip a prediction belongs to. Here
every batch carries each clip's row in its split (``index``) and its ``id``, so a pass over any loader,
shuffled or not, is put back in the file's order (:meth:`SplitPredictions.in_file_order`). The metrics are
computed on that order, so they do not depend on the loader's: in eval mode nothing mixes clips of a batch
(BatchNorm reads its running statistics), each clip's prediction is its own, and the metrics of a shuffled
and of an ordered pass are equal (tested).

A predictions CSV has one row per clip, in file order: ``split``, ``index`` (row in the split), ``id``,
``label``, ``pred`` (the incomplete view's prediction, the one the metrics use), ``pred_complete`` (the
complete view's), and the missing rates of the incomplete view, ``rate_text``, ``rate_audio``,
``rate_vision``. Values are written with full precision, so the metrics recomputed from the file equal the
recorded ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from config import MODALITIES
from utils.io import atomic_write_text
from utils.metrics import eval_regression

#: Columns of a predictions CSV, in order.
COLUMNS = ("split", "index", "id", "label", "pred", "pred_complete", *(f"rate_{m}" for m in MODALITIES))


@dataclass(frozen=True)
class SplitPredictions:
    """Predictions of one pass over a split; N clips, in the order the loader gave them."""

    index: np.ndarray  # (N,) int64 row of each clip in its split
    ids: np.ndarray  # (N,) str clip ids ("videoid$_$clipid")
    label: np.ndarray  # (N,) float32 regression label "M"
    pred: np.ndarray  # (N,) float32 incomplete view's prediction
    pred_complete: np.ndarray  # (N,) float32 complete view's prediction

    def in_file_order(self) -> "SplitPredictions":
        order = np.argsort(self.index, kind="stable")
        return SplitPredictions(self.index[order], self.ids[order], self.label[order], self.pred[order],
                                self.pred_complete[order])

    def metrics(self, metric_set: str) -> dict[str, float]:
        """The reference's metrics of the incomplete view's prediction, computed in file order."""
        ordered = self.in_file_order()
        return eval_regression(ordered.pred, ordered.label, metric_set)

    def to_frame(self, split: str, rates: tuple[float, float, float]) -> pd.DataFrame:
        ordered = self.in_file_order()
        frame = pd.DataFrame({
            "split": split,
            "index": ordered.index.astype(np.int64),
            "id": ordered.ids.astype(str),
            # float64 of the float32 values: written in full, read back to the very same numbers
            "label": ordered.label.astype(np.float64),
            "pred": ordered.pred.astype(np.float64),
            "pred_complete": ordered.pred_complete.astype(np.float64),
        })
        for modality, rate in zip(MODALITIES, rates):
            frame[f"rate_{modality}"] = float(rate)
        return frame


def write_csv(path: Path, frames: list[pd.DataFrame]) -> Path:
    """Write one or more splits' frames as one CSV, atomically."""
    return atomic_write_text(path, pd.concat(frames, ignore_index=True).to_csv(index=False))


def read_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"id": str, "split": str})


def metrics_from_csv(path: Path, metric_set: str, split: str | None = None) -> dict[str, float]:
    """The metrics of a predictions CSV (one split of it), for checking a file against recorded results."""
    frame = read_csv(path)
    if split is not None:
        frame = frame[frame["split"] == split]
    # the float32 values the recorded metrics were computed from (the CSV holds them exactly)
    return eval_regression(frame["pred"].to_numpy(np.float32), frame["label"].to_numpy(np.float32), metric_set)
