"""TFR-Net's trainer pieces (the authors' ``trains/missingTask/TFR_NET.py``): its objective and optimiser.

The loop itself is the project's one trainer (:mod:`trains.trainer`); TFR-Net's config selects the
authors' step schedule ("mmsa": a step after every batch on the gradients summed since the group's start,
and one more at the group's end), value clipping at 0.8, ReduceLROnPlateau (factor 0.1) on the validation
loss rounded to 4 decimals, and early stopping after 6 epochs. What is TFR-Net's own:

* the objective (:func:`tfr_net_objective`, :func:`objective_for_epoch`): L1 on the prediction, plus the
  weighted reconstruction losses from ``gen_loss_from_epoch`` (2) on (:func:`models.tfr_net.losses.tfr_loss`);
  validation and test report the L1 alone as "Loss" (the registry's ``loss_term``), which the reference's
  model selection and scheduler read;
* the optimiser (:func:`tfr_net_optimizer`): Adam (L2 decay) with BERT's weights at ``learning_rate_bert`` /
  ``weight_decay_bert``, BERT's biases and LayerNorms at ``learning_rate_bert`` without decay, and every
  other parameter at ``learning_rate_other`` / ``weight_decay_other``. With ``use_finetune=False`` the
  reference puts all parameters in one group at ``learning_rate_other``; BERT, run without gradients,
  is never updated, so here it is frozen and left out, which is the same.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from models.tfr_net.losses import tfr_loss
from trains.optim import NO_DECAY_TERMS

#: The loss term reported as the validation "Loss" (the L1 of the prediction alone).
LOSS_TERM = "task_m"


def tfr_net_objective(out: dict, batch: dict, cfg, with_generation: bool = True) -> dict[str, torch.Tensor]:
    """TFR-Net's loss terms of a batch (:func:`models.tfr_net.losses.tfr_loss`) with ``cfg``'s weights."""
    return tfr_loss(out, batch, cfg.weight_gen_loss, with_generation)


def objective_for_epoch(cfg, epoch: int):
    """The training objective of ``epoch`` (1-based): without the reconstruction term before
    ``cfg.gen_loss_from_epoch``, as the reference's ``if epochs > 1``."""
    return functools.partial(tfr_net_objective, with_generation=epoch >= cfg.gen_loss_from_epoch)


def tfr_net_optimizer(cfg, model: nn.Module) -> torch.optim.Adam:
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
    return torch.optim.Adam(groups, fused=cfg.fast_path)
