"""The model registry: what ``--model NAME`` builds, trains and loads.

One :class:`ModelSpec` per model ties together the pieces the shared machinery (run.py, the trainer, the
sweep, reference checkpoints) needs, so that adding a model means writing its config, network, objective and
optimiser and registering them here, not another training loop:

* the config class and per-dataset presets: :data:`config.MODEL_PRESETS` (kept in ``config`` so reading a
  config needs no torch);
* ``build(cfg, audio_dim, vision_dim)``: a fresh network; its ``INPUTS`` name the batch keys its forward
  takes, in order, and its output dict holds ``pred_m``, the prediction the metrics read (the incomplete
  view's);
* ``objective(out, batch, cfg)``: the loss terms of a batch, ``"total"`` back-propagated, ``"task_m"`` the
  task loss of ``pred_m`` (reported as ``Loss(pred_m)``);
* ``optimizer(cfg, model)``: the optimiser with the model's parameter groups (freezing BERT when the
  config says so);
* ``describe(model)``: parameter counts for ``--describe``;
* optional: ``loss_term``, the term whose batch mean validation reports as "Loss" (default ``"total"``);
  ``epoch_objective(cfg, epoch)``, the training objective of an epoch when it changes with the epoch;
  ``data_settings(dataset)``, config fields the network takes from the training split (TFR-Net's padded
  lengths);
* the reference checkpoint key table: ``KEY_TABLES[name]`` in :mod:`models.reference_checkpoint`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from config import MODEL_NAMES, ExperimentConfig
from models import build_model, describe
from models.mult import build_mult
from models.tfr_net.model import build_tfr_net
from trains.losses import dlfr_loss
from trains.optim import build_optimizer
from trains.tfr_net import LOSS_TERM, objective_for_epoch, tfr_net_objective, tfr_net_optimizer
from utils.errors import ConfigError


@dataclass(frozen=True)
class ModelSpec:
    """Everything the shared machinery needs to know about one model (see the module docstring)."""

    name: str
    build: Callable[..., nn.Module]
    objective: Callable[[dict, dict, ExperimentConfig], dict[str, torch.Tensor]]
    optimizer: Callable[[ExperimentConfig, nn.Module], torch.optim.Optimizer]
    describe: Callable[[nn.Module], dict[str, int]]
    loss_term: str = "total"
    epoch_objective: Optional[Callable[[ExperimentConfig, int], Callable]] = None
    data_settings: Optional[Callable[[Any], dict[str, Any]]] = None


def count_parameters(model: nn.Module, frozen_bert: bool) -> dict[str, int]:
    """``total``, ``bert``, ``trainable`` (what the optimiser updates) and ``trainable_excluding_bert``."""
    bert_ids = {id(p) for p in model.text_model.parameters()}
    params = {id(p): p for p in model.parameters()}.values()
    total = sum(p.numel() for p in params)
    bert = sum(p.numel() for p in model.text_model.parameters())
    return {"total": total, "bert": bert, "trainable": total - bert if frozen_bert else total,
            "trainable_excluding_bert": sum(p.numel() for p in params if id(p) not in bert_ids)}


def task_loss(out: dict, batch: dict, cfg: ExperimentConfig) -> dict[str, torch.Tensor]:
    """L1 between ``pred_m`` and the label: the whole objective of MulT (the authors' ``nn.L1Loss``); float32
    under autocast too (the label keeps its value, as in trains/losses.py)."""
    with torch.autocast(out["pred_m"].device.type, enabled=False):
        loss = F.l1_loss(out["pred_m"].float().view(-1), batch["labels"]["M"].float().view(-1))
    return {"task_m": loss, "total": loss}


def single_group_adam(cfg: ExperimentConfig, model: nn.Module) -> torch.optim.Adam:
    """One Adam over every trained parameter at ``cfg.learning_rate`` (MulT's trainer); BERT frozen unless
    ``use_finetune``."""
    if not cfg.use_finetune:
        for p in model.text_model.parameters():
            p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.Adam(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, fused=cfg.fast_path)


def _describe_emt(model: nn.Module) -> dict[str, int]:
    counts = describe(model)
    trainable = counts["total"] if model.use_finetune else counts["total"] - counts["bert"]
    return {"total": counts["total"], "bert": counts["bert"], "trainable": trainable, **counts}


MODEL_SPECS: dict[str, ModelSpec] = {
    "emt-dlfr": ModelSpec("emt-dlfr", build_model, dlfr_loss, build_optimizer, _describe_emt),
    "mult": ModelSpec("mult", build_mult, task_loss, single_group_adam,
                      lambda model: count_parameters(model, frozen_bert=not model.use_finetune)),
    "tfr_net": ModelSpec("tfr_net", build_tfr_net, tfr_net_objective, tfr_net_optimizer,
                         lambda model: count_parameters(model, frozen_bert=not model.use_finetune),
                         loss_term=LOSS_TERM, epoch_objective=objective_for_epoch,
                         data_settings=lambda dataset: {"seq_lens": dataset.seq_lens}),
}


def model_spec(cfg_or_name: ExperimentConfig | str) -> ModelSpec:
    """The spec of a config's model (or of a model name)."""
    name = cfg_or_name if isinstance(cfg_or_name, str) else cfg_or_name.MODEL
    if name not in MODEL_SPECS:
        known = ", ".join(n for n in MODEL_NAMES if n in MODEL_SPECS)
        raise ConfigError(f"model {name!r} is not available yet in this version (available: {known})")
    return MODEL_SPECS[name]
