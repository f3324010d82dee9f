"""``run.py --evaluate RESULTS_DIR``: test the models a ``--save-model`` sweep stored at other missing rates.

Every model file in ``RESULTS_DIR/models/`` (trains.model_file) is tested on the test split at each given
(text, audio, vision) rate, with the static masks of the training protocol (the fixed missing seeds), so the
incomplete view at the model's own rate is exactly the one it was tested on after training. The test loader
is built as in training, seeded with the model's training seed: the batches are the same and evaluating a
model at its training rate reproduces its cell's recorded test metrics exactly, losses included (tested).

``RESULTS_DIR/evaluation.json`` holds the train rate x test rate matrix:
``{"matrix": {train_tag: {test_tag: {"mean": {metric: ...}, "std": {...}, "per_seed": {seed: {...}}, ...}}}}``
with the values x100 as in ``results.json`` (tags as in utils.results.rate_tag), next to the dataset,
variant, config fingerprint and data file. Each invocation rewrites it for the rates it was given.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from tqdm.auto import tqdm

from config import RUNTIME_FIELDS, ExperimentConfig, config_diff
from data.load_data import MMSADataset, build_loaders
from models.execution import ExecutionPolicy
from trains.model_file import SavedModel, check_data_fits, load_model_file
from trains.predictions import write_csv
from trains.trainer import evaluate_loader
from utils.errors import CheckpointError, ConfigError
from utils.io import atomic_write_json
from utils.results import Rates, predictions_dir, rate_tag, seed_stats, stored_config
from utils.seed import setup_seed

log = logging.getLogger(__name__)

EVALUATION_FILE = "evaluation.json"


def model_files(results_dir: Path) -> list[Path]:
    files = sorted((Path(results_dir) / "models").glob("*.pth"))
    if not files:
        raise ConfigError(f"{results_dir}/models holds no model files: train with --save-model to keep them")
    return files


def load_checked(path: Path, fingerprint: str, runtime: dict, results_dir: Path) -> SavedModel:
    """Load a model file, refusing one trained with another config than the results directory's."""
    saved = load_model_file(path, runtime)
    _, _, model = stored_config(results_dir)
    if saved.cfg.MODEL != model:
        raise CheckpointError(f"model file {path} holds a {saved.cfg.MODEL} model, but {results_dir} is {model}'s")
    if saved.fingerprint != fingerprint:
        stored, _, _ = stored_config(results_dir)
        diff = config_diff(stored, saved.cfg.to_dict())
        raise CheckpointError(f"model file {path} was trained with another config than {results_dir} "
                              f"(differs in: {', '.join(diff) or 'unknown'})")
    return saved


def evaluate_model(saved: SavedModel, data, data_path: Path, rates: Rates, progress: bool = False):
    """Test ``saved`` at ``rates``: its recorded-style metrics (losses included) and per-clip predictions."""
    cfg = saved.cfg
    setup_seed(saved.seed, cfg.deterministic)
    test = MMSADataset(data_path, "test", rates, cfg.missing_seeds, data=data)
    loader = build_loaders({"test": test}, cfg.batch_size, saved.seed, cfg.num_workers)["test"]
    policy = ExecutionPolicy.from_config(cfg)
    return evaluate_loader(saved.model.to(policy.device), loader, cfg, policy=policy, progress=progress,
                           desc=f"test at {rate_tag(rates)}")


def evaluate_results_dir(results_dir: Path, cfg: ExperimentConfig, data, data_path: Path, test_grid: list[Rates],
                         save_predictions: bool = False, progress: bool = True) -> dict:
    """Evaluate every saved model of ``results_dir`` at every rate of ``test_grid``; write evaluation.json.

    ``cfg`` is the directory's config with the caller's run-time fields; with ``save_predictions`` each
    (model, test rate) pass is written to ``predictions/mr<train>/seed<seed>/test-mr<test>.csv``.
    """
    results_dir = Path(results_dir)
    _, fingerprint, _ = stored_config(results_dir)
    runtime = {k: getattr(cfg, k) for k in RUNTIME_FIELDS}
    records: dict[tuple[str, str], list[dict]] = {}
    rates_of: dict[str, list[float]] = {}
    for path in tqdm(model_files(results_dir), desc="models", disable=not progress):
        saved = load_checked(path, fingerprint, runtime, results_dir)
        check_data_fits(saved, data)
        train_tag = rate_tag(saved.train_rates)
        rates_of[train_tag] = list(saved.train_rates)
        for rates in test_grid:
            metrics, preds = evaluate_model(saved, data, data_path, rates, progress)
            test_tag = rate_tag(rates)
            rates_of[test_tag] = list(rates)
            records.setdefault((train_tag, test_tag), []).append({"seed": saved.seed, "test": metrics})
            log.info("model %s (trained at %s, seed %d) tested at %s: %s", path.name, train_tag, saved.seed,
                     test_tag, {k: round(v, 4) for k, v in metrics.items()})
            if save_predictions:
                out = predictions_dir(results_dir, saved.train_rates, saved.seed) / f"test-mr{test_tag}.csv"
                write_csv(out, [preds.to_frame("test", rates)])
    matrix: dict = {}
    for (train_tag, test_tag), cell_records in records.items():
        cell_records.sort(key=lambda r: r["seed"])
        stats = seed_stats(cell_records, list(cell_records[0]["test"]))
        matrix.setdefault(train_tag, {})[test_tag] = {
            "train_rates": rates_of[train_tag], "test_rates": rates_of[test_tag],
            "seeds": [r["seed"] for r in cell_records], **stats,
        }
    summary = {"dataset": cfg.dataset, "variant": cfg.variant, "fingerprint": fingerprint,
               "data": str(data_path), "scale": "x100, as results.json", "matrix": matrix}
    atomic_write_json(results_dir / EVALUATION_FILE, summary)
    return summary
