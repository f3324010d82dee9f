"""Benchmark (not a test): time and peak memory of one EMT-DLFR training step at MOSI's real shapes.

One step = forward of both views, every DLFR loss term (trains.losses.DLFRObjective), backward, Adam step
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
    python bench/train_step_speed.py --variant fast --batch 2 --shapes tiny --device cpu   # a quick dry run
    python bench/train_step_speed.py --variants fast plain fast:bf16 --batch 32   # one process, one line each

``--device`` (default auto, as run.py), ``--amp`` and ``--deterministic`` apply to every mode (the default
run passes them to its subprocesses). On a GPU the peak memory is ``torch.cuda.max_memory_allocated`` over
the timed steps (the counter is reset after warm-up) and step times include a synchronisation;
``--deterministic`` sets the flags of ``run.py --deterministic`` (utils/seed.py), so two runs, with and
without it, give its cost. ``--shapes tiny`` swaps MOSI's shapes and encoder for the ``tiny`` preset's.

The default run starts a fresh subprocess per measurement, so each variant's peak RSS
(``resource.getrusage``) is its own. Step times are wall-clock medians after warm-up; on a machine
shared with other jobs the interleaved run, where both variants meet the same load, gives the fairer
ratio.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
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
from models.emt_dlfr import EMTDLFR, read_positions  # noqa: E402
from models.text_encoder import load_text_encoder  # noqa: E402
from trains.losses import DLFRObjective  # noqa: E402
from trains.optim import build_optimizer  # noqa: E402
from trains.trainer import to_device  # noqa: E402
from utils.device import describe_device, resolve_device, set_tf32  # noqa: E402
from utils.seed import setup_seed  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Shapes:
    """A config preset, the text encoder and the batch shapes a step runs at."""

    preset: str
    encoder: str
    text_len: int  # tokens
    audio_len: int  # frames
    audio_dim: int
    vision_len: int
    vision_dim: int


#: MOSI shapes (docs/REFERENCE.md §3.1) with a bert-base-sized encoder; ``tiny`` is the test preset's, for dry runs.
SHAPES = {
    "mosi": Shapes("mosi", "random:base", 50, 375, 5, 500, 20),
    "tiny": Shapes("tiny", "random:tiny", 12, 20, 5, 16, 6),
}


@dataclasses.dataclass(frozen=True)
class Settings:
    """Where and how the steps run: every mode takes these (``--device``, ``--amp``, ``--deterministic``)."""

    device: str = "auto"
    amp: str | None = None
    deterministic: bool = False
    shapes: str = "mosi"


MISSING_RATE = 0.5
MIN_TOKENS = 3  # [CLS] word [SEP]
UNK_ID, CLS_ID, SEP_ID, FIRST_WORD_ID, LAST_WORD_ID = 100, 101, 102, 1000, 29000
LABEL_RANGE = 3.0
THREADS = 2
VARIANTS = ("fast", "plain")
BATCHES = (32, 8)
KB_PER_GB = 1e6


def make_batch(batch_size: int, seed: int = 0, shapes: Shapes = SHAPES["mosi"]) -> dict:
    """A collated batch in the data loader's format, one full-length clip per modality."""
    g = torch.Generator().manual_seed(seed)

    def lengths(max_len: int, low: int) -> torch.Tensor:
        out = torch.randint(low, max_len + 1, (batch_size,), generator=g)
        out[0] = max_len
        return out

    text_len, audio_len, vision_len = lengths(shapes.text_len, MIN_TOKENS), lengths(shapes.audio_len, 1), lengths(shapes.vision_len, 1)
    positions = torch.arange(shapes.text_len)[None]
    mask = (positions < text_len[:, None]).float()
    ids = torch.randint(FIRST_WORD_ID, LAST_WORD_ID, (batch_size, shapes.text_len), generator=g).float() * mask
    ids[:, 0] = CLS_ID
    ids[torch.arange(batch_size), text_len - 1] = SEP_ID
    keep = (torch.rand(batch_size, shapes.text_len, generator=g) > MISSING_RATE).float() * mask
    keep[:, 0] = 1
    keep[torch.arange(batch_size), text_len - 1] = 1
    text = torch.stack([ids, mask, torch.zeros_like(mask)], dim=1)
    text_m = torch.stack([keep * ids + UNK_ID * (mask - keep), mask, torch.zeros_like(mask)], dim=1)

    def frames(max_len: int, dim: int, lens: torch.Tensor):
        valid = (torch.arange(max_len)[None] < lens[:, None]).long()
        x = torch.randn(batch_size, max_len, dim, generator=g) * valid[..., None]
        kept = (torch.rand(batch_size, max_len, generator=g) > MISSING_RATE).long() * valid
        return x, x * kept[..., None], valid, kept

    audio, audio_m, audio_mask, audio_kept = frames(shapes.audio_len, shapes.audio_dim, audio_len)
    vision, vision_m, vision_mask, vision_kept = frames(shapes.vision_len, shapes.vision_dim, vision_len)
    return {
        "text": text, "text_m": text_m, "text_missing_mask": keep,
        "audio": audio, "audio_m": audio_m, "audio_lengths": audio_len,
        "audio_mask": audio_mask, "audio_missing_mask": audio_kept,
        "vision": vision, "vision_m": vision_m, "vision_lengths": vision_len,
        "vision_mask": vision_mask, "vision_missing_mask": vision_kept,
        "labels": {"M": (torch.rand(batch_size, 1, generator=g) * 2 - 1) * LABEL_RANGE},
    }


