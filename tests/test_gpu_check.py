"""bench/gpu_check.sh's CPU dry run (the tiny preset), exactly as a user types it, and the step benchmark's
flags reaching every mode; the learning benchmark handing run.py flags through."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bench import gpu_check
from bench import train_step_speed as step_bench

ROOT = Path(__file__).resolve().parent.parent
DRY_RUN_BUDGET_S = 1200


@pytest.mark.slow
def test_gpu_check_dry_run_on_the_cpu(tmp_path):
    out = tmp_path / "record.json"
    # a generous budget: on a loaded test machine each stage's process start alone can take tens of seconds
    command = ["bash", "bench/gpu_check.sh", "--device", "cpu", "--out", str(out), "--work", str(tmp_path),
               "--budget", str(DRY_RUN_BUDGET_S)]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=2 * DRY_RUN_BUDGET_S)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    record = json.loads(out.read_text())
    assert all(stage["status"] == "ok" for stage in record["stages"].values()), record["stages"]
    assert "skipped" in record["cuda_tier"]["summary"] and "failed" not in record["cuda_tier"]["summary"]
    assert set(record["steps"]) == {"fast", "plain", "fast bf16", "fast deterministic"}
    assert record["steps"]["fast bf16"]["amp"] == "bf16" and record["steps"]["fast deterministic"]["deterministic"]
    assert all(step["median_s"] > 0 and step["device"] == "cpu" for step in record["steps"].values())
    assert set(record["packed_step_s"]) == {"1", "2"}
    assert record["cell"]["epochs"] >= 1 and record["cell"]["seconds"] > 0
    # ceil(33 / k) rounds of one cell, each slowed by the packed step time
    packed, cell = record["packed_step_s"], record["cell"]["seconds"]
    assert record["sweep_estimate_s"]["1"] == pytest.approx(33 * cell, rel=1e-3)
    assert record["sweep_estimate_s"]["2"] == pytest.approx(17 * cell * packed["2"] / packed["1"], rel=1e-2)
    assert "full MOSI sweep (33 cells), 2 cell(s) per GPU" in done.stdout


def test_sweep_estimate_rounds():
    assert gpu_check.sweep_estimate(60.0, {1: 0.1, 2: 0.15, 4: 0.3}) == {1: 33 * 60.0, 2: 17 * 90.0, 4: 9 * 180.0}
    assert gpu_check.sweep_estimate(None, {1: 0.1}) == {}


def test_step_benchmark_passes_device_flags_to_every_measurement():
    args = step_bench.build_parser().parse_args(["--device", "cuda:1", "--amp", "bf16", "--deterministic",
                                                 "--shapes", "tiny", "--threads", "3"])
    commands = step_bench.default_run_commands(args)
    assert {c[0] for c in commands} == {"--check", "--variant", "--interleave"}
    for command in commands:
        parsed = step_bench.build_parser().parse_args(command)
        assert (parsed.device, parsed.amp, parsed.deterministic, parsed.shapes, parsed.threads) == (
            "cuda:1", "bf16", True, "tiny", 3)
    with pytest.raises(SystemExit):
        step_bench.main(["--breakdown", "--device", "cpu"])  # one variant only: refused, not measured on the CPU


def test_step_benchmark_modes_run_with_the_settings():
    settings = step_bench.Settings(device="cpu", amp="bf16", shapes="tiny")
    check = step_bench.same_results(2, settings)
    assert check["amp"] == "bf16" and check["shapes"] == "tiny" and check["max_abs_output_diff"] < 1.0
    both = step_bench.interleaved(2, repeats=1, warmup=0, settings=settings)
    assert both["amp"] == "bf16" and both["fast_median_s"] > 0 and both["plain_median_s"] > 0


def test_model_step_benchmark_builds_on_the_step_benchmarks_shapes():
    from bench import model_step

    assert model_step.MOSI == step_bench.SHAPES["mosi"]
    assert model_step.build.__module__ == "bench.model_step"


def test_an_unfinished_cell_still_reports_its_epochs(tmp_path):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "run.log").write_text(
        "2026-11-30 10:00:00,001 INFO emt_dlfr: device: cuda:0\n"
        "2026-11-30 10:00:10,002 INFO trains.trainer.epochs: epoch 1 | train Loss=1.0 | valid Loss=1.0 | best\n"
        "2026-11-30 10:00:22,003 INFO trains.trainer.epochs: epoch 2 | train Loss=0.9 | valid Loss=0.9 | best\n"
        "2026-11-30 10:00:34,004 INFO trains.trainer.epochs: epoch 3 | train Loss=0.8 | valid Loss=1.1\n")
    assert gpu_check.finished_epochs(tmp_path) == {"epochs_finished": 3, "seconds_per_epoch": 12.0}


def test_learning_demo_hands_the_flags_after_a_double_dash_to_run_py(tmp_path, monkeypatch, capsys):
    import run
    from bench import learning_demo
    from config import get_config

    data_root = tmp_path / "data"
    (data_root / get_config("demo").data_file).parent.mkdir(parents=True)
    (data_root / get_config("demo").data_file).write_bytes(b"")  # present: the benchmark does not regenerate it
    calls = []

    def fake_run(argv):
        calls.append(argv)
        out = Path(argv[argv.index("--out") + 1])
        out.mkdir(parents=True)
        mean = {"MAE": 80.0, "Corr": 50.0, "Has0_acc_2": 70.0, "Non0_acc_2": 71.0, "Mult_acc_7": 30.0}
        (out / "results.json").write_text(json.dumps({"rates": {"0.0": {"mean": mean}}}))
        return 0

    monkeypatch.setattr(run, "main", fake_run)
    assert learning_demo.main(["--rates", "0.0", "--data-root", str(data_root), "--out", str(tmp_path / "o"),
                               "--", "--no-attraction", "--set", "max_epochs=3"]) == 0
    (argv,) = calls
    assert argv[-4:] == ["--no-progress", "--no-attraction", "--set", "max_epochs=3"]
    assert argv[argv.index("--missing-rates") + 1] == "0.0"
    assert "  0.0   0.800   0.500" in capsys.readouterr().out
    assert learning_demo.split_run_flags(["--rates", "0.3"]) == (["--rates", "0.3"], [])
