"""What the trainer hands to the rest of the project, on a small stand-in model (fast): the predictions and
losses it scores, the state it keeps as the best, the training checkpoint it resumes from bit for bit, the
progress bars users watch and the per-epoch log lines that bench/gpu_check.py reads."""

from __future__ import annotations

import contextlib
import dataclasses
import logging

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from config import get_config
from trains import trainer as trainer_mod
from trains.objective import TaskObjective
from trains.trainer import Trainer, cpu_state_dict, evaluate_loader, run_model, to_device
from utils.errors import CheckpointError

BATCH = 4


class Net(nn.Module):
    """Named like EMT-DLFR's parts (the optimiser groups read them); dropout makes training draw from the
    global RNG, and the audio and vision parts get no gradient."""

    INPUTS = ("x",)

    def __init__(self):
        super().__init__()
        self.text_model = nn.Linear(3, 1)
        self.audio_model = nn.Linear(1, 1)
        self.vision_model = nn.Linear(1, 1)
        self.drop = nn.Dropout(0.5)

    def forward(self, x):  # x: (B, 3)
        return {"pred_m": self.text_model(self.drop(x)).view(-1), "pred": 2 * self.text_model(x).view(-1)}


class WithCompleteView(TaskObjective):
    def complete_predictions(self, outputs):
        return outputs["pred"]


class Clips(Dataset):
    """Clips with a label that is a linear function of their 3 features; records the epochs it is told."""

    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.x = torch.randn(n, 3, generator=g)  # (N, 3)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5])  # (N,)
        self.epochs = []

    def set_epoch(self, epoch: int):
        self.epochs.append(epoch)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "labels": {"M": self.y[i].view(1)}, "index": i, "id": f"clip{i}$_$0"}


def make_loaders() -> dict:
    return {"train": DataLoader(Clips(12, 0), batch_size=BATCH, shuffle=True,
                                generator=torch.Generator().manual_seed(0)),
            "valid": DataLoader(Clips(8, 1), batch_size=BATCH)}


def cfg_for(**kw):
    return dataclasses.replace(get_config("tiny"), **{"max_epochs": 3, "early_stop": 10, **kw})


def make_trainer(cfg, seed=0, **kw):
    torch.manual_seed(seed)
    return Trainer(cfg, Net(), objective=WithCompleteView(cfg), progress=False, **kw)


class Bar:
    """Stands in for tqdm: records its arguments, updates and postfix."""

    made: list = []

    def __init__(self, **kw):
        self.kw, self.n, self.postfix, self.closed = kw, kw.get("initial", 0), None, False
        Bar.made.append(self)

    def update(self, k):
        self.n += k

    def set_postfix(self, *args, **kw):
        self.postfix = args[0] if args else kw

    def close(self):
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@pytest.fixture
def bars(monkeypatch):
    Bar.made = []
    monkeypatch.setattr(trainer_mod, "tqdm", Bar)
    return Bar.made


class RecordingPolicy:
    """An execution policy on the CPU that counts the forward passes run under its autocast."""

    device = "cpu"

    def __init__(self):
        self.entered = 0

    def autocast(self):
        self.entered += 1
        return contextlib.nullcontext()


# ------------------------------------------------------------------------------------------------------
# evaluation: what is scored


def test_a_pass_returns_each_clips_predictions_labels_and_the_mean_losses():
    cfg = cfg_for()
    torch.manual_seed(0)
    model = Net()
    valid = make_loaders()["valid"]
    preds, losses = run_model(model, valid, cfg, objective=WithCompleteView(cfg))
    with torch.no_grad():
        x, y = valid.dataset.x, valid.dataset.y
        expected_m, expected = model.text_model(x).view(-1), 2 * model.text_model(x).view(-1)  # eval: no dropout
    assert not model.training
    np.testing.assert_array_equal(preds.index, np.arange(8))
    assert preds.index.dtype == np.int64 and preds.ids.dtype == object and preds.ids[3] == "clip3$_$0"
    np.testing.assert_allclose(preds.label, y.numpy(), rtol=1e-6)
    np.testing.assert_allclose(preds.pred, expected_m.numpy(), rtol=1e-6)
    np.testing.assert_allclose(preds.pred_complete, expected.numpy(), rtol=1e-6)
    batch_l1 = [(expected_m[i:i + BATCH] - y[i:i + BATCH]).abs().mean().item() for i in (0, BATCH)]
    assert losses == pytest.approx({"Loss": np.mean(batch_l1), "Loss(pred_m)": np.mean(batch_l1)}, rel=1e-6)
    preds_only, nothing = run_model(model, valid, cfg, objective=WithCompleteView(cfg), with_loss=False)
    assert nothing == {}
    np.testing.assert_array_equal(preds_only.pred, preds.pred)


