"""Benchmark (not a test): time and peak memory of one EMT-DLFR training step at MOSI's real shapes.

One step = forward of both views, every DLFR loss term (trains.losses.dlfr_loss), backward, Adam step
(trains.optim.build_optimizer, the trainer's five parameter groups). Shapes are MOSI's: text L=50, audio
375 x 5, vision 500 x 20, with random lengths and one full-length clip per batch, a 0.5 missing rate in
the incomplete view, a bert-base-sized randomly initialised encoder (``random:base``) and every dropout
as configured for MOSI.

Variants: ``fast`` (the model's default path: both views stacked, BERT and the EMT on the valid tokens
only, fused / lean attention) and ``plain`` (the reference-like path: explicit softmax attention, one
padded forward pass per view). ``--check`` compares the outputs at the positions the losses read (the fast
path leaves zeros at the padding).

    python bench/train_step_speed.py                  # everything below, at batch 32 and 8
    python bench/train_step_speed.py --check --batch 32          # both paths' eval outputs agree
    python bench/train_step_speed.py --variant fast --batch 32   # one variant alone: time, peak RSS
    python bench/train_step_speed.py --interleave --batch 32     # both variants, steps alternating
    python bench/train_step_speed.py --variant fast --batch 32 --breakdown   # time per component
    python bench/train_step_speed.py --variant fast --batch 32 --device cuda [--amp bf16] [--deterministic]

On a GPU (``--device cuda``, with ``--variant``) the peak memory is ``torch.cuda.max_memory_allocated``;
``--deterministic`` sets the flags of ``run.py --deterministic`` (utils/seed.py), so two runs, with and
without it, give its cost.

The default run starts a fresh subprocess per measurement, so each variant's peak RSS
(``resource.getrusage``) is its own. Step times are wall-clock medians after warm-up; on a machine
shared with other jobs the interleaved run, where both variants meet the same load, gives the fairer
ratio.
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

from config import get_config  # noqa: E402
from models import build_model  # noqa: E402
from models.emt_dlfr import read_positions  # noqa: E402
from models.text_encoder import load_text_encoder  # noqa: E402
from trains.losses import dlfr_loss  # noqa: E402
from trains.optim import build_optimizer  # noqa: E402
from trains.trainer import autocast_context  # noqa: E402
from utils.seed import setup_seed  # noqa: E402

#: MOSI shapes (reference §3.1): text tokens, audio frames x features, vision frames x features.
TEXT_LEN, AUDIO_LEN, AUDIO_DIM, VISION_LEN, VISION_DIM = 50, 375, 5, 500, 20
MISSING_RATE = 0.5
MIN_TOKENS = 3  # [CLS] word [SEP]
UNK_ID, CLS_ID, SEP_ID, FIRST_WORD_ID, LAST_WORD_ID = 100, 101, 102, 1000, 29000
LABEL_RANGE = 3.0
ENCODER = "random:base"
THREADS = 2
VARIANTS = ("fast", "plain")
BATCHES = (32, 8)
KB_PER_GB = 1e6


def make_batch(batch_size: int, seed: int = 0) -> dict:
    """A collated batch in the data loader's format, one full-length clip per modality."""
    g = torch.Generator().manual_seed(seed)

    def lengths(max_len: int, low: int) -> torch.Tensor:
        out = torch.randint(low, max_len + 1, (batch_size,), generator=g)
        out[0] = max_len
        return out

    text_len, audio_len, vision_len = lengths(TEXT_LEN, MIN_TOKENS), lengths(AUDIO_LEN, 1), lengths(VISION_LEN, 1)
    positions = torch.arange(TEXT_LEN)[None]
    mask = (positions < text_len[:, None]).float()
    ids = torch.randint(FIRST_WORD_ID, LAST_WORD_ID, (batch_size, TEXT_LEN), generator=g).float() * mask
    ids[:, 0] = CLS_ID
    ids[torch.arange(batch_size), text_len - 1] = SEP_ID
    keep = (torch.rand(batch_size, TEXT_LEN, generator=g) > MISSING_RATE).float() * mask
    keep[:, 0] = 1
    keep[torch.arange(batch_size), text_len - 1] = 1
    text = torch.stack([ids, mask, torch.zeros_like(mask)], dim=1)
    text_m = torch.stack([keep * ids + UNK_ID * (mask - keep), mask, torch.zeros_like(mask)], dim=1)

    def frames(max_len: int, dim: int, lens: torch.Tensor):
        valid = (torch.arange(max_len)[None] < lens[:, None]).long()
        x = torch.randn(batch_size, max_len, dim, generator=g) * valid[..., None]
        kept = (torch.rand(batch_size, max_len, generator=g) > MISSING_RATE).long() * valid
        return x, x * kept[..., None], valid, kept

    audio, audio_m, audio_mask, audio_kept = frames(AUDIO_LEN, AUDIO_DIM, audio_len)
    vision, vision_m, vision_mask, vision_kept = frames(VISION_LEN, VISION_DIM, vision_len)
    return {
        "text": text, "text_m": text_m, "text_missing_mask": keep,
        "audio": audio, "audio_m": audio_m, "audio_lengths": audio_len,
        "audio_mask": audio_mask, "audio_missing_mask": audio_kept,
        "vision": vision, "vision_m": vision_m, "vision_lengths": vision_len,
        "vision_mask": vision_mask, "vision_missing_mask": vision_kept,
        "labels": {"M": (torch.rand(batch_size, 1, generator=g) * 2 - 1) * LABEL_RANGE},
    }


