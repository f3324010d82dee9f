"""--model mult through run.py, the scripts and the report, on the tiny preset."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import run
from utils.errors import ConfigError, UserError
from utils.report import main as report_main
from utils.report import make_report, paper_table

ROOT = Path(__file__).resolve().parent.parent
BASE = ["--model", "mult", "--dataset", "tiny", "--no-progress", "--seeds", "1", "--set", "max_epochs=2"]


@pytest.fixture(scope="module")
def mult_sweep(tiny_root, tmp_path_factory):
    """A MulT sweep at rates 0.0 and 0.5 (one seed, two epochs)."""
    out = tmp_path_factory.mktemp("mult") / "run_once"
    assert run.main([*BASE, "--data-root", str(tiny_root), "--missing-rates", "0.0", "0.5", "--out", str(out)]) == 0
    return out


def test_sweep_records_the_model(mult_sweep):
    config = json.loads((mult_sweep / "config.json").read_text())
    assert config["model"] == "mult" and config["config"]["step_schedule"] == "mmsa"
    results = json.loads((mult_sweep / "results.json").read_text())
    assert results["model"] == results["variant"] == "mult" and set(results["rates"]) == {"0.0", "0.5"}
    assert "auilc" in results


@pytest.mark.slow
def test_script_runs_the_baseline_into_its_own_folder(tiny_root, tmp_path):
    (tmp_path / "scripts").symlink_to(ROOT / "scripts")  # the scripts cd to their repository root
    (tmp_path / "run.py").symlink_to(ROOT / "run.py")
    env = dict(os.environ, MODEL="mult", PYTHON=sys.executable, PYTHONPATH=str(ROOT),
               EXTRA_ARGS=f"--dataset tiny --data-root {tiny_root} --device cpu --seeds 1 --set max_epochs=1 "
                          "--no-progress")
    # the script passes --dataset mosi first; the later --dataset tiny of EXTRA_ARGS wins
    subprocess.run(["bash", str(tmp_path / "scripts" / "mosi" / "run.sh"), "0.5", "0"], env=env, check=True,
                   capture_output=True, timeout=600)
    out = tmp_path / "results" / "mosi" / "mult" / "run"
    assert json.loads((out / "config.json").read_text())["model"] == "mult"
    assert list((out / "models").glob("mult-tiny-regression-mr0.5-1.pth"))


def test_emt_dlfr_flags_are_refused_for_a_baseline(tmp_path):
    for flag in (["--fusion", "ooll"], ["--no-attraction"], ["--no-reconstruction"]):
        with pytest.raises(ConfigError, match=f"{flag[0]}: EMT-DLFR's option"):
            run.main([*BASE, *flag, "--out", str(tmp_path / "o")])
    with pytest.raises(ConfigError, match="unknown config key.*for model mult: use_attraction"):
        run.main([*BASE, "--set", "use_attraction=false", "--out", str(tmp_path / "o")])


def test_a_baseline_does_not_write_into_another_models_folder(mult_sweep, tiny_root, tmp_path):
    emt = tmp_path / "emt"
    shutil.copytree(mult_sweep, emt)
    config = json.loads((emt / "config.json").read_text())
    (emt / "config.json").write_text(json.dumps(config | {"model": "emt-dlfr"}))
    with pytest.raises(ConfigError, match="holds results of model emt-dlfr, not mult"):
        run.main([*BASE, "--data-root", str(tiny_root), "--out", str(emt)])


def test_describe_prints_the_baselines_counts(capsys):
    assert run.main(["--model", "mult", "--dataset", "tiny", "--describe"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["model"] == "mult" and counts["trainable"] == counts["total"] - counts["bert"] > 0


def test_report_labels_and_the_paper_tables(mult_sweep, tmp_path, capsys):
    report = make_report([mult_sweep], tmp_path / "report", paper=True)
    assert "| MulT |" in report["auilc_markdown"]
    # a results tree as the scripts write it, with the tiny sweep standing in for MOSI's
    results = tmp_path / "results"
    shutil.copytree(mult_sweep, results / "mosi" / "mult" / "run_once")
    markdown, found = paper_table(6, results, paper=True)
    lines = markdown.splitlines()
    assert lines[0].startswith("| Model | MOSI MAE | MOSI Corr |") and "MOSEI F1" in lines[0]
    assert [line.split("|")[1].strip() for line in lines[2:]] == [
        "MulT", "TFR-Net", "EMT-DLFR", "MulT (paper)", "TFR-Net (paper)", "EMT-DLFR (paper)"]
    assert "| MulT (paper) | 1.263 | 0.348 | 23.1 | 24.6 | 63.1/63.2 | 60.7/61.0 | 0.700 | 0.504 |" in markdown
    assert lines[3].split("|")[2].strip() == "–" and found == [results / "mosi" / "mult" / "run_once"]
    assert report_main(["--table", "6", "--results", str(results)]) == 0
    assert "| MulT |" in (results / "report" / "table6.md").read_text()
    with pytest.raises(UserError, match="no sweep found"):
        report_main(["--table", "7", "--results", str(results)])


def test_a_diff_missing_run_into_the_sweeps_folder_keeps_its_auilc(mult_sweep, tiny_root, tmp_path):
    out = tmp_path / "run_once"
    shutil.copytree(mult_sweep, out)
    before = json.loads((out / "results.json").read_text())
    assert run.main([*BASE, "--data-root", str(tiny_root), "--diff-missing", "0.0", "0.5", "0.0", "--out", str(out)]) == 0
    after = json.loads((out / "results.json").read_text())
    assert set(after["rates"]) == {"0.0", "0.5", "0-0.5-0"} and after["auilc"] == before["auilc"]
    assert after["rates"]["0.5"] == before["rates"]["0.5"]
