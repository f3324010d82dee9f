"""The contract between a model and the trainer: an objective turns a model's outputs into losses.

The trainer (:mod:`trains.trainer`) knows nothing of a model's outputs. It calls the model on the batch
entries the model names (its ``INPUTS``), hands the outputs and the batch to the model's
:class:`Objective`, back-propagates the ``"total"`` term, and computes the metrics on
:meth:`Objective.predictions` against :meth:`Objective.labels`. Another model with its own outputs and
loss (a baseline) is trained by the same loop by writing its objective: a subclass of :class:`Objective`
(see docs/ARCHITECTURE.md).
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Mapping, Optional

import torch
import torch.nn.functional as F

from data.load_data import MULTIMODAL_LABEL

#: The loss term the trainer back-propagates; every objective returns it.
TOTAL = "total"
#: The incomplete view's task loss (the L1 of the metrics' prediction), which every objective returns too;
#: validation reports it as "Loss(pred_m)".
TASK_INCOMPLETE = "task_m"


class Objective:
    """The loss and the predictions of one kind of model."""

    #: The loss term whose mean over the batches validation and test report as "Loss" (the term model
    #: selection and the LR schedule read): ``"total"`` unless the reference reports another (TFR-Net).
    loss_term: str = TOTAL
    #: Validation metrics reported besides "Loss": metric name -> loss term, whose mean over the batches is
    #: reported under that name.
    reported_terms: Mapping[str, str] = MappingProxyType({})

    def for_epoch(self, epoch: int) -> "Objective":
        """The training objective of ``epoch`` (1-based): this one, unless the loss changes with the epoch."""
        del epoch
        return self

    def __call__(self, outputs: Any, batch: dict) -> dict[str, torch.Tensor]:
        """Every loss term of one batch (scalars); ``"total"`` is back-propagated."""
        raise NotImplementedError

    def predictions(self, outputs: Any) -> torch.Tensor:
        """(B,) the predictions the metrics are computed on."""
        raise NotImplementedError

    def complete_predictions(self, outputs: Any) -> Optional[torch.Tensor]:
        """(B,) the complete view's predictions, for a model that has one (written beside the metrics'
        predictions in the predictions CSV); None otherwise."""
        del outputs
        return None

    def labels(self, batch: dict) -> torch.Tensor:
        """(B,) the labels the predictions are scored against: the multimodal regression label."""
        return batch["labels"][MULTIMODAL_LABEL].view(-1)


class TaskObjective(Objective):
    """L1 between the prediction ``pred_m`` and the label, nothing else: the whole objective of MulT (the
    authors' ``nn.L1Loss``). Float32 under autocast too (the label keeps its value, as in trains/losses.py)."""

    reported_terms = MappingProxyType({"Loss(pred_m)": TASK_INCOMPLETE})

    def __init__(self, cfg):
        del cfg  # nothing to configure; the registry builds every objective from the config

    def predictions(self, outputs: dict) -> torch.Tensor:
        return outputs["pred_m"].view(-1)

    def __call__(self, outputs: dict, batch: dict) -> dict[str, torch.Tensor]:
        prediction = self.predictions(outputs)
        with torch.autocast(prediction.device.type, enabled=False):
            loss = F.l1_loss(prediction.float(), self.labels(batch).float())
        return {TASK_INCOMPLETE: loss, TOTAL: loss}
