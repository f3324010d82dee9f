"""run.py end to end on the tiny synthetic preset: result files, resumable sweeps, shards, workers, report."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import run
from trains import experiment, sweep
from utils.errors import ConfigError
from utils.report import make_report

ROOT = Path(__file__).resolve().parent.parent
BASE = ["--dataset", "tiny", "--no-progress", "--set", "max_epochs=2"]
#: Whole sweeps in this process and in subprocesses: collected first (tests/conftest.py).
pytestmark = pytest.mark.slow


def run_tiny(root, out, *extra):
    return run.main([*BASE, "--data-root", str(root), "--out", str(out), *extra])


def stable(summary: dict) -> dict:
    """The aggregate without wall-clock fields."""
    return json.loads(json.dumps(summary["rates"])) | {"auilc": summary.get("auilc")}


@pytest.fixture(scope="module")
def reference_sweep(tiny_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "full"
    assert run_tiny(tiny_root, out, "--missing-rates", "0.0", "0.5", "--seeds", "1", "2") == 0
    return out


def test_sweep_writes_reference_style_results(reference_sweep):
    normals = reference_sweep / "normals"
    per_rate = pd.read_csv(normals / "tiny-regression-0.5.csv")
    assert per_rate.loc[0, "Model"] == "emt-dlfr" and per_rate.loc[0, "MAE"].startswith("(")
    detail = pd.read_csv(normals / "tiny-regression-0.0-detail.csv")
    assert list(detail["Seed"]) == ["1", "2", "<mean/std>", "<max/seed>", "<min/seed>"]
    agg = pd.read_csv(normals / "tiny-regression-aggregated.csv")
    assert list(agg["rate"].astype(str)) == ["0.0", "0.5", "AUC"]
    results = json.loads((reference_sweep / "results.json").read_text())
    mae = [results["rates"][r]["mean"]["MAE"] for r in ("0.0", "0.5")]
    assert results["auilc_unrounded"]["MAE"] == pytest.approx((mae[0] + mae[1]) / 2 * 0.5)
    rounded = [float(np.round(m, 2)) for m in mae]  # the reference's AUC row: rounded means, 1 decimal
    assert results["auilc"]["MAE"] == float(np.round((rounded[0] + rounded[1]) / 2 * 0.5, 1))
    assert agg.loc[2, "MAE"] == results["auilc"]["MAE"] and results["auilc_rates"] == [0.0, 0.5]
    seeds = results["rates"]["0.0"]["per_seed"]
    assert results["rates"]["0.0"]["mean"]["Corr"] == pytest.approx((seeds["1"]["Corr"] + seeds["2"]["Corr"]) / 2)
    spread = abs(seeds["1"]["Corr"] - seeds["2"]["Corr"]) / 2  # population std of two values (np.std, ddof=0)
    assert results["rates"]["0.0"]["std"]["Corr"] == pytest.approx(spread)
    config = json.loads((reference_sweep / "config.json").read_text())["config"]
    assert config["dataset"] == "tiny" and config["max_epochs"] == 2
    assert list((reference_sweep / "logs").glob("*.log"))


def test_rerun_skips_finished_cells(reference_sweep, tiny_root, monkeypatch):
    def fail(*a, **k):
        raise AssertionError("a finished cell was run again")

    monkeypatch.setattr(experiment, "run_cell", fail)
    assert run_tiny(tiny_root, reference_sweep, "--missing-rates", "0.0", "0.5", "--seeds", "1", "2") == 0


def test_same_command_gives_identical_results(reference_sweep, tiny_root, tmp_path):
    assert run_tiny(tiny_root, tmp_path / "again", "--missing-rates", "0.0", "0.5", "--seeds", "1", "2") == 0
    for name in ("tiny-regression-aggregated.csv", "tiny-regression-0.5-detail.csv"):
        assert (tmp_path / "again" / "normals" / name).read_bytes() == (reference_sweep / "normals" / name).read_bytes()


def test_interrupted_sweep_resumes_to_the_same_aggregate(reference_sweep, tiny_root, tmp_path, monkeypatch):
    out = tmp_path / "interrupted"
    real_fit = experiment.Trainer.fit
    calls = {"n": 0}

    def fit_then_die(self, loaders, checkpoint_path=None):
        calls["n"] += 1
        if calls["n"] == 3:  # the third cell dies mid-training
            raise KeyboardInterrupt
        return real_fit(self, loaders, checkpoint_path)

    monkeypatch.setattr(experiment.Trainer, "fit", fit_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_tiny(tiny_root, out, "--missing-rates", "0.0", "0.5", "--seeds", "1", "2")
    assert len(list(out.glob("cells/*/*.json"))) == 2  # finished cells kept, nothing half-written
    monkeypatch.setattr(experiment.Trainer, "fit", real_fit)
    assert run_tiny(tiny_root, out, "--missing-rates", "0.0", "0.5", "--seeds", "1", "2") == 0
    resumed = json.loads((out / "results.json").read_text())
    full = json.loads((reference_sweep / "results.json").read_text())
    assert stable(resumed) == stable(full)


def test_shards_merge_to_the_unsharded_result(reference_sweep, tiny_root, tmp_path):
    args = ["--missing-rates", "0.0", "0.5", "--seeds", "1", "2"]
    for i in range(2):
        assert run_tiny(tiny_root, tmp_path / f"shard{i}", *args, "--shard", f"{i}/2", "--no-aggregate") == 0
    assert len(list((tmp_path / "shard0").glob("cells/*/*.json"))) == 2
    assert run_tiny(tiny_root, tmp_path / "merged", *args, "--merge", str(tmp_path / "shard0"), str(tmp_path / "shard1")) == 0
    merged = json.loads((tmp_path / "merged" / "results.json").read_text())
    assert stable(merged) == stable(json.loads((reference_sweep / "results.json").read_text()))


def test_other_config_into_same_out_is_refused(reference_sweep, tiny_root):
    from utils.errors import ConfigError

    with pytest.raises(ConfigError, match="another config.*d_model"):
        run_tiny(tiny_root, reference_sweep, "--missing-rate", "0.0", "--seeds", "1", "--set", "d_model=8")


def test_gpu_worker_plan():
    assert run.parse_devices("0,2") == ["cuda:0", "cuda:2"]
    argv = ["--dataset", "mosi", "--gpus", "0,2", "--sweep", "--device=cpu"]
    workers = run.worker_commands(argv, ["cuda:0", "cuda:2"], environ={"PATH": "/bin"})
    assert len(workers) == 2
    for k, worker in enumerate(workers):
        cmd = worker.command
        assert "--gpus" not in cmd and "--device=cpu" not in cmd
        # each worker sees its own GPU only, as its device cuda (= cuda:0 inside the worker)
        assert cmd[cmd.index("--device") + 1] == "cuda"
        assert worker.env == {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": ["0", "2"][k]}
        assert worker.device == ["cuda:0", "cuda:2"][k]
        assert cmd[cmd.index("--shard") + 1] == f"{k}/2"
    cells = sweep.all_cells([(0.0,) * 3, (0.5,) * 3], [1, 2, 3])
    shards = [sweep.select_shard(cells, (k, 2)) for k in range(2)]
    assert sorted(shards[0] + shards[1]) == sorted(cells) and not set(shards[0]) & set(shards[1])


def test_workers_pack_on_one_gpu_and_follow_the_parents_visible_gpus():
    packed = run.worker_commands(["--sweep"], run.parse_devices("0,0,0,0"), environ={})
    assert [w.env["CUDA_VISIBLE_DEVICES"] for w in packed] == ["0"] * 4
    assert [w.command[w.command.index("--shard") + 1] for w in packed] == ["0/4", "1/4", "2/4", "3/4"]
    # indices count within the parent's CUDA_VISIBLE_DEVICES, as torch's cuda:N would
    mapped = run.worker_commands(["--sweep"], ["cuda:1", "cuda:0"], environ={"CUDA_VISIBLE_DEVICES": "4,6"})
    assert [w.env["CUDA_VISIBLE_DEVICES"] for w in mapped] == ["6", "4"]
    with pytest.raises(ConfigError, match="only 2 GPU"):
        run.worker_commands(["--sweep"], ["cuda:2"], environ={"CUDA_VISIBLE_DEVICES": "4,6"})
    cpu = run.worker_commands(["--sweep"], ["cpu", "cpu"], environ={"CUDA_VISIBLE_DEVICES": "1"})
    assert all(w.env == {"CUDA_VISIBLE_DEVICES": "1"} and w.command[w.command.index("--device") + 1] == "cpu" for w in cpu)


def test_parallel_workers_match_sequential(reference_sweep, tiny_root, tmp_path):
    out = tmp_path / "parallel"
    cmd = [sys.executable, str(ROOT / "run.py"), *BASE, "--data-root", str(tiny_root), "--out", str(out),
           "--missing-rates", "0.0", "0.5", "--seeds", "1", "2", "--gpus", "cpu,cpu"]
    subprocess.run(cmd, check=True, cwd=ROOT, capture_output=True, timeout=600)
    parallel = json.loads((out / "results.json").read_text())
    assert stable(parallel) == stable(json.loads((reference_sweep / "results.json").read_text()))


def test_report_renders_tables_and_figures(reference_sweep, tmp_path):
    report = make_report([reference_sweep], tmp_path / "report", paper=True)
    assert "| EMT-DLFR |" in report["auilc_markdown"]
    assert "paper" not in report["auilc_markdown"]  # no published values for the synthetic preset
    for name in ("auilc.csv", "per_rate.md", "per_rate.csv", "curves.png", "curves.pdf"):
        assert (tmp_path / "report" / name).stat().st_size > 0
    long = pd.read_csv(tmp_path / "report" / "per_rate.csv")
    assert set(long["rate"]) == {0.0, 0.5}


def test_report_puts_variants_side_by_side_with_the_paper_row(reference_sweep, tmp_path):
    import shutil

    as_mosi = tmp_path / "emt"
    shutil.copytree(reference_sweep, as_mosi)
    summary = json.loads((as_mosi / "results.json").read_text())
    summary.update(dataset="mosi", variant="emt", name="emt")
    (as_mosi / "results.json").write_text(json.dumps(summary))
    report = make_report([reference_sweep, as_mosi], tmp_path / "report", paper=True)
    lines = report["auilc_markdown"].splitlines()
    assert [line.split("|")[1].strip() for line in lines[2:]] == ["EMT-DLFR", "EMT", "EMT-DLFR (paper, Table 6)"]
    assert "| EMT-DLFR (paper, Table 6) | 1.106 | 0.486 | 32.5 | 35.6 | 69.6/70.3 | 69.6/70.3 |" in lines
    per_rate = (tmp_path / "report" / "per_rate.md").read_text()
    assert "| rate | EMT-DLFR | EMT |" in per_rate


@pytest.mark.parametrize("args,message", [
    (["--dataset", "nope"], "unknown dataset 'nope'"),
    (["--dataset", "tiny", "--missing-rate", "1.5"], "missing rate 1.5 is outside"),
    (["--dataset", "tiny", "--set", "bogus=1"], "unknown config key"),
    (["--dataset", "tiny", "--data-root", "EMPTY"], "TINY/Processed/unaligned_12.pkl"),
])
def test_user_errors_are_one_clear_message(args, message, tmp_path, monkeypatch):
    from utils.errors import UserError

    monkeypatch.delenv("MMSA_DATA_ROOT", raising=False)
    args = [str(tmp_path / "empty") if a == "EMPTY" else a for a in args]
    with pytest.raises(UserError, match=message):
        run.main([*args, "--out", str(tmp_path / "o"), "--no-progress"])


def test_user_error_exits_with_status_2_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "--dataset", "tiny", "--seeds", "1", "--missing-rate",
                           "-0.1", "--out", str(tmp_path / "o")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: missing rate -0.1 is outside [0, 1]") and "Traceback" not in proc.stderr


def test_slurm_job_array_script(reference_sweep, tiny_root, tmp_path):
    import os

    out = tmp_path / "slurm"
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(out), RATES="0.0 0.5", SEEDS="1 2",
               EXTRA_ARGS=f"--data-root {tiny_root} --device cpu --set max_epochs=2",
               SLURM_ARRAY_TASK_COUNT="2", SLURM_ARRAY_TASK_MIN="1", SLURM_SUBMIT_DIR=str(ROOT))
    script = str(ROOT / "scripts" / "slurm" / "sweep.sbatch")
    for task in ("1", "2"):
        subprocess.run(["bash", script, "tiny"], env=dict(env, SLURM_ARRAY_TASK_ID=task), check=True,
                       capture_output=True, timeout=600)
    subprocess.run(["bash", script, "tiny", "aggregate"], env=env, check=True, capture_output=True, timeout=600)
    merged = json.loads((out / "results.json").read_text())
    assert stable(merged) == stable(json.loads((reference_sweep / "results.json").read_text()))


def test_bf16_autocast_path_runs(tiny_root, tmp_path):
    """--amp bf16 (meant for GPUs) goes through torch.autocast; on the CPU it must still train and test."""
    assert run_tiny(tiny_root, tmp_path / "amp", "--missing-rate", "0.5", "--seeds", "1", "--amp", "bf16",
                    "--set", "max_epochs=1") == 0
    record = json.loads(next((tmp_path / "amp").glob("cells/*/*.json")).read_text())
    assert all(np.isfinite(v) for k, v in record["test"].items() if k in ("MAE", "Loss"))


def test_reference_like_computation_by_option(tiny_root, tmp_path, monkeypatch):
    """--set fast_path=false trains on the plain path (one padded view at a time) with per-parameter Adam."""
    import dataclasses

    from trains import experiment, optim, registry

    built = {}
    real_model_for, real_optimizer = experiment.model_for, optim.build_optimizer

    def spy_model_for(cfg, datasets, **kwargs):
        built["model"] = real_model_for(cfg, datasets, **kwargs)
        return built["model"]

    def spy_optimizer(cfg, model, policy):
        built["optimizer"] = real_optimizer(cfg, model, policy)
        return built["optimizer"]

    monkeypatch.setattr(experiment, "model_for", spy_model_for)
    spec = dataclasses.replace(registry.MODEL_SPECS["emt-dlfr"], optimizer=spy_optimizer)
    monkeypatch.setitem(registry.MODEL_SPECS, "emt-dlfr", spec)
    assert run_tiny(tiny_root, tmp_path / "plain", "--missing-rate", "0.5", "--seeds", "1",
                    "--set", "max_epochs=1", "fast_path=false") == 0
    policy = built["model"].policy
    assert not policy.stack_views and not policy.pack_tokens and policy.attention == "explicit"
    assert not built["optimizer"].defaults["fused"]
    record = json.loads(next((tmp_path / "plain").glob("cells/*/*.json")).read_text())
    assert all(np.isfinite(v) for k, v in record["test"].items() if k in ("MAE", "Loss"))


def test_save_flags_on_a_rerun_say_that_finished_cells_are_not_saved(tmp_path, caplog):
    from utils.results import model_file

    cfg = run.get_config("tiny")
    finished = [((0.0, 0.0, 0.0), 1), ((0.5, 0.5, 0.5), 1)]
    model_file(tmp_path, cfg, (0.0, 0.0, 0.0), 1).parent.mkdir(parents=True)
    model_file(tmp_path, cfg, (0.0, 0.0, 0.0), 1).touch()  # this cell was trained with --save-model
    with caplog.at_level(logging.WARNING):
        sweep.warn_unsaved(tmp_path, cfg, finished, save_model=True, save_predictions=True)
    assert "--save-model: 1 finished cell(s)" in caplog.text and "rates (0.5, 0.5, 0.5), seed 1" in caplog.text
    assert "--save-predictions: 2 finished cell(s)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        sweep.warn_unsaved(tmp_path, cfg, finished, save_model=False, save_predictions=False)
    assert caplog.text == ""
