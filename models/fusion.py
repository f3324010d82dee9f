"""Registry of fusion modules selected by ``cfg.fusion`` (docs/REFERENCE.md §4).

Every fusion has the same small interface, so alternatives can be added next to the EMT:

    fusion(gmc, locals_, masks) -> (gmc_out, locals_out)

with ``gmc`` (B, 3, D), ``locals_`` = [H_t (B, T_t, D), H_a (B, T_a, D), H_v (B, T_v, D)] and ``masks``
= bool (B, T_m), True = valid; the outputs keep those shapes. Each class provides ``from_config(cfg)``.
"""

from __future__ import annotations

from torch import nn

from models.emt import EMT
from models.fusion_variants import VARIANT_FUSIONS
from utils.errors import ConfigError

FUSIONS: dict[str, type[nn.Module]] = {"emt": EMT, **VARIANT_FUSIONS}


def build_fusion(cfg) -> nn.Module:
    """The fusion module named by ``cfg.fusion``, built from the config."""
    if cfg.fusion not in FUSIONS:
        raise ConfigError(f"unknown fusion {cfg.fusion!r} (choose from: {', '.join(FUSIONS)})")
    return FUSIONS[cfg.fusion].from_config(cfg)
