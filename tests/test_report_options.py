"""Report options on a hand-made results folder (cell files written directly, no training): the AUILC over a
chosen range of rates, and the per-modality tables of ``--diff-missing`` cells.

Two seeds per cell. Seed means (x100) at the equal rates 0.0, 0.3, 0.6, 0.9, 1.0: MAE 75, 85, 100, 125, 140 and
Corr 55, 45.5, 27.5, 10.05, 3.5. By hand, over 0.3-0.9 (the rates in [0.1, 0.9]): MAE (85 + 100) / 2 * 0.3 +
(100 + 125) / 2 * 0.3 = 61.5, Corr (45.5 + 27.5) / 2 * 0.3 + (27.5 + 10.05) / 2 * 0.3 = 16.5825 -> 16.6; over
0.0-0.9: MAE 61.5 + (75 + 85) / 2 * 0.3 = 85.5, Corr 16.5825 + (55 + 45.5) / 2 * 0.3 = 31.6575 -> 31.7.

Per-modality cells (text, audio, vision): audio 0.5 and 1.0 with the others at 0 (with the 0.0 cell: an audio
series of three rows), text 0.5 (a text series of two rows), and a lone (0.3, 0.6, 0) in no series. The
aggregate run names only the equal rates, as a sweep does; the report reads the per-modality cells from the
cell files.
"""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from config import get_config
from utils.errors import ConfigError
from utils.report import auilc_in_range, auilc_over, load_sweep, main, modality_series, paper_table
from utils.results import aggregate, prepare_out_dir, write_cell

SEEDS = (1, 2)
#: (MAE, Corr) of seeds 1 and 2 per equal rate.
EQUAL = {
    0.0: ((0.70, 0.80), (0.60, 0.50)),
    0.3: ((0.80, 0.90), (0.50, 0.41)),
    0.6: ((0.95, 1.05), (0.30, 0.25)),
    0.9: ((1.20, 1.30), (0.101, 0.10)),
    1.0: ((1.40, 1.40), (0.05, 0.02)),
}
#: (MAE, Corr) of seeds 1 and 2 per per-modality cell.
PER_MODALITY = {
    (0.0, 0.5, 0.0): ((0.74, 0.78), (0.58, 0.48)),
    (0.0, 1.0, 0.0): ((0.80, 0.84), (0.55, 0.45)),
    (0.5, 0.0, 0.0): ((0.90, 1.00), (0.40, 0.30)),
    (0.3, 0.6, 0.0): ((0.88, 0.92), (0.42, 0.38)),
}


def test_metrics(mae: float, corr: float) -> dict:
    accuracy = 0.8 - mae / 10
    return {"MAE": mae, "Corr": corr, "Mult_acc_7": accuracy / 2, "Mult_acc_5": accuracy / 1.5,
            "Has0_acc_2": accuracy, "Non0_acc_2": accuracy + 0.01, "Has0_F1_score": accuracy - 0.01,
            "Non0_F1_score": accuracy}


test_metrics.__test__ = False  # a helper, not a test


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("report_options") / "sweep"
    cfg = get_config("tiny")
    fingerprint = prepare_out_dir(out, cfg)
    cells = {(r, r, r): values for r, values in EQUAL.items()} | PER_MODALITY
    for rates, (maes, corrs) in cells.items():
        for i, seed in enumerate(SEEDS):
            write_cell(out, {"rates": list(rates), "seed": seed, "fingerprint": fingerprint,
                             "test": test_metrics(maes[i], corrs[i])})
    aggregate(out, cfg, [(r, r, r) for r in EQUAL], SEEDS, fingerprint)
    return out


@pytest.fixture(scope="module")
def default_report(folder, tmp_path_factory):
    """The report of ``folder`` with no option (one report: its figures take a second or two)."""
    out = tmp_path_factory.mktemp("default_report")
    assert main([str(folder), "--out", str(out)]) == 0
    return out


def test_default_range_is_the_recorded_auilc(folder, default_report):
    recorded = json.loads((folder / "results.json").read_text())["auilc"]
    summary = load_sweep(folder)
    assert auilc_over(summary, (0.0, 1.0), folder) == (recorded, [0.0, 0.3, 0.6, 0.9, 1.0])
    # the range rule over 0.0-1.0 gives the reference's row as aggregate() recorded it
    assert auilc_in_range(summary, 0.0, 1.0, folder)[0] == recorded
    table = (default_report / "auilc.md").read_text()
    assert "AUILC over the missing rates" not in table
    assert f"| {recorded['MAE'] / 100:.3f} | {recorded['Corr'] / 100:.3f} |" in table


