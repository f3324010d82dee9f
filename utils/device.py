"""Where a run executes: the device (``auto`` by default) and the float32 matmul precision (TF32).

* ``device="auto"`` (the default, as the reference, whose code uses a GPU without being asked) is the
  first visible CUDA device when there is one, else the CPU; ``cpu``, ``cuda`` and ``cuda:N`` are taken as
  given, and asking for CUDA without a CUDA device is one error line.
* TF32: the authors ran torch 1.7, where float32 matmuls and cuDNN convolutions / RNNs used TensorFloat-32
  on Ampere and newer GPUs by default. Today's torch keeps cuDNN's TF32 on but turns it off for matmuls.
  ``tf32=True`` (default) restores the authors' setting for both; ``tf32=False`` (``--no-tf32``) computes
  every float32 matmul and cuDNN call in full float32. TF32 is deterministic, so ``--deterministic`` keeps it,
  and it has no effect on a CPU or on bf16 autocast's low-precision matmuls.
"""

from __future__ import annotations

import torch

from config.base import check_device_spec
from utils.errors import ConfigError

AUTO = "auto"

#: The values of torch's ``fp32_precision`` switches for TF32 on / off.
TF32_ON, TF32_OFF = "tf32", "ieee"


def resolve_device(spec: str) -> torch.device:
    """The torch device for a config's ``device`` string; ``auto`` = the first CUDA device, else the CPU."""
    check_device_spec(spec)
    if spec == AUTO:
        return torch.device("cuda", torch.cuda.current_device()) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(spec)
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise ConfigError(f"device {spec!r}: no CUDA device is available to this torch; use --device cpu or auto")
    if device.index is None:
        return torch.device("cuda", torch.cuda.current_device())
    if device.index >= torch.cuda.device_count():
        raise ConfigError(
            f"device {spec!r}: only {torch.cuda.device_count()} CUDA device(s) are visible "
            "(indices count from 0 within CUDA_VISIBLE_DEVICES)"
        )
    return device


def describe_device(device: torch.device) -> str:
    """``cuda:0 (NVIDIA H200)`` or ``cpu``, for the log."""
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return str(device)


def use_device(device: torch.device) -> None:
    """Make ``device`` the current CUDA device, so that kernels, memory statistics and synchronisation that
    name no device refer to it (a no-op on the CPU)."""
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)


def set_tf32(enabled: bool) -> None:
    """TF32 for float32 matmuls (cuBLAS) and cuDNN convolutions / RNNs, on or off (process-wide)."""
    precision = TF32_ON if enabled else TF32_OFF
    torch.backends.cuda.matmul.fp32_precision = precision
    torch.backends.cudnn.fp32_precision = precision
