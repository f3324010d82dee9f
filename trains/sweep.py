"""A sweep over missing rates and seeds as a list of independent, resumable cells.

Every (rates, seed) cell is a unit of work whose record is written atomically when it finishes
(:mod:`utils.results`). Running the same sweep again skips the finished cells and redoes only the
unfinished ones; an interrupted cell restarts (or, with per-epoch checkpoints, resumes) from its own
work directory. The aggregate files are rebuilt from the cell records after every cell, so they are
always consistent with what has finished.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Optional

from tqdm.auto import tqdm

from config import Config
from trains.experiment import run_cell
from utils.results import aggregate, prepare_out_dir, rate_tag, read_cell, write_cell

log = logging.getLogger(__name__)

Rates = tuple[float, float, float]


def all_cells(grid: Iterable[Rates], seeds: Iterable[int]) -> list[tuple[Rates, int]]:
    """Cells in the reference's order: rates outer, seeds inner."""
    return [(tuple(rates), int(seed)) for rates in grid for seed in seeds]


def select_shard(cells: list, shard: Optional[tuple[int, int]]) -> list:
    """Every N-th cell starting at I for ``shard=(I, N)`` (0 <= I < N); all cells for None."""
    if shard is None:
        return cells
    index, count = shard
    return cells[index::count]


def model_file(out_dir: Path, cfg: Config, rates: Rates, seed: int) -> Path:
    return Path(out_dir) / "models" / f"{cfg.variant}-{cfg.dataset}-regression-mr{rate_tag(rates)}-{seed}.pth"


def run_sweep(
    cfg: Config,
    data,
    data_path: Path,
    grid: list[Rates],
    seeds: list[int],
    out_dir: Path,
    save_model: bool = False,
    shard: Optional[tuple[int, int]] = None,
    progress: bool = True,
) -> dict:
    """Run the unfinished cells of this sweep (or of one shard of it) and return the aggregate."""
    out_dir = Path(out_dir)
    fingerprint = prepare_out_dir(out_dir, cfg)
    cells = select_shard(all_cells(grid, seeds), shard)
    todo = [c for c in cells if read_cell(out_dir, c[0], c[1], fingerprint) is None]
    log.info("%s on %s: %d cells, %d done, %d to do -> %s", cfg.variant, cfg.dataset, len(cells),
             len(cells) - len(todo), len(todo), out_dir)
    for rates, seed in tqdm(todo, desc="cells", disable=not progress):
        work_dir = out_dir / "work" / f"mr{rate_tag(rates)}" / f"seed{seed}"
        record = run_cell(
            cfg, data, data_path, rates, seed,
            work_dir=work_dir,
            save_model_path=model_file(out_dir, cfg, rates, seed) if save_model else None,
            progress=progress,
        )
        record["fingerprint"] = fingerprint
        write_cell(out_dir, record)
        aggregate(out_dir, cfg, grid, seeds, fingerprint)
    return aggregate(out_dir, cfg, grid, seeds, fingerprint)
