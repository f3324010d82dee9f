"""Benchmark (not a test): ``torch.compile`` (trains.compile.maybe_compile) against eager on the CPU.

The ``tiny`` preset's model (1-layer random BERT, d_model 16) at the tiny preset's shapes (text 12 tokens,
audio 10 x 5, vision 9 x 6 frames), batch 8 clips with varied lengths: one training step = forward of both
views, every DLFR loss term, backward, the trainer's Adam step. Every dropout (BERT's too) is off so the eager
and compiled steps can be compared number for number: the losses and every gradient of the first step
must agree to 1e-5. Reported: the first compiled step (compilation included), and the median step of
each after warm-up, over two alternating batches of different lengths (as a real loader produces).

    python bench/compile_bench.py [--steps 10] [--threads 2]     # writes bench/results/compile_bench.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import torch  # noqa: E402

from config import get_config  # noqa: E402
from model_inputs import dropout_free_bert, make_inputs  # noqa: E402
from models import build_model  # noqa: E402
from models.emt_dlfr import EMTDLFR  # noqa: E402
from trains.compile import maybe_compile  # noqa: E402
from trains.losses import DLFRObjective  # noqa: E402
from trains.optim import build_optimizer  # noqa: E402

RESULTS = REPO / "bench" / "results"
TOLERANCE = 1e-5
BATCH = 8
#: (text tokens, audio frames, vision frames) per clip of the two alternating batches.
LENGTH_SETS = (((12, 10, 9), (5, 4, 3)), ((9, 7, 9), (4, 10, 2)))
SHAPES = dict(seq_len=12, audio_len=10, vision_len=9, audio_dim=5, vision_dim=6)
MODEL_INPUTS = EMTDLFR.INPUTS
NO_DROPOUT = dict(attn_dropout=0.0, ff_dropout=0.0, post_fusion_dropout=0.0, emb_dropout=0.0)


def make_batch(lengths: tuple, seed: int) -> dict:
    """A loader-format batch of BATCH clips cycling through ``lengths`` (text, audio, vision) per clip."""
    per_clip = [lengths[i % len(lengths)] for i in range(BATCH)]
    text_l, audio_l, vision_l = (list(x) for x in zip(*per_clip))
    batch = make_inputs(text_l, audio_l, vision_l, **SHAPES, generator=torch.Generator().manual_seed(seed))
    text_mask = batch["text"][:, 1]
    batch["text_missing_mask"] = (batch["text_m"][:, 0] == batch["text"][:, 0]).float() * text_mask
    for name in ("audio", "vision"):
        valid = (torch.arange(batch[name].shape[1])[None] < batch[f"{name}_lengths"][:, None]).long()
        batch[f"{name}_mask"] = valid
        batch[f"{name}_missing_mask"] = (batch[f"{name}_m"].abs().sum(-1) > 0).long() * valid
    batch["labels"] = {"M": torch.linspace(-1, 1, BATCH)[:, None]}
    return batch


def build(compiled: bool):
    torch.manual_seed(0)
    cfg = get_config("tiny", **NO_DROPOUT)
    model = build_model(cfg, SHAPES["audio_dim"], SHAPES["vision_dim"], dropout_free_bert())
    model = maybe_compile(model.train(), compiled)
    return cfg, model, build_optimizer(cfg, model, model.policy)


def backward(cfg, model, optimizer, batch) -> float:
    """Forward, DLFR loss and backward (gradients left in place) -> the loss."""
    optimizer.zero_grad(set_to_none=True)
    loss = DLFRObjective(cfg)(model(**{k: batch[k] for k in MODEL_INPUTS}), batch)["total"]
    loss.backward()
    return loss.item()


def step(cfg, model, optimizer, batch) -> None:
    backward(cfg, model, optimizer, batch)
    optimizer.step()


def first_step_gradients(compiled: bool, batch) -> tuple[float, dict]:
    cfg, model, optimizer = build(compiled)
    loss = backward(cfg, model, optimizer, batch)
    return loss, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def timed(compiled: bool, batches: list, steps: int) -> dict:
    cfg, model, optimizer = build(compiled)
    times = []
    for i in range(steps + len(batches)):
        start = time.perf_counter()
        step(cfg, model, optimizer, batches[i % len(batches)])
        times.append(time.perf_counter() - start)
    return {"first_step_s": times[0], "median_step_s": statistics.median(times[len(batches):])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=10, help="timed steps after one warm-up step per batch shape")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    batches = [make_batch(lengths, seed) for seed, lengths in enumerate(LENGTH_SETS)]
    loss_eager, grads_eager = first_step_gradients(False, batches[0])
    loss_compiled, grads_compiled = first_step_gradients(True, batches[0])
    max_grad_diff = max((grads_eager[n] - grads_compiled[n]).abs().max().item() for n in grads_eager)
    result = {
        "threads": args.threads,
        "loss_eager": loss_eager,
        "loss_compiled": loss_compiled,
        "max_abs_grad_diff": max_grad_diff,
        "same_to_1e-5": abs(loss_eager - loss_compiled) <= TOLERANCE and max_grad_diff <= TOLERANCE,
        "eager": timed(False, batches, args.steps),
        "compiled": timed(True, batches, args.steps),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "compile_bench.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
