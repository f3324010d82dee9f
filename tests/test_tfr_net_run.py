"""--model tfr_net through the one trainer and run.py on the tiny preset: learning, results, describe, checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import run
from config import get_config
from data.load_data import build_loaders, load_mmsa
from models.reference_checkpoint import to_reference_state_dict
from trains.experiment import build_datasets, model_for
from trains.tfr_net import TFRNetObjective
from trains.trainer import Trainer
from utils.seed import setup_seed

BASE = ["--model", "tfr_net", "--dataset", "tiny", "--no-progress", "--seeds", "1"]
EPOCHS = 8
#: Every dropout of the network off, so that a few tiny epochs show the fit.
NO_DROPOUT = dict(text_dropout=0.0, attn_dropout=0.0, attn_dropout_a=0.0, relu_dropout=0.0, embed_dropout=0.0,
                  res_dropout=0.0, fusion_drop=0.0)


def _tiny(tiny_root, rate=0.0, **overrides):
    cfg = get_config("tiny", "tfr_net", **overrides)
    path = tiny_root / cfg.data_file
    datasets = build_datasets(cfg, load_mmsa(path, label_range=cfg.label_range), path, (rate, rate, rate))
    return cfg, datasets


def test_short_run_fits_the_training_labels(tiny_root):
    # plain steps (one per batch), no dropout and higher rates, so that 8 tiny epochs fit 32 clips
    cfg, datasets = _tiny(tiny_root, step_schedule="group", learning_rate_bert=1e-3, learning_rate_other=5e-3,
                          **NO_DROPOUT)
    setup_seed(0)
    trainer = Trainer(cfg, model_for(cfg, datasets), progress=False)
    loaders = build_loaders(datasets, cfg.batch_size, seed=0)
    labels = np.array([datasets["train"][i]["labels"]["M"].item() for i in range(len(datasets["train"]))])
    constant_mae = np.abs(labels - labels.mean()).mean()
    history = [trainer.train_epoch(loaders["train"], epoch) for epoch in range(1, EPOCHS + 1)]
    assert history[-1]["Loss"] < history[0]["Loss"] - 0.2
    assert history[-1]["MAE"] < 0.7 * constant_mae
    assert history[-1]["Corr"] > 0.7


def test_reconstruction_joins_from_the_second_epoch_and_validation_loss_is_the_l1(tiny_root):
    cfg, datasets = _tiny(tiny_root, rate=0.5)
    setup_seed(0)
    model = model_for(cfg, datasets)
    assert model.seq_lens == datasets["train"].seq_lens  # the final attentions follow the data's lengths
    batch = next(iter(build_loaders(datasets, cfg.batch_size, seed=0)["train"]))
    with torch.no_grad():
        out = model.eval()(**{k: batch[k] for k in model.INPUTS})
    objective = TFRNetObjective(cfg)
    first, second = objective.for_epoch(1)(out, batch), objective.for_epoch(2)(out, batch)
    assert torch.equal(first["total"], first["task_m"]) and second["total"] > second["task_m"]
    valid = Trainer(cfg, model, progress=False).evaluate(build_loaders(datasets, cfg.batch_size, seed=0)["valid"])
    assert valid["Loss"] == round(valid["Loss(pred_m)"], 4)  # the L1 alone, rounded as the reference


@pytest.mark.slow
def test_run_py_trains_and_tests_into_its_own_folder(tiny_root, tmp_path):
    out = tmp_path / "tfr"
    assert run.main([*BASE, "--data-root", str(tiny_root), "--missing-rates", "0.0", "0.5", "--set", "max_epochs=2",
                     "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "tfr_net" and config["config"]["step_schedule"] == "mmsa"
    results = json.loads((out / "results.json").read_text())
    assert results["model"] == "tfr_net" and set(results["rates"]) == {"0.0", "0.5"}
    assert all(np.isfinite(results["rates"][r]["mean"]["MAE"]) for r in results["rates"])


def test_describe_prints_the_authors_counts(capsys):
    assert run.main(["--model", "tfr_net", "--dataset", "tiny", "--describe"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["model"] == "tfr_net" and counts["trainable"] == counts["total"] > counts["bert"] > 0


def test_run_py_tests_a_reference_checkpoint(tiny_root, tmp_path):
    cfg, datasets = _tiny(tiny_root)
    torch.manual_seed(0)
    path = tmp_path / "tfr_net-tiny-regression.pth"
    torch.save(to_reference_state_dict(model_for(cfg, datasets), "tfr_net"), path)
    out = tmp_path / "eval"
    assert run.main([*BASE, "--data-root", str(tiny_root), "--missing-rate", "0.3", "--out", str(out),
                     "--load-reference-checkpoint", str(path)]) == 0
    results = json.loads((out / "reference_checkpoint_test.json").read_text())
    assert np.isfinite(next(iter(results.values()))["MAE"])
    with pytest.raises(Exception, match="does not fit the model"):
        torch.save({"Model.align_subnet.Model.proj_a.weight": torch.zeros(1)}, path)
        run.main([*BASE, "--data-root", str(tiny_root), "--missing-rate", "0.3", "--out", str(tmp_path / "e2"),
                  "--load-reference-checkpoint", str(path)])


def test_splits_padded_to_other_lengths_are_a_data_error():
    from types import SimpleNamespace

    from trains.tfr_net import tfr_net_data_settings
    from utils.errors import DataError

    data = SimpleNamespace(path="/data/own.pkl")
    split = lambda lens: SimpleNamespace(seq_lens=lens, data=data)  # noqa: E731
    same = {"train": split((50, 375, 500)), "valid": split((50, 375, 500)), "test": split((50, 375, 500))}
    assert tfr_net_data_settings(same) == {"seq_lens": (50, 375, 500)}
    with pytest.raises(DataError, match=r"^/data/own.pkl: TFR-Net needs every split padded to the same lengths \(text, "
                                        r"audio, vision\), but split 'test' is padded to \(50, 400, 500\) and 'train' "
                                        r"to \(50, 375, 500\); pad the splits alike$"):
        tfr_net_data_settings(dict(same, test=split((50, 400, 500))))