MODEL_INPUTS = EMTDLFR.INPUTS


def build(variant: str, settings: Settings):
    """(config, model in train mode, optimiser) of one variant, seeded, on the settings' device."""
    shapes = SHAPES[settings.shapes]
    device = resolve_device(settings.device)
    setup_seed(0, settings.deterministic)
    cfg = get_config(shapes.preset, bert=shapes.encoder, device=str(device), amp=settings.amp,
                     deterministic=settings.deterministic, fast_path=variant == "fast")
    set_tf32(cfg.tf32)
    model = build_model(cfg, shapes.audio_dim, shapes.vision_dim, load_text_encoder(shapes.encoder)).to(device)
    return cfg, model.train(), build_optimizer(cfg, model, model.policy)


def bench_batch(batch_size: int, settings: Settings) -> dict:
    """The benchmark batch on the settings' device, placed as the trainer places it (lengths on the host)."""
    return to_device(make_batch(batch_size, shapes=SHAPES[settings.shapes]), resolve_device(settings.device))


def sync(device: str) -> None:
    """Wait for the GPU's queued kernels, so that a wall-clock time covers them."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: str) -> None:
    """Start the CUDA peak-memory counter afresh (after warm-up: the steps' own peak, not the set-up's)."""
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def release_memory(device: str) -> None:
    """Free what a finished measurement left, so that the next one in this process starts from an empty GPU."""
    gc.collect()
    if torch.device(resolve_device(device)).type == "cuda":
        torch.cuda.empty_cache()


def device_record(cfg) -> dict:
    """The device, its CUDA peak memory since the last reset, and the execution settings, for a result."""
    device = torch.device(cfg.device)
    record = {"device": describe_device(device), "amp": cfg.amp, "deterministic": cfg.deterministic,
              "tf32": cfg.tf32, "shapes": cfg.dataset}
    if device.type == "cuda":
        record["peak_cuda_gb"] = torch.cuda.max_memory_allocated(device) / 1e9
    return record


def train_step(cfg, model, optimizer, batch) -> float:
    optimizer.zero_grad(set_to_none=True)
    with model.policy.autocast():
        out = model(**{k: batch[k] for k in MODEL_INPUTS})
        loss = DLFRObjective(cfg)(out, batch)["total"]
    loss.backward()
    optimizer.step()
    return loss.item()


def _step_timed(cfg, model, optimizer, batch) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of this process, loss) of one training step."""
    start, cpu_start = time.perf_counter(), time.process_time()
    loss = train_step(cfg, model, optimizer, batch)
    return time.perf_counter() - start, time.process_time() - cpu_start, loss


def run_variant(variant: str, batch_size: int, repeats: int, warmup: int, settings: Settings = Settings()) -> dict:
    """Steps of one variant in this process; its peak RSS is the variant's own in a fresh process."""
    cfg, model, optimizer = build(variant, settings)
    batch = bench_batch(batch_size, settings)
    for _ in range(warmup):
        train_step(cfg, model, optimizer, batch)
    reset_peak_memory(cfg.device)
    steps = [_step_timed(cfg, model, optimizer, batch) for _ in range(repeats)]  # .item() syncs
    return {
        "variant": variant,
        "batch": batch_size,
        **device_record(cfg),
        "median_s": statistics.median(s[0] for s in steps),
        "times_s": [round(s[0], 4) for s in steps],
        "median_cpu_s": statistics.median(s[1] for s in steps),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KB_PER_GB,
    }


