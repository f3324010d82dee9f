"""What the EMT-DLFR network returns: a typed record read by the DLFR objective (trains/losses.py).

The network runs two views of every clip, the complete one and the incomplete one (docs/REFERENCE.md
§4.1). Per view it predicts the label and, for each representation the attraction loss pulls together
(:data:`ATTRACTION_TARGETS`), returns the SimSiam pair (z, p); from the incomplete view it also
reconstructs every modality's features, and from the complete view it gives the text reconstruction's
target (BERT's states at the word positions). Each field is named once, here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from config import MODALITIES

#: The representations pulled together by the SimSiam attraction loss: vec(G^L) and the utterance
#: vectors of the three modalities.
GMC = "gmc"
ATTRACTION_TARGETS = (GMC, *MODALITIES)


@dataclass(frozen=True)
class SimSiamPair:
    """One representation's SimSiam heads: ``z`` = projector(x), detached; ``p`` = predictor(projector(x))."""

    z: torch.Tensor  # (B, d)
    p: torch.Tensor  # (B, d)


@dataclass(frozen=True)
class ViewOutputs:
    """One view's prediction (B, 1) and its SimSiam pair per attraction target."""

    prediction: torch.Tensor
    siamese: dict[str, SimSiamPair]


@dataclass(frozen=True)
class EMTDLFROutput:
    """The network's outputs for a batch of B clips (both views)."""

    complete: ViewOutputs
    incomplete: ViewOutputs
    #: Per modality, the incomplete view's reconstruction of the features: text (B, L-1, H),
    #: audio (B, T_a', d_a), vision (B, T_v', d_v), over the batch's longest clip.
    reconstruction: dict[str, torch.Tensor]
    #: The complete view's BERT states after [CLS] (B, L-1, H), detached: the text reconstruction's target.
    text_target: torch.Tensor

    def apply(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> "EMTDLFROutput":
        """The same outputs with ``fn`` applied to every tensor (e.g. a dtype change)."""

        def view(outputs: ViewOutputs) -> ViewOutputs:
            pairs = {k: SimSiamPair(fn(pair.z), fn(pair.p)) for k, pair in outputs.siamese.items()}
            return ViewOutputs(fn(outputs.prediction), pairs)

        reconstruction = {k: fn(x) for k, x in self.reconstruction.items()}
        return EMTDLFROutput(view(self.complete), view(self.incomplete), reconstruction, fn(self.text_target))

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every output under a flat dotted name (``incomplete.prediction``, ``complete.siamese.gmc.z``,
        ``reconstruction.audio``, ``text_target``), for code that treats all outputs alike."""
        flat = {}
        for view in ("complete", "incomplete"):
            outputs: ViewOutputs = getattr(self, view)
            flat[f"{view}.prediction"] = outputs.prediction
            for target, pair in outputs.siamese.items():
                flat[f"{view}.siamese.{target}.z"] = pair.z
                flat[f"{view}.siamese.{target}.p"] = pair.p
        flat.update({f"reconstruction.{modality}": x for modality, x in self.reconstruction.items()})
        flat["text_target"] = self.text_target
        return flat
