"""Device choice, TF32, the per-device RNG state of training checkpoints, and the kept best state on the CPU:
the CUDA-only branches driven on the CPU with a stand-in for torch.cuda where the CPU cannot show them."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import run
from config import get_config
from trains import trainer as trainer_mod
from utils import device as device_mod
from utils.errors import ConfigError
from utils.seed import capture_rng_state, restore_rng_state

from tests.test_trainer_loop import cfg_for, scripted_fit


class FakeCuda:
    """Records the torch.cuda calls of the RNG-state helpers; ``count`` GPUs, each with its own state."""

    def __init__(self, monkeypatch, count: int = 2):
        self.states = {i: torch.tensor([i], dtype=torch.uint8) for i in range(count)}
        self.calls = []
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
        monkeypatch.setattr(torch.cuda, "get_rng_state", self.get)
        monkeypatch.setattr(torch.cuda, "set_rng_state", self.set)
        monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: pytest.fail("every GPU's state was read"))
        monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda _: pytest.fail("every GPU's state was set"))

    def get(self, device="cuda"):
        self.calls.append(("get", torch.device(device)))
        return self.states[torch.device(device).index].clone()

    def set(self, state, device="cuda"):
        self.calls.append(("set", torch.device(device)))
        self.states[torch.device(device).index] = state.clone()


def test_checkpoint_rng_state_is_the_training_devices_only(monkeypatch):
    cuda = FakeCuda(monkeypatch, count=2)
    state = capture_rng_state(torch.device("cuda", 1))
    assert torch.equal(state["cuda"], torch.tensor([1], dtype=torch.uint8))
    assert cuda.calls == [("get", torch.device("cuda", 1))]
    # resumed with one GPU visible, on index 0: the saved state goes to the training device, nowhere else
    random.random(), np.random.rand(), torch.rand(1)
    restore_rng_state(state, torch.device("cuda", 0))
    assert cuda.calls[-1] == ("set", torch.device("cuda", 0)) and len(cuda.calls) == 2
    assert torch.equal(cuda.states[0], torch.tensor([1], dtype=torch.uint8))
    # the CPU's generators come back exactly
    python, numpy_, torch_ = random.random(), np.random.rand(), torch.rand(1)
    restore_rng_state(state, torch.device("cuda", 0))
    assert (python, numpy_) == (random.random(), np.random.rand()) and torch.equal(torch_, torch.rand(1))


def test_cpu_training_saves_no_cuda_state_and_ignores_one(monkeypatch):
    cuda = FakeCuda(monkeypatch)
    assert "cuda" not in capture_rng_state(torch.device("cpu"))
    restore_rng_state({**capture_rng_state(torch.device("cpu")), "cuda": torch.zeros(1)}, torch.device("cpu"))
    assert cuda.calls == []


def test_an_older_checkpoint_with_every_gpus_state_restores_the_devices_entry(monkeypatch):
    cuda = FakeCuda(monkeypatch, count=2)
    old = {**capture_rng_state(torch.device("cpu")), "cuda": [torch.tensor([7], dtype=torch.uint8)]}
    restore_rng_state(old, torch.device("cuda", 1))  # no entry for index 1: left as seeded
    restore_rng_state(old, torch.device("cuda", 0))
    assert cuda.calls == [("set", torch.device("cuda", 0))] and cuda.states[0].item() == 7


def test_auto_device_is_the_first_gpu_when_there_is_one(monkeypatch):
    assert device_mod.resolve_device("auto") == torch.device("cpu")  # the tests see no GPU (conftest)
    with pytest.raises(ConfigError, match="no CUDA device"):
        device_mod.resolve_device("cuda")
    FakeCuda(monkeypatch, count=2)
    assert device_mod.resolve_device("auto") == torch.device("cuda", 0)
    assert device_mod.resolve_device("cuda:1") == torch.device("cuda", 1)
    assert device_mod.resolve_device("cuda") == torch.device("cuda", 0)
    with pytest.raises(ConfigError, match="only 2 CUDA device"):
        device_mod.resolve_device("cuda:2")
    assert device_mod.resolve_device("cpu") == torch.device("cpu")


def test_device_and_tf32_flags(caplog):
    assert get_config("mosi").device == "auto" and get_config("mosi").tf32
    args = run.build_parser().parse_args(["--dataset", "tiny", "--no-tf32", "--device", "cpu"])
    cfg = run.config_from_args(args)
    assert cfg.device == "cpu" and cfg.tf32 is False
    with pytest.raises(ConfigError, match="device must be auto, cpu, cuda or cuda:N"):
        run.config_from_args(run.build_parser().parse_args(["--dataset", "tiny", "--device", "gpu0"]))
    with caplog.at_level("INFO", logger="emt_dlfr"):
        run.log_device(get_config("tiny"))
    assert "device: cpu (chosen by --device auto)" in caplog.text


def test_tf32_switch_sets_both_cublas_and_cudnn():
    before = torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.fp32_precision
    try:
        device_mod.set_tf32(True)
        assert torch.backends.cuda.matmul.fp32_precision == "tf32"
        assert torch.backends.cudnn.conv.fp32_precision == torch.backends.cudnn.rnn.fp32_precision == "tf32"
        device_mod.set_tf32(False)
        assert torch.backends.cuda.matmul.fp32_precision == "ieee"
        assert torch.backends.cudnn.conv.fp32_precision == torch.backends.cudnn.rnn.fp32_precision == "ieee"
    finally:
        torch.backends.cuda.matmul.fp32_precision, torch.backends.cudnn.fp32_precision = before


def test_best_state_is_a_cpu_copy_even_when_validation_never_improves(monkeypatch):
    copies = []
    original = trainer_mod.cpu_state_dict
    monkeypatch.setattr(trainer_mod, "cpu_state_dict", lambda model: copies.append(1) or original(model))
    result = scripted_fit(monkeypatch, cfg_for(early_stop=2, max_epochs=2), [float("nan")] * 2)
    assert result.best_epoch == 0 and copies == [1]  # the fallback goes through the CPU copy too
    assert all(t.device.type == "cpu" for t in result.best_state.values())


def test_cpu_state_dict_is_a_detached_copy():
    model = torch.nn.Linear(2, 2)
    state = trainer_mod.cpu_state_dict(model)
    with torch.no_grad():
        model.weight.add_(1.0)
    assert not torch.equal(state["weight"], model.weight) and not state["weight"].requires_grad
