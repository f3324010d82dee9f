"""Reference behaviour pinned with the reference's literal values, not with this project's own constants.

Each test here failed against a plausible bug that the rest of the suite let through (issue #16): a
modality's mask drawn with another modality's seed, dropped words replaced by another id than [UNK] = 100,
the test split scored on the complete view's prediction, BERT's LayerNorm weights decayed by Adam, the
spread over seeds computed as a sample std. The expectations are written from the authors' code
(``data/load_data.py``, ``trains/missingTask/EMT_DLFR.py``, ``run.py``), so changing a constant of this
project changes the behaviour under test, not the expectation.
"""

from __future__ import annotations

import dataclasses
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import DataLoader

import run
from config import get_config
from data.load_data import MMSADataset, load_mmsa
from trains import experiment
from trains.trainer import Trainer
from tests.data_fixtures import isolated_data_state, mmsa_file, mmsa_raw  # noqa: F401 (fixtures)
from utils.errors import DataError
from utils.metrics import eval_regression
from utils.results import aggregate, prepare_out_dir, write_cell

ROOT = Path(__file__).resolve().parent.parent
TINY_FILE = Path("TINY") / "Processed" / "unaligned_12.pkl"

#: The reference's missing seeds: np.random.seed(111) for text, 1111 for audio, 11111 for vision, for every split.
REFERENCE_SEEDS = {"text": 111, "audio": 1111, "vision": 11111}
#: [UNK] in bert-base-uncased and bert-base-chinese.
REFERENCE_UNK = 100
#: The reference's BERT parameters without weight decay: any name containing one of these.
REFERENCE_BERT_NO_DECAY = ("bias", "LayerNorm.bias", "LayerNorm.weight")


def reference_keep(valid: np.ndarray, rate: float, seed: int, is_text: bool) -> np.ndarray:
    """The reference's ``generate_m`` step by step: global seed, one uniform draw, force [CLS]/[SEP]."""
    np.random.seed(seed)
    keep = (np.random.uniform(size=valid.shape) > rate) * valid
    if is_text:
        keep[:, 0] = 1
        keep[np.arange(valid.shape[0]), np.argmin(valid, axis=1) - 1] = 1
    return keep.astype(bool)


def stacked_items(dataset) -> dict[str, np.ndarray]:
    items = [dataset[i] for i in range(len(dataset))]
    return {key: np.stack([item[key].numpy() for item in items]) for key in items[0] if key not in ("labels", "index", "id")}


# --------------------------------------------------------------------------------------------- masks
@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_each_modality_of_each_split_uses_its_reference_seed(tiny_root, split):
    """Through the datasets run.py builds: text 111, audio 1111, vision 11111, the same for every split."""
    cfg = get_config("tiny")
    path = tiny_root / TINY_FILE
    data = load_mmsa(path, label_range=cfg.label_range)
    rates = (0.3, 0.5, 0.7)  # distinct, so a modality that takes another's rate is caught too
    items = stacked_items(experiment.build_datasets(cfg, data, path, rates)[split])
    raw = data.splits[split]
    valid = {
        "text": raw.text_bert[:, 1] == 1,
        "audio": np.arange(raw.audio.shape[1]) < raw.audio_lengths[:, None],
        "vision": np.arange(raw.vision.shape[1]) < raw.vision_lengths[:, None],
    }
    for (modality, seed), rate in zip(REFERENCE_SEEDS.items(), rates):
        expected = reference_keep(valid[modality], rate, seed, is_text=modality == "text")
        np.testing.assert_array_equal(items[f"{modality}_missing_mask"].astype(bool), expected, err_msg=modality)
        if modality != "text":
            dropped_frames = items[f"{modality}_m"][~expected]
            assert not dropped_frames.any(), f"a dropped {modality} frame is not a zero vector"
            np.testing.assert_array_equal(items[f"{modality}_m"][expected], items[modality][expected])


def test_default_missing_seeds_are_the_references(mmsa_file):
    """An MMSADataset built without seeds draws the reference's masks."""
    ds = MMSADataset(mmsa_file, "valid", (0.5, 0.5, 0.5))
    items = stacked_items(ds)
    for modality, seed in REFERENCE_SEEDS.items():
        valid = items[f"{modality}_mask"].astype(bool) if modality != "text" else items["text"][:, 1] == 1
        expected = reference_keep(valid, 0.5, seed, is_text=modality == "text")
        np.testing.assert_array_equal(items[f"{modality}_missing_mask"].astype(bool), expected, err_msg=modality)


