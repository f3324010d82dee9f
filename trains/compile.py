"""Optional ``torch.compile`` of the EMT-DLFR network (off by default; see docs/BENCHMARKS.md, compile vs eager).

:func:`maybe_compile` compiles the model's forward IN PLACE (:meth:`torch.nn.Module.compile`), so the
parameter names, ``state_dict`` keys, checkpoints and the trainer's parameter groups stay those of the
eager model. Shapes vary from batch to batch (T_batchmax is the longest clip of the batch), so the
compiled forward is marked dynamic after the first recompilation (``dynamic=None``); data-dependent
steps (packed LSTMs, the masked-clip check of the attention) run eagerly between compiled graphs.
"""

from __future__ import annotations

from typing import Union

from torch import nn

def maybe_compile(model: nn.Module, cfg_or_flag: Union[bool, object]) -> nn.Module:
    """``model``, its forward compiled in place when ``cfg_or_flag`` (a bool, or a config's ``compile``) is true."""
    enabled = cfg_or_flag if isinstance(cfg_or_flag, bool) else cfg_or_flag.compile
    if enabled:
        model.compile(dynamic=None)
    return model
