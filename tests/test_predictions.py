"""Using a trained model: --save-predictions, run.py --evaluate and python -m predict, end to end on ``tiny``."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import predict
import run
from config import get_config
from data.load_data import MMSADataset, build_loaders, load_mmsa, ordered_loader
from trains.model_file import load_model_file
from trains.predictions import COLUMNS, metrics_from_csv
from trains.trainer import evaluate_loader
from utils.errors import CheckpointError, ConfigError, DataError

ROOT = Path(__file__).resolve().parent.parent
RATES = ("0.0", "0.5")
SEED = "1"
LOSSES = ("Loss", "Loss(pred_m)")


def data_file(root: Path) -> Path:
    return root / get_config("tiny").data_file


def model_path(out: Path, rate: str) -> Path:
    return out / "models" / f"emt-dlfr-tiny-regression-mr{rate}-{SEED}.pth"


def without_losses(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in LOSSES}


@pytest.fixture(scope="module")
def trained(tiny_root, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "sweep"
    assert run.main(["--dataset", "tiny", "--no-progress", "--set", "max_epochs=1", "--data-root", str(tiny_root),
                     "--out", str(out), "--missing-rates", *RATES, "--seeds", SEED,
                     "--save-model", "--save-predictions"]) == 0
    return out


def test_prediction_csvs_are_in_file_order_and_give_the_recorded_metrics(trained, tiny_root):
    data = load_mmsa(data_file(tiny_root), check_hash=False)
    for rate in RATES:
        cell = json.loads((trained / "cells" / f"mr{rate}" / f"seed{SEED}.json").read_text())
        for split in ("train", "valid", "test"):
            path = trained / "predictions" / f"mr{rate}" / f"seed{SEED}" / f"{split}.csv"
            frame = pd.read_csv(path, dtype={"id": str})
            assert tuple(frame.columns) == COLUMNS
            assert list(frame["index"]) == list(range(data.splits[split].num_samples))
            assert list(frame["id"]) == [str(i) for i in data.splits[split].ids]
            assert np.array_equal(frame["label"].to_numpy(np.float32), data.splits[split].labels["M"])
            assert (frame[["rate_text", "rate_audio", "rate_vision"]] == float(rate)).all().all()
        assert metrics_from_csv(path, "mosi") == without_losses(cell["test"])


def test_evaluate_reproduces_the_recorded_cells_and_writes_the_matrix(trained, tiny_root):
    assert run.main(["--evaluate", str(trained), "--data-root", str(tiny_root), "--missing-rates", "0.0", "0.5", "1.0",
                     "--save-predictions", "--no-progress"]) == 0
    evaluation = json.loads((trained / "evaluation.json").read_text())
    results = json.loads((trained / "results.json").read_text())
    assert sorted(evaluation["matrix"]) == list(RATES)
    for rate in RATES:
        row = evaluation["matrix"][rate]
        assert sorted(row) == ["0.0", "0.5", "1.0"]
        assert row[rate]["per_seed"] == results["rates"][rate]["per_seed"]  # losses included, bit for bit
        assert row[rate]["mean"] == results["rates"][rate]["mean"]
        predictions = trained / "predictions" / f"mr{rate}" / f"seed{SEED}"
        assert (predictions / f"test-mr{rate}.csv").read_bytes() == (predictions / "test.csv").read_bytes()
        csv_metrics = metrics_from_csv(predictions / "test-mr1.0.csv", "mosi")  # x100 in evaluation.json
        assert {k: v * 100 for k, v in csv_metrics.items()} == without_losses(row["1.0"]["per_seed"][SEED])
    for name in ("matrix.md", "matrix.csv", "matrix.png"):
        assert (trained / "evaluation" / name).stat().st_size > 0
    table = (trained / "evaluation" / "matrix.md").read_text()
    assert "### Corr" in table and "| 0.5 |" in table


def test_metrics_do_not_depend_on_the_evaluation_order(trained, tiny_root):
    saved = load_model_file(model_path(trained, "0.5"))
    data = load_mmsa(data_file(tiny_root), check_hash=False)
    test = MMSADataset(data.path, "test", (0.5, 0.5, 0.5), saved.cfg.missing_seeds, data=data)
    shuffled, shuffled_preds = evaluate_loader(saved.model, build_loaders({"test": test}, 4, seed=7)["test"], saved.cfg)
    ordered, ordered_preds = evaluate_loader(saved.model, ordered_loader(test, 16), saved.cfg)
    assert not np.array_equal(shuffled_preds.index, ordered_preds.index)  # the passes really differ in order
    assert without_losses(shuffled) == without_losses(ordered)
    a, b = shuffled_preds.in_file_order(), ordered_preds.in_file_order()
    assert np.array_equal(a.ids, b.ids)
    np.testing.assert_allclose(a.pred, b.pred, atol=1e-6)
    np.testing.assert_allclose(a.pred_complete, b.pred_complete, atol=1e-6)


def test_model_file_rebuilds_the_trained_network(trained):
    saved = load_model_file(model_path(trained, "0.5"), {"device": "cpu"})
    cell = json.loads((trained / "cells" / "mr0.5" / f"seed{SEED}.json").read_text())
    assert saved.train_rates == (0.5, 0.5, 0.5) and saved.seed == int(SEED) and saved.test == cell["test"]
    stored = json.loads((trained / "config.json").read_text())
    expected = {**stored["config"], "device": "cpu"}  # the run-time override given to load_model_file above
    assert json.loads(json.dumps(saved.cfg.to_dict())) == expected and saved.fingerprint == stored["fingerprint"]
    state = torch.load(model_path(trained, "0.5"), weights_only=True)["state_dict"]
    assert all(torch.equal(state[k], v) for k, v in saved.model.state_dict().items())
    assert not saved.model.training


@pytest.mark.slow
def test_predict_command_on_one_split(trained, tiny_root, tmp_path):
    out = tmp_path / "preds.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "predict", "--model", str(model_path(trained, "0.5")), "--data", str(data_file(tiny_root)),
         "--split", "test", "--missing-rate", "0.5", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr
    frame = pd.read_csv(out)
    assert set(frame["split"]) == {"test"}
    recorded = pd.read_csv(trained / "predictions" / "mr0.5" / f"seed{SEED}" / "test.csv")
    np.testing.assert_allclose(frame["pred"], recorded["pred"], atol=1e-6)  # other batches: float rounding only
    cell = json.loads((trained / "cells" / "mr0.5" / f"seed{SEED}.json").read_text())
    assert metrics_from_csv(out, "mosi") == without_losses(cell["test"])


def test_predict_all_splits_by_default(trained, tiny_root, tmp_path):
    out = tmp_path / "all.csv"
    assert predict.main(["--model", str(model_path(trained, "0.0")), "--data", str(data_file(tiny_root)),
                         "--out", str(out)]) == 0
    frame = pd.read_csv(out)
    assert list(dict.fromkeys(frame["split"])) == ["train", "valid", "test"]
    assert (frame["rate_audio"] == 0.0).all()


def test_predict_refuses_data_of_other_feature_widths(trained, tmp_path):
    from tests.data_fixtures import make_mmsa

    other = tmp_path / "other.pkl"
    other.write_bytes(pickle.dumps(make_mmsa()))
    with pytest.raises(DataError, match=r"other.pkl: audio features are 3 wide, but model .* trained on 5-wide"):
        predict.main(["--model", str(model_path(trained, "0.0")), "--data", str(other), "--out", str(tmp_path / "x.csv")])


def test_predict_refuses_a_file_that_is_not_a_model(trained, tiny_root, tmp_path):
    bare = tmp_path / "weights.pth"
    torch.save(load_model_file(model_path(trained, "0.0")).model.state_dict(), bare)
    with pytest.raises(CheckpointError, match="not a model file of this project"):
        predict.main(["--model", str(bare), "--data", str(data_file(tiny_root)), "--out", str(tmp_path / "x.csv")])


def test_evaluate_refuses_a_model_of_another_config(trained, tiny_root, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy, ignore=shutil.ignore_patterns("predictions", "evaluation*"))
    blob = torch.load(model_path(copy, "0.0"), weights_only=True)
    config = json.loads(blob["config"]) | {"post_fusion_dropout": 0.5}
    blob["config"], blob["fingerprint"] = json.dumps(config), "another"
    torch.save(blob, model_path(copy, "0.0"))
    with pytest.raises(CheckpointError, match="another config than .*differs in: post_fusion_dropout"):
        run.main(["--evaluate", str(copy), "--data-root", str(tiny_root), "--missing-rate", "0.5", "--no-progress"])


@pytest.mark.parametrize("flags, message", [
    (["--dataset", "mosi", "--missing-rate", "0.5"], "holds models of dataset 'tiny', not 'mosi'"),
    (["--set", "d_model=8", "--missing-rate", "0.5"], "d_model cannot change"),
    ([], "needs the test rates"),
])
def test_evaluate_flag_errors(trained, tiny_root, flags, message):
    with pytest.raises(ConfigError, match=message):
        run.main(["--evaluate", str(trained), "--data-root", str(tiny_root), *flags])


def test_evaluate_error_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "run.py", "--evaluate", str(tmp_path), "--missing-rate", "0.5"],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("error:") and "no config.json" in proc.stderr


def test_demo_ends_with_the_train_by_test_matrix_of_its_models(trained, tiny_root, tmp_path, monkeypatch, capsys):
    """utils.demo's code path on ``tiny``, one variant, starting from the module's finished sweep (its cells are
    skipped, so nothing trains): the sweep keeps its models, they are evaluated at the demo rates, and the output
    ends with the train x test matrix, whose diagonal is the sweep's own result."""
    from utils import demo

    out = tmp_path / "demo"
    shutil.copytree(trained, out / "emt-dlfr")
    (out / "emt-dlfr" / "evaluation.json").unlink(missing_ok=True)
    monkeypatch.setattr(demo, "DEMO_DATASET", "tiny")
    monkeypatch.setattr(demo, "DEMO_RATES", RATES)
    monkeypatch.setattr(demo, "DEMO_SEED", SEED)
    monkeypatch.setattr(demo, "VARIANTS", {"emt-dlfr": ["--set", "max_epochs=1", "--no-progress"]})
    calls = []
    real_main = run.main
    monkeypatch.setattr(run, "main", lambda argv: calls.append(argv) or real_main(argv))
    assert demo.main(["--data-root", str(tiny_root), "--out", str(out)]) == 0
    assert "--save-model" in calls[0] and calls[1][:2] == ["--evaluate", str(out / "emt-dlfr")]
    evaluation = json.loads((out / "emt-dlfr" / "evaluation.json").read_text())
    results = json.loads((out / "emt-dlfr" / "results.json").read_text())
    assert sorted(evaluation["matrix"]) == list(RATES) and sorted(evaluation["matrix"]["0.0"]) == list(RATES)
    printed = capsys.readouterr().out.rstrip().splitlines()
    assert printed[-1].startswith("[demo] done in")
    rows = [line for line in printed if line.startswith("| ")]
    assert rows[-3:-2] == ["| train \\ test | 0.0 | 0.5 |"]
    for line, rate in zip(rows[-2:], RATES):
        corr = results["rates"][rate]["mean"]["Corr"] / 100
        assert line.startswith(f"| {rate} |") and f"{corr:.3f} ± 0.000" in line.split(" | ")[1 + RATES.index(rate)]


def test_demo_trains_again_the_cells_an_older_demo_kept_no_model_for(tmp_path):
    from utils.demo import forget_cells_without_models

    for tag in ("mr0.0", "mr0.5"):
        (tmp_path / "cells" / tag).mkdir(parents=True)
        (tmp_path / "cells" / tag / "seed1.json").write_text("{}")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "emt-demo-regression-mr0.0-1.pth").write_bytes(b"")
    assert forget_cells_without_models(tmp_path) == 1
    assert [p.parent.name for p in tmp_path.glob("cells/*/*.json")] == ["mr0.0"]
    assert forget_cells_without_models(tmp_path / "absent") == 0
