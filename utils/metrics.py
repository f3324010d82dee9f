"""Regression metrics and the AUILC summary, as the reference computes them (docs/REFERENCE.md §7).

* :func:`eval_regression` - the per-dataset metric dictionaries of the reference's ``utils/metricsTop.py``
  (same key names, same rounding, same clipping and binning conventions).
* :func:`auilc_row` - the "AUC" row of ``run_once.py``: the trapezoid area under a metric-versus-missing-rate
  curve, including the rate 0.0, over seed means rounded to 2 decimals, rounded to 1 decimal;
  :func:`auilc` is the unrounded area of one curve.

Conventions worth knowing (all faithful to the reference):

* ``np.round`` rounds half to even (0.5 -> 0, 1.5 -> 2, 2.5 -> 2), and the 5/7-class accuracies use it.
* MOSI/MOSEI: MAE and Corr are computed on the *unclipped* values; values are rounded to 4 decimals.
* SIMS: predictions and truths are clipped to [-1, 1] *first*, so MAE and Corr are on clipped values;
  classes come from left-open, right-closed bins; values are not rounded.
* Precision: the reference receives float32 tensors and numpy compares a float32 array with a Python
  float in float32, so a value at or next to a SIMS bin edge (0.1 is 0.100000001 in float32) falls in the
  bin float32 arithmetic puts it in. Each input is therefore kept in float32 when it is float32 (or
  narrower), and in float64 otherwise; clipping, binning and MAE run in that precision, and the 4-decimal
  rounding is numpy's (``np.round``), as ``round()`` of a numpy scalar is in the reference.
* Weighted F1 is ``sklearn.metrics.f1_score(truth, pred, average='weighted')``. A class that is never
  predicted counts as F1 0 (the reference's value), without sklearn's UndefinedMetricWarning.

One deliberate difference: where ``np.corrcoef`` would divide by zero (constant predictions or truths),
Corr is ``nan`` and a :class:`RuntimeWarning` is issued explicitly, instead of numpy's divide warnings.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Mapping, Sequence

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from utils.errors import ConfigError

#: Metric keys returned by :func:`eval_regression`, in the reference's order.
MOSI_KEYS = (
    "Has0_acc_2",
    "Has0_F1_score",
    "Non0_acc_2",
    "Non0_F1_score",
    "Mult_acc_5",
    "Mult_acc_7",
    "MAE",
    "Corr",
)
SIMS_KEYS = ("Mult_acc_2", "Mult_acc_3", "Mult_acc_5", "F1_score", "MAE", "Corr")

#: Dataset (or config ``metric_set``) name -> metric family.
_FAMILY = {"mosi": "mosi", "mosei": "mosi", "sims": "sims"}

#: SIMS bin edges (reference): bins are (e_i, e_{i+1}], left-open and right-closed.
SIMS_EDGES_2 = (-1.01, 0.0, 1.01)
SIMS_EDGES_3 = (-1.01, -0.1, 0.1, 1.01)
SIMS_EDGES_5 = (-1.01, -0.7, -0.1, 0.1, 0.7, 1.01)


def _as_flat_array(x: Any, name: str) -> np.ndarray:
    """Flatten a numpy array, list or (CPU/GPU, grad-carrying) torch tensor into a float vector: float32
    when the input is a float of at most 32 bits (the reference's tensors), float64 otherwise."""
    if hasattr(x, "detach"):  # torch.Tensor, without importing torch here
        x = x.detach().cpu().float().numpy() if x.dtype.is_floating_point and x.element_size() <= 4 else x.detach().cpu().numpy()
    arr = np.asarray(x)
    dtype = np.float32 if arr.dtype.kind == "f" and arr.dtype.itemsize <= 4 else np.float64
    arr = arr.astype(dtype).reshape(-1)
    if not np.all(np.isfinite(arr)):
        bad = int(np.sum(~np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} non-finite value(s) (nan/inf); metrics need finite numbers")
    return arr


def _pearson(pred: np.ndarray, true: np.ndarray) -> float:
    """np.corrcoef(pred, true)[0, 1], but nan with an explicit warning when either side is constant."""
    if pred.size < 2 or np.ptp(pred) == 0.0 or np.ptp(true) == 0.0:
        side = "predictions" if pred.size < 2 or np.ptp(pred) == 0.0 else "labels"
        warnings.warn(
            f"Corr is undefined because the {side} are constant (or fewer than 2 samples); reporting nan",
            RuntimeWarning,
            stacklevel=4,
        )
        return float("nan")
    return float(np.corrcoef(pred, true)[0, 1])


def _weighted_f1(true: np.ndarray, pred: np.ndarray) -> float:
    return float(f1_score(true, pred, average="weighted", zero_division=0))


def _bin(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Class index of each value for bins (e_i, e_{i+1}] (left-open, right-closed), as the reference;
    the edges are taken in the values' own precision (float32 edges for float32 values)."""
    return np.searchsorted(np.asarray(edges, dtype=values.dtype), values, side="left") - 1


def _round4(value: Any) -> float:
    """``round(value, 4)`` as the reference gets it on numpy scalars: numpy's rounding, in the value's dtype."""
    return float(np.round(value, 4))


def _family(dataset: str) -> str:
    key = str(dataset).lower()
    if key not in _FAMILY:
        raise ConfigError(
            f"unknown metric set {dataset!r}: expected one of {', '.join(sorted(_FAMILY))} "
            "(for the demo/tiny presets pass the config's metric_set, 'mosi')"
        )
    return _FAMILY[key]


def _eval_mosi(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    mae = np.mean(np.abs(pred - true))  # float32 for float32 inputs, as in the reference
    corr = _pearson(pred, true)

    acc7 = float(np.mean(np.round(np.clip(pred, -3.0, 3.0)) == np.round(np.clip(true, -3.0, 3.0))))
    acc5 = float(np.mean(np.round(np.clip(pred, -2.0, 2.0)) == np.round(np.clip(true, -2.0, 2.0))))

    # Has0: every sample, "non-negative" versus "negative".
    has0_true, has0_pred = true >= 0, pred >= 0
    has0_acc = float(accuracy_score(has0_true, has0_pred))
    has0_f1 = _weighted_f1(has0_true, has0_pred)

    # Non0: only samples whose truth is not exactly 0, "positive" versus "negative".
    nonzero = true != 0
    if nonzero.any():
        non0_true, non0_pred = true[nonzero] > 0, pred[nonzero] > 0
        non0_acc = float(accuracy_score(non0_true, non0_pred))
        non0_f1 = _weighted_f1(non0_true, non0_pred)
    else:
        warnings.warn("every label is 0, so Non0_acc_2 and Non0_F1_score are undefined (nan)",
                      RuntimeWarning, stacklevel=3)
        non0_acc = non0_f1 = float("nan")

    values = {
        "Has0_acc_2": has0_acc,
        "Has0_F1_score": has0_f1,
        "Non0_acc_2": non0_acc,
        "Non0_F1_score": non0_f1,
        "Mult_acc_5": acc5,
        "Mult_acc_7": acc7,
        "MAE": mae,
        "Corr": corr,
    }
    return {k: _round4(v) for k, v in values.items()}


def _eval_sims(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    pred = np.clip(pred, -1.0, 1.0)
    true = np.clip(true, -1.0, 1.0)
    p2, t2 = _bin(pred, SIMS_EDGES_2), _bin(true, SIMS_EDGES_2)
    p3, t3 = _bin(pred, SIMS_EDGES_3), _bin(true, SIMS_EDGES_3)
    p5, t5 = _bin(pred, SIMS_EDGES_5), _bin(true, SIMS_EDGES_5)
    return {
        "Mult_acc_2": float(np.mean(p2 == t2)),
        "Mult_acc_3": float(np.mean(p3 == t3)),
        "Mult_acc_5": float(np.mean(p5 == t5)),
        "F1_score": _weighted_f1(t2, p2),
        "MAE": float(np.mean(np.abs(pred - true))),
        "Corr": _pearson(pred, true),
    }


def eval_regression(pred: Any, true: Any, dataset: str) -> dict[str, float]:
    """The reference's regression metrics for ``dataset`` (docs/REFERENCE.md §7).

    ``pred`` and ``true`` are any array-likes (numpy, lists, torch tensors) of the same number of
    elements; they are flattened. ``dataset`` is "mosi", "mosei" or "sims" (a config's ``metric_set``,
    "mosi" or "sims", works too); anything else raises :class:`~utils.errors.ConfigError`.

    MOSI / MOSEI (``metricsTop.__eval_mosei_regression``), every value rounded to 4 decimals:

    * ``Has0_acc_2`` / ``Has0_F1_score``: accuracy / weighted F1 of ``pred >= 0`` versus ``true >= 0``
      over all samples.
    * ``Non0_acc_2`` / ``Non0_F1_score``: the same for ``pred > 0`` versus ``true > 0`` over the samples
      whose truth is not 0 (nan, with a warning, if every truth is 0).
    * ``Mult_acc_5`` / ``Mult_acc_7``: ``np.round(clip(pred)) == np.round(clip(true))`` with clip to
      [-2, 2] / [-3, 3]; ``np.round`` rounds half to even.
    * ``MAE``: mean absolute error; ``Corr``: Pearson correlation; both on the unclipped values.

    SIMS (``metricsTop.__eval_sims_regression``), values not rounded: pred and true are clipped to
    [-1, 1] first, then binned with left-open, right-closed bins (e_i, e_{i+1}]:

    * ``Mult_acc_2``: edges (-1.01, 0, 1.01) - zero counts as negative.
    * ``Mult_acc_3``: edges (-1.01, -0.1, 0.1, 1.01).
    * ``Mult_acc_5``: edges (-1.01, -0.7, -0.1, 0.1, 0.7, 1.01).
    * ``F1_score``: weighted F1 of the 2-class bins.
    * ``MAE`` and ``Corr`` on the clipped values.

    ``Corr`` is nan, with a :class:`RuntimeWarning`, when the predictions or the truths are constant.
    Non-finite inputs, mismatched sizes and empty inputs raise :class:`ValueError`.
    """
    family = _family(dataset)
    p = _as_flat_array(pred, "predictions")
    t = _as_flat_array(true, "labels")
    if p.shape != t.shape:
        raise ValueError(f"predictions and labels differ in size: {p.size} versus {t.size}")
    if p.size == 0:
        raise ValueError("cannot compute metrics on zero samples")
    return _eval_mosi(p, t) if family == "mosi" else _eval_sims(p, t)


def _check_grid(rates: Sequence[float], count: int, from_zero: bool = True) -> list[float]:
    r = [float(x) for x in rates]
    if count != len(r):
        raise ConfigError(f"AUILC needs one value per missing rate: {count} values for {len(r)} rates")
    if len(r) < 2:
        raise ConfigError(f"AUILC needs at least 2 missing rates, got {len(r)}")
    if not all(math.isfinite(x) for x in r):
        raise ConfigError(f"missing rates must be finite numbers, got {r}")
    if from_zero and abs(r[0]) > 1e-12:
        raise ConfigError(f"AUILC missing rates must start at 0.0 (the complete-data point), got {r[0]}")
    if any(b <= a for a, b in zip(r, r[1:])):
        raise ConfigError(f"AUILC missing rates must be strictly ascending, got {r}")
    return r


def trapezoid_areas(values: Any, rates: Sequence[float], *, from_zero: bool = True) -> np.ndarray:
    """Trapezoid area of every column of ``values`` (rates x metrics) over ``rates``, unrounded.

    ``rates`` must start at 0.0 unless ``from_zero`` is False (an AUILC over a chosen range of rates, such as
    the 0.1-1.0 of the paper's captions; the reference itself always starts at 0.0).

    The operations follow ``run_once.py`` so that the float result is the reference's to the last bit:
    the pairwise sums ``v_i + v_{i+1}`` are added row after row (as numpy reduces axis 0 of a matrix),
    then halved, then multiplied by the grid step (0.1 on the reference's grids). An uneven grid, which
    the reference never uses, weights each pair by its own width instead.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    r = _check_grid(rates, v.shape[0], from_zero)
    widths = np.diff(np.asarray(r))
    step = round(float(widths[0]), 12)
    even = bool(np.all(np.abs(widths - step) < GRID_TOLERANCE))
    pair_sums = v[:-1] + v[1:]  # (rates - 1, metrics)
    if not even:
        pair_sums = pair_sums * widths[:, None]
    total = pair_sums[0].copy()
    for row in pair_sums[1:]:  # row by row, whatever the number of columns
        total += row
    return total / 2 * step if even else total / 2


#: Two grid widths closer than this are the same step (rates are given to a few decimals).
GRID_TOLERANCE = 1e-9


def auilc(values: Sequence[float], rates: Sequence[float]) -> float:
    """Area under the (metric, missing rate) curve by the trapezoid rule (docs/REFERENCE.md §7, "AUC" row).

    ``area = sum_i (v_i + v_{i+1}) / 2 * (r_{i+1} - r_i)``, over the points in order. The reference
    hard-codes the step 0.1 over its grids 0.0, 0.1, ..., 1.0 (MOSI/MOSEI) and 0.0, ..., 0.5 (SIMS);
    on those grids this function gives the same value, and it also handles uneven grids.

    ``rates`` must have the same length as ``values``, at least 2 points, be strictly ascending and
    start at 0.0 (the reference's published numbers include the complete-data point r = 0); otherwise
    :class:`~utils.errors.ConfigError` is raised. A nan value gives a nan area.

    The area is returned unrounded; :func:`auilc_row` applies the reference's roundings. The paper's
    tables divide MAE and Corr back by 100 (an area of 110.6 is reported as 1.106). Example (SIMS Acc-2,
    Fig. 6): ``round(auilc([80.1, 79.2, 77.0, 76.1, 75.0, 73.5], [0, .1, .2, .3, .4, .5]), 1) == 38.4``.
    """
    return float(trapezoid_areas([float(x) for x in values], rates)[0])


#: Decimals of the x100 seed means the reference's AUC row is computed from, and of the row itself.
MEAN_DECIMALS = 2
AUC_DECIMALS = 1


def auilc_row(means_x100: Mapping[str, Sequence[float]], rates: Sequence[float], *,
              from_zero: bool = True) -> dict[str, float]:
    """The "AUC" row of the reference's aggregated CSV, digit for digit.

    ``means_x100[key]`` holds the seed mean (x100) of metric ``key`` at each rate. As ``run_once.py``
    does, each mean is first rounded to 2 decimals, the trapezoid is taken over the rounded means
    (:func:`trapezoid_areas`, every metric at once), and the area is rounded to 1 decimal, all with
    numpy's rounding. ``from_zero=False`` takes the same rule over rates that start elsewhere (a chosen range).
    """
    keys = list(means_x100)
    table = np.round(np.array([[float(x) for x in means_x100[k]] for k in keys], dtype=np.float64).T, MEAN_DECIMALS)
    areas = np.round(trapezoid_areas(table, rates, from_zero=from_zero), AUC_DECIMALS)
    return {k: float(a) for k, a in zip(keys, areas)}