def same_results(batch_size: int, settings: Settings = Settings()) -> dict:
    """Largest difference between the two paths' eval-mode outputs and losses on the benchmark batch."""
    outputs = {}
    batch = bench_batch(batch_size, settings)
    for variant in VARIANTS:
        cfg, model, _ = build(variant, settings)
        with torch.no_grad(), model.policy.autocast():
            out = model.eval()(**{k: batch[k] for k in MODEL_INPUTS})
            outputs[variant] = (out.tensors(), DLFRObjective(cfg)(out, batch)["total"])
    (fast, fast_loss), (plain, plain_loss) = outputs["fast"], outputs["plain"]
    read = read_positions(batch["text"], batch["audio_lengths"], batch["vision_lengths"])  # the fast path
    diff = {k: (fast[k] - plain[k]) * (read[k][..., None] if k in read else 1) for k in fast}  # skips the rest
    return {
        "mode": "check",
        "batch": batch_size,
        **device_record(cfg),
        "max_abs_output_diff": max(d.abs().max().item() for d in diff.values()),
        "loss_fast": fast_loss.item(),
        "loss_plain": plain_loss.item(),
    }


def interleaved(batch_size: int, repeats: int, warmup: int, settings: Settings = Settings()) -> dict:
    """Both variants in one process, steps alternating (ABAB, then BABA, ...) so that both meet the same
    machine load: on a shared CPU this comparison is fairer than two runs minutes apart. The CUDA peak
    memory is that of both variants together."""
    runs = {variant: (*build(variant, settings), bench_batch(batch_size, settings)) for variant in VARIANTS}
    for variant in VARIANTS:
        for _ in range(warmup):
            train_step(*runs[variant])
    cfg = runs["fast"][0]
    reset_peak_memory(cfg.device)
    steps = {variant: [] for variant in VARIANTS}
    for i in range(repeats):
        for variant in VARIANTS if i % 2 == 0 else VARIANTS[::-1]:
            steps[variant].append(_step_timed(*runs[variant]))
    result = {"mode": "interleaved", "batch": batch_size, **device_record(cfg)}
    for variant in VARIANTS:
        result[f"{variant}_median_s"] = statistics.median(s[0] for s in steps[variant])
        result[f"{variant}_times_s"] = [round(s[0], 2) for s in steps[variant]]
        result[f"{variant}_median_cpu_s"] = statistics.median(s[1] for s in steps[variant])
    result["plain_over_fast"] = result["plain_median_s"] / result["fast_median_s"]
    return result


def _timed(fn, repeats: int, device: str) -> dict:
    """Median wall and CPU seconds of ``fn`` after one warm-up call (GPU work included)."""
    wall, cpu = [], []
    for _ in range(repeats + 1):
        start, cpu_start = time.perf_counter(), time.process_time()
        fn()
        sync(device)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
    return {"wall_s": statistics.median(wall[1:]), "cpu_s": statistics.median(cpu[1:])}


def breakdown(variant: str, batch_size: int, repeats: int, settings: Settings = Settings()) -> dict:
    """Forward + backward time of each component alone, on the inputs it sees in a step (both views)."""
    cfg, model, _ = build(variant, settings)
    device = torch.device(cfg.device)
    batch = bench_batch(batch_size, settings)
    shapes = SHAPES[settings.shapes]
    views = 2
    text = torch.cat([batch["text"], batch["text_m"]])
    audio = torch.cat([batch["audio"], batch["audio_m"]])
    vision = torch.cat([batch["vision"], batch["vision_m"]])
    a_len, v_len = batch["audio_lengths"].repeat(views), batch["vision_lengths"].repeat(views)
    n = views * batch_size
    d = cfg.d_model
    t_len = text[:, 1].sum(-1).long() - 2
    gmc = torch.randn(n, 3, d, device=device, requires_grad=True)
    lengths = (shapes.text_len - 1, int(a_len.max()), int(v_len.max()))
    locals_ = [torch.randn(n, t, d, device=device, requires_grad=True) for t in lengths]
    masks = [torch.arange(x.shape[1], device=device)[None] < n.to(device)[:, None]
             for x, n in zip(locals_, (t_len, a_len, v_len))]
    autocast = model.policy.autocast
    plan = model.policy.plan(every_clip_has_tokens=True)  # the benchmark batch has words in every clip

    def bert():
        with autocast():
            hidden = model._text_hidden(text, plan)
        hidden.float().sum().backward()

    def lstms():
        with autocast():
            a_utt, a_seq = model.audio_model(audio, a_len)
            v_utt, v_seq = model.vision_model(vision, v_len)
        (a_utt.float().sum() + a_seq.float().sum() + v_utt.float().sum() + v_seq.float().sum()).backward()

    def fusion():
        with autocast():
            g, outs = model.fusion(gmc, locals_, masks, plan)
        (g.float().sum() + sum(o.float().sum() for o in outs)).backward()

    def step():
        train_step(cfg, model, build_optimizer(cfg, model, model.policy), batch)

    return {
        "variant": variant,
        "batch": batch_size,
        "bert_fwd_bwd": _timed(bert, repeats, cfg.device),
        "lstms_fwd_bwd": _timed(lstms, repeats, cfg.device),
        "fusion_fwd_bwd": _timed(fusion, repeats, cfg.device),
        "whole_step": _timed(step, repeats, cfg.device),
        **device_record(cfg),
    }