def test_a_model_without_a_complete_view_gets_nan_complete_predictions():
    cfg = cfg_for()
    preds, _ = run_model(Net(), make_loaders()["valid"], cfg, objective=TaskObjective(cfg))
    assert np.isnan(preds.pred_complete).all() and np.isfinite(preds.pred).all()


def test_a_pass_runs_under_the_given_policy_or_the_configs(monkeypatch):
    cfg = cfg_for()
    valid = make_loaders()["valid"]
    moved_to = []
    monkeypatch.setattr(trainer_mod, "to_device", lambda batch, device: moved_to.append(device) or batch)
    policy = RecordingPolicy()
    run_model(Net(), valid, cfg, policy=policy, objective=TaskObjective(cfg))
    assert policy.entered == len(valid) and moved_to == [torch.device("cpu")] * len(valid)

    asked = []
    from_config = trainer_mod.ExecutionPolicy.from_config
    monkeypatch.setattr(trainer_mod.ExecutionPolicy, "from_config",
                        staticmethod(lambda c: asked.append(c) or from_config(c)))
    run_model(Net(), valid, cfg, objective=TaskObjective(cfg))
    assert asked == [cfg]


def test_a_pass_takes_the_models_objective_unless_given_one(monkeypatch):
    cfg = cfg_for()
    built_for = []

    class Spec:
        def objective(self, c):
            built_for.append(c)
            return WithCompleteView(c)

    monkeypatch.setattr(trainer_mod, "model_spec", lambda c: built_for.append(c) or Spec())
    preds, _ = run_model(Net(), make_loaders()["valid"], cfg)
    assert built_for == [cfg, cfg] and np.isfinite(preds.pred_complete).all()


def test_a_pass_shows_one_bar_only_when_asked(bars):
    cfg = cfg_for()
    valid = make_loaders()["valid"]
    run_model(Net(), valid, cfg, objective=TaskObjective(cfg))
    run_model(Net(), valid, cfg, objective=TaskObjective(cfg), progress=True, desc="test")
    quiet, shown = bars
    assert quiet.kw == {"total": len(valid), "desc": "eval", "leave": False, "disable": True}
    assert shown.kw == {"total": len(valid), "desc": "test", "leave": False, "disable": False}
    assert quiet.n == shown.n == len(valid) and quiet.closed and shown.closed


def test_evaluate_uses_the_trainers_policy_objective_and_progress(monkeypatch):
    cfg = cfg_for()
    trainer = make_trainer(cfg)
    calls = []
    monkeypatch.setattr(trainer_mod, "evaluate_loader", lambda *a, **kw: calls.append((a, kw)) or ({"Loss": 1.0}, None))
    assert trainer.evaluate("LOADER") == {"Loss": 1.0}
    trainer.evaluate("LOADER", desc="test")
    trainer.evaluate_with_predictions("LOADER")
    trainer.evaluate_with_predictions("LOADER", desc="valid")
    expected = {"policy": trainer.policy, "objective": trainer.objective, "progress": False}
    assert calls == [((trainer.model, "LOADER", cfg), {**expected, "desc": desc})
                     for desc in ("eval", "test", "eval", "valid")]


def test_recorded_evaluation_is_the_metrics_of_the_predictions_plus_the_losses():
    cfg = cfg_for()
    torch.manual_seed(0)
    model = Net()
    results, preds = evaluate_loader(model, make_loaders()["valid"], cfg, objective=TaskObjective(cfg))
    _, losses = run_model(model, make_loaders()["valid"], cfg, objective=TaskObjective(cfg))
    assert results == {**preds.metrics(cfg.metric_set), **losses}


def test_to_device_moves_tensors_without_blocking_and_keeps_other_values(monkeypatch):
    moves = []
    original = torch.Tensor.to
    monkeypatch.setattr(torch.Tensor, "to", lambda self, *a, **kw: moves.append((a, kw)) or original(self, *a, **kw))
    batch = {"x": torch.zeros(2), "id": ["a$_$0", "b$_$1"], "labels": {"M": torch.zeros(2, 1)}}
    moved = to_device(batch, torch.device("cpu"))
    assert moved["id"] == ["a$_$0", "b$_$1"]
    assert moves == [((torch.device("cpu"),), {"non_blocking": True})] * 2


