"""Parameter counts of an EMT-DLFR model (docs/REFERENCE.md §4, §8).

Shared modules (the EMT's single CST and pool under the shipped sharing switches) are counted once, as
``nn.Module.parameters()`` does. BatchNorm without affine parameters contributes nothing; BERT's pooler is
counted although it is unused, as in the reference.
"""

from __future__ import annotations

from typing import Iterable

from torch import nn

from models.emt_dlfr import TRAINING_ONLY_MODULES


def _count(params: Iterable[nn.Parameter]) -> int:
    unique = {id(p): p for p in params}
    return sum(p.numel() for p in unique.values())


def describe(model: nn.Module) -> dict[str, int]:
    """Parameter counts: ``total``, ``bert``, ``trainable_excluding_bert``, ``inference_excluding_bert``, ``fusion``.

    ``inference_excluding_bert`` leaves out BERT and the DLFR-only heads (SimSiam projectors and
    predictors, reconstruction heads); ``fusion`` is the EMT alone.
    """
    bert_ids = {id(p) for p in model.text_model.parameters()}
    training_only_ids = {id(p) for name in TRAINING_ONLY_MODULES for p in getattr(model, name).parameters()}
    params = list(model.parameters())
    return {
        "total": _count(params),
        "bert": _count(model.text_model.parameters()),
        "trainable_excluding_bert": _count(p for p in params if p.requires_grad and id(p) not in bert_ids),
        "inference_excluding_bert": _count(
            p for p in params if id(p) not in bert_ids and id(p) not in training_only_ids
        ),
        "fusion": _count(model.fusion.parameters()),
    }