MODEL_INPUTS = ("text", "text_m", "audio", "audio_m", "audio_lengths", "vision", "vision_m", "vision_lengths")


def build(variant: str, device: str = "cpu", **settings):
    torch.manual_seed(0)
    cfg = get_config("mosi", bert=ENCODER, device=device, **settings)
    model = build_model(cfg, AUDIO_DIM, VISION_DIM, load_text_encoder(ENCODER)).to(device)
    model.set_fast_path(variant == "fast")
    return cfg, model.train(), build_optimizer(cfg, model)


def to_device(batch: dict, device: str) -> dict:
    return {k: to_device(v, device) if isinstance(v, dict) else v.to(device) for k, v in batch.items()}


def train_step(cfg, model, optimizer, batch) -> float:
    optimizer.zero_grad(set_to_none=True)
    with autocast_context(cfg, torch.device(cfg.device)):
        out = model(**{k: batch[k] for k in MODEL_INPUTS})
        loss = dlfr_loss(out, batch, cfg)["total"]
    loss.backward()
    optimizer.step()
    return loss.item()


def _step_timed(cfg, model, optimizer, batch) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of this process, loss) of one training step."""
    start, cpu_start = time.perf_counter(), time.process_time()
    loss = train_step(cfg, model, optimizer, batch)
    return time.perf_counter() - start, time.process_time() - cpu_start, loss


def run_variant(
    variant: str, batch_size: int, repeats: int, warmup: int, device: str = "cpu", amp=None, deterministic=False
) -> dict:
    """Steps of one variant in this process; its peak RSS is the variant's own in a fresh process."""
    setup_seed(0, deterministic)
    cfg, model, optimizer = build(variant, device, amp=amp, deterministic=deterministic)
    batch = to_device(make_batch(batch_size), device)
    steps = [_step_timed(cfg, model, optimizer, batch) for _ in range(warmup + repeats)][warmup:]  # .item() syncs
    result = {
        "variant": variant,
        "batch": batch_size,
        "device": device if device == "cpu" else torch.cuda.get_device_name(torch.device(device)),
        "amp": amp,
        "deterministic": deterministic,
        "median_s": statistics.median(s[0] for s in steps),
        "times_s": [round(s[0], 3) for s in steps],
        "median_cpu_s": statistics.median(s[1] for s in steps),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KB_PER_GB,
    }
    if device != "cpu":
        result["peak_cuda_gb"] = torch.cuda.max_memory_allocated(torch.device(device)) / 1e9
    return result


def same_results(batch_size: int) -> dict:
    """Largest difference between the two paths' eval-mode outputs and losses on the benchmark batch."""
    outputs = {}
    for variant in VARIANTS:
        cfg, model, _ = build(variant)
        with torch.no_grad():
            out = model.eval()(**{k: make_batch(batch_size)[k] for k in MODEL_INPUTS})
            outputs[variant] = (out, dlfr_loss(out, make_batch(batch_size), cfg)["total"])
    (fast, fast_loss), (plain, plain_loss) = outputs["fast"], outputs["plain"]
    batch = make_batch(batch_size)
    read = read_positions(batch["text"], batch["audio_lengths"], batch["vision_lengths"])  # the fast path
    diff = {k: (fast[k] - plain[k]) * (read[k][..., None] if k in read else 1) for k in fast}  # skips the rest
    return {
        "max_abs_output_diff": max(d.abs().max().item() for d in diff.values()),
        "loss_fast": fast_loss.item(),
        "loss_plain": plain_loss.item(),
    }


