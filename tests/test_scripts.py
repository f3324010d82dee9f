"""The reproduction scripts as the README prints them: two variants of a whole (small) sweep through
``scripts/mosi/run_once.sh`` itself, each into its own folder, then the README's report command.

The scripts take two environment overrides for this (unset by default, so they run what they always run):
``EMT_DLFR_PRESET`` (the tiny synthetic preset here) and ``EMT_DLFR_RESULTS`` (a temporary results root).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Two rates, one seed, one epoch: the smallest sweep with an AUILC.
SMALL = "--seeds 1 --set max_epochs=1 sweep_rates=0.0,0.5 --no-progress"


def run_script(script: str, arg: str, results: Path, data_root: Path, extra: str = "") -> None:
    env = {**os.environ, "PYTHON": sys.executable, "EMT_DLFR_PRESET": "tiny", "EMT_DLFR_RESULTS": str(results),
           "EXTRA_ARGS": f"--data-root {data_root} {SMALL} {extra}".strip()}
    done = subprocess.run(["bash", script, arg], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_run_once_puts_each_variant_in_its_own_folder_and_the_report_names_both(tiny_root, tmp_path):
    results = tmp_path / "results"
    run_script("scripts/mosi/run_once.sh", "cpu", results, tiny_root)  # EMT-DLFR
    run_script("scripts/mosi/run_once.sh", "cpu", results, tiny_root, "--no-attraction --no-reconstruction")  # EMT
    dlfr, emt = results / "tiny" / "emt-dlfr" / "run_once", results / "tiny" / "emt" / "run_once"
    for folder, variant in ((dlfr, "emt-dlfr"), (emt, "emt")):
        summary = json.loads((folder / "results.json").read_text())
        assert summary["variant"] == variant and sorted(summary["rates"]) == ["0.0", "0.5"]
        assert "auilc" in summary
        config = json.loads((folder / "config.json").read_text())["config"]
        assert (config["use_attraction"], config["use_reconstruction"]) == ((True, True) if variant == "emt-dlfr"
                                                                          else (False, False))
    # the README's command, as printed (with the synthetic results' folders)
    done = subprocess.run([sys.executable, "-m", "utils.report", str(dlfr), str(emt)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = results / "tiny" / "report"
    auilc = (report / "auilc.md").read_text()
    per_rate = (report / "per_rate.md").read_text()
    for label in ("EMT-DLFR", "EMT"):
        assert f"| {label} |" in auilc and f"| {label} |" in done.stdout
        assert f" {label} " in per_rate.splitlines()[4]  # the first table's header row
    assert set(pd.read_csv(report / "per_rate.csv")["variant"]) == {"EMT-DLFR", "EMT"}
    svg = (report / "curves.svg").read_text()
    assert ">EMT-DLFR<" in svg and ">EMT<" in svg  # the figure's legend names both
    assert (report / "curves.png").stat().st_size > 0 and (report / "curves.pdf").stat().st_size > 0
