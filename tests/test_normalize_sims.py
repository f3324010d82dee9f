"""SIMS normalisation (docs/REFERENCE.md §3.3) on a tiny pickle: train statistics over valid frames, padding kept."""

import numpy as np
import pytest

from data.safe_pickle import safe_load
from preprocess.normalize_sims import OUTPUT_NAME, STD_EPSILON, main, normalize_sims_file
from tests.data_fixtures import isolated_data_state, make_mmsa, sims_file, write_pickle  # noqa: F401 (fixtures)
from utils.errors import DataError


def expected_normalised(raw, modality):
    """Hand computation: mean/std over the train split's valid frames, applied to every split's valid frames."""
    lengths = raw["train"][f"{modality}_lengths"]
    frames = np.concatenate([raw["train"][modality][i, :n] for i, n in enumerate(lengths)]).astype(np.float64)
    mean = frames.mean(axis=0)
    std = np.sqrt(((frames - mean) ** 2).mean(axis=0))  # population std
    out = {}
    for split, data in raw.items():
        x = data[modality].astype(np.float64).copy()
        for i, n in enumerate(data[f"{modality}_lengths"]):
            x[i, :n] = (x[i, :n] - mean) / (std + STD_EPSILON)
        out[split] = x
    return out


def test_normalises_audio_and_vision_with_train_statistics(sims_file):
    raw = safe_load(sims_file)
    written = normalize_sims_file(sims_file)
    assert written == sims_file.with_name(OUTPUT_NAME)
    out = safe_load(written)
    for modality in ("audio", "vision"):
        expected = expected_normalised(raw, modality)
        for split in ("train", "valid", "test"):
            got = out[split][modality]
            assert got.dtype == np.float32
            np.testing.assert_allclose(got, expected[split], rtol=1e-5, atol=1e-5)
            lengths = out[split][f"{modality}_lengths"]
            padding = np.arange(got.shape[1])[None, :] >= lengths[:, None]
            assert (got[padding] == 0).all()  # padding stays 0
        train = out["train"][modality]
        frames = np.concatenate([train[i, :n] for i, n in enumerate(out["train"][f"{modality}_lengths"])])
        np.testing.assert_allclose(frames.mean(axis=0), 0.0, atol=1e-5)
        np.testing.assert_allclose(frames.std(axis=0), 1.0, atol=1e-4)
    np.testing.assert_array_equal(out["test"]["text_bert"], raw["test"]["text_bert"])  # text untouched
    np.testing.assert_array_equal(out["test"]["text"], raw["test"]["text"])
    np.testing.assert_array_equal(out["valid"]["regression_labels_T"], raw["valid"]["regression_labels_T"])
    assert out["train"]["id"].tolist() == raw["train"]["id"].tolist()


def test_padding_frames_do_not_enter_the_statistics(tmp_path):
    raw = make_mmsa(sims=True)
    raw_padded = make_mmsa(sims=True)
    for split in raw_padded.values():  # garbage in the padding must change nothing in valid frames
        lengths = split["vision_lengths"]
        padding = np.arange(split["vision"].shape[1])[None, :] >= lengths[:, None]
        split["vision"][padding] = 1000.0
    clean = safe_load(normalize_sims_file(write_pickle(tmp_path / "a" / "unaligned_39.pkl", raw)))
    noisy = safe_load(normalize_sims_file(write_pickle(tmp_path / "b" / "unaligned_39.pkl", raw_padded)))
    lengths = clean["train"]["vision_lengths"]
    valid = np.arange(clean["train"]["vision"].shape[1])[None, :] < lengths[:, None]
    np.testing.assert_array_equal(clean["train"]["vision"][valid], noisy["train"]["vision"][valid])
    assert (noisy["train"]["vision"][~valid] == 1000.0).all()  # padding left as it was


def test_cli_with_data_root_finds_the_reference_layout(tmp_path, capsys):
    source = write_pickle(tmp_path / "Datasets" / "SIMS" / "Processed" / "unaligned_39.pkl", make_mmsa(sims=True))
    assert main(["--data-root", str(tmp_path)]) == 0
    assert (source.parent / OUTPUT_NAME).is_file()
    assert str(source.parent / OUTPUT_NAME) in capsys.readouterr().out


def test_cli_with_input_and_errors(tmp_path, capsys):
    source = write_pickle(tmp_path / "mine.pkl", make_mmsa(sims=True))
    assert main(["--input", str(source)]) == 0
    assert (tmp_path / OUTPUT_NAME).is_file()
    assert main(["--data-root", str(tmp_path / "empty")]) == 2
    assert "looked for" in capsys.readouterr().err
    broken = make_mmsa(sims=True)
    broken["train"]["audio"][0, 0, 0] = np.nan
    bad = write_pickle(tmp_path / "bad" / "x.pkl", broken)
    assert main(["--input", str(bad)]) == 2
    assert "--fix-nonfinite" in capsys.readouterr().err
    assert main(["--input", str(bad), "--fix-nonfinite"]) == 0


def test_refuses_to_overwrite_its_input(tmp_path):
    source = write_pickle(tmp_path / OUTPUT_NAME, make_mmsa(sims=True))
    with pytest.raises(DataError, match="overwrite its input"):
        normalize_sims_file(source)
