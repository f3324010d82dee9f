"""Training and evaluation loop of every model (docs/REFERENCE.md §6 for EMT-DLFR; the baselines'
trainers for theirs): the model's objective, optimiser and inputs come from its registry entry
(:mod:`trains.registry`), the loop's policy from the config's shared fields.

* The model is called on the batch entries it names (``model.INPUTS``); its objective
  (:class:`~trains.objective.Objective`, from the model's registry entry unless given) turns the outputs
  into loss terms and gives the predictions the metrics read. How the model computes (device, autocast,
  the Adam kernel, ...) is the :class:`~models.execution.ExecutionPolicy` decided once from the config.

* One epoch: ``model.train()``; gradients are zeroed at the start of every group of ``batches_per_step``
  mini-batches and, with ``step_schedule="group"`` (EMT-DLFR), the optimiser steps after the group's last
  batch. The loss is not divided, so gradients are summed. The trailing batches of an epoch that do not
  fill a group are never stepped (the reference's behaviour); ``step_trailing_batches=True`` steps them.
  With ``step_schedule="mmsa"`` (the baselines) the optimiser steps after every batch with the gradients
  summed since the group's start, and once more after the group's last batch.
* ``grad_clip``: every gradient element is clipped to [-v, v] after each backward pass, in place (the
  baselines' ``clip_grad_value_``, so clipped gradients are what later batches of the group add to).
* After each epoch the validation split is evaluated; the model with the best ``key_eval`` (default the
  total validation loss, minimised, which is what the reference always uses) is kept, and training stops
  after ``early_stop`` epochs without improvement, counted from the start (a validation value that is
  nan from the first epoch stops after 8 epochs, as in the reference), or at ``max_epochs``. A run that
  never improves tests its last state (the reference would find no saved model and fail).
  ``eval_loss_decimals`` rounds the validation loss first (the baselines' trainers round to 4);
  ``plateau_patience`` steps a ReduceLROnPlateau (factor 0.1) on it (the baselines' scheduler).
* A loss that becomes nan or inf stops the run with :class:`TrainingDivergedError` naming the epoch,
  batch and loss term.
* With a ``checkpoint_path`` the whole training state (model, optimiser, early-stopping state, epoch,
  every RNG state and the loaders' shuffling generators) is saved atomically after every epoch, and a
  later call with the same path continues from the last finished epoch, bit for bit on the CPU.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from config import ExperimentConfig, config_diff
from models.execution import ExecutionPolicy
from trains.objective import TOTAL, Objective
from trains.predictions import SplitPredictions
from trains.registry import model_spec
from utils.errors import CheckpointError, TrainingDivergedError
from utils.io import atomic_torch_save
from utils.metrics import eval_regression
from utils.device import use_device
from utils.seed import capture_rng_state, restore_rng_state

log = logging.getLogger(__name__)
#: Per-epoch metric lines; run.py sends them to the log file only (the console shows progress bars).
epoch_log = logging.getLogger(__name__ + ".epochs")

#: An improvement must beat the best value by more than this (the reference's 1e-6).
IMPROVEMENT_EPS = 1e-6
#: Validation keys where lower is better; every other metric is maximised.
LOWER_IS_BETTER = ("Loss", "Loss(pred_m)", "MAE")
#: ReduceLROnPlateau's factor in the baselines' trainers.
PLATEAU_FACTOR = 0.1
#: Batch entries a model takes on the host (see :func:`to_device`).
HOST_INPUTS = ("audio_lengths", "vision_lengths")
#: Validation key of the mean total loss over the batches.
LOSS = "Loss"


def to_device(batch: dict, device: torch.device) -> dict:
    """Move every tensor of a (nested) batch dict to ``device``; other values are kept as they are.

    The clip lengths stay on the host: the LSTMs pack by them there and the model copies them to the device
    itself, so nothing is read back from the GPU for packing."""
    out = {}
    for key, value in batch.items():
        if key in HOST_INPUTS:
            out[key] = value
        elif isinstance(value, torch.Tensor):
            out[key] = value.to(device, non_blocking=True)
        elif isinstance(value, dict):
            out[key] = to_device(value, device)
        else:
            out[key] = value
    return out


def forward_batch(model: nn.Module, batch: dict) -> dict:
    """The model's forward on the batch keys it names in ``INPUTS``, in order."""
    return model(*(batch[key] for key in model.INPUTS))


