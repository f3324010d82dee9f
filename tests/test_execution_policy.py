"""The execution policy: decided once from the config, honoured by the model, the optimiser and the trainer,
turned into one plan per batch; and the model/objective contract the trainer runs any model through."""

import dataclasses

import pytest
import torch
from torch import nn

from models import build_model
from models.blocks import Attention
from models.execution import EXPLICIT, LEAN, SDPA, BatchPlan, ExecutionPolicy, default_kernel
from models.text_encoder import hf_attention
from tests.model_inputs import dropout_free_bert, make_inputs, tiny_config
from trains.objective import Objective
from trains.optim import build_optimizer
from trains.trainer import Trainer
from utils.errors import ConfigError


def test_the_config_decides_the_policy():
    fast = ExecutionPolicy.from_config(tiny_config())
    assert (fast.stack_views, fast.pack_tokens, fast.recompute, fast.fused_adam) == (True, True, True, True)
    assert fast.attention == LEAN  # on a CPU
    plain = ExecutionPolicy.from_config(tiny_config(fast_path=False))
    assert plain == fast.reference_like()
    assert (plain.stack_views, plain.pack_tokens, plain.recompute, plain.fused_adam) == (False,) * 4
    assert plain.attention == EXPLICIT
    assert ExecutionPolicy.from_config(tiny_config(attention_kernel="sdpa")).attention == SDPA
    assert default_kernel("cuda") == SDPA and default_kernel("cpu") == LEAN
    with pytest.raises(ConfigError, match="CPUs only"):
        ExecutionPolicy(device="cuda", attention=LEAN)
    assert ExecutionPolicy.from_config(tiny_config(amp="bf16")).autocast_dtype == torch.bfloat16
    explicit_fast = ExecutionPolicy.from_config(tiny_config(attention_kernel="explicit"))
    assert explicit_fast.stack_views and not explicit_fast.pack_tokens  # BERT's own attention cannot pack
    with pytest.raises(ConfigError, match="attention_kernel"):
        tiny_config(attention_kernel="flash")
    with pytest.raises(ConfigError, match="pack_tokens"):
        ExecutionPolicy(attention=EXPLICIT, pack_tokens=True)


def test_build_model_and_the_optimiser_honour_fast_path():
    for fast in (True, False):
        cfg = tiny_config(fast_path=fast)
        model = build_model(cfg, 5, 6, dropout_free_bert())
        assert model.policy == ExecutionPolicy.from_config(cfg)
        assert build_optimizer(cfg, model, model.policy).defaults["fused"] is fast
        expected = hf_attention(LEAN) if fast else "sdpa"
        assert model.text_model.config._attn_implementation == expected


def test_packing_is_decided_once_per_batch():
    model = build_model(tiny_config(), 5, 6, dropout_free_bert())
    plans = []
    forward = model.fusion.forward
    model.fusion.forward = lambda gmc, locals_, masks, plan: (plans.append(plan), forward(gmc, locals_, masks, plan))[1]
    model(**make_inputs([5, 4], [3, 2], [2, 1]))
    model(**make_inputs([5, 2], [3, 2], [2, 1]))  # the second clip has no words: its padding is read
    assert [p.packed for p in plans] == [True, False]
    assert all(p.attention == LEAN and p.recompute for p in plans)


def test_sdpa_with_dropout_stays_reachable(monkeypatch):
    calls = []
    sdpa = torch.nn.functional.scaled_dot_product_attention
    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention",
                        lambda *a, **k: (calls.append(k.get("dropout_p")), sdpa(*a, **k))[1])
    attn = Attention(8, 2, dropout=0.3).train()
    x = torch.randn(2, 4, 8)
    attn(x, plan=BatchPlan(attention=SDPA))
    assert calls == [0.3]
    attn(x, plan=BatchPlan(attention=LEAN))  # the lean kernel takes attention with dropout
    assert calls == [0.3]


class Affine(nn.Module):
    """A stand-in for another model: its own inputs and outputs."""

    INPUTS = ("audio",)

    def __init__(self):
        super().__init__()
        self.text_model, self.audio_model, self.vision_model = nn.Linear(1, 1), nn.Linear(1, 1), nn.Linear(1, 1)
        self.head = nn.Linear(3, 1)

    def forward(self, audio):
        return {"score": self.head(audio.mean(dim=1))}


class SquaredError(Objective):
    """Another model's objective: squared error, with its own reported term."""

    reported_terms = {"Loss(sq)": "squared"}

    def __call__(self, outputs, batch):
        squared = (self.predictions(outputs) - self.labels(batch)).square().mean()
        return {"squared": squared, "total": 2 * squared}

    def predictions(self, outputs):
        return outputs["score"].view(-1)


def test_another_model_trains_with_its_objective_in_the_same_trainer():
    g = torch.Generator().manual_seed(0)
    batches = [{"audio": torch.randn(6, 4, 3, generator=g), "labels": {"M": torch.randn(6, 1, generator=g)},
                "index": torch.arange(6 * i, 6 * i + 6), "id": [f"clip$_${j}" for j in range(6 * i, 6 * i + 6)]}
               for i in range(4)]
    torch.manual_seed(0)
    cfg = dataclasses.replace(tiny_config(), batches_per_step=1, learning_rate_other=0.05)
    trainer = Trainer(cfg, Affine(), objective=SquaredError(), progress=False)
    before = trainer.evaluate(batches)
    for epoch in range(5):
        trainer.train_epoch(batches, epoch)
    after = trainer.evaluate(batches)
    assert set(after) >= {"Loss", "Loss(sq)", "MAE"}
    assert after["Loss"] == pytest.approx(2 * after["Loss(sq)"])
    assert after["Loss"] < before["Loss"]