def _subprocess(args: list[str], timeout: int) -> dict:
    done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        print(done.stderr[-2000:], file=sys.stderr)
        raise SystemExit(done.returncode)
    line = done.stdout.strip().splitlines()[-1]
    print(line, flush=True)
    return json.loads(line)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", choices=VARIANTS, help="run one variant in this process")
    parser.add_argument("--variants", nargs="+", metavar="VARIANT[:bf16]",
                        help="several variants one after the other in this process (fast, plain, fast:bf16, ...)")
    parser.add_argument("--interleave", action="store_true", help="time both variants alternately here")
    parser.add_argument("--check", action="store_true", help="compare the two paths' eval outputs")
    parser.add_argument("--batch", type=int, help="batch size (default: 32 and 8 in the default run, else 32)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--breakdown", action="store_true", help="time BERT, LSTMs and fusion separately (with --variant)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per subprocess")
    parser.add_argument("--device", default="auto", help="auto (a GPU when there is one), cpu, cuda or cuda:N")
    parser.add_argument("--amp", choices=("bf16",), help="bf16 autocast, as run.py --amp")
    parser.add_argument("--deterministic", action="store_true", help="run.py's --deterministic flags")
    parser.add_argument("--shapes", choices=sorted(SHAPES), default="mosi", help="batch shapes and encoder")
    parser.add_argument("--threads", type=int, default=THREADS, help="torch CPU threads")
    return parser


def settings_args(args: argparse.Namespace) -> list[str]:
    """The flags every subprocess of the default run gets: where and how to run, and the shapes."""
    out = ["--device", args.device, "--shapes", args.shapes, "--threads", str(args.threads)]
    if args.amp:
        out += ["--amp", args.amp]
    if args.deterministic:
        out.append("--deterministic")
    return out


def default_run_commands(args: argparse.Namespace) -> list[list[str]]:
    """The measurements of the default run, one subprocess each, every one with the settings' flags."""
    common = ["--repeats", str(args.repeats), "--warmup", str(args.warmup), *settings_args(args)]
    commands = []
    for batch_size in [args.batch] if args.batch else BATCHES:
        size = ["--batch", str(batch_size)]
        commands.append(["--check", *size, *settings_args(args)])
        commands += [["--variant", variant, *size, *common] for variant in VARIANTS]
        commands.append(["--interleave", *size, *common])
    return commands


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.breakdown and not args.variant:
        parser.error("--breakdown times one variant: add --variant fast or --variant plain")
    torch.set_num_threads(args.threads)
    settings = Settings(args.device, args.amp, args.deterministic, args.shapes)
    batch = args.batch or BATCHES[0]
    if args.variants:
        for spec in args.variants:
            variant, _, amp = spec.partition(":")
            if variant not in VARIANTS or amp not in ("", "bf16"):
                parser.error(f"--variants: expected fast or plain, optionally with :bf16, got {spec!r}")
            result = run_variant(variant, batch, args.repeats, args.warmup,
                                 dataclasses.replace(settings, amp=amp or settings.amp))
            result["load_average"] = os.getloadavg()
            print(json.dumps(result), flush=True)
            release_memory(settings.device)
        return
    if args.variant or args.interleave or args.check:
        if args.check:
            result = same_results(batch, settings)
        elif args.interleave:
            result = interleaved(batch, args.repeats, args.warmup, settings)
        elif args.breakdown:
            result = breakdown(args.variant, batch, args.repeats, settings)
        else:
            result = run_variant(args.variant, batch, args.repeats, args.warmup, settings)
        result["load_average"] = os.getloadavg()
        print(json.dumps(result), flush=True)
        return
    for command in default_run_commands(args):
        _subprocess(command, args.timeout)


if __name__ == "__main__":
    main()