def interleaved(batch_size: int, repeats: int, warmup: int) -> dict:
    """Both variants in one process, steps alternating (ABAB, then BABA, ...) so that both meet the same
    machine load: on a shared CPU this comparison is fairer than two runs minutes apart."""
    runs = {variant: (*build(variant), make_batch(batch_size)) for variant in VARIANTS}
    for variant in VARIANTS:
        for _ in range(warmup):
            train_step(*runs[variant])
    steps = {variant: [] for variant in VARIANTS}
    for i in range(repeats):
        for variant in VARIANTS if i % 2 == 0 else VARIANTS[::-1]:
            steps[variant].append(_step_timed(*runs[variant]))
    result = {"mode": "interleaved", "batch": batch_size}
    for variant in VARIANTS:
        result[f"{variant}_median_s"] = statistics.median(s[0] for s in steps[variant])
        result[f"{variant}_times_s"] = [round(s[0], 2) for s in steps[variant]]
        result[f"{variant}_median_cpu_s"] = statistics.median(s[1] for s in steps[variant])
    result["plain_over_fast"] = result["plain_median_s"] / result["fast_median_s"]
    return result


def _timed(fn, repeats: int) -> dict:
    """Median wall and CPU seconds of ``fn`` after one warm-up call."""
    wall, cpu = [], []
    for _ in range(repeats + 1):
        start, cpu_start = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    return {"wall_s": statistics.median(wall[1:]), "cpu_s": statistics.median(cpu[1:])}


def breakdown(variant: str, batch_size: int, repeats: int) -> dict:
    """Forward + backward time of each component alone, on the inputs it sees in a step (both views)."""
    cfg, model, _ = build(variant)
    batch = make_batch(batch_size)
    views = 2
    text = torch.cat([batch["text"], batch["text_m"]])
    audio = torch.cat([batch["audio"], batch["audio_m"]])
    vision = torch.cat([batch["vision"], batch["vision_m"]])
    a_len, v_len = batch["audio_lengths"].repeat(views), batch["vision_lengths"].repeat(views)
    n = views * batch_size
    d = cfg.d_model
    t_len = text[:, 1].sum(-1).long() - 2
    gmc = torch.randn(n, 3, d, requires_grad=True)
    locals_ = [torch.randn(n, t, d, requires_grad=True) for t in (TEXT_LEN - 1, int(a_len.max()), int(v_len.max()))]
    masks = [torch.arange(x.shape[1])[None] < l[:, None] for x, l in zip(locals_, (t_len, a_len, v_len))]

    def bert():
        model._text_hidden(text).sum().backward()

    def lstms():
        a_utt, a_seq = model.audio_model(audio, a_len)
        v_utt, v_seq = model.video_model(vision, v_len)
        (a_utt.sum() + a_seq.sum() + v_utt.sum() + v_seq.sum()).backward()

    def fusion():
        g, outs = model.fusion(gmc, locals_, masks)
        (g.sum() + sum(o.sum() for o in outs)).backward()

    def step():
        train_step(cfg, model, build_optimizer(cfg, model), batch)

    return {
        "variant": variant,
        "batch": batch_size,
        "bert_fwd_bwd": _timed(bert, repeats),
        "lstms_fwd_bwd": _timed(lstms, repeats),
        "fusion_fwd_bwd": _timed(fusion, repeats),
        "whole_step": _timed(step, repeats),
    }


def _subprocess(args: list[str], timeout: int) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        print(done.stderr[-2000:], file=sys.stderr)
        raise SystemExit(done.returncode)
    line = done.stdout.strip().splitlines()[-1]
    print(line, flush=True)
    return json.loads(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=VARIANTS, help="run one variant in this process")
    parser.add_argument("--interleave", action="store_true", help="time both variants alternately here")
    parser.add_argument("--check", action="store_true", help="compare the two paths' eval outputs")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--breakdown", action="store_true", help="time BERT, LSTMs and fusion separately")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per subprocess")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (with --variant)")
    parser.add_argument("--amp", choices=("bf16",), help="bf16 autocast, as run.py --amp (with --variant)")
    parser.add_argument("--deterministic", action="store_true", help="run.py's --deterministic flags (with --variant)")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    if args.variant or args.interleave or args.check:
        if args.check:
            result = same_results(args.batch)
        elif args.interleave:
            result = interleaved(args.batch, args.repeats, args.warmup)
        elif args.breakdown:
            result = breakdown(args.variant, args.batch, args.repeats)
        else:
            result = run_variant(
                args.variant, args.batch, args.repeats, args.warmup, args.device, args.amp, args.deterministic
            )
        result["load_average"] = os.getloadavg()
        print(json.dumps(result), flush=True)
        return
    common = ["--repeats", str(args.repeats), "--warmup", str(args.warmup)]
    for batch_size in BATCHES:
        size = ["--batch", str(batch_size)]
        _subprocess(["--check", *size], args.timeout)
        for variant in VARIANTS:
            _subprocess(["--variant", variant, *size, *common], args.timeout)
        _subprocess(["--interleave", *size, *common], args.timeout)


if __name__ == "__main__":
    main()
