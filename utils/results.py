"""Result files of a run or a sweep, laid out as the reference's plus machine-readable JSON.

A sweep directory holds:

* ``config.json``: the resolved config and its fingerprint. A rerun with another config into the same
  directory is refused once it holds results (a finished cell, or a cell's training checkpoint under
  ``work/``), so old and new results never mix; a directory with no results (say, from a run that failed
  before training) is taken over by the new config.
* ``cells/mr<rates>/seed<seed>.json``: one (missing rate, seed) cell, written atomically when the cell
  finishes (its test metrics, best epoch, config fingerprint). A cell file exists only when complete.
* ``work/mr<rates>/seed<seed>/``: an unfinished cell's training state (resumable), removed when it is done.
* ``models/<variant>-<dataset>-regression-mr<rates>-<seed>.pth``: a cell's best weights (``--save-model``).
* ``predictions/mr<rates>/seed<seed>/``: a cell's per-split predictions CSVs (``--save-predictions``), and
  ``--evaluate``'s per test rate.
* ``normals/<dataset>-regression-<r>.csv``: per rate, the mean and population std over seeds (x100)
  as ``(mean, std)`` tuples, one column per metric, as the reference writes them.
* ``normals/<dataset>-regression-<r>-detail.csv``: per-seed rows (x100) plus mean/std, max and min rows.
* ``normals/<dataset>-regression-aggregated.csv``: one row per rate (seed means x100 and stds) and a
  final ``AUC`` row with the AUILC of every metric, by the reference's rule (trapezoid over the seed means
  rounded to 2 decimals, rates including 0.0, area rounded to 1 decimal; docs/REFERENCE.md §7).
* ``results.json``: the same numbers for programs; ``auilc`` is the AUC row as the reference prints it,
  ``auilc_unrounded`` the trapezoid area over the unrounded means, not rounded.

Means and stds are taken as the reference takes them: ``np.mean(values) * 100`` (the mean of the raw
metric, then x100) and rounded with numpy's rounding in the CSVs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import pandas as pd

from config import DEFAULT_MODEL, RUNTIME_FIELDS, ExperimentConfig, config_diff
from utils.errors import ConfigError, UserError
from utils.io import atomic_write_json, atomic_write_text
from utils.metrics import MEAN_DECIMALS, auilc_row, trapezoid_areas

#: Decimals of the x100 means in the CSVs (the reference rounds to 2).
CSV_DECIMALS = MEAN_DECIMALS
#: The results folder's config file, and its finished cells' records.
CONFIG_FILE = "config.json"
CELL_GLOB = "cells/*/*.json"

Rates = tuple[float, float, float]


def config_fingerprint(cfg: ExperimentConfig) -> str:
    relevant = {k: v for k, v in cfg.to_dict().items() if k not in RUNTIME_FIELDS}
    blob = json.dumps(relevant, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:16]


def rate_tag(rates: tuple[float, float, float]) -> str:
    """``0.5`` for equal rates, ``0.1-0.5-0.0`` for per-modality (text-audio-vision) rates."""
    t, a, v = rates
    if t == a == v:
        return f"{t:.1f}" if round(t, 1) == t else f"{t:g}"
    return "-".join(f"{x:g}" for x in rates)


def cell_path(out_dir: Path, rates: Rates, seed: int) -> Path:
    return Path(out_dir) / "cells" / f"mr{rate_tag(rates)}" / f"seed{seed}.json"


def finished_cell_files(out_dir: Path) -> set[Path]:
    """The records of the finished cells in ``out_dir``."""
    return set(Path(out_dir).glob(CELL_GLOB))


def read_cells(out_dir: Path, fingerprint: Optional[str] = None) -> dict[Rates, list[dict]]:
    """The finished cells of ``out_dir`` by their (text, audio, vision) rates, whatever run wrote them: those of
    config ``fingerprint`` (default: the one pinned in the folder's config.json)."""
    out_dir = Path(out_dir)
    if fingerprint is None:
        fingerprint = json.loads((out_dir / CONFIG_FILE).read_text()).get("fingerprint")
    cells: dict[Rates, list[dict]] = {}
    for path in sorted(out_dir.glob(CELL_GLOB)):
        try:
            record = json.loads(path.read_text())
            rates = tuple(float(r) for r in record["rates"])
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise UserError(f"{path} is not a cell file written by run.py (expected JSON with 'rates' and 'test')") from None
        if record.get("fingerprint") == fingerprint:
            cells.setdefault(rates, []).append(record)
    return cells


def rate_order(rates: Rates) -> tuple:
    """Sort key of a folder's rates: the equal rates ascending, then the per-modality ones."""
    return len(set(rates)) > 1, tuple(rates)


def work_dir(out_dir: Path, rates: Rates, seed: int) -> Path:
    """The folder of an unfinished cell's training state."""
    return Path(out_dir) / "work" / f"mr{rate_tag(rates)}" / f"seed{seed}"


def model_file(out_dir: Path, cfg: ExperimentConfig, rates: Rates, seed: int) -> Path:
    """Where ``--save-model`` keeps a cell's best weights."""
    return Path(out_dir) / "models" / f"{cfg.variant}-{cfg.dataset}-regression-mr{rate_tag(rates)}-{seed}.pth"


def predictions_dir(out_dir: Path, rates: Rates, seed: int) -> Path:
    """Where ``--save-predictions`` puts a training cell's per-split CSVs (and ``--evaluate``'s, per test rate)."""
    return Path(out_dir) / "predictions" / f"mr{rate_tag(rates)}" / f"seed{seed}"


def holds_results(out_dir: Path) -> bool:
    """Whether ``out_dir`` holds work of its config: a finished cell or a training checkpoint."""
    out_dir = Path(out_dir)
    return bool(finished_cell_files(out_dir)) or any(out_dir.glob("work/**/*.pt"))


def stored_config(results_dir: Path) -> tuple[dict, str, str]:
    """The config dict, fingerprint and model name pinned in ``results_dir/config.json``."""
    config_file = Path(results_dir) / CONFIG_FILE
    if not config_file.is_file():
        raise ConfigError(f"{results_dir} is not a results directory of run.py (no {CONFIG_FILE})")
    try:
        stored = json.loads(config_file.read_text())
        # folders written before --model existed are EMT-DLFR's
        return stored["config"], stored["fingerprint"], stored.get("model", DEFAULT_MODEL)
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ConfigError(f"{config_file} is not a config.json written by run.py") from None


def prepare_out_dir(out_dir: Path, cfg: ExperimentConfig) -> str:
    """Create ``out_dir`` (checking it is writable) and pin it to ``cfg``; return the fingerprint."""
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"output directory {out_dir} cannot be written ({exc.strerror or exc}); choose another --out") from None
    fingerprint = config_fingerprint(cfg)
    config_file = out_dir / CONFIG_FILE
    if config_file.exists():
        try:
            old = json.loads(config_file.read_text())
        except json.JSONDecodeError:
            raise ConfigError(f"{config_file} is not valid JSON; remove it or use another --out") from None
        old_model = old.get("model", "emt-dlfr")  # folders written before --model existed are EMT-DLFR's
        if old_model != cfg.MODEL and holds_results(out_dir):
            raise ConfigError(
                f"{out_dir} holds results of model {old_model}, not {cfg.MODEL}; use another --out "
                f"(the default is results/<dataset>/<model>)"
            )
        if old.get("fingerprint") != fingerprint and holds_results(out_dir):
            diff = config_diff(old.get("config", {}), cfg.to_dict())
            raise ConfigError(
                f"{out_dir} holds results of another config (differs in: {', '.join(diff) or 'unknown'}); "
                "use another --out, or remove the directory to start over"
            )
    atomic_write_json(config_file, {"fingerprint": fingerprint, "model": cfg.MODEL, "config": cfg.to_dict()})
    return fingerprint


