"""Seeding and RNG-state capture, so a run is reproducible and a resumed run continues exactly.

``setup_seed`` matches the reference's ``setup_seed`` (python, numpy, torch CPU and CUDA), plus the
flags torch needs for deterministic GPU kernels when ``deterministic=True``.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def setup_seed(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    torch.backends.cudnn.deterministic = True  # the reference sets this for every run
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True, warn_only=True)


def capture_rng_state() -> dict:
    """Every global RNG state a training epoch consumes (loader generators are saved separately)."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