def cpu_state_dict(model: nn.Module) -> dict:
    """A copy of the model's state on the CPU: a kept best state holds no GPU memory, and a model saved from
    it loads on any machine."""
    return {key: value.detach().to("cpu", copy=True) for key, value in model.state_dict().items()}


def progress_bar(loader, desc: str, progress: bool):
    """A progress bar over one pass of ``loader``, updated by the caller. The loader is not handed to tqdm:
    tqdm.auto's wrapper calls iter() on its iterable at once, which would start a second, discarded pass
    (a shuffle drawn, and worker processes started, for nothing; with ``faithful_rng`` a draw the
    reference does not make)."""
    return tqdm(total=len(loader), desc=desc, leave=False, disable=not progress)


def run_model(model: nn.Module, loader, cfg: ExperimentConfig, *, policy: Optional[ExecutionPolicy] = None,
              objective: Optional[Objective] = None, progress: bool = False, desc: str = "eval",
              with_loss: bool = True) -> tuple[SplitPredictions, dict]:
    """One pass of ``model`` in eval mode over ``loader``: every clip's predictions (in the loader's order)
    and, with ``with_loss``, the batch means of the objective's ``loss_term`` ("Loss", rounded to
    ``eval_loss_decimals`` when set) and of its reported terms. The one place that runs a model for
    evaluation, testing and prediction. ``pred_complete`` is nan for a model without a complete view.
    ``policy`` (device, autocast) and ``objective`` default to the config's and its model's."""
    policy = policy if policy is not None else ExecutionPolicy.from_config(cfg)
    objective = objective if objective is not None else model_spec(cfg).objective(cfg)
    device = torch.device(policy.device)
    reported = {LOSS: objective.loss_term, **objective.reported_terms}
    model.eval()
    index, ids, columns, losses = [], [], [], []
    with torch.no_grad(), progress_bar(loader, desc, progress) as bar:
        for batch in loader:
            bar.update(1)
            index.append(batch["index"])
            ids.extend(batch["id"])
            batch = to_device(batch, device)
            with policy.autocast():
                out = forward_batch(model, batch)
                if with_loss:
                    terms = objective(out, batch)
                    losses.append(torch.stack([terms[term] for term in reported.values()]))
            pred_m = objective.predictions(out).float()
            complete = objective.complete_predictions(out)
            pred = complete.float() if complete is not None else torch.full_like(pred_m, float("nan"))
            columns.append(torch.stack([objective.labels(batch).float(), pred_m, pred]))  # (3, B), on the device
    label, pred_m, pred = torch.cat(columns, dim=1).cpu().numpy()  # one read from the device per pass
    preds = SplitPredictions(index=torch.cat(index).numpy().astype(np.int64), ids=np.asarray(ids, dtype=object),
                             label=label, pred=pred_m, pred_complete=pred)
    if not with_loss:
        return preds, {}
    losses = torch.stack(losses).cpu().double()  # (batches, reported terms)
    results = {key: float(np.mean(losses[:, i].numpy())) for i, key in enumerate(reported)}
    if cfg.eval_loss_decimals is not None:
        results[LOSS] = round(results[LOSS], cfg.eval_loss_decimals)
    return preds, results


def evaluate_loader(model: nn.Module, loader, cfg: ExperimentConfig, **kwargs) -> tuple[dict, SplitPredictions]:
    """The recorded evaluation of a pass (metrics in file order, plus the mean losses) and its predictions;
    ``kwargs`` as :func:`run_model`'s."""
    preds, losses = run_model(model, loader, cfg, **kwargs)
    results = preds.metrics(cfg.metric_set)
    results.update(losses)
    return results, preds