def write_cell(out_dir: Path, record: dict) -> Path:
    path = cell_path(out_dir, tuple(record["rates"]), record["seed"])
    atomic_write_json(path, record)
    return path


def read_cell(out_dir: Path, rates: tuple[float, float, float], seed: int, fingerprint: str) -> Optional[dict]:
    """The finished cell's record, or None when it is absent (or belongs to another config)."""
    path = cell_path(out_dir, rates, seed)
    if not path.exists():
        return None
    record = json.loads(path.read_text())
    return record if record.get("fingerprint") == fingerprint else None


def seed_stats(records: list[dict], keys: list[str]) -> dict:
    values = {k: np.array([r["test"][k] for r in records], dtype=float) for k in keys}
    return {  # x100 after the mean, in the reference's order of operations
        "mean": {k: float(np.mean(v) * 100) for k, v in values.items()},
        "std": {k: float(np.std(v) * 100) for k, v in values.items()},
        "per_seed": {int(r["seed"]): {k: float(r["test"][k]) * 100 for k in keys} for r in records},
    }


def _r(value: float, decimals: int = CSV_DECIMALS) -> float:
    """numpy's rounding, which is what ``round()`` on the reference's numpy scalars does."""
    return float(np.round(value, decimals))


def aggregate(out_dir: Path, cfg: ExperimentConfig, grid: Iterable[tuple[float, float, float]], seeds: Iterable[int],
              fingerprint: str) -> dict:
    """Write the per-rate, detail and aggregated CSVs and results.json from the finished cells of ``seeds``
    at every rate of the folder: this run's ``grid`` and the rates of earlier runs' cells (a sweep's, and a
    later ``--diff-missing`` or single-rate run's into the same folder, so that no run hides another's
    rates or AUILC), the equal rates ascending, then the per-modality ones."""
    out_dir = Path(out_dir)
    normals = out_dir / "normals"
    seeds = list(seeds)
    cells = read_cells(out_dir, fingerprint)
    grid = sorted({tuple(float(r) for r in rates) for rates in grid} | set(cells), key=rate_order)
    summary: dict = {"dataset": cfg.dataset, "model": cfg.MODEL, "variant": cfg.variant, "name": cfg.run_name,
                     "fingerprint": fingerprint,
                     "rates": {}}
    agg_rows = []
    for rates in grid:
        by_seed = {record["seed"]: record for record in cells.get(rates, [])}
        records = [by_seed[s] for s in seeds if s in by_seed]
        if not records:
            continue
        keys = list(records[0]["test"].keys())
        stats = seed_stats(records, keys)
        tag = rate_tag(rates)
        summary["rates"][tag] = {"rates": list(rates), "seeds": [r["seed"] for r in records], **stats}
        per_rate = {"Model": cfg.variant, **per_rate_tuple(stats, keys)}
        atomic_write_text(normals / f"{cfg.dataset}-regression-{tag}.csv", pd.DataFrame([per_rate]).to_csv(index=False))
        detail = [{"Model": cfg.variant, "Seed": str(s), **{k: _r(v) for k, v in row.items()}}
                  for s, row in stats["per_seed"].items()]
        detail.append({"Model": cfg.variant, "Seed": "<mean/std>", **per_rate_tuple(stats, keys)})
        for label, pick in (("<max/seed>", np.argmax), ("<min/seed>", np.argmin)):
            row = {"Model": cfg.variant, "Seed": label}
            for k in keys:
                column = [stats["per_seed"][s][k] for s in stats["per_seed"]]
                i = int(pick(column))
                row[k] = f"({_r(column[i]):.{CSV_DECIMALS}f}, {list(stats['per_seed'])[i]})"
            detail.append(row)
        atomic_write_text(normals / f"{cfg.dataset}-regression-{tag}-detail.csv", pd.DataFrame(detail).to_csv(index=False))
        agg_rows.append({"rate": tag, **{k: _r(stats["mean"][k]) for k in keys},
                         **{f"{k}_std": _r(stats["std"][k]) for k in keys}})
    if agg_rows:
        curve = equal_rate_curve(summary)
        if curve is not None:
            rates, means = curve
            summary["auilc"] = auilc_row(means, rates)
            unrounded = trapezoid_areas(np.array([means[k] for k in means]).T, rates)
            summary["auilc_unrounded"] = {k: float(a) for k, a in zip(means, unrounded)}
            summary["auilc_rates"] = rates
            agg_rows.append({"rate": "AUC", **summary["auilc"]})
        atomic_write_text(normals / f"{cfg.dataset}-regression-aggregated.csv", pd.DataFrame(agg_rows).to_csv(index=False))
    atomic_write_json(out_dir / "results.json", summary)
    return summary


