"""The model registry: what ``--model NAME`` builds, trains and loads.

One :class:`ModelSpec` per model ties together the pieces the shared machinery (run.py, the trainer, the
sweep, reference checkpoints) needs, so that adding a model means writing its config, network, objective and
optimiser and registering them here, not another training loop:

* the config class and per-dataset presets: :data:`config.MODEL_PRESETS` (kept in ``config`` so reading a
  config needs no torch);
* ``build(cfg, audio_dim, vision_dim, policy=None)``: a fresh network computing with an
  :class:`~models.execution.ExecutionPolicy` (default: the config's); its ``INPUTS`` name the batch keys
  its forward takes, in order;
* ``objective(cfg)``: the model's :class:`~trains.objective.Objective`: the loss terms of a batch
  (``"total"`` back-propagated), the predictions the metrics read (the incomplete view's), the term
  validation reports as "Loss" and the others it reports (``Loss(pred_m)``, the task loss of that
  prediction), and, when the loss changes with the epoch, each epoch's objective;
* ``optimizer(cfg, model, policy)``: the optimiser with the model's parameter groups (freezing BERT when
  the config says so; the policy picks the Adam kernel);
* ``describe(model)``: parameter counts for ``--describe``;
* optional: ``data_settings(datasets)``, config fields the network takes from the data (TFR-Net's padded
  lengths), given the split name -> dataset dict;
* the reference checkpoint key table: ``KEY_TABLES[name]`` in :mod:`models.reference_checkpoint`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
from torch import nn

from config import MODEL_NAMES, ExperimentConfig
from models import build_model, describe
from models.execution import ExecutionPolicy
from models.mult import build_mult
from models.tfr_net.model import build_tfr_net
from trains.losses import DLFRObjective
from trains.objective import Objective, TaskObjective
from trains.optim import build_optimizer
from trains.tfr_net import TFRNetObjective, tfr_net_data_settings, tfr_net_optimizer
from utils.errors import ConfigError


@dataclass(frozen=True)
class ModelSpec:
    """Everything the shared machinery needs to know about one model (see the module docstring)."""

    name: str
    build: Callable[..., nn.Module]
    objective: Callable[[ExperimentConfig], Objective]
    optimizer: Callable[[ExperimentConfig, nn.Module, ExecutionPolicy], torch.optim.Optimizer]
    describe: Callable[[nn.Module], dict[str, int]]
    data_settings: Optional[Callable[[Any], dict[str, Any]]] = None


def count_parameters(model: nn.Module, frozen_bert: bool) -> dict[str, int]:
    """``total``, ``bert``, ``trainable`` (what the optimiser updates) and ``trainable_excluding_bert``."""
    bert_ids = {id(p) for p in model.text_model.parameters()}
    params = {id(p): p for p in model.parameters()}.values()
    total = sum(p.numel() for p in params)
    bert = sum(p.numel() for p in model.text_model.parameters())
    return {"total": total, "bert": bert, "trainable": total - bert if frozen_bert else total,
            "trainable_excluding_bert": sum(p.numel() for p in params if id(p) not in bert_ids)}




def single_group_adam(cfg: ExperimentConfig, model: nn.Module, policy: ExecutionPolicy) -> torch.optim.Adam:
    """One Adam over every trained parameter at ``cfg.learning_rate`` (MulT's trainer); BERT frozen unless
    ``use_finetune``."""
    if not cfg.use_finetune:
        for p in model.text_model.parameters():
            p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.Adam(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, fused=policy.fused_adam)


def _describe_emt(model: nn.Module) -> dict[str, int]:
    counts = describe(model)
    trainable = counts["total"] if model.use_finetune else counts["total"] - counts["bert"]
    return {"total": counts["total"], "bert": counts["bert"], "trainable": trainable, **counts}


MODEL_SPECS: dict[str, ModelSpec] = {
    "emt-dlfr": ModelSpec("emt-dlfr", build_model, DLFRObjective, build_optimizer, _describe_emt),
    "mult": ModelSpec("mult", build_mult, TaskObjective, single_group_adam,
                      lambda model: count_parameters(model, frozen_bert=not model.use_finetune)),
    "tfr_net": ModelSpec("tfr_net", build_tfr_net, TFRNetObjective, tfr_net_optimizer,
                         lambda model: count_parameters(model, frozen_bert=not model.use_finetune),
                         data_settings=tfr_net_data_settings),
}


def model_spec(cfg_or_name: ExperimentConfig | str) -> ModelSpec:
    """The spec of a config's model (or of a model name)."""
    name = cfg_or_name if isinstance(cfg_or_name, str) else cfg_or_name.MODEL
    if name not in MODEL_SPECS:
        known = ", ".join(n for n in MODEL_NAMES if n in MODEL_SPECS)
        raise ConfigError(f"model {name!r} is not available yet in this version (available: {known})")
    return MODEL_SPECS[name]
