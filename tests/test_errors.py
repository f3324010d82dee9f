"""Every bad input is one clear UserError that names what was wrong and what was expected."""

from __future__ import annotations

import argparse
import json
import logging
import pickle
import shutil

import numpy as np
import pytest

import run
from config import get_config
from trains.experiment import build_datasets, model_for
from utils.errors import ConfigError, DataError, cli_exit


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
    data, _ = run.read_data(cfg, args)
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
        run.read_data(run.get_config("tiny"), args)
    assert "split 'valid': the vision features are all zeros" in caplog.text
    assert "split 'train'" not in caplog.text


def run_py(capsys, *args):
    """``python run.py ARGS`` in-process: its exit status and its one ``error:`` line (no traceback)."""
    with pytest.raises(SystemExit) as exc:
        cli_exit(lambda: main(*args))
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert "Traceback" not in err and len(errors) == 1, err
    return exc.value.code, errors[0]


@pytest.fixture
def tiny_bert(tmp_path):
    """A local BERT folder (config.json + model.safetensors) of the 32-wide ``random:tiny`` encoder."""
    from models.text_encoder import load_text_encoder

    folder = tmp_path / "bert_tiny"
    load_text_encoder("random:tiny").save_pretrained(folder)
    return folder


def edit_bert_config(folder, **changes):
    conf = json.loads((folder / "config.json").read_text())
    conf.update(changes)
    (folder / "config.json").write_text(json.dumps(conf))


def test_pinned_text_hidden_size_refuses_a_bert_folder_of_another_width(tiny_root, tiny_bert, tmp_path, capsys):
    code, error = run_py(capsys, "--dataset", "tiny", "--data-root", str(tiny_root), "--out", str(tmp_path / "o"),
                         "--seeds", "1", "--bert", str(tiny_bert), "--set", "text_hidden_size=768")
    assert code == 2
    assert f"text encoder '{tiny_bert}' has hidden size 32 (in {tiny_bert / 'config.json'})" in error
    assert "text_hidden_size expects 768" in error and "drop the text_hidden_size setting" in error
    assert not list((tmp_path / "o").glob("cells/*/*.json"))  # refused before any training


def test_pinned_text_hidden_size_refuses_a_named_encoder_also_under_describe(capsys):
    code, error = run_py(capsys, "--dataset", "tiny", "--describe", "--set", "text_hidden_size=768")
    assert code == 2
    assert "text encoder 'random:tiny' has hidden size 32, but text_hidden_size expects 768" in error


def test_pinned_text_hidden_size_matching_the_encoder_is_accepted(tiny_root, tiny_bert):
    path = tiny_root / "TINY" / "Processed" / "unaligned_12.pkl"
    args = argparse.Namespace(data_root=None, data_path=str(path), fix_nonfinite=False, strict_data=False)
    cfg = get_config("tiny", bert=str(tiny_bert), text_hidden_size="32")
    data, data_path = run.read_data(cfg, args)
    model = model_for(cfg, build_datasets(cfg, data, data_path, (0.0, 0.0, 0.0)))
    assert model.text_model.config.hidden_size == 32


@pytest.mark.parametrize(
    "write, expected",
    [
        (lambda f: edit_bert_config(f, num_attention_heads=3),
         "config.json has hidden_size=32, which num_attention_heads=3 does not divide (a broken config.json)"),
        (lambda f: edit_bert_config(f, num_attention_heads=0),
         "config.json has num_attention_heads=0, expected a positive integer"),
        (lambda f: edit_bert_config(f, hidden_size="32"),
         "config.json has hidden_size='32', expected a positive integer"),
        (lambda f: (f / "config.json").write_text("[]"), "config.json holds a JSON list, not an object"),
        (lambda f: (f / "config.json").write_text("{not json"),
         "cannot read {folder}/config.json as JSON (Expecting property name enclosed in double quotes at line 1"),
        (lambda f: (f / "config.json").unlink(), "folder {folder} lacks config.json or weights"),
        (lambda f: edit_bert_config(f, hidden_size=48), "its weights do not fit its config.json"),
        (lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:100]),
         "cannot load text encoder '{folder}' from folder {folder}"),
    ],
    ids=["heads-do-not-divide", "zero-heads", "string-size", "json-list", "invalid-json", "missing",
         "weights-of-another-width", "truncated-weights"],
)
def test_broken_bert_config_json_is_one_line_naming_the_file(tiny_root, tiny_bert, tmp_path, capsys, write, expected):
    write(tiny_bert)
    code, error = run_py(capsys, "--dataset", "tiny", "--data-root", str(tiny_root), "--out", str(tmp_path / "o"),
                         "--seeds", "1", "--bert", str(tiny_bert))
    assert code == 2
    assert f"text encoder '{tiny_bert}'" in error and expected.format(folder=tiny_bert) in error



def test_a_folder_without_results_does_not_block_a_new_config(tiny_root, tiny_bert, tmp_path):
    """A run that fails before training leaves config.json behind; the corrected command with another
    config (here another --bert) takes the folder over. Once a cell is finished, another config is refused."""
    out = tmp_path / "o"
    with pytest.raises(DataError):
        main("--dataset", "tiny", "--data-root", str(tmp_path / "no-such-root"), "--out", str(out))
    assert (out / "config.json").exists()
    common = ("--dataset", "tiny", "--data-root", str(tiny_root), "--out", str(out), "--seeds", "1",
              "--missing-rate", "0.0", "--set", "max_epochs=1")
    assert main(*common, "--bert", str(tiny_bert)) == 0
    assert json.loads((out / "config.json").read_text())["config"]["bert"] == str(tiny_bert)
    with pytest.raises(ConfigError, match="holds results of another config \\(differs in: bert\\)"):
        main(*common)


@pytest.mark.parametrize("flag", [("--bert",), ("--set", "bert={}")])
def test_a_missing_bert_folder_is_refused_before_the_data_are_read(tmp_path, capsys, flag):
    """The encoder is checked first (the data root does not even exist here), and the message names the
    option the user typed."""
    folder = tmp_path / "no" / "such" / "bert"
    args = (flag[0], str(folder)) if len(flag) == 1 else (flag[0], flag[1].format(folder))
    code, error = run_py(capsys, "--dataset", "tiny", "--data-root", str(tmp_path / "no-root"),
                         "--out", str(tmp_path / "o"), *args)
    assert code == 2
    assert f"folder {folder} does not exist" in error
    assert ("point --bert at" in error) if len(flag) == 1 else ("point --set bert=... at" in error)
    assert not (tmp_path / "o").exists()  # refused before anything was written


def test_fusion_bench_quick_runs_do_not_touch_the_committed_records():
    from bench.fusion_bench import RESULTS, SHAPES, results_dir

    full = argparse.Namespace(out=None, quick=False, datasets=tuple(SHAPES), batch=4, repeats=5, device="cpu")
    assert results_dir(full) == RESULTS
    for change in ({"quick": True}, {"datasets": ("mosi",)}, {"repeats": 1}):
        partial = results_dir(argparse.Namespace(**{**vars(full), **change}))
        assert partial != RESULTS and RESULTS not in partial.parents
        partial.rmdir()
    assert results_dir(argparse.Namespace(**{**vars(full), "quick": True, "out": RESULTS})) == RESULTS
