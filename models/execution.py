"""How a model computes, as opposed to what it computes: one execution policy, decided once per run.

Every execution choice that does not change the function being computed lives in
:class:`ExecutionPolicy`: the device, whether the two Siamese views run stacked, whether padded tokens
are skipped (:mod:`models.ragged`), whether the fusion recomputes its activations in the backward pass,
the attention kernel, autocast, TF32 matmuls and the Adam kernel. :meth:`ExecutionPolicy.from_config`
decides it once from the config (``fast_path``, ``attention_kernel``, ``device``, ``amp``, ``tf32``); the model,
the optimiser and the trainer read that one object and nothing else. The reference-like computation
(``fast_path=false``: one padded view at a time, explicit softmax attention, every activation stored,
per-parameter Adam) is :meth:`ExecutionPolicy.reference_like`, a first-class policy the tests compare
the fast one with.

Per batch, the model turns the policy into a :class:`BatchPlan` once (:meth:`ExecutionPolicy.plan`):
whether THIS batch may skip its padding is decided there and handed down the forward pass with the
attention kernel and the recomputation switch. A batch with a clip that has no valid token in some
modality keeps the padding: the reference then attends uniformly over that clip's padded keys, so the
padding is read.

Attention kernels (:data:`ATTENTION_KERNELS`):

* ``explicit``: the reference's masked_fill -> softmax -> dropout -> matmul (the fusion), and the text
  encoder's own HF implementation;
* ``lean`` (CPUs only): :func:`models.dropout_attention.dropout_attention` for attention with dropout in
  training (it keeps one byte per logit where the math fallback of SDPA keeps nine), SDPA otherwise;
* ``sdpa``: :func:`torch.nn.functional.scaled_dot_product_attention` everywhere, dropout included.

``auto`` (the config's default) is ``lean`` on a CPU, whose fused SDPA kernel has no dropout, and
``sdpa`` elsewhere; the reference-like path always uses ``explicit``.

Adding a switch means one field here, its value in :meth:`from_config` (and in :meth:`reference_like`
if the reference-like path pins it), and reading it where it acts.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass
from typing import Optional

import torch

from utils.device import resolve_device, set_tf32
from utils.errors import ConfigError

EXPLICIT, LEAN, SDPA = "explicit", "lean", "sdpa"
ATTENTION_KERNELS = (EXPLICIT, LEAN, SDPA)
#: The config's ``attention_kernel`` value that lets the device choose.
AUTO = "auto"
#: ``amp`` values of the config and the autocast dtype each selects.
AUTOCAST_DTYPES = {"bf16": torch.bfloat16}


@dataclass(frozen=True)
class BatchPlan:
    """What one forward pass needs from the policy: the attention kernel, recomputation, and whether
    this batch runs on its valid tokens only (``packed``)."""

    attention: str = LEAN
    recompute: bool = False
    packed: bool = False


#: The plan of a module called directly (tests, benchmarks): padded tokens, stored activations, and
#: the kernels the CPU uses by default.
DEFAULT_PLAN = BatchPlan()


@dataclass(frozen=True)
class ExecutionPolicy:
    """Every execution choice of a run (see the module docstring); frozen, so it is decided once."""

    device: str = "cpu"
    #: Run the encoders, fusion and prediction head once on both views stacked along the batch.
    stack_views: bool = True
    #: Run BERT and the fusion on the valid tokens only, when the batch allows it (:meth:`plan`).
    pack_tokens: bool = True
    #: Training: the fusion keeps no activations and recomputes them in the backward pass.
    recompute: bool = True
    attention: str = LEAN
    #: None (float32, the reference) or a dtype for ``torch.autocast``.
    autocast_dtype: Optional[torch.dtype] = None
    #: TF32 matmuls and convolutions on CUDA (the config's ``tf32``; see utils/device.py).
    tf32: bool = False
    #: PyTorch's fused Adam kernel instead of the reference's per-parameter loop (same update).
    fused_adam: bool = True

    def __post_init__(self):
        if self.attention not in ATTENTION_KERNELS:
            raise ConfigError(f"attention kernel must be one of {', '.join(ATTENTION_KERNELS)}, got {self.attention!r}")
        if self.attention == LEAN and torch.device(self.device).type != "cpu":
            raise ConfigError("the lean attention kernel runs on CPUs only: use attention_kernel=sdpa or auto")
        if self.pack_tokens and self.attention == EXPLICIT:
            # the text encoder's own HF attention cannot read packed tokens
            raise ConfigError("skipping the padding (pack_tokens) needs the lean or sdpa attention kernel")

    @classmethod
    def from_config(cls, cfg) -> "ExecutionPolicy":
        """The policy of ``cfg``: the fast path, or the reference-like one with ``fast_path=false``."""
        device = str(resolve_device(cfg.device))
        kernel = cfg.attention_kernel
        if kernel == AUTO:
            kernel = default_kernel(device) if cfg.fast_path else EXPLICIT
        fast = cls(
            device=device,
            tf32=cfg.tf32,
            attention=kernel,
            pack_tokens=kernel != EXPLICIT,
            autocast_dtype=AUTOCAST_DTYPES[cfg.amp] if cfg.amp else None,
        )
        return fast if cfg.fast_path else dataclasses.replace(fast.reference_like(), attention=kernel)

    def reference_like(self) -> "ExecutionPolicy":
        """This policy computed as the reference does: one padded view at a time, explicit attention,
        every activation stored, per-parameter Adam (device and autocast unchanged)."""
        return dataclasses.replace(
            self, stack_views=False, pack_tokens=False, recompute=False, attention=EXPLICIT, fused_adam=False
        )

    def plan(self, every_clip_has_tokens: bool) -> BatchPlan:
        """The plan of one batch; ``every_clip_has_tokens``: each clip has a valid token in every modality."""
        return BatchPlan(self.attention, self.recompute, self.pack_tokens and every_clip_has_tokens)

    def autocast(self):
        """The autocast context of a forward pass and its loss (a no-op in float32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=torch.device(self.device).type, dtype=self.autocast_dtype)

    def apply_backend_flags(self) -> None:
        """Set the process-wide backend switches this policy owns (TF32 matmuls and convolutions on CUDA)."""
        set_tf32(self.tf32)


def default_kernel(device: str) -> str:
    """``lean`` on a CPU (its fused SDPA kernel has no dropout), ``sdpa`` elsewhere."""
    return LEAN if torch.device(device).type == "cpu" else SDPA
