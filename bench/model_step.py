"""Benchmark (not a test): time and peak memory of one training step of any registered model at MOSI's shapes.

One step is what the trainer does per mini-batch: forward on the batch keys the model reads (``INPUTS``),
the model's objective, backward, gradient clipping when the config clips, and one optimiser step, with the
model's own optimiser (trains/registry.py). The batch is bench/train_step_speed.py's: MOSI's padded shapes
(text 50 tokens, audio 375 x 5, vision 500 x 20), random lengths with one full-length clip, rate 0.5 in the
incomplete view, a bert-base-sized random encoder (``random:base``) and every dropout as configured for MOSI.

    python bench/model_step.py --model mult --batch 32          # one model in this process: time, peak memory
    python bench/model_step.py --models mult emt-dlfr --batches 32 4   # each in a fresh subprocess

Peak memory is the process's peak RSS on the CPU (so one model per process) or
``torch.cuda.max_memory_allocated`` on a GPU (``--device cuda``). Step times are wall-clock medians after
warm-up.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from torch import nn  # noqa: E402

from bench.train_step_speed import KB_PER_GB, SHAPES, THREADS, make_batch, reset_peak_memory  # noqa: E402
from config import get_config  # noqa: E402
from trains.registry import model_spec  # noqa: E402
from trains.trainer import forward_batch, to_device  # noqa: E402
from utils.device import describe_device, resolve_device  # noqa: E402
from utils.seed import setup_seed  # noqa: E402

MOSI = SHAPES["mosi"]


def build(model_name: str, device: str):
    torch.manual_seed(0)
    cfg = get_config("mosi", model_name, bert=MOSI.encoder, device=device)
    spec = model_spec(cfg)
    model = spec.build(cfg, MOSI.audio_dim, MOSI.vision_dim).to(device).train()
    return cfg, spec, model, spec.optimizer(cfg, model, model.policy)


def train_step(cfg, spec, model, optimizer, batch) -> float:
    optimizer.zero_grad(set_to_none=True)
    with model.policy.autocast():
        loss = spec.objective(cfg)(forward_batch(model, batch), batch)["total"]
    loss.backward()
    if cfg.grad_clip is not None:
        nn.utils.clip_grad_value_([p for p in model.parameters() if p.requires_grad], cfg.grad_clip)
    optimizer.step()
    return loss.item()


def run_model(model_name: str, batch_size: int, repeats: int, warmup: int, device: str) -> dict:
    setup_seed(0)
    device = str(resolve_device(device))
    cfg, spec, model, optimizer = build(model_name, device)
    batch = to_device(make_batch(batch_size), torch.device(device))
    for _ in range(warmup):
        train_step(cfg, spec, model, optimizer, batch)
    reset_peak_memory(device)  # the timed steps' peak, not the set-up's
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        train_step(cfg, spec, model, optimizer, batch)  # .item() synchronises a GPU
        times.append(time.perf_counter() - start)
    result = {
        "model": model_name,
        "batch": batch_size,
        "device": describe_device(torch.device(device)),
        "median_s": statistics.median(times),
        "times_s": [round(t, 3) for t in times],
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KB_PER_GB,
    }
    if torch.device(device).type == "cuda":
        result["peak_cuda_gb"] = torch.cuda.max_memory_allocated(torch.device(device)) / 1e9
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="run one model in this process")
    parser.add_argument("--models", nargs="+", default=["mult", "emt-dlfr"], help="models, one subprocess each")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--batches", type=int, nargs="+", default=[32], help="batch sizes, with --models")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda or cuda:N")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per subprocess")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    if args.model:
        result = run_model(args.model, args.batch, args.repeats, args.warmup, args.device)
        result["load_average"] = os.getloadavg()
        print(json.dumps(result), flush=True)
        return
    for batch_size in args.batches:
        for name in args.models:
            cmd = [sys.executable, __file__, "--model", name, "--batch", str(batch_size), "--repeats",
                   str(args.repeats), "--warmup", str(args.warmup), "--device", args.device]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
            if done.returncode:
                print(done.stderr[-2000:], file=sys.stderr)
                raise SystemExit(done.returncode)
            print(done.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
