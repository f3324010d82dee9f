"""Everything a lent GPU should check and measure, in one call (``bash bench/gpu_check.sh``).

1. The CUDA test tier (``pytest -m cuda tests/test_cuda.py``): fast vs plain path, bf16, --deterministic,
   resume, a run.py cell, two workers on one GPU.
2. The training step at MOSI's shapes, batch 32 (bench/train_step_speed.py, one process each): ``fast``,
   ``plain``, ``fast`` with bf16 autocast and ``fast`` with ``--deterministic``: median time and peak CUDA
   memory of the timed steps.
3. One full training cell of the synthetic ``mosi`` preset (real shapes and sizes, written by
   preprocess/make_synthetic.py) with MOSI's hyperparameters through ``run.py`` (missing rate 0.5, one seed;
   a bert-base-sized random encoder, since the machine has no internet), timed; a cell cut by the budget
   still records its finished epochs and seconds per epoch.
4. Packing: the fast step timed in 2 and 4 processes at once on the one GPU (cells per GPU).
5. The full MOSI sweep's wall time (11 rates x 3 seeds) estimated for 1, 2 and 4 cells per GPU: cells run
   in rounds of k, each round lasting one cell's time scaled by the packed step's slowdown.

Writes one JSON record (``--out``, default bench/results/gpu_check-<time>.json) and prints a table. Every
stage runs in its own process with a timeout inside an overall budget, so one failure is recorded and the
rest still runs; the exit status is 1 when a stage failed. ``--device cpu`` is the dry run: the same
stages on the ``tiny`` preset, batch 2, a couple of steps, a one-epoch cell (tests/test_gpu_check.py runs it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from config.base import FULL_RATE_GRID, REFERENCE_TRAIN_SEEDS  # noqa: E402
from utils.io import atomic_write_json  # noqa: E402

#: Cells of the full MOSI sweep: 11 rates x 3 seeds.
SWEEP_CELLS = len(FULL_RATE_GRID) * len(REFERENCE_TRAIN_SEEDS)
#: Cells per GPU the estimate covers.
PACKING = (1, 2, 4)
#: The issue's targets: a bf16 step at MOSI shapes, batch 32, and the whole MOSI sweep on one H200.
GOAL_STEP_S, GOAL_SWEEP_S = 0.1, 30 * 60
#: The step benchmark's processes: (labels of the variants it measures, in order; its flags). --deterministic
#: is process-wide (cuBLAS reads its workspace setting once), so it gets its own process.
STEP_PROCESSES = (
    (("fast", "plain", "fast bf16"), ["--variants", "fast", "plain", "fast:bf16"]),
    (("fast deterministic",), ["--variant", "fast", "--deterministic"]),
)
#: Lines of a failed stage's output kept in the record.
TAIL_CHARS = 3000


@dataclass(frozen=True)
class Plan:
    """The sizes of one check: MOSI on a GPU, the tiny preset for the CPU dry run."""

    device: str
    shapes: str  # bench/train_step_speed.py --shapes
    batch: int
    warmup: int
    repeats: int
    threads: int
    dataset: str  # synthetic preset and config preset of the training cell
    bert: str
    packing: tuple[int, ...]
    budget_s: int
    #: Each stage's own timeout is multiplied by this; the CPU dry run leaves it to the overall budget, since a
    #: loaded test machine can take minutes just to start a process.
    stage_timeout_scale: float = 1.0
    #: run.py --set overrides of the training cell: none on the GPU (the full cell is what is timed); the dry
    #: run trains one epoch, which goes through the same code.
    cell_overrides: tuple[str, ...] = ()


def plan_for(device: str, budget_s: int) -> Plan:
    if device == "cpu":
        return Plan("cpu", "tiny", 2, 1, 1, 1, "tiny", "random:tiny", (1, 2), budget_s, stage_timeout_scale=100.0,
                    cell_overrides=("max_epochs=1",))
    return Plan(device, "mosi", 32, 3, 10, 4, "mosi", "random:base", PACKING, budget_s)


class Stages:
    """Runs commands against one deadline and records each stage's status, time and (on failure) output."""

    def __init__(self, budget_s: int, timeout_scale: float = 1.0):
        self.deadline = time.monotonic() + budget_s
        self.timeout_scale = timeout_scale
        self.status: dict[str, dict] = {}

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def run(self, name: str, command: list[str], timeout_s: float, env: dict | None = None) -> str | None:
        """stdout of ``command``, or None (status recorded) when it failed, timed out or no time was left."""
        timeout = min(timeout_s * self.timeout_scale, self.remaining())
        if timeout <= 0:
            self.status[name] = {"status": "skipped", "why": "the overall budget was spent"}
            return None
        start = time.monotonic()
        try:
            done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                                  env={**os.environ, **(env or {})})
        except subprocess.TimeoutExpired as err:
            output = (err.stdout or b"").decode() if isinstance(err.stdout, bytes) else (err.stdout or "")
            self.status[name] = {"status": "timeout", "seconds": round(timeout, 1), "tail": output[-TAIL_CHARS:]}
            return None
        seconds = round(time.monotonic() - start, 1)
        if done.returncode != 0:
            self.status[name] = {"status": "failed", "rc": done.returncode, "seconds": seconds,
                                 "tail": (done.stdout + done.stderr)[-TAIL_CHARS:]}
            return None
        self.status[name] = {"status": "ok", "seconds": seconds}
        return done.stdout


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def cuda_tier(plan: Plan, stages: Stages) -> dict:
    """pytest's summary of the CUDA tier (every test skips in the CPU dry run)."""
    out = stages.run("cuda tier", [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider",
                                   "tests/test_cuda.py"], timeout_s=240)
    status = stages.status["cuda tier"]
    text = out if out is not None else status.get("tail", "")
    summary = re.findall(r"\d+ (?:passed|failed|skipped|error)", text)
    return {**status, "summary": ", ".join(summary)}


