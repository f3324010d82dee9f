"""A sweep over missing rates and seeds as a list of independent, resumable cells.

Every (rates, seed) cell is a unit of work whose record is written atomically when it finishes
(:mod:`utils.results`). Running the same sweep again skips the finished cells and redoes only the
unfinished ones; an interrupted cell restarts (or, with per-epoch checkpoints, resumes) from its own
work directory. The aggregate files are rebuilt from the cell records after every cell, so they are
always consistent with what has finished. This module only schedules the cells (in this process, or in one
worker process per device): the results folder's layout is :mod:`utils.results`'s, and the command line
(shards, devices, the workers' command lines) is run.py's.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from tqdm.auto import tqdm

from config import ExperimentConfig
from utils.errors import ConfigError, UserError
from utils.results import (Rates, aggregate, finished_cell_files, model_file, predictions_dir, prepare_out_dir,
                           read_cell, work_dir, write_cell)

log = logging.getLogger(__name__)

CUDA_VISIBLE = "CUDA_VISIBLE_DEVICES"


class SweepWorkerError(UserError):
    """A worker process of a multi-GPU sweep failed."""


def all_cells(grid: Iterable[Rates], seeds: Iterable[int]) -> list[tuple[Rates, int]]:
    """Cells in the reference's order: rates outer, seeds inner."""
    return [(tuple(rates), int(seed)) for rates in grid for seed in seeds]


def select_shard(cells: list, shard: Optional[tuple[int, int]]) -> list:
    """Every N-th cell starting at I for ``shard=(I, N)`` (0 <= I < N); all cells for None."""
    if shard is None:
        return cells
    index, count = shard
    return cells[index::count]


def count_todo(out_dir: Path, grid: list[Rates], seeds: list[int], fingerprint: str,
               shard: Optional[tuple[int, int]] = None) -> int:
    cells = select_shard(all_cells(grid, seeds), shard)
    return sum(read_cell(out_dir, rates, seed, fingerprint) is None for rates, seed in cells)


def warn_unsaved(out_dir: Path, cfg: ExperimentConfig, finished: list[tuple[Rates, int]], save_model: bool,
                 save_predictions: bool) -> None:
    """Say so when ``--save-model`` / ``--save-predictions`` cannot apply to cells that finished before
    without them: finished cells are not trained again, so nothing would be saved for them."""
    wanted = []
    if save_model:
        wanted.append(("--save-model", lambda rates, seed: model_file(out_dir, cfg, rates, seed).exists()))
    if save_predictions:
        wanted.append(("--save-predictions", lambda rates, seed: predictions_dir(out_dir, rates, seed).is_dir()))
    for flag, saved in wanted:
        missing = [(rates, seed) for rates, seed in finished if not saved(rates, seed)]
        if missing:
            log.warning("%s: %d finished cell(s) of %s were trained without it and are not trained again, so "
                        "nothing is saved for them (e.g. rates %s, seed %d); to save them, remove their records "
                        "under %s/cells/ and rerun", flag, len(missing), out_dir, missing[0][0], missing[0][1], out_dir)


def run_sweep(
    cfg: ExperimentConfig,
    data,
    data_path: Path,
    grid: list[Rates],
    seeds: list[int],
    out_dir: Path,
    save_model: bool = False,
    save_predictions: bool = False,
    shard: Optional[tuple[int, int]] = None,
    progress: bool = True,
    write_aggregate: bool = True,
) -> dict:
    """Run the unfinished cells of this sweep (or of one shard of it) and return the aggregate."""
    from trains.experiment import run_cell  # torch and the model are imported only when cells run

    out_dir = Path(out_dir)
    fingerprint = prepare_out_dir(out_dir, cfg)
    cells = select_shard(all_cells(grid, seeds), shard)
    todo = [c for c in cells if read_cell(out_dir, c[0], c[1], fingerprint) is None]
    log.info("%s on %s: %d cells, %d done, %d to do -> %s", cfg.variant, cfg.dataset, len(cells),
             len(cells) - len(todo), len(todo), out_dir)
    warn_unsaved(out_dir, cfg, [c for c in cells if c not in todo], save_model, save_predictions)
    for rates, seed in tqdm(todo, desc="cells", disable=not progress):
        record = run_cell(
            cfg, data, data_path, rates, seed,
            work_dir=work_dir(out_dir, rates, seed),
            save_model_path=model_file(out_dir, cfg, rates, seed) if save_model else None,
            progress=progress,
            predictions_dir=predictions_dir(out_dir, rates, seed) if save_predictions else None,
        )
        record["fingerprint"] = fingerprint
        write_cell(out_dir, record)
        if write_aggregate:
            aggregate(out_dir, cfg, grid, seeds, fingerprint)
    return aggregate(out_dir, cfg, grid, seeds, fingerprint) if write_aggregate else {}


@dataclass(frozen=True)
class Worker:
    """One worker process of a multi-device sweep: its command, its environment and the device it was given."""

    command: list[str]
    env: dict[str, str]
    device: str


def worker_env(device: str, environ: Optional[dict[str, str]] = None) -> tuple[dict[str, str], str]:
    """(environment, ``--device`` value) of a worker on ``device``.

    A worker on ``cuda:N`` sees that GPU only (``CUDA_VISIBLE_DEVICES``, mapped through the parent's own
    ``CUDA_VISIBLE_DEVICES`` when set) and runs on ``cuda``: its current device, memory figures and
    synchronisation all refer to its GPU. Several workers may share one GPU (``--gpus 0,0``).
    """
    env = dict(os.environ if environ is None else environ)
    index = device.partition(":")[2]
    if not device.startswith("cuda") or not index:
        return env, device
    visible = [d.strip() for d in env.get(CUDA_VISIBLE, "").split(",") if d.strip()]
    if visible and int(index) >= len(visible):
        raise ConfigError(f"--gpus {index}: {CUDA_VISIBLE}={env[CUDA_VISIBLE]} makes only {len(visible)} GPU(s) visible")
    env[CUDA_VISIBLE] = visible[int(index)] if visible else index
    return env, "cuda"


def run_workers(workers: list[Worker], out_dir: Path, total_todo: int, progress: bool = True,
                poll_seconds: float = 2.0) -> None:
    """Start the worker processes, show one progress bar over the cells they finish, wait for all."""
    before = finished_cell_files(out_dir)
    procs = [subprocess.Popen(worker.command, env=worker.env) for worker in workers]
    with tqdm(total=total_todo, desc="cells", disable=not progress) as bar:
        while any(p.poll() is None for p in procs):
            time.sleep(poll_seconds)
            bar.n = min(total_todo, len(finished_cell_files(out_dir) - before))
            bar.refresh()
        bar.n = min(total_todo, len(finished_cell_files(out_dir) - before))
        bar.refresh()
    failed = [(worker.device, p.returncode) for worker, p in zip(workers, procs) if p.returncode != 0]
    if failed:
        raise SweepWorkerError(
            "; ".join(f"worker on {device} exited with status {code}" for device, code in failed)
            + " (finished cells are saved: rerun the same command to redo the rest)"
        )
