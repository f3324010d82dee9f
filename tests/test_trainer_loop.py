"""The training loop's control flow: gradient accumulation groups, trailing batches, early stopping,
model selection by key_eval, and the non-finite loss stop. A stand-in model keeps these tests fast."""

import dataclasses

import pytest
import torch
from torch import nn

from config import get_config
from trains import trainer as trainer_mod
from trains.objective import Objective
from trains.trainer import Trainer, is_better
from utils.errors import TrainingDivergedError


class StandIn(nn.Module):
    """Has the attribute names the optimiser groups use, and one 'other' parameter."""

    def __init__(self):
        super().__init__()
        self.text_model = nn.Linear(1, 1)
        self.audio_model = nn.Linear(1, 1)
        self.vision_model = nn.Linear(1, 1)
        self.head = nn.Linear(1, 1)

    def forward(self, **_):
        return {}


class Loader(list):
    generator = None


class ScriptedObjective(Objective):
    """Loss = the stand-in's head output summed, times the next scripted factor."""

    reported_terms = {"Loss(pred_m)": "task_m"}

    def __init__(self, factors=None, extra_terms=()):
        self.factors = iter(factors) if factors is not None else None
        self.extra_terms = extra_terms

    def __call__(self, out, batch):
        value = out["pred_m"].sum() * (next(self.factors) if self.factors is not None else 1.0)
        return {"task_m": value, **{name: value for name in self.extra_terms}, "total": value}

    def predictions(self, out):
        return out["pred_m"].view(-1)


def cfg_for(**kw):
    return dataclasses.replace(get_config("tiny"), **kw)


def scripted_fit(monkeypatch, cfg, valid_losses):
    calls = iter(valid_losses)
    trainer = Trainer(cfg, StandIn(), progress=False)
    monkeypatch.setattr(trainer, "train_epoch", lambda loader, epoch: {"Loss": 0.0})
    monkeypatch.setattr(trainer, "evaluate", lambda loader, desc="": {"Loss": next(calls), "Corr": 0.0})
    return trainer.fit({"train": Loader(), "valid": Loader()})


def test_early_stopping_after_patience_without_improvement(monkeypatch):
    cfg = cfg_for(early_stop=3, max_epochs=None)
    result = scripted_fit(monkeypatch, cfg, [5, 4, 3, 3.5, 3.2, 3.0000001, 9, 9])
    assert result.best_epoch == 3
    assert result.epochs_run == 6  # epochs 4, 5, 6 without improvement
    assert result.best_valid["Loss"] == 3


def test_nan_validation_from_the_first_epoch_stops_after_patience(monkeypatch):
    """The reference counts epochs without improvement from the start: nan never improves, so an
    all-nan validation loss stops after early_stop epochs instead of training forever."""
    nan = float("nan")
    result = scripted_fit(monkeypatch, cfg_for(early_stop=3, max_epochs=None), [nan] * 10)
    assert result.epochs_run == 3 and result.best_epoch == 0
    assert result.best_state is not None  # the last state is tested


def test_nan_key_metric_counts_as_no_improvement(monkeypatch):
    nan = float("nan")
    cfg = cfg_for(early_stop=2, max_epochs=None, key_eval="Corr")
    trainer = Trainer(cfg, StandIn(), progress=False)
    corrs = iter([nan, 0.3, nan, nan, 0.9])
    monkeypatch.setattr(trainer, "train_epoch", lambda loader, epoch: {"Loss": 0.0})
    monkeypatch.setattr(trainer, "evaluate", lambda loader, desc="": {"Loss": 1.0, "Corr": next(corrs)})
    result = trainer.fit({"train": Loader(), "valid": Loader()})
    assert result.best_epoch == 2 and result.epochs_run == 4


def test_max_epochs_caps_training(monkeypatch):
    result = scripted_fit(monkeypatch, cfg_for(early_stop=10, max_epochs=2), [5, 4, 3])
    assert result.epochs_run == 2 and result.best_epoch == 2


def test_is_better_directions():
    assert is_better("Loss", 0.5, 0.6) and not is_better("Loss", 0.6, 0.5)
    assert is_better("Corr", 0.6, 0.5) and not is_better("Corr", 0.5, 0.6)
    assert not is_better("Loss", 0.6 - 1e-7, 0.6)  # within the reference's 1e-6
    assert is_better("Loss", 0.5, 0.5 + 1e-6 + 1e-9)
    assert is_better("MAE", 1.0, None)
    # the reference's comparisons, inclusive at exactly 1e-6 away: cur <= best - 1e-6, cur >= best + 1e-6
    assert is_better("Loss", 0.5 - 1e-6, 0.5) and is_better("Corr", 0.5 + 1e-6, 0.5)
    assert not is_better("Corr", 0.5, 0.5) and not is_better("Corr", 0.5 + 1e-7, 0.5)
    assert not is_better("Loss", float("nan"), None) and not is_better("Corr", float("nan"), 0.1)


def count_steps(monkeypatch, num_batches, **kw):
    cfg = cfg_for(**kw)
    model = StandIn()
    trainer = Trainer(cfg, model, objective=ScriptedObjective(), progress=False)
    steps, zeros = [], []
    monkeypatch.setattr(trainer.optimizer, "step", lambda: steps.append(1))
    original_zero = trainer.optimizer.zero_grad
    monkeypatch.setattr(trainer.optimizer, "zero_grad", lambda set_to_none=True: (zeros.append(1), original_zero()))

    def fake_forward(model_, batch):
        return {"pred_m": model_.head(torch.ones(2, 1))}

    monkeypatch.setattr(trainer_mod, "forward_batch", fake_forward)
    batch = {"labels": {"M": torch.zeros(2, 1)}}
    trainer.train_epoch([batch] * num_batches, epoch=1)
    return len(steps), len(zeros), model.head.weight.grad