def bench_command(plan: Plan, flags: list[str]) -> list[str]:
    return [sys.executable, str(REPO / "bench" / "train_step_speed.py"), *flags, "--batch", str(plan.batch),
            "--shapes", plan.shapes, "--device", plan.device, "--warmup", str(plan.warmup),
            "--repeats", str(plan.repeats), "--threads", str(plan.threads)]


def step_benchmarks(plan: Plan, stages: Stages) -> dict:
    """Median step time and peak memory of each variant, by label."""
    results = {}
    for labels, flags in STEP_PROCESSES:
        out = stages.run(f"steps: {', '.join(labels)}", bench_command(plan, flags), timeout_s=90 * len(labels))
        if out is None:
            continue
        for label, line in zip(labels, out.strip().splitlines()[-len(labels):]):
            record = json.loads(line)
            results[label] = {key: record.get(key) for key in
                              ("median_s", "times_s", "peak_cuda_gb", "peak_rss_gb", "device", "amp", "deterministic", "tf32")}
    return results


def packed_steps(plan: Plan, stages: Stages, single: dict | None) -> dict:
    """Median fast step time with k processes sharing the device, for each k of the plan (k = 1 measured alone)."""
    medians = {1: single["median_s"]} if single else {}
    for k in plan.packing:
        if k == 1:
            continue
        name = f"packing {k}"
        timeout = min(180 * stages.timeout_scale, stages.remaining())
        if timeout <= 0:
            stages.status[name] = {"status": "skipped", "why": "the overall budget was spent"}
            continue
        start = time.monotonic()
        procs = [subprocess.Popen(bench_command(plan, ["--variant", "fast"]), cwd=REPO, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(k)]
        try:
            outs = [p.communicate(timeout=max(1.0, timeout - (time.monotonic() - start))) for p in procs]
        except subprocess.TimeoutExpired:
            for p in procs:
                p.kill()
                p.wait()
            stages.status[name] = {"status": "timeout", "seconds": round(timeout, 1)}
            continue
        seconds = round(time.monotonic() - start, 1)
        if any(p.returncode for p in procs):
            tail = "".join(err for _, err in outs)[-TAIL_CHARS:]
            stages.status[name] = {"status": "failed", "seconds": seconds, "tail": tail}
            continue
        stages.status[name] = {"status": "ok", "seconds": seconds}
        medians[k] = max(last_json(out)["median_s"] for out, _ in outs)  # a round lasts as long as its slowest
    return medians


def training_cell(plan: Plan, stages: Stages, work: Path) -> dict | None:
    """One run.py cell on the synthetic preset: its seconds, epochs and test metrics."""
    made = stages.run("synthetic data", [sys.executable, "-m", "preprocess.make_synthetic", "--preset", plan.dataset,
                                         "--out", str(work / "data")], timeout_s=180)
    if made is None:
        return None
    out_dir = work / "cell"
    command = [sys.executable, str(REPO / "run.py"), "--dataset", plan.dataset, "--data-root", str(work / "data"),
               "--bert", plan.bert, "--device", plan.device, "--missing-rate", "0.5", "--seeds",
               str(REFERENCE_TRAIN_SEEDS[0]), "--out", str(out_dir), "--no-progress"]
    if plan.cell_overrides:
        command += ["--set", *plan.cell_overrides]
    ran = stages.run("training cell", command, timeout_s=300, env={"OMP_NUM_THREADS": str(plan.threads)})
    cells = sorted(out_dir.glob("cells/*/*.json"))
    if ran is None or not cells:
        stages.status["training cell"].update(finished_epochs(out_dir))
        return None
    record = json.loads(cells[0].read_text())
    return {"seconds": record["seconds"], "epochs": record["epochs"], "best_epoch": record["best_epoch"],
            "seconds_per_epoch": round(record["seconds"] / max(1, record["epochs"]), 2), "test": record["test"]}


#: An epoch line of run.py's log file: "<date> <time>,<ms> INFO trains.trainer.epochs: epoch N | train ...".
EPOCH_LINE = re.compile(r"^(\S+ \S+),\d+ \S+ \S+ epoch (\d+) \| train")


def finished_epochs(out_dir: Path) -> dict:
    """How far an unfinished cell got, from its log: epochs finished and seconds per epoch (between the first
    and the last epoch line), so that a cell cut by the budget still says what an epoch costs."""
    lines = [m for log in out_dir.glob("logs/*.log") for m in map(EPOCH_LINE.match, log.read_text().splitlines()) if m]
    if not lines:
        return {"epochs_finished": 0}
    stamps = [time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) for m in lines]
    per_epoch = (stamps[-1] - stamps[0]) / (len(lines) - 1) if len(lines) > 1 else None
    return {"epochs_finished": len(lines), "seconds_per_epoch": per_epoch}


