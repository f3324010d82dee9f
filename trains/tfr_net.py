"""TFR-Net's trainer pieces (the authors' ``trains/missingTask/TFR_NET.py``): its objective and optimiser.

The loop itself is the project's one trainer (:mod:`trains.trainer`); TFR-Net's config selects the
authors' step schedule ("mmsa": a step after every batch on the gradients summed since the group's start,
and one more at the group's end), value clipping at 0.8, ReduceLROnPlateau (factor 0.1) on the validation
loss rounded to 4 decimals, and early stopping after 6 epochs. What is TFR-Net's own:

* the objective (:class:`TFRNetObjective`): L1 on the prediction, plus the
  weighted reconstruction losses from ``gen_loss_from_epoch`` (2) on (:func:`models.tfr_net.losses.tfr_loss`);
  validation and test report the L1 alone as "Loss" (the objective's ``loss_term``), which the reference's
  model selection and scheduler read;
* the optimiser (:func:`tfr_net_optimizer`): Adam (L2 decay) with BERT's weights at ``learning_rate_bert`` /
  ``weight_decay_bert``, BERT's biases and LayerNorms at ``learning_rate_bert`` without decay, and every
  other parameter at ``learning_rate_other`` / ``weight_decay_other``. With ``use_finetune=False`` the
  reference puts all parameters in one group at ``learning_rate_other``; BERT, run without gradients,
  is never updated, so here it is frozen and left out, which is the same.
"""

from __future__ import annotations

from types import MappingProxyType

import torch
from torch import nn

from models.execution import ExecutionPolicy
from models.tfr_net.losses import tfr_loss
from trains.objective import TASK_INCOMPLETE, Objective
from trains.optim import NO_DECAY_TERMS
from utils.errors import DataError


class TFRNetObjective(Objective):
    """TFR-Net's loss terms of a batch (:func:`models.tfr_net.losses.tfr_loss`) with the config's weights;
    validation reports the prediction's L1 alone as "Loss"."""

    loss_term = TASK_INCOMPLETE
    reported_terms = MappingProxyType({"Loss(pred_m)": TASK_INCOMPLETE})

    def __init__(self, cfg, with_generation: bool = True):
        self.cfg = cfg
        self.weights = cfg.weight_gen_loss
        self.with_generation = with_generation

    def for_epoch(self, epoch: int) -> "TFRNetObjective":
        """Without the reconstruction term before ``gen_loss_from_epoch``, as the reference's ``if epochs > 1``."""
        return TFRNetObjective(self.cfg, with_generation=epoch >= self.cfg.gen_loss_from_epoch)

    def predictions(self, outputs: dict) -> torch.Tensor:
        return outputs["pred_m"].view(-1)

    def __call__(self, outputs: dict, batch: dict) -> dict[str, torch.Tensor]:
        return tfr_loss(outputs, batch, self.weights, self.with_generation)


def tfr_net_data_settings(datasets: dict) -> dict:
    """``seq_lens``: the training split's padded lengths (L, T_a, T_v), as the reference sets them; its final
    attentions are that wide, so every split must be padded alike (a DataError otherwise)."""
    train = datasets["train"]
    for split, dataset in datasets.items():
        if dataset.seq_lens != train.seq_lens:
            raise DataError(
                f"{train.data.path}: TFR-Net needs every split padded to the same lengths (text, audio, vision), "
                f"but split '{split}' is padded to {dataset.seq_lens} and 'train' to {train.seq_lens}; "
                "pad the splits alike"
            )
    return {"seq_lens": train.seq_lens}


def tfr_net_optimizer(cfg, model: nn.Module, policy: ExecutionPolicy) -> torch.optim.Adam:
    """Adam over the reference's three parameter groups (two without BERT fine-tuning: one)."""
    bert = list(model.text_model.named_parameters())
    bert_ids = {id(p) for _, p in bert}
    other = [p for p in model.parameters() if id(p) not in bert_ids]
    groups = []
    if cfg.use_finetune:
        groups += [
            {"params": [p for n, p in bert if not any(t in n for t in NO_DECAY_TERMS)],
             "lr": cfg.learning_rate_bert, "weight_decay": cfg.weight_decay_bert, "name": "bert_decay"},
            {"params": [p for n, p in bert if any(t in n for t in NO_DECAY_TERMS)],
             "lr": cfg.learning_rate_bert, "weight_decay": 0.0, "name": "bert_no_decay"},
        ]
    else:
        for _, p in bert:
            p.requires_grad_(False)
    groups.append({"params": other, "lr": cfg.learning_rate_other, "weight_decay": cfg.weight_decay_other,
                   "name": "other"})
    return torch.optim.Adam(groups, fused=policy.fused_adam)
