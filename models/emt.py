"""The Efficient Multimodal Transformer (EMT) of EMT-DLFR (docs/REFERENCE.md §4, §8).

The EMT is the fusion strategy whose local tokens read the global multimodal context: in each of its L
layers, every modality's local tokens H_m cross-attend to the 3 GMC tokens of the previous layer, and the
GMC reads every modality's previous-layer local tokens (mutual promotion units, MPUs); the three
modality-specific GMC copies are then pooled. Both directions read layer l-1 (the reference's parallel
update). The layer loop, the sharing switches, packing and recomputation are the fusion engine's
(:mod:`models.fusion_engine`); the blocks are in :mod:`models.blocks`.
"""

from __future__ import annotations

from models.blocks import Context
from models.fusion_engine import FusionEngine


class EMT(FusionEngine):
    """OAGL: modality m's local tokens cross-attend to the 3 global tokens, O(3 T_m) per layer."""

    def contexts(self, m, locals_, masks, gmc) -> list[Context]:
        return [(gmc, None)]  # (B, 3, D), every token valid