def sweep_estimate(cell_s: float | None, packed: dict) -> dict:
    """Seconds for the full sweep with k cells per GPU: ceil(cells / k) rounds of one cell's time, slowed by
    the packed step's time over the single step's."""
    if cell_s is None or 1 not in packed:
        return {}
    return {k: round(math.ceil(SWEEP_CELLS / k) * cell_s * packed[k] / packed[1], 1) for k in sorted(packed)}


def table(record: dict) -> str:
    lines = [f"GPU check on {record['device']} ({record['plan']['shapes']} shapes, batch {record['plan']['batch']})",
             "", f"{'stage':36} {'status':9} {'seconds':>8}"]
    for name, status in record["stages"].items():
        lines.append(f"{name:36} {status['status']:9} {status.get('seconds', ''):>8}")
    lines += ["", f"CUDA tier: {record['cuda_tier'].get('summary') or record['cuda_tier']['status']}", "",
              f"{'step variant':20} {'median s':>9} {'peak CUDA GB':>13} {'peak RSS GB':>12}"]
    for label, step in record["steps"].items():
        cuda_gb = "" if step.get("peak_cuda_gb") is None else f"{step['peak_cuda_gb']:.2f}"
        lines.append(f"{label:20} {step['median_s']:9.4f} {cuda_gb:>13} {step['peak_rss_gb']:12.2f}")
    for k, median in record["packed_step_s"].items():
        lines.append(f"fast, {k} per device{'':5} {median:9.4f}")
    cell = record["cell"]
    if cell:
        lines += ["", f"training cell: {cell['seconds']} s, {cell['epochs']} epochs (best {cell['best_epoch']}), "
                      f"{cell['seconds_per_epoch']} s per epoch"]
    for k, seconds in record["sweep_estimate_s"].items():
        lines.append(f"full MOSI sweep ({SWEEP_CELLS} cells), {k} cell(s) per GPU: about {seconds / 60:.1f} min")
    lines += ["", "goals: " + json.dumps(record["goals"])]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda or cuda:N (the check), or cpu (the dry run)")
    parser.add_argument("--out", type=Path, help="JSON record (default bench/results/gpu_check-<time>.json)")
    parser.add_argument("--budget", type=int, default=450, help="seconds for all stages together")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    args = parser.parse_args(argv)
    if args.device != "cpu" and not args.device.startswith("cuda"):
        parser.error(f"--device must be cuda, cuda:N or cpu, got {args.device!r}")
    import torch

    if args.device != "cpu" and not torch.cuda.is_available():
        print("error: no CUDA device is visible; `--device cpu` runs the dry run", file=sys.stderr)
        return 2
    plan = plan_for(args.device, args.budget)
    stages = Stages(args.budget, plan.stage_timeout_scale)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="gpu_check-", dir=args.work) as work:
        tier = cuda_tier(plan, stages)
        steps = step_benchmarks(plan, stages)
        cell = training_cell(plan, stages, Path(work))  # before packing: the sweep estimate needs it most
        packed = packed_steps(plan, stages, steps.get("fast"))
    estimate = sweep_estimate(cell["seconds"] if cell else None, packed)
    bf16 = steps.get("fast bf16", {}).get("median_s")
    record = {
        "format": "emt-dlfr-gpu-check/1",
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "device": torch.cuda.get_device_name(torch.device(args.device)) if plan.device != "cpu" else "cpu",
        "torch": torch.__version__,
        "plan": asdict(plan),
        "stages": stages.status,
        "cuda_tier": tier,
        "steps": steps,
        "packed_step_s": packed,
        "cell": cell,
        "sweep_cells": SWEEP_CELLS,
        "sweep_estimate_s": estimate,
        "goals": {
            f"bf16 step <= {GOAL_STEP_S} s": None if bf16 is None else bf16 <= GOAL_STEP_S,
            "sweep < 30 min (best packing)": None if not estimate else min(estimate.values()) < GOAL_SWEEP_S,
        },
        "total_s": round(time.time() - started, 1),
    }
    out = args.out or REPO / "bench" / "results" / f"gpu_check-{time.strftime('%Y%m%d-%H%M%S')}.json"
    atomic_write_json(out, record)
    print(table(record))
    print(f"\nrecord: {out}")
    failed = [name for name, status in stages.status.items() if status["status"] != "ok"]
    if failed or "failed" in tier.get("summary", ""):
        print(f"not ok: {', '.join(failed) or 'cuda tier'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