def is_better(key: str, value: float, best: Optional[float]) -> bool:
    """Whether ``value`` improves on ``best`` by at least the reference's 1e-6 (``<=``/``>=``, as it
    compares). A nan value (a nan loss, Corr of constant predictions) is never an improvement, so an
    all-nan validation stops after ``early_stop`` epochs like any other run without improvement."""
    if math.isnan(value):
        return False
    if best is None:
        return True
    if key in LOWER_IS_BETTER:
        return value <= best - IMPROVEMENT_EPS
    return value >= best + IMPROVEMENT_EPS


@dataclass
class FitResult:
    best_state: dict
    best_epoch: int
    epochs_run: int
    best_valid: dict
    history: list = field(default_factory=list)


class Trainer:
    """Trains one model with its objective on one set of loaders; see the module docstring for the loop."""

    def __init__(
        self,
        cfg: ExperimentConfig,
        model: nn.Module,
        *,
        objective: Optional[Objective] = None,
        policy: Optional[ExecutionPolicy] = None,
        progress: bool = True,
    ):
        self.cfg = cfg
        self.policy = policy if policy is not None else ExecutionPolicy.from_config(cfg)
        self.policy.apply_backend_flags()
        self.device = torch.device(self.policy.device)
        use_device(self.device)
        self.model = model.to(self.device)
        spec = model_spec(cfg)
        self.objective = objective if objective is not None else spec.objective(cfg)
        self.optimizer = spec.optimizer(cfg, model, self.policy)
        self.scheduler = None
        if cfg.plateau_patience is not None:
            self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimizer, mode="min", factor=PLATEAU_FACTOR, patience=cfg.plateau_patience)
        self.progress = progress

    def _losses(self, batch: dict, objective: Objective):
        """(outputs, loss terms) of one batch, under the policy's autocast."""
        with self.policy.autocast():
            out = forward_batch(self.model, batch)
            return out, objective(out, batch)

    # ---------------------------------------------------------------------------------------------
    def evaluate(self, loader, desc: str = "eval") -> dict:
        """Metrics of the objective's predictions, plus the mean loss ("Loss") and the objective's reported
        terms (for every model here "Loss(pred_m)", the incomplete-view task loss) over batches, in eval mode."""
        return self.evaluate_with_predictions(loader, desc)[0]

    def evaluate_with_predictions(self, loader, desc: str = "eval") -> tuple[dict, SplitPredictions]:
        """:meth:`evaluate` and the per-clip predictions it was computed from (in the loader's order)."""
        return evaluate_loader(self.model, loader, self.cfg, policy=self.policy, objective=self.objective,
                               progress=self.progress, desc=desc)

    def train_epoch(self, loader, epoch: int) -> dict:
        cfg, model, optimizer = self.cfg, self.model, self.optimizer
        objective = self.objective.for_epoch(epoch)
        model.train()
        preds, labels, losses = [], [], []
        num_batches = len(loader)
        bar = progress_bar(loader, f"epoch {epoch}", self.progress)
        for index, batch in enumerate(loader):
            if index % cfg.batches_per_step == 0:
                optimizer.zero_grad(set_to_none=True)
            batch = to_device(batch, self.device)
            out, terms = self._losses(batch, objective)
            # the batch's one read from the device: every loss term at once, for the divergence stop and the log
            values = dict(zip(terms, torch.stack([value.detach() for value in terms.values()]).tolist()))
            for name, value in values.items():
                if not math.isfinite(value):
                    raise TrainingDivergedError(
                        f"training diverged: loss term '{name}' is {value} at epoch {epoch}, "
                        f"batch {index} (lower the learning rates, or check the data for extreme values)"
                    )
            terms[TOTAL].backward()
            if cfg.grad_clip is not None:
                nn.utils.clip_grad_value_([p for p in model.parameters() if p.requires_grad], cfg.grad_clip)
            group_done = (index + 1) % cfg.batches_per_step == 0
            if cfg.step_schedule == "mmsa":
                optimizer.step()
                if group_done:
                    optimizer.step()
            elif group_done or (cfg.step_trailing_batches and index + 1 == num_batches):
                optimizer.step()
            preds.append(self.objective.predictions(out).detach().float())  # on the device until the epoch ends
            labels.append(self.objective.labels(batch).float())
            losses.append(values[TOTAL])
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.4f}")
        bar.close()
        results = eval_regression(torch.cat(preds).cpu().numpy(), torch.cat(labels).cpu().numpy(), cfg.metric_set)
        results[LOSS] = float(np.mean(losses))
        return results

    # ---------------------------------------------------------------------------------------------
    def _state(self, epoch: int, best: dict, history: list, loaders: dict) -> dict:
        return {
            "format": "emt-dlfr-train-state/1",
            "config": self.cfg.to_dict(),
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "best": best,
            "history": history,
            "rng": capture_rng_state(self.device),
            "loader_rng": {name: loader.generator.get_state() for name, loader in loaders.items()
                           if getattr(loader, "generator", None) is not None},
        }

    def _resume(self, path: Path, loaders: dict):
        try:
            state = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:  # a truncated or foreign file
            raise CheckpointError(f"cannot read training checkpoint {path}: {exc}") from None
        if state.get("format") != "emt-dlfr-train-state/1":
            raise CheckpointError(f"{path} is not a training checkpoint of this project")
        diff = config_diff(state["config"], self.cfg.to_dict())  # device, fast_path, ... may change
        if diff:
            raise CheckpointError(
                f"checkpoint {path} was written with another config (differs in: {', '.join(diff)}); "
                "remove it or use the config it was made with"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        restore_rng_state(state["rng"], self.device)
        for name, gen_state in state["loader_rng"].items():
            loaders[name].generator.set_state(gen_state)
        return state["epoch"], state["best"], state["history"]

    def fit(self, loaders: dict, checkpoint_path: Optional[Path] = None) -> FitResult:
        """Train until early stopping; return the best state (on the CPU) and the history."""
        cfg = self.cfg
        epoch, history = 0, []
        best = {"value": None, "epoch": 0, "valid": {}, "state": None}
        if checkpoint_path is not None and Path(checkpoint_path).exists():
            epoch, best, history = self._resume(Path(checkpoint_path), loaders)
            log.info("resumed from %s after epoch %d", checkpoint_path, epoch)
        bar = tqdm(total=cfg.max_epochs, initial=epoch, desc="epochs", leave=False, disable=not self.progress)
        while True:
            if cfg.max_epochs is not None and epoch >= cfg.max_epochs:
                break
            if epoch - best["epoch"] >= cfg.early_stop:  # counted from epoch 0, improved or not
                break
            epoch += 1
            train_set = getattr(loaders["train"], "dataset", None)
            if hasattr(train_set, "set_epoch"):
                train_set.set_epoch(epoch - 1)
            train_res = self.train_epoch(loaders["train"], epoch)
            valid_res = self.evaluate(loaders["valid"], desc="valid")
            if self.scheduler is not None:
                self.scheduler.step(valid_res["Loss"])
            value = valid_res[cfg.key_eval]  # the config checked that validation reports it
            improved = is_better(cfg.key_eval, value, best["value"])
            if improved:
                best = {
                    "value": value,
                    "epoch": epoch,
                    "valid": valid_res,
                    "state": cpu_state_dict(self.model),
                }
            history.append({"epoch": epoch, "train": train_res, "valid": valid_res, "improved": improved})
            epoch_log.info(
                "epoch %d | train %s | valid %s%s", epoch, _fmt(train_res), _fmt(valid_res),
                " | best" if improved else "",
            )
            bar.update(1)
            bar.set_postfix({cfg.key_eval: f"{value:.4f}", "best_epoch": best["epoch"]})
            if checkpoint_path is not None:
                atomic_torch_save(checkpoint_path, self._state(epoch, best, history, loaders))
        bar.close()
        if best["state"] is None:
            best["state"] = cpu_state_dict(self.model)
        return FitResult(best["state"], best["epoch"], epoch, best["valid"], history)


def _fmt(results: dict) -> str:
    return " ".join(f"{k}={v:.4f}" for k, v in results.items() if isinstance(v, float))
