"""Every bad input is one clear UserError that names what was wrong and what was expected."""

from __future__ import annotations

import argparse
import logging
import pickle
import shutil

import numpy as np
import pytest

import run
from utils.errors import ConfigError, DataError


def main(*args):
    return run.main([*args, "--no-progress"])


def test_seeds_must_be_integers(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        main("--dataset", "tiny", "--seeds", "1", "two", "--out", str(tmp_path))
    assert exc.value.code == 2
    assert "--seeds: invalid int value: 'two'" in capsys.readouterr().err


def test_pickle_of_another_dataset_under_the_official_layout(tiny_root, tmp_path):
    official = tmp_path / "root" / "MOSI" / "Processed" / "unaligned_50.pkl"
    official.parent.mkdir(parents=True)
    shutil.copy(tiny_root / "TINY" / "Processed" / "unaligned_12.pkl", official)
    with pytest.raises(DataError, match=r"feature dims are \(5, 6\), but the mosi config expects \(5, 20\)"):
        main("--dataset", "mosi", "--data-root", str(tmp_path / "root"), "--out", str(tmp_path / "o"))


def test_other_feature_sets_train_with_data_path(tiny_root, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    path = tiny_root / "TINY" / "Processed" / "unaligned_12.pkl"
    cfg = run.get_config("mosi")
    args = argparse.Namespace(data_root=None, data_path=str(path), fix_nonfinite=False, strict_data=False)
    data, _ = run.load_data(cfg, args)
    assert data.feature_dims[1:] == (5, 6)
    assert "training with the mosi hyperparameters" in caplog.text


def test_unwritable_output_directory_is_refused_before_training(tiny_root, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot be written"):
        main("--dataset", "tiny", "--data-root", str(tiny_root), "--out", str(blocker / "results"))


def test_text_encoder_vocabulary_must_cover_the_token_ids(tiny_root, tmp_path):
    with pytest.raises(ConfigError, match="vocabulary of 21128 tokens.*token id"):
        main("--dataset", "tiny", "--data-root", str(tiny_root), "--out", str(tmp_path / "o"), "--seeds", "1",
             "--bert", "random:base-chinese")


def test_key_eval_must_be_a_validation_metric(tiny_root, tmp_path):
    with pytest.raises(ConfigError, match="key_eval 'Acc'"):
        main("--dataset", "tiny", "--data-root", str(tiny_root), "--out", str(tmp_path / "o"), "--seeds", "1",
             "--key-eval", "Acc")


def test_all_zero_modality_warns(tiny_root, tmp_path, caplog):
    data = pickle.loads((tiny_root / "TINY" / "Processed" / "unaligned_12.pkl").read_bytes())
    data["valid"]["vision"] = np.zeros_like(data["valid"]["vision"])
    path = tmp_path / "broken.pkl"
    path.write_bytes(pickle.dumps(data))
    args = argparse.Namespace(data_root=None, data_path=str(path), fix_nonfinite=False, strict_data=False)
    with caplog.at_level(logging.WARNING):
        run.load_data(run.get_config("tiny"), args)
    assert "split 'valid': the vision features are all zeros" in caplog.text
    assert "split 'train'" not in caplog.text