def per_rate_tuple(stats: dict, keys: list[str]) -> dict:
    return {k: f"({_r(stats['mean'][k]):.{CSV_DECIMALS}f}, {_r(stats['std'][k]):.{CSV_DECIMALS}f})" for k in keys}


def equal_rate_curve(summary: dict) -> Optional[tuple[list[float], dict[str, list[float]]]]:
    """(rates, seed means x100 per metric) over the equal-rate cells, when they form a grid starting at
    0.0 (else None): the points the AUILC is taken over."""
    entries = sorted(
        (info["rates"][0], info["mean"]) for info in summary["rates"].values()
        if len(set(info["rates"])) == 1
    )
    if len(entries) < 2 or entries[0][0] != 0.0:
        return None
    rates = [r for r, _ in entries]
    return rates, {k: [m[k] for _, m in entries] for k in entries[0][1]}


def merge_cells(dest: Path, sources: list[Path]) -> int:
    """Copy the finished cells of shard folders ``sources`` into ``dest`` (same config required)."""
    dest = Path(dest)
    dest_config = dest / CONFIG_FILE
    dest_fingerprint = json.loads(dest_config.read_text())["fingerprint"] if dest_config.exists() else None
    copied = 0
    for source in map(Path, sources):
        config_file = source / CONFIG_FILE
        if not config_file.exists():
            raise ConfigError(f"{source} is not a results directory (no {CONFIG_FILE})")
        fingerprint = json.loads(config_file.read_text())["fingerprint"]
        if dest_fingerprint is None:
            dest.mkdir(parents=True, exist_ok=True)
            atomic_write_text(dest_config, config_file.read_text())
            dest_fingerprint = fingerprint
        if fingerprint != dest_fingerprint:
            raise ConfigError(f"{source} was made with another config than {dest}; they cannot be merged")
        for cell in finished_cell_files(source):
            target = dest / cell.relative_to(source)
            if not target.exists():
                atomic_write_text(target, cell.read_text())
                copied += 1
    return copied