# ------------------------------------------------------------------------------------------------------
# the trainer's set-up


def test_the_trainer_keeps_the_given_policy_and_moves_the_model_to_its_device():
    cfg = cfg_for()
    policy = trainer_mod.ExecutionPolicy.from_config(cfg)
    moved_to = []

    class Recorded(Net):
        def to(self, *args, **kw):
            moved_to.append(args)
            return super().to(*args, **kw)

    trainer = Trainer(cfg, Recorded(), objective=TaskObjective(cfg), policy=policy)
    assert trainer.policy is policy and moved_to == [(torch.device("cpu"),)]
    assert trainer.progress is True  # bars are shown unless asked not to


def test_the_plateau_scheduler_watches_the_validation_loss_with_the_baselines_settings():
    trainer = make_trainer(cfg_for(plateau_patience=3))
    assert (trainer.scheduler.mode, trainer.scheduler.factor, trainer.scheduler.patience) == ("min", 0.1, 3)
    assert make_trainer(cfg_for()).scheduler is None


# ------------------------------------------------------------------------------------------------------
# one training epoch


def test_an_epoch_steps_after_each_full_group_and_reports_the_mean_batch_loss(monkeypatch):
    cfg = cfg_for(batches_per_step=2, step_trailing_batches=True)
    trainer = make_trainer(cfg)
    loader = DataLoader(Clips(20, 0), batch_size=BATCH)  # 5 batches: groups {0, 1}, {2, 3}, trailing {4}
    forwards, steps_after, epochs_asked, totals, zeroed = [], [], [], [], []
    forward = trainer_mod.forward_batch
    monkeypatch.setattr(trainer_mod, "forward_batch", lambda m, b: forwards.append(1) or forward(m, b))
    step = trainer.optimizer.step
    monkeypatch.setattr(trainer.optimizer, "step", lambda *a, **kw: steps_after.append(len(forwards)) or step())
    for_epoch = trainer.objective.for_epoch
    monkeypatch.setattr(trainer.objective, "for_epoch", lambda e: epochs_asked.append(e) or for_epoch(e))
    zero_grad = trainer.optimizer.zero_grad
    monkeypatch.setattr(trainer.optimizer, "zero_grad", lambda **kw: zeroed.append(kw) or zero_grad(**kw))
    call = trainer.objective.__call__
    monkeypatch.setattr(type(trainer.objective), "__call__",
                        lambda self, out, batch: (lambda t: totals.append(t["total"].item()) or t)(call(out, batch)))
    results = trainer.train_epoch(loader, epoch=5)
    assert steps_after == [2, 4, 5] and epochs_asked == [5]
    assert results["Loss"] == pytest.approx(np.mean(totals), rel=1e-12)
    # at each group's start the gradients are reset to None (the reference's zero_grad()), so Adam skips a
    # parameter that gets no gradient in a group instead of moving it with a zero gradient
    assert zeroed == [{"set_to_none": True}] * 3 and trainer.model.audio_model.weight.grad is None


def test_an_epoch_shows_its_bar_with_the_last_batch_loss(bars):
    trainer = make_trainer(cfg_for())
    trainer.progress = True
    trainer.train_epoch(make_loaders()["train"], epoch=2)
    (bar,) = bars
    assert bar.kw == {"total": 3, "desc": "epoch 2", "leave": False, "disable": False}
    assert bar.n == 3 and bar.closed and set(bar.postfix) == {"loss"} and float(bar.postfix["loss"]) >= 0


def test_an_epoch_moves_its_batches_to_the_trainers_device(monkeypatch):
    trainer = make_trainer(cfg_for())
    moved_to = []
    monkeypatch.setattr(trainer_mod, "to_device", lambda batch, device: moved_to.append(device) or batch)
    trainer.train_epoch(make_loaders()["train"], epoch=1)
    assert moved_to == [torch.device("cpu")] * 3


# ------------------------------------------------------------------------------------------------------
# fit: best state, history, log lines, bars


