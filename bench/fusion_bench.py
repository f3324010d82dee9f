"""Benchmark (not a test): the paper's fusion-strategy comparison (OOLL / OALL / OAGL = EMT, and serial forms).

For each fusion in :data:`models.fusion.FUSIONS` and each dataset's real shapes and preset config (MOSI text
L=50, audio 375x5, vision 500x20; MOSEI 50, 500x74, 500x35; SIMS 39, 400x33, 55x709), one record::

    {fusion, dataset, device, batch, params_total, params_fusion, macs_per_sample, macs_fusion_per_sample,
     cross_modal_macs_per_sample, train_step_s, infer_step_s, fusion_train_step_s, fusion_infer_step_s,
     peak_mem_mb, rss_before_mb}

* Parameters: the full EMT-DLFR with a randomly initialised bert-base-sized encoder (``random:base``;
  ``random:base-chinese`` for SIMS) and the fusion module alone.
* MACs = FLOPs / 2 from :class:`torch.utils.flop_counter.FlopCounterMode`, per clip, forward pass, all
  clips at full length. ``macs_per_sample`` is the full model's forward, which always runs BOTH Siamese
  views (complete and incomplete); ``macs_fusion_per_sample`` and ``cross_modal_macs_per_sample`` are the
  fusion for ONE view. FlopCounterMode (torch 2.13) has no formula for the CPU SDPA kernel
  (``aten._scaled_dot_product_flash_attention_for_cpu``): it counts 0 for it, so this script registers the
  standard SDPA formula (the two batched matmuls, as for the GPU kernels) for it, which covers BERT's
  attention as well; :func:`check_sdpa_formula` asserts it equals the count of the explicit
  (einsum) attention path. Not counted: the LSTMs (aten.lstm has no formula; ~2 MMACs per clip),
  softmax, LayerNorm, GELU.
* Cross-modal MACs: everything inside the cross-attention sub-blocks of the CSTs (their projections and
  the two attention matmuls), measured with hooks around those sub-blocks. That includes the GMC's
  global-from-local reads, O(T) and common to all strategies (models.fusion_variants keeps them for the
  GMC the heads need), and for OALL the keys of the target's own modality.
* Times (median of ``--repeats`` after one warm-up, ``torch.set_num_threads(2)``): a training step
  (forward of both views, every DLFR loss term, backward, the trainer's Adam) and an inference step
  (eval, no grad) of the full model with the small random BERT (``random:tiny``, so the fusions dominate),
  at ``--batch`` clips; and the same for the fusion module alone (Adam on its parameters, a squared-output
  loss) at 2 x batch rows, what the full model feeds it. Every dropout is as configured; the fast path's
  chunked recomputation is switched OFF for every strategy, so memory is the plain autograd cost.
* Peak memory: peak RSS (``ru_maxrss``) of a fresh subprocess per (fusion, dataset) that builds the
  small-BERT model and runs the timed steps; ``rss_before_mb`` is its RSS before the first step. On a
  GPU (``--device cuda``) it is ``torch.cuda.max_memory_allocated`` instead.

The scaling sweep (``--sweep``) counts the fusion alone (one clip, MOSI config, text 49 tokens) with audio
and vision both T frames, T = 64 .. 2048, on the meta device with the explicit attention, split into
cross-attention, self-attention and the rest (FFN, pool). Its log-log plot shows the EMT's cross-modal
part growing linearly in T and OOLL's / OALL's quadratically; self-attention is quadratic everywhere.

    python bench/fusion_bench.py            # everything: records, table, sweep, plot (~7 min on 2 cores)
    python bench/fusion_bench.py --quick    # MOSI only, batch 2, 1 repeat, T up to 512 (~2 min)

Outputs: fusion_bench.json (records), fusion_bench.md (tables), fusion_scaling.json, fusion_scaling.png,
in bench/results/ (the committed records) for a full run with the default settings. A quick or partial
run (``--quick``, fewer ``--datasets``, another ``--batch``/``--repeats``/``--device``) writes to a fresh
temporary folder instead, printed at the end, so it never overwrites the records; ``--out DIR`` chooses.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from torch.utils import flop_counter  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from config import get_config  # noqa: E402
from models import build_model  # noqa: E402
from models.blocks import Attention, PreNorm  # noqa: E402
from models.emt_dlfr import EMTDLFR  # noqa: E402
from models.execution import EXPLICIT, LEAN, BatchPlan, ExecutionPolicy  # noqa: E402
from models.fusion import build_fusion  # noqa: E402
from models.text_encoder import load_text_encoder  # noqa: E402
from trains.losses import DLFRObjective  # noqa: E402
from trains.optim import build_optimizer  # noqa: E402

RESULTS = REPO / "bench" / "results"
THREADS = 2
DEFAULT_BATCH = 4
DEFAULT_REPEATS = 5
FLOPS_PER_MAC = 2
MB = 1024**2
KB_PER_MB = 1024

#: Real sequence shapes per dataset: (text tokens incl. [CLS]/[SEP], audio frames, vision frames).
SHAPES = {"mosi": (50, 375, 500), "mosei": (50, 500, 500), "sims": (39, 400, 55)}
#: Encoders: bert-base-sized for parameters and MACs, a 1-layer 32-wide BERT for the timed steps.
COUNT_ENCODER = {"mosi": "random:base", "mosei": "random:base", "sims": "random:base-chinese"}
TIME_ENCODER = "random:tiny"
MISSING_RATE = 0.5
MIN_TEXT_TOKENS = 3  # [CLS] word [SEP]
CLS_ID, SEP_ID, UNK_ID, FIRST_WORD_ID, LAST_WORD_ID = 101, 102, 100, 1000, 20000
LABEL_RANGE = 3.0
SWEEP_LENGTHS = (64, 128, 256, 512, 1024, 2048)
SWEEP_TEXT_TOKENS = 49
FUSION_ORDER = ("emt", "emt-serial", "ooll", "oall", "oall-serial")
MODEL_INPUTS = EMTDLFR.INPUTS


# --- MAC counting -----------------------------------------------------------------------------------
@flop_counter.register_flop_formula(torch.ops.aten._scaled_dot_product_flash_attention_for_cpu)
def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """The CPU SDPA kernel costs what the GPU kernels are counted as: q k^T and probs v."""
    return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def attention_blocks(module: torch.nn.Module) -> dict[str, list[PreNorm]]:
    """The PreNorm(Attention) sub-blocks of ``module``: cross-attention (with a context norm) and self-attention."""
    blocks = {"cross": [], "self": []}
    for sub in module.modules():
        if isinstance(sub, PreNorm) and isinstance(sub.fn, Attention):
            blocks["cross" if sub.norm_context is not None else "self"].append(sub)
    return blocks


@contextlib.contextmanager
def counted(module: torch.nn.Module):
    """Count forward MACs inside the block: yields a dict filled on exit with total / cross / self MACs."""
    result = {"cross": 0, "self": 0}
    counter = FlopCounterMode(display=False)
    handles = []
    for kind, blocks in attention_blocks(module).items():
        for block in blocks:
            start = {}
            handles.append(block.register_forward_pre_hook(lambda *_, s=start: s.update(at=counter.get_total_flops())))
            handles.append(
                block.register_forward_hook(
                    lambda *_, s=start, k=kind: result.update({k: result[k] + counter.get_total_flops() - s["at"]})
                )
            )
    try:
        with counter:
            yield result
    finally:
        for handle in handles:
            handle.remove()
    result["total"] = counter.get_total_flops()
    for key in ("total", "cross", "self"):
        result[key] //= FLOPS_PER_MAC


def fusion_inputs(cfg, lengths: tuple[int, int, int], batch: int, device="cpu", generator=None):
    """Random fusion inputs: gmc (B, 3, D), locals [(B, T_m, D)], masks with random lengths, clip 0 full."""
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    gmc = torch.randn(batch, 3, cfg.d_model, generator=g).to(device)
    locals_ = [torch.randn(batch, t, cfg.d_model, generator=g).to(device) for t in lengths]
    masks = []
    for t in lengths:
        valid = torch.randint(1, t + 1, (batch,), generator=g)
        valid[0] = t
        masks.append((torch.arange(t)[None] < valid[:, None]).to(device))
    return gmc, locals_, masks


def check_sdpa_formula(cfg, name: str) -> None:
    """The registered CPU-SDPA formula and the explicit einsum attention count the same fusion MACs."""
    fusion = build_fusion(cfg).eval()
    inputs = fusion_inputs(cfg, (7, 11, 13), 2)
    counts = []
    for kernel in (LEAN, EXPLICIT):
        with torch.no_grad(), counted(fusion) as macs:
            fusion(*inputs, BatchPlan(attention=kernel))
        counts.append(macs)
    if counts[0] != counts[1]:
        raise AssertionError(f"{name}: SDPA formula {counts[0]} != explicit attention {counts[1]}")


# --- data -----------------------------------------------------------------------------------------
def make_batch(cfg, batch: int, full_length: bool, seed: int = 0) -> dict:
    """A collated batch at the dataset's real shapes (the loader's keys), 0.5 missing rate in the incomplete view."""
    g = torch.Generator().manual_seed(seed)
    text_len, audio_len, vision_len = SHAPES[cfg.dataset]
    _, audio_dim, vision_dim = cfg.feature_dims

    def lengths(max_len: int, low: int) -> torch.Tensor:
        out = torch.full((batch,), max_len) if full_length else torch.randint(low, max_len + 1, (batch,), generator=g)
        out[0] = max_len
        return out

    n_text = lengths(text_len, MIN_TEXT_TOKENS)
    rows = torch.arange(batch)
    text_mask = (torch.arange(text_len)[None] < n_text[:, None]).float()
    ids = torch.randint(FIRST_WORD_ID, LAST_WORD_ID, (batch, text_len), generator=g).float() * text_mask
    ids[:, 0], ids[rows, n_text - 1] = CLS_ID, SEP_ID
    kept = (torch.rand(batch, text_len, generator=g) > MISSING_RATE).float() * text_mask
    kept[:, 0], kept[rows, n_text - 1] = 1.0, 1.0
    ids_m = kept * ids + UNK_ID * (text_mask - kept)
    segments = torch.zeros_like(text_mask)
    out = {
        "text": torch.stack([ids, text_mask, segments], dim=1),  # (B, 3, L)
        "text_m": torch.stack([ids_m, text_mask, segments], dim=1),
        "text_missing_mask": kept,
        "labels": {"M": (torch.rand(batch, 1, generator=g) * 2 - 1) * LABEL_RANGE},
    }
    for name, max_len, dim in (("audio", audio_len, audio_dim), ("vision", vision_len, vision_dim)):
        n = lengths(max_len, 1)
        valid = (torch.arange(max_len)[None] < n[:, None]).long()  # (B, T)
        frames_kept = (torch.rand(batch, max_len, generator=g) > MISSING_RATE).long() * valid
        x = torch.randn(batch, max_len, dim, generator=g) * valid[..., None]  # (B, T, d)
        out.update({
            name: x, f"{name}_m": x * frames_kept[..., None], f"{name}_lengths": n,
            f"{name}_mask": valid, f"{name}_missing_mask": frames_kept,
        })
    return out


def to_device(batch: dict, device: str) -> dict:
    return {k: to_device(v, device) if isinstance(v, dict) else v.to(device) for k, v in batch.items()}


# --- one record -------------------------------------------------------------------------------------
def count_record(fusion: str, dataset: str) -> dict:
    """Parameters and forward MACs per clip at the real shapes, with a bert-base-sized encoder."""
    torch.manual_seed(0)
    cfg = get_config(dataset, fusion=fusion, bert=COUNT_ENCODER[dataset])
    _, audio_dim, vision_dim = cfg.feature_dims
    model = build_model(cfg, audio_dim, vision_dim, load_text_encoder(cfg.bert)).eval()
    batch = make_batch(cfg, 1, full_length=True)
    with torch.no_grad(), counted(model.fusion) as model_macs:
        model(**{k: batch[k] for k in MODEL_INPUTS})
    text_len, audio_len, vision_len = SHAPES[dataset]
    with torch.no_grad(), counted(model.fusion) as fusion_macs:
        model.fusion(*fusion_inputs(cfg, (text_len - 1, audio_len, vision_len), 1))
    check_sdpa_formula(cfg, fusion)
    return {
        "params_total": sum(p.numel() for p in model.parameters()),
        "params_fusion": sum(p.numel() for p in model.fusion.parameters()),
        "macs_per_sample": model_macs["total"],
        "macs_fusion_per_sample": fusion_macs["total"],
        "cross_modal_macs_per_sample": fusion_macs["cross"],
        "self_attention_macs_per_sample": fusion_macs["self"],
    }


def median_time(fn, repeats: int, sync) -> float:
    """Median seconds of ``fn`` over ``repeats`` calls after one warm-up call."""
    times = []
    for i in range(repeats + 1):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_record(fusion: str, dataset: str, batch_size: int, repeats: int, device: str) -> dict:
    """Training / inference step times of the full model (small BERT) and of the fusion alone; peak memory."""
    torch.manual_seed(0)
    cfg = get_config(dataset, fusion=fusion, bert=TIME_ENCODER, device=device)
    _, audio_dim, vision_dim = cfg.feature_dims
    policy = dataclasses.replace(ExecutionPolicy.from_config(cfg), recompute=False)
    model = build_model(cfg, audio_dim, vision_dim, load_text_encoder(cfg.bert), policy=policy).to(device)
    optimizer = build_optimizer(cfg, model, policy)
    objective = DLFRObjective(cfg)
    batch = to_device(make_batch(cfg, batch_size, full_length=False), device)
    inputs = {k: batch[k] for k in MODEL_INPUTS}
    cuda = device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KB_PER_MB

    def train_step() -> None:
        model.train()
        optimizer.zero_grad(set_to_none=True)
        objective(model(**inputs), batch)["total"].backward()
        optimizer.step()

    def infer_step() -> None:
        model.eval()
        with torch.no_grad():
            model(**inputs)

    record = {"train_step_s": median_time(train_step, repeats, sync), "infer_step_s": median_time(infer_step, repeats, sync)}

    fusion_module = model.fusion
    fusion_optimizer = torch.optim.Adam(fusion_module.parameters())
    text_len, audio_len, vision_len = SHAPES[dataset]
    gmc, locals_, masks = fusion_inputs(cfg, (text_len - 1, audio_len, vision_len), 2 * batch_size, device)
    padded = policy.plan(every_clip_has_tokens=False)  # the fusion alone runs on the padded tokens

    def fusion_train_step() -> None:
        fusion_module.train()
        fusion_optimizer.zero_grad(set_to_none=True)
        out_gmc, out_locals = fusion_module(gmc, locals_, masks, padded)
        (out_gmc.square().mean() + sum(h.square().mean() for h in out_locals)).backward()
        fusion_optimizer.step()

    def fusion_infer_step() -> None:
        fusion_module.eval()
        with torch.no_grad():
            fusion_module(gmc, locals_, masks, padded)

    record["fusion_train_step_s"] = median_time(fusion_train_step, repeats, sync)
    record["fusion_infer_step_s"] = median_time(fusion_infer_step, repeats, sync)
    if cuda:
        record["peak_mem_mb"] = torch.cuda.max_memory_allocated() / MB
    else:
        record["peak_mem_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / KB_PER_MB
        record["rss_before_mb"] = rss_before
    return record


def worker(fusion: str, dataset: str, batch_size: int, repeats: int, device: str) -> dict:
    """One full record (run in a fresh process, so the peak RSS is this record's own)."""
    record = {"fusion": fusion, "dataset": dataset, "device": device, "batch": batch_size}
    record.update(time_record(fusion, dataset, batch_size, repeats, device))  # first: peak RSS of the timed steps
    record.update(count_record(fusion, dataset))
    return record


# --- scaling sweep ------------------------------------------------------------------------------------
def sweep(lengths: tuple[int, ...]) -> list[dict]:
    """Fusion-only MACs (one clip, MOSI config) against the audio / vision length T, on the meta device."""
    rows = []
    for name in FUSION_ORDER:
        cfg = get_config("mosi", fusion=name, max_seq_len=max(lengths))
        with torch.device("meta"):
            fusion = build_fusion(cfg).eval()
        for t in lengths:
            gmc, locals_, masks = (
                torch.empty(1, 3, cfg.d_model, device="meta"),
                [torch.empty(1, n, cfg.d_model, device="meta") for n in (SWEEP_TEXT_TOKENS, t, t)],
                [torch.ones(1, n, dtype=torch.bool, device="meta") for n in (SWEEP_TEXT_TOKENS, t, t)],
            )
            with torch.no_grad(), counted(fusion) as macs:
                fusion(gmc, locals_, masks, BatchPlan(attention=EXPLICIT))
            rows.append({"fusion": name, "T": t, "macs": macs["total"], "cross_modal_macs": macs["cross"],
                         "self_attention_macs": macs["self"]})
    return rows


def loglog_slope(rows: list[dict], name: str, key: str) -> float:
    """Slope of log(MACs) vs log(T) between the two longest lengths (1 = linear, 2 = quadratic)."""
    (t0, m0), (t1, m1) = [(r["T"], r[key]) for r in rows if r["fusion"] == name][-2:]
    return math.log(m1 / m0) / math.log(t1 / t0)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, (key, title) in zip(axes, (("cross_modal_macs", "cross-modal attention"),
                                       ("self_attention_macs", "intra-modal self-attention"),
                                       ("macs", "whole fusion"))):
        for name in FUSION_ORDER:
            points = [(r["T"], r[key] / 1e9) for r in rows if r["fusion"] == name]
            ax.loglog(*zip(*points), marker="o", label=name)
        ax.set_title(f"{title} (MOSI config, 1 clip)")
        ax.set_xlabel("audio = vision length T")
        ax.set_ylabel("GMACs")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


# --- report ---------------------------------------------------------------------------------------------
def markdown(records: list[dict], sweep_rows: list[dict], args) -> str:
    lines = [
        f"Machine: {torch.get_num_threads()} threads, device {args.device}; batch {args.batch} clips "
        f"(fusion-only: {2 * args.batch} rows = both views), median of {args.repeats} after 1 warm-up.",
        "",
        "| dataset | fusion | params total (M) | params fusion (M) | GMACs/clip full model (2 views) "
        "| GMACs fusion (1 view) | GMACs cross-modal | train step (s) | infer step (s) "
        "| fusion train (s) | fusion infer (s) | peak mem (MB) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| {r['dataset']} | {r['fusion']} | {r['params_total'] / 1e6:.2f} | {r['params_fusion'] / 1e6:.3f} "
            f"| {r['macs_per_sample'] / 1e9:.2f} | {r['macs_fusion_per_sample'] / 1e9:.3f} "
            f"| {r['cross_modal_macs_per_sample'] / 1e9:.3f} | {r['train_step_s']:.3f} | {r['infer_step_s']:.3f} "
            f"| {r['fusion_train_step_s']:.3f} | {r['fusion_infer_step_s']:.3f} | {r['peak_mem_mb']:.0f} |"
        )
    if sweep_rows:
        lengths = sorted({r["T"] for r in sweep_rows})
        lines += ["", "Scaling (fusion only, MOSI config, 1 clip, text 49 tokens): cross-modal GMACs", "",
                  "| fusion | " + " | ".join(f"T={t}" for t in lengths) + " | log-log slope (cross) | slope (self-attn) |",
                  "|---|" + "---|" * (len(lengths) + 2)]
        for name in FUSION_ORDER:
            values = [r["cross_modal_macs"] / 1e9 for r in sweep_rows if r["fusion"] == name]
            lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in values)
                         + f" | {loglog_slope(sweep_rows, name, 'cross_modal_macs'):.2f}"
                         + f" | {loglog_slope(sweep_rows, name, 'self_attention_macs'):.2f} |")
    return "\n".join(lines) + "\n"