def test_accumulation_steps_once_per_group_and_drops_trailing_batches(monkeypatch):
    steps, zeros, _ = count_steps(monkeypatch, 10, batches_per_step=4)
    assert steps == 2 and zeros == 3  # batches 0-3, 4-7 stepped; 8-9 accumulated but never stepped


def test_step_trailing_batches_option(monkeypatch):
    steps, _, _ = count_steps(monkeypatch, 10, batches_per_step=4, step_trailing_batches=True)
    assert steps == 3


def test_gradients_are_summed_not_averaged(monkeypatch):
    _, _, grad = count_steps(monkeypatch, 3, batches_per_step=4)
    # d/dw sum(w*1 + b) over a batch of 2 is 2 per batch; 3 batches accumulated without division
    assert grad.item() == pytest.approx(6.0)


def test_non_finite_loss_stops_with_epoch_batch_and_term(monkeypatch):
    objective = ScriptedObjective(factors=[1.0, float("nan")], extra_terms=("rec_audio",))
    trainer = Trainer(cfg_for(), StandIn(), objective=objective, progress=False)
    monkeypatch.setattr(trainer_mod, "forward_batch", lambda m, b: {"pred_m": m.head(torch.ones(2, 1))})
    batch = {"labels": {"M": torch.zeros(2, 1)}}
    with pytest.raises(TrainingDivergedError, match=r"'task_m' is nan at epoch 7, batch 1"):
        trainer.train_epoch([batch, batch], epoch=7)


def test_mmsa_schedule_steps_every_batch_and_twice_at_a_group_end(monkeypatch):
    # the baselines' trainers: zero at a group's start, step after every batch, once more after its last
    steps, zeros, _ = count_steps(monkeypatch, 10, batches_per_step=4, step_schedule="mmsa")
    assert steps == 10 + 2 and zeros == 3


def test_gradient_clipping_clips_each_element_in_place(monkeypatch):
    # each backward adds 2 to the summed gradient, which is clipped to [-0.5, 0.5] in place every time
    _, _, grad = count_steps(monkeypatch, 3, batches_per_step=4, grad_clip=0.5)
    assert grad.item() == pytest.approx(0.5)
    _, _, unclipped = count_steps(monkeypatch, 3, batches_per_step=4)
    assert unclipped.item() == pytest.approx(6.0)


def test_plateau_scheduler_divides_the_rates_by_ten_after_patience(monkeypatch):
    cfg = cfg_for(early_stop=10, max_epochs=5, plateau_patience=1)
    trainer = Trainer(cfg, StandIn(), progress=False)
    calls = iter([5, 5, 5, 5, 5])
    monkeypatch.setattr(trainer, "train_epoch", lambda loader, epoch: {"Loss": 0.0})
    monkeypatch.setattr(trainer, "evaluate", lambda loader, desc="": {"Loss": next(calls)})
    before = [g["lr"] for g in trainer.optimizer.param_groups]
    trainer.fit({"train": Loader(), "valid": Loader()})
    # epoch 1 sets the best; epochs 2-3 exceed the patience of 1 -> x0.1; epochs 4-5 again -> x0.01
    assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx([lr * 0.01 for lr in before])


def test_validation_loss_rounding(monkeypatch):
    trainer = Trainer(cfg_for(eval_loss_decimals=2), StandIn(), objective=ScriptedObjective(), progress=False)
    monkeypatch.setattr(trainer_mod, "forward_batch", lambda m, b: {"pred_m": torch.full((2, 1), 0.123456)})
    batch = {"labels": {"M": torch.tensor([[0.0], [1.0]])}, "index": torch.tensor([0, 1]), "id": ["a$_$0", "a$_$1"]}
    results = trainer.evaluate([batch], desc="valid")
    assert results["Loss"] == 0.25 and results["Loss(pred_m)"] == pytest.approx(0.246912, abs=1e-6)


def test_one_read_from_the_device_per_training_batch(monkeypatch):
    """The divergence check and the progress bar share one stacked read per batch; predictions and labels
    stay on the device until the epoch ends (on a GPU every host read waits for the queued kernels)."""
    reads = []
    for method in ("item", "tolist", "cpu", "numpy", "__bool__"):
        original = getattr(torch.Tensor, method)
        monkeypatch.setattr(torch.Tensor, method,
                            lambda self, *a, _name=method, _f=original, **k: reads.append(_name) or _f(self, *a, **k))
    steps, _, _ = count_steps(monkeypatch, 5, batches_per_step=1)
    per_epoch = ["cpu", "numpy"] * 2  # predictions and labels, once, for the epoch's metrics
    assert steps == 5 and sorted(r for r in reads if r != "tolist") == sorted(per_epoch)
    assert reads.count("tolist") == 5


def test_batch_lengths_stay_on_the_host():
    batch = {"audio_lengths": torch.tensor([3, 1]), "audio": torch.zeros(2, 3, 1), "labels": {"M": torch.zeros(2, 1)}}
    moved = trainer_mod.to_device(batch, torch.device("meta"))
    assert moved["audio_lengths"] is batch["audio_lengths"] and moved["audio"].device.type == "meta"
    assert moved["labels"]["M"].device.type == "meta"
