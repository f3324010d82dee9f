"""Resume inside a run: a cell killed with SIGKILL after some epoch continues from its last finished
epoch and ends with exactly the metrics of the uninterrupted run (CPU)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import run

ROOT = Path(__file__).resolve().parent.parent
#: Epochs of the cell, and the finished epoch after which the second run is killed (mid-training: some done,
#: some to go). Four epochs of the tiny preset keep the test short.
EPOCHS, KILL_AFTER = 4, 2
ARGS = ["--dataset", "tiny", "--missing-rate", "0.3", "--seeds", "7", "--no-progress", "--checkpoint-every-epoch",
        "--set", f"max_epochs={EPOCHS}", f"early_stop={EPOCHS}"]


def command(root, out, *extra):
    return [sys.executable, str(ROOT / "run.py"), *ARGS, *extra, "--data-root", str(root), "--out", str(out)]


def cell_record(out: Path) -> dict:
    (cell,) = out.glob("cells/*/*.json")
    record = json.loads(cell.read_text())
    record.pop("seconds")
    return record


@pytest.mark.slow
@pytest.mark.parametrize("extra", [(), ("--faithful-rng",)], ids=["default", "faithful-rng"])
def test_sigkill_then_resume_gives_identical_test_metrics(tiny_root, tmp_path, extra):
    full = tmp_path / "full"  # the uninterrupted run, in this process (run.main is what run.py calls)
    assert run.main(command(tiny_root, full, *extra)[2:]) == 0

    killed = tmp_path / "killed"
    state_file = killed / "work" / "mr0.3" / "seed7" / "train_state.pt"
    proc = subprocess.Popen(command(tiny_root, killed, *extra), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    killed_after = None
    deadline = time.time() + 500
    while time.time() < deadline and proc.poll() is None:
        if state_file.exists():
            epoch = torch.load(state_file, map_location="cpu", weights_only=False)["epoch"]
            if epoch >= KILL_AFTER:
                os.kill(proc.pid, signal.SIGKILL)
                killed_after = epoch
                break
        time.sleep(0.02)
    proc.wait(timeout=60)
    assert killed_after is not None and killed_after < EPOCHS, "the run was not killed mid-training"
    assert not list(killed.glob("cells/*/*.json"))  # the killed cell left no result

    resumed = subprocess.run(command(tiny_root, killed, *extra), check=True, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert "resumed from" in resumed.stderr
    assert cell_record(killed) == cell_record(full)
    assert not state_file.exists()  # the training state is removed once the cell is finished


def test_resume_refuses_a_checkpoint_of_another_config(tiny_root, tmp_path):
    from config import get_config
    from data.load_data import build_loaders, load_mmsa
    from trains.experiment import build_datasets, model_for
    from trains.trainer import Trainer
    from utils.errors import CheckpointError

    cfg = get_config("tiny", max_epochs=1)
    path = tiny_root / cfg.data_file
    datasets = build_datasets(cfg, load_mmsa(path, label_range=cfg.label_range), path, (0.0, 0.0, 0.0))
    state = tmp_path / "train_state.pt"
    Trainer(cfg, model_for(cfg, datasets), progress=False).fit(build_loaders(datasets, 8, 0), checkpoint_path=state)
    other = get_config("tiny", max_epochs=1, learning_rate_other=0.5)
    with pytest.raises(CheckpointError, match="another config.*learning_rate_other"):
        Trainer(other, model_for(other, datasets), progress=False).fit(build_loaders(datasets, 8, 0), checkpoint_path=state)
    state.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read training checkpoint"):
        Trainer(cfg, model_for(cfg, datasets), progress=False).fit(build_loaders(datasets, 8, 0), checkpoint_path=state)


def test_resume_names_missing_fields_and_ignores_run_time_fields(tiny_root, tmp_path):
    """A checkpoint lacking a field that defines the computation is refused with that field named; one that
    differs only in run-time fields (fast_path, num_workers) resumes."""
    import torch

    from config import get_config
    from data.load_data import build_loaders, load_mmsa
    from trains.experiment import build_datasets, model_for
    from trains.trainer import Trainer
    from utils.errors import CheckpointError

    cfg = get_config("tiny", max_epochs=1)
    path = tiny_root / cfg.data_file
    datasets = build_datasets(cfg, load_mmsa(path, label_range=cfg.label_range), path, (0.0, 0.0, 0.0))
    state_file = tmp_path / "train_state.pt"
    Trainer(cfg, model_for(cfg, datasets), progress=False).fit(build_loaders(datasets, 8, 0), checkpoint_path=state_file)
    state = torch.load(state_file, weights_only=False)

    state["config"].update(fast_path=not cfg.fast_path, num_workers=cfg.num_workers + 2)
    torch.save(state, state_file)
    result = Trainer(cfg, model_for(cfg, datasets), progress=False).fit(build_loaders(datasets, 8, 0), state_file)
    assert len(result.history) == 1  # resumed after its one epoch, nothing retrained

    del state["config"]["early_stop"]
    torch.save(state, state_file)
    with pytest.raises(CheckpointError, match=r"differs in: early_stop\)"):
        Trainer(cfg, model_for(cfg, datasets), progress=False).fit(build_loaders(datasets, 8, 0), state_file)