# --------------------------------------------------------------------------------------------- [UNK]
def test_dropped_words_become_unk_100_and_pads_stay_0(tiny_root):
    path = tiny_root / TINY_FILE
    ds = MMSADataset(path, "test", (0.5, 0.0, 0.0), label_range=(-3.0, 3.0))
    items = stacked_items(ds)
    ids, attention = items["text"][:, 0], items["text"][:, 1]
    ids_m, keep = items["text_m"][:, 0], items["text_missing_mask"]
    dropped = (attention == 1) & (keep == 0)
    assert dropped.sum() > 10  # enough dropped words to make the checks below mean something
    assert (ids_m[dropped] == REFERENCE_UNK).all()
    np.testing.assert_array_equal(ids_m[keep == 1], ids[keep == 1])
    assert (ids_m[attention == 0] == 0).all()
    np.testing.assert_array_equal(items["text_m"][:, 1:], items["text"][:, 1:])  # mask and segments unchanged


def test_unk_on_literal_ids():
    from data.missing import mask_text_ids

    ids = np.array([[101, 2023, 2003, 1037, 102, 0]], dtype=np.float32)
    attention = np.array([[1, 1, 1, 1, 1, 0]], dtype=np.float32)
    keep = np.array([[1, 0, 1, 0, 1, 0]], dtype=np.float32)
    np.testing.assert_array_equal(mask_text_ids(ids, attention, keep), [[101, 100, 2003, 100, 102, 0]])


# --------------------------------------------------------------------------------------------- test split
MODEL_INPUTS = ("text", "text_m", "audio", "audio_m", "audio_lengths", "vision", "vision_m", "vision_lengths")


def test_test_split_is_scored_on_the_incomplete_views_prediction(tiny_root, monkeypatch):
    """run_cell trains, reloads the best state and tests once; its test metrics are those of pred_m."""
    cfg = dataclasses.replace(get_config("tiny"), max_epochs=1)
    path = tiny_root / TINY_FILE
    data = load_mmsa(path, label_range=cfg.label_range)
    models = []
    real_model_for = experiment.model_for

    def keep_model(cfg_, datasets, **kwargs):
        models.append(real_model_for(cfg_, datasets, **kwargs))
        return models[-1]

    monkeypatch.setattr(experiment, "model_for", keep_model)
    record = experiment.run_cell(cfg, data, path, (0.5, 0.5, 0.5), seed=1, progress=False)
    model = models[0]
    model.eval()
    test_set = experiment.build_datasets(cfg, data, path, (0.5, 0.5, 0.5))["test"]
    pred, pred_m, labels = [], [], []
    with torch.no_grad():
        for batch in DataLoader(test_set, batch_size=cfg.batch_size):
            out = model(**{key: batch[key] for key in MODEL_INPUTS})
            pred.append(out.complete.prediction.view(-1))
            pred_m.append(out.incomplete.prediction.view(-1))
            labels.append(batch["labels"]["M"].view(-1))
    pred, pred_m, labels = torch.cat(pred), torch.cat(pred_m), torch.cat(labels)
    expected = eval_regression(pred_m, labels, cfg.metric_set)
    complete_view = eval_regression(pred, labels, cfg.metric_set)
    assert complete_view["MAE"] != expected["MAE"]  # the two views must differ for the test to mean anything
    for key, value in expected.items():
        assert record["test"][key] == pytest.approx(value, abs=1e-4), key
    # and directly through Trainer.evaluate
    trainer = Trainer(cfg, model, progress=False)
    scored = trainer.evaluate(DataLoader(test_set, batch_size=cfg.batch_size), desc="test")
    assert scored["MAE"] == pytest.approx(expected["MAE"], abs=1e-4)
    assert scored["Corr"] == pytest.approx(expected["Corr"], abs=1e-4)


# --------------------------------------------------------------------------------------------- optimiser
def distinct_rates_config():
    return dataclasses.replace(
        get_config("tiny"),
        learning_rate_bert=1e-2, learning_rate_audio=2e-2, learning_rate_video=3e-2, learning_rate_other=4e-2,
        weight_decay_bert=0.1, weight_decay_audio=0.2, weight_decay_video=0.3, weight_decay_other=0.4,
    )


def test_every_parameter_gets_the_references_learning_rate_and_decay():
    from models import build_model

    cfg = distinct_rates_config()
    model = build_model(cfg, 5, 6)
    trainer = Trainer(cfg, model, progress=False)
    assert type(trainer.optimizer) is torch.optim.Adam  # L2 decay inside Adam, not AdamW
    setting = {}
    for group in trainer.optimizer.param_groups:
        for p in group["params"]:
            assert id(p) not in setting, "a parameter is in two groups"
            setting[id(p)] = (group["lr"], group["weight_decay"])
    decayed = []
    for name, p in model.named_parameters():
        if name.startswith("text_model."):
            bert_name = name[len("text_model."):]
            no_decay = any(term in bert_name for term in REFERENCE_BERT_NO_DECAY)
            expected = (1e-2, 0.0) if no_decay else (1e-2, 0.1)
            if not no_decay:
                decayed.append(bert_name)
        elif name.startswith("audio_model."):
            expected = (2e-2, 0.2)
        elif name.startswith("vision_model."):
            expected = (3e-2, 0.3)
        else:
            expected = (4e-2, 0.4)
        assert setting.get(id(p)) == expected, name
    # literal names, so that a change in how BERT names its layers cannot silently move them
    assert setting[id(model.text_model.embeddings.LayerNorm.weight)] == (1e-2, 0.0)
    assert setting[id(model.text_model.encoder.layer[0].output.LayerNorm.weight)] == (1e-2, 0.0)
    assert setting[id(model.text_model.encoder.layer[0].attention.self.query.bias)] == (1e-2, 0.0)
    assert {"embeddings.word_embeddings.weight", "pooler.dense.weight"} <= set(decayed)