def test_a_narrower_range_is_the_trapezoid_over_its_rates(folder, tmp_path, capsys):
    summary = load_sweep(folder)
    area, rates = auilc_over(summary, (0.0, 0.9), folder)
    assert rates == [0.0, 0.3, 0.6, 0.9] and (area["MAE"], area["Corr"]) == (85.5, 31.7)
    assert main([str(folder), "--out", str(tmp_path), "--auilc-range", "0.1", "0.9", "--paper"]) == 0
    printed = capsys.readouterr().out
    table = (tmp_path / "auilc.md").read_text()
    for text in (printed, table):
        assert "AUILC over the missing rates in [0.1, 0.9] (rates 0.3, 0.6, 0.9), not the reference's 0.0-1.0" in text
        assert "| EMT-DLFR | 0.615 | 0.166 |" in text  # MAE 61.5, Corr 16.6 (x100), as fractions
    assert "AUILC over 0.1-0.9" in (tmp_path / "curves.svg").read_text()


def test_the_paper_table_over_a_range(folder, tmp_path):
    shutil.copytree(folder, tmp_path / "mosi" / "emt-dlfr" / "run_once")
    default, _ = paper_table(6, tmp_path, paper=True)
    assert "(paper)" in default and "AUILC over" not in default
    markdown, found = paper_table(6, tmp_path, paper=True, auilc_range=(0.1, 0.9))
    assert found == [tmp_path / "mosi" / "emt-dlfr" / "run_once"]
    assert markdown.startswith("AUILC over the missing rates in [0.1, 0.9] (rates 0.3, 0.6, 0.9), not the "
                               "reference's 0.0-1.0; the paper's published rows, which are over 0.0-1.0, are left out.")
    assert "(paper)" not in markdown
    assert "| EMT-DLFR | 0.615 | 0.166 |" in markdown


@pytest.mark.parametrize("lo, hi, message", [
    ("0.9", "0.1", "0 <= LO < HI <= 1"),
    ("0.5", "0.5", "0 <= LO < HI <= 1"),
    ("-0.1", "0.5", "0 <= LO < HI <= 1"),
    ("0.2", "1.5", "0 <= LO < HI <= 1"),
    ("0.95", "1.0", "fewer than two swept rates in that range (found: 1.0)"),
    ("0.1", "0.2", "fewer than two swept rates in that range (found: none)"),
])
def test_bad_ranges_are_refused(folder, tmp_path, lo, hi, message):
    with pytest.raises(ConfigError, match=r"^--auilc-range .*" + message.replace("(", r"\(").replace(")", r"\)")) as error:
        main([str(folder), "--out", str(tmp_path / "report"), "--auilc-range", lo, hi])
    assert "\n" not in str(error.value)
    assert not (tmp_path / "report").exists()


def test_per_modality_series():
    cells = [(0.0, 0.0, 0.0), (0.3, 0.3, 0.3), (0.0, 0.5, 0.0), (0.0, 1.0, 0.0), (0.5, 0.0, 0.0), (0.3, 0.6, 0.0)]
    assert modality_series(cells) == [
        (0, [(0.0, 0.0, 0.0), (0.5, 0.0, 0.0)]),
        (1, [(0.0, 0.0, 0.0), (0.0, 0.5, 0.0), (0.0, 1.0, 0.0)]),
    ]
    assert modality_series([(r, r, r) for r in (0.0, 0.5, 1.0)]) == []  # an equal-rate sweep has none


def test_per_modality_tables_from_every_cell_file(default_report):
    markdown = (default_report / "per_modality.md").read_text()
    assert "## EMT-DLFR: audio missing, text 0 and vision 0 fixed" in markdown
    assert "## EMT-DLFR: text missing, audio 0 and vision 0 fixed" in markdown
    assert "vision missing" not in markdown
    audio = markdown.split("audio missing")[1].split("##")[0]
    assert [line.split(" | ")[0] for line in audio.splitlines() if line.startswith("| ") and "±" in line] == \
        ["| 0", "| 0.5", "| 1"]
    assert "| audio rate | MAE | Corr | Acc-7 | Acc-5 | Acc-2 Has0 | Acc-2 Non0 | F1 Has0 | F1 Non0 | seeds |" in markdown
    assert "| 0.5 | 0.760 ± 0.020 | 0.530 ± 0.050 |" in audio  # MAE (0.74, 0.78), Corr (0.58, 0.48)
    long = pd.read_csv(default_report / "per_modality.csv")
    corr = long[(long.metric == "Corr") & (long.modality == "text")].sort_values("rate_text")
    assert corr["mean"].round(6).tolist() == [0.55, 0.35] and corr["seeds"].tolist() == ["1 2", "1 2"]
    assert not ((long.rate_text == 0.3) & (long.rate_audio == 0.6)).any()  # the lone cell is in no series
