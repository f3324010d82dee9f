"""Registry of the fusion strategies selected by ``cfg.fusion`` (docs/REFERENCE.md §4).

Every strategy is a :class:`~models.fusion_engine.FusionEngine` with its own ``contexts`` rule; adding
one means writing that rule in a subclass and registering the class here.
"""

from __future__ import annotations

from models.emt import EMT
from models.fusion_engine import FusionEngine
from models.fusion_variants import VARIANT_FUSIONS
from utils.errors import ConfigError

FUSIONS: dict[str, type[FusionEngine]] = {"emt": EMT, **VARIANT_FUSIONS}


def build_fusion(cfg) -> FusionEngine:
    """The fusion module named by ``cfg.fusion``, built from the config."""
    if cfg.fusion not in FUSIONS:
        raise ConfigError(f"unknown fusion {cfg.fusion!r} (choose from: {', '.join(FUSIONS)})")
    return FUSIONS[cfg.fusion].from_config(cfg)