def test_a_zero_gradient_step_moves_exactly_the_decayed_bert_parameters():
    """With every gradient zero, Adam's L2 term alone moves a parameter: only the decayed ones change."""
    from models import build_model

    cfg = distinct_rates_config()
    model = build_model(cfg, 5, 6)
    trainer = Trainer(cfg, model, progress=False)
    before = {name: p.detach().clone() for name, p in model.text_model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    trainer.optimizer.step()
    moved = {name for name, p in model.text_model.named_parameters() if not torch.equal(p.detach(), before[name])}
    expected = {name for name in before if not any(term in name for term in REFERENCE_BERT_NO_DECAY)}
    assert moved == expected


# --------------------------------------------------------------------------------------------- std over seeds
def test_spread_over_seeds_is_the_population_std(tmp_path):
    """The reference prints np.std (ddof=0) of the x100 seed values: (70, 80, 95) -> 10.27, not 12.58."""
    cfg = get_config("tiny")
    fingerprint = prepare_out_dir(tmp_path, cfg)
    for seed, mae in ((111, 0.70), (1111, 0.80), (11111, 0.95)):
        write_cell(tmp_path, {"rates": [0.0, 0.0, 0.0], "seed": seed, "test": {"MAE": mae},
                              "fingerprint": fingerprint})
    summary = aggregate(tmp_path, cfg, [(0.0, 0.0, 0.0)], [111, 1111, 11111], fingerprint)
    assert summary["rates"]["0.0"]["mean"]["MAE"] == pytest.approx(81.6667, abs=1e-4)
    assert summary["rates"]["0.0"]["std"]["MAE"] == pytest.approx(10.2740, abs=1e-4)
    per_rate = pd.read_csv(tmp_path / "normals" / "tiny-regression-0.0.csv")
    assert per_rate.loc[0, "MAE"] == "(81.67, 10.27)"
    aggregated = pd.read_csv(tmp_path / "normals" / "tiny-regression-aggregated.csv")
    assert aggregated.loc[0, "MAE_std"] == pytest.approx(10.27)
    assert json.loads((tmp_path / "results.json").read_text())["rates"]["0.0"]["std"]["MAE"] == pytest.approx(10.2740, abs=1e-4)


# --------------------------------------------------------------------------------------------- labels via run.py
def write_with_label(tiny_root, tmp_path, split: str, index: int, value: float, clip: float | None = None) -> Path:
    data = pickle.loads((tiny_root / TINY_FILE).read_bytes())
    if clip is not None:
        for part in data.values():
            part["regression_labels"] = np.clip(part["regression_labels"], -clip, clip)
    data[split]["regression_labels"][index] = value
    path = tmp_path / "labels.pkl"
    path.write_bytes(pickle.dumps(data))
    return path


@pytest.mark.slow
def test_run_py_refuses_a_file_with_an_out_of_range_label(tiny_root, tmp_path):
    """The command users type, as a subprocess: exit status 2 and one line naming file, split, field, value."""
    path = write_with_label(tiny_root, tmp_path, "test", 3, 3.5)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "--dataset", "tiny", "--data-path", str(path), "--seeds", "1",
         "--missing-rate", "0.0", "--no-progress", "--out", str(tmp_path / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    message = proc.stderr.strip().splitlines()[-1]
    assert message.startswith("error: ") and str(path) in message and "test" in message
    assert "labels must lie in [-3.0, 3.0]" in message and "sample 3 has 3.5" in message
    assert not (tmp_path / "out" / "cells").exists()  # refused before any training


def test_run_py_checks_labels_against_the_chosen_datasets_range(tiny_root, tmp_path):
    """A label of 1.5 is fine for MOSI's [-3, 3] but not for SIMS's [-1, 1]."""
    path = write_with_label(tiny_root, tmp_path, "valid", 2, 1.5, clip=1.0)
    with pytest.raises(DataError, match=r"labels must lie in \[-1.0, 1.0\].*sample 2 has 1.5"):
        run.main(["--dataset", "sims", "--data-path", str(path), "--seeds", "1", "--no-progress",
                  "--out", str(tmp_path / "out")])