def results_dir(args) -> Path:
    """--out if given; bench/results for a full default run (the committed records); else a temp folder."""
    if args.out is not None:
        return args.out
    full = (not args.quick and set(args.datasets) == set(SHAPES) and args.batch == DEFAULT_BATCH
            and args.repeats == DEFAULT_REPEATS and args.device == "cpu")
    return RESULTS if full else Path(tempfile.mkdtemp(prefix="fusion_bench-"))


def run_all(args) -> None:
    out = results_dir(args)
    out.mkdir(parents=True, exist_ok=True)
    datasets = ("mosi",) if args.quick else args.datasets
    records = []
    for dataset in datasets:
        for name in FUSION_ORDER:
            cmd = [sys.executable, __file__, "--worker", name, dataset, "--batch", str(args.batch),
                   "--repeats", str(args.repeats), "--device", args.device, "--threads", str(args.threads)]
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
            if done.returncode:
                raise RuntimeError(f"{name} on {dataset} failed:\n{done.stderr[-3000:]}")
            records.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(records[-1]), flush=True)
    (out / "fusion_bench.json").write_text(json.dumps(records, indent=2))
    lengths = tuple(t for t in SWEEP_LENGTHS if not args.quick or t <= 512)
    sweep_rows = sweep(lengths)
    (out / "fusion_scaling.json").write_text(json.dumps(sweep_rows, indent=2))
    plot(sweep_rows, out / "fusion_scaling.png")
    (out / "fusion_bench.md").write_text(markdown(records, sweep_rows, args))
    print((out / "fusion_bench.md").read_text())
    print(f"results in {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="MOSI only, batch 2, 1 repeat, T <= 512")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="clips per timed step (default 4)")
    parser.add_argument("--repeats", type=int, default=DEFAULT_REPEATS)
    parser.add_argument("--out", type=Path, help="where to write (default: bench/results for a full default run, "
                                                  "a temporary folder otherwise)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=THREADS, help="torch threads (default 2; 1 on a busy machine)")
    parser.add_argument("--datasets", nargs="+", choices=tuple(SHAPES), default=tuple(SHAPES))
    parser.add_argument("--timeout", type=int, default=900, help="seconds per (fusion, dataset) subprocess")
    parser.add_argument("--worker", nargs=2, metavar=("FUSION", "DATASET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.batch, args.repeats = 2, 1
    torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(worker(*args.worker, args.batch, args.repeats, args.device)))
    else:
        run_all(args)


if __name__ == "__main__":
    main()
