"""Seeding and RNG-state capture, so a run is reproducible and a resumed run continues exactly.

``setup_seed`` matches the reference's ``setup_seed`` (python, numpy, torch CPU and CUDA), plus the
flags torch needs for deterministic GPU kernels when ``deterministic=True`` (``--deterministic``).
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
        # Strict: an operation without a deterministic implementation raises instead of warning, and SDPA's
        # flash and memory-efficient kernels take their deterministic backward (with warn_only they do not).
        torch.use_deterministic_algorithms(True)
        # cuDNN's attention kernel has no deterministic backward: SDPA is kept to the others (process-wide,
        # so the recomputed forward of a checkpointed block picks from the same kernels).
        torch.backends.cuda.enable_cudnn_sdp(False)


def capture_rng_state(device: torch.device) -> dict:
    """Every global RNG state a training epoch on ``device`` consumes (loader generators are saved separately).

    On CUDA only the training device's generator is saved: the others are not used, and a checkpoint that
    held all of them could not be restored with fewer GPUs visible, or on another GPU index.
    """
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng_state(state: dict, device: torch.device) -> None:
    """Restore :func:`capture_rng_state`'s states; the CUDA one goes to ``device``, whichever GPU saved it.

    A state saved on the CPU leaves the CUDA generator as seeded; a CUDA state is ignored on the CPU. Older
    checkpoints held a list (every visible GPU's state): the entry of the device's index is restored, if any.
    """
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    cuda_state = state.get("cuda")
    if cuda_state is None or device.type != "cuda":
        return
    if isinstance(cuda_state, (list, tuple)):
        index = device.index if device.index is not None else torch.cuda.current_device()
        if index >= len(cuda_state):
            return
        cuda_state = cuda_state[index]
    torch.cuda.set_rng_state(cuda_state, device)