def test_the_best_state_is_a_copy_taken_at_the_best_epoch(monkeypatch):
    trainer = make_trainer(cfg_for(max_epochs=3))
    valid = iter([1.0, 2.0, 3.0])  # only epoch 1 improves
    monkeypatch.setattr(trainer, "evaluate", lambda loader, desc="": {"Loss": next(valid)})
    snapshots = []
    train_epoch = trainer.train_epoch
    monkeypatch.setattr(trainer, "train_epoch", lambda loader, epoch: (
        lambda r: snapshots.append({k: v.clone() for k, v in trainer.model.state_dict().items()}) or r)(
        train_epoch(loader, epoch)))
    result = trainer.fit(make_loaders())
    assert result.best_epoch == 1 and result.epochs_run == 3
    assert all(torch.equal(result.best_state[k], snapshots[0][k]) for k in snapshots[0])
    assert not torch.equal(result.best_state["text_model.weight"], trainer.model.text_model.weight)


def test_fit_records_each_epoch_and_logs_the_line_gpu_check_reads(monkeypatch, caplog, bars):
    cfg = cfg_for(max_epochs=3)
    trainer = make_trainer(cfg)
    trainer.progress = True
    valid = iter([5.0, 6.0, 4.0])
    descs = []
    monkeypatch.setattr(trainer, "train_epoch", lambda loader, epoch: {"Loss": 0.5 * epoch, "Corr": 0.25, "n": 3})
    monkeypatch.setattr(trainer, "evaluate",
                        lambda loader, desc="": descs.append(desc) or {"Loss": next(valid), "MAE": 1.0})
    loaders = make_loaders()
    with caplog.at_level(logging.INFO, logger="trains.trainer.epochs"):
        result = trainer.fit(loaders)
    assert loaders["train"].dataset.epochs == [0, 1, 2] and descs == ["valid"] * 3
    assert result.history == [
        {"epoch": 1, "train": {"Loss": 0.5, "Corr": 0.25, "n": 3}, "valid": {"Loss": 5.0, "MAE": 1.0}, "improved": True},
        {"epoch": 2, "train": {"Loss": 1.0, "Corr": 0.25, "n": 3}, "valid": {"Loss": 6.0, "MAE": 1.0}, "improved": False},
        {"epoch": 3, "train": {"Loss": 1.5, "Corr": 0.25, "n": 3}, "valid": {"Loss": 4.0, "MAE": 1.0}, "improved": True},
    ]
    assert [r.getMessage() for r in caplog.records if r.name == "trains.trainer.epochs"] == [
        "epoch 1 | train Loss=0.5000 Corr=0.2500 | valid Loss=5.0000 MAE=1.0000 | best",
        "epoch 2 | train Loss=1.0000 Corr=0.2500 | valid Loss=6.0000 MAE=1.0000",
        "epoch 3 | train Loss=1.5000 Corr=0.2500 | valid Loss=4.0000 MAE=1.0000 | best",
    ]
    (epochs_bar,) = bars
    assert epochs_bar.kw == {"total": 3, "initial": 0, "desc": "epochs", "leave": False, "disable": False}
    assert epochs_bar.n == 3 and epochs_bar.closed and epochs_bar.postfix == {"Loss": "4.0000", "best_epoch": 3}


# ------------------------------------------------------------------------------------------------------
# checkpoint and resume


class Interrupted(Exception):
    pass


@pytest.mark.parametrize("plateau", [None, 1], ids=["no-scheduler", "plateau"])
def test_a_run_stopped_after_an_epoch_resumes_to_the_uninterrupted_run(tmp_path, monkeypatch, plateau, bars):
    cfg = cfg_for(max_epochs=4, plateau_patience=plateau)
    whole = make_trainer(cfg)
    torch.manual_seed(1)
    expected = whole.fit(make_loaders(), checkpoint_path=tmp_path / "whole.pt")

    state = tmp_path / "stopped.pt"
    stopped = make_trainer(cfg)
    train_epoch = stopped.train_epoch

    def stop_at_three(loader, epoch):
        if epoch == 3:
            raise Interrupted
        return train_epoch(loader, epoch)

    monkeypatch.setattr(stopped, "train_epoch", stop_at_three)
    torch.manual_seed(1)
    with pytest.raises(Interrupted):
        stopped.fit(make_loaders(), checkpoint_path=state)
    assert torch.load(state, weights_only=False)["epoch"] == 2

    torch.manual_seed(99)  # another model initialisation and RNG state: everything must come from the file
    resumed = make_trainer(cfg, seed=99)
    resumed.progress = True
    result = resumed.fit(make_loaders(), checkpoint_path=state)
    assert result.history == expected.history and len(result.history) == 4
    assert (result.best_epoch, result.epochs_run, result.best_valid) == (
        expected.best_epoch, expected.epochs_run, expected.best_valid)
    assert all(torch.equal(result.best_state[k], v) for k, v in expected.best_state.items())
    assert all(torch.equal(a, b) for a, b in zip(resumed.model.parameters(), whole.model.parameters()))
    if plateau is not None:
        assert resumed.scheduler.state_dict() == whole.scheduler.state_dict()
    epochs_bar = [bar for bar in bars if bar.kw["desc"] == "epochs"][-1]
    assert epochs_bar.kw["initial"] == 2 and epochs_bar.n == 4 and epochs_bar.kw["total"] == 4


def test_the_checkpoint_holds_the_state_after_each_epoch(tmp_path):
    cfg = cfg_for(max_epochs=2)
    trainer = make_trainer(cfg)
    path = tmp_path / "state.pt"
    loaders = make_loaders()
    loaders["valid"] = list(loaders["valid"])  # any iterable of batches: no shuffling generator to save
    result = trainer.fit(loaders, checkpoint_path=path)
    state = torch.load(path, weights_only=False)
    assert state["format"] == "emt-dlfr-train-state/1" and state["epoch"] == 2 and state["config"] == cfg.to_dict()
    assert state["history"] == result.history and state["best"]["epoch"] == result.best_epoch
    assert all(torch.equal(state["model"][k], v) for k, v in trainer.model.state_dict().items())
    assert state["scheduler"] is None and set(state["loader_rng"]) == {"train"}
    assert set(state["rng"]) >= {"python", "numpy", "torch"}


def test_resume_refuses_a_foreign_or_unreadable_file_or_another_config(tmp_path):
    cfg = cfg_for(max_epochs=1)
    path = tmp_path / "state.pt"
    make_trainer(cfg).fit(make_loaders(), checkpoint_path=path)
    other = cfg_for(max_epochs=1, learning_rate_other=0.5, learning_rate_audio=0.5)
    with pytest.raises(CheckpointError, match=rf"^checkpoint {path} was written with another config \(differs in: "
                                              r"learning_rate_audio, learning_rate_other\); remove it or use the "
                                              r"config it was made with$"):
        make_trainer(other).fit(make_loaders(), checkpoint_path=path)
    torch.save({"format": "something else"}, path)
    with pytest.raises(CheckpointError, match=rf"^{path} is not a training checkpoint of this project$"):
        make_trainer(cfg).fit(make_loaders(), checkpoint_path=path)
    path.write_bytes(b"truncated")
    with pytest.raises(CheckpointError, match=rf"^cannot read training checkpoint {path}: "):
        make_trainer(cfg).fit(make_loaders(), checkpoint_path=path)


def test_a_resume_is_logged_with_its_epoch(tmp_path, caplog):
    cfg = cfg_for(max_epochs=1)
    path = tmp_path / "state.pt"
    make_trainer(cfg).fit(make_loaders(), checkpoint_path=path)
    with caplog.at_level(logging.INFO, logger="trains.trainer"):
        make_trainer(cfg).fit(make_loaders(), checkpoint_path=path)
    assert f"resumed from {path} after epoch 1" in [r.getMessage() for r in caplog.records]


def test_cpu_state_dict_is_a_detached_copy():
    model = Net()
    state = cpu_state_dict(model)
    with torch.no_grad():
        model.text_model.weight.add_(1.0)
    assert not torch.equal(state["text_model.weight"], model.text_model.weight)
    assert not state["text_model.weight"].requires_grad


def test_a_checkpoint_is_read_onto_the_cpu_first(tmp_path, monkeypatch):
    """A state saved on one GPU resumes on another device: tensors are loaded to the host, then copied."""
    cfg = cfg_for(max_epochs=1)
    path = tmp_path / "state.pt"
    make_trainer(cfg).fit(make_loaders(), checkpoint_path=path)
    loads = []
    load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **kw: loads.append(kw) or load(*a, **kw))
    make_trainer(cfg).fit(make_loaders(), checkpoint_path=path)
    assert loads == [{"map_location": "cpu", "weights_only": False}]


def test_the_best_state_is_copied_to_the_host():
    """On a GPU a kept best state must not hold device memory: every tensor is copied to the CPU."""
    copies = []

    class Tensor:
        def detach(self):
            return self

        def to(self, *args, **kw):
            copies.append((args, kw))
            return "copied"

    class Model:
        def state_dict(self):
            return {"a": Tensor(), "b": Tensor()}

    assert cpu_state_dict(Model()) == {"a": "copied", "b": "copied"}
    assert copies == [(("cpu",), {"copy": True})] * 2
