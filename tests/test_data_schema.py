"""Validation of MMSA dicts: each malformation gives a DataError naming file, split and key."""

import logging

import numpy as np
import pytest

from data.schema import REQUIRED_KEYS, REQUIRED_SPLITS, validate_mmsa
from tests.data_fixtures import AUDIO_LEN, isolated_data_state, make_mmsa  # noqa: F401 (fixture)
from utils.errors import DataError

SOURCE = "/data/x.pkl"


def validate(raw, **kwargs):
    return validate_mmsa(raw, source=SOURCE, **kwargs)


def test_a_good_file_passes_and_is_normalised_in_place():
    raw = make_mmsa()
    raw["train"]["vision"] = raw["train"]["vision"].astype(np.float64)
    raw["valid"]["audio_lengths"] = raw["valid"]["audio_lengths"].astype(np.float64).tolist()
    raw["test"]["regression_labels"] = raw["test"]["regression_labels"].reshape(-1, 1)
    audio_before = raw["train"]["audio"]
    report = validate(raw, label_range=(-3.0, 3.0))
    assert raw["train"]["vision"].dtype == np.float32
    assert raw["valid"]["audio_lengths"].dtype == np.int64
    assert raw["test"]["regression_labels"].shape == (5,)
    assert raw["train"]["audio"] is audio_before  # already float32: no copy
    assert report.audio_neg_inf_zeroed == {} and report.nonfinite_fixed == {}
    assert report.has_unimodal_labels is False
    assert validate(make_mmsa(sims=True), label_range=(-1.0, 1.0)).has_unimodal_labels is True


@pytest.mark.parametrize("split", REQUIRED_SPLITS)
def test_missing_split(split):
    raw = make_mmsa()
    del raw[split]
    with pytest.raises(DataError, match=rf"{SOURCE}: missing split\(s\) '{split}'"):
        validate(raw)


@pytest.mark.parametrize("key", REQUIRED_KEYS)
def test_missing_key(key):
    raw = make_mmsa()
    del raw["valid"][key]
    with pytest.raises(DataError, match=rf"{SOURCE}, split 'valid': missing key\(s\) '{key}'"):
        validate(raw)


def test_not_a_dict():
    with pytest.raises(DataError, match="expected a dict"):
        validate([1, 2, 3])
    raw = make_mmsa()
    raw["test"] = np.zeros(3)
    with pytest.raises(DataError, match="split 'test': expected a dict of arrays"):
        validate(raw)


@pytest.mark.parametrize("key", ["audio", "vision_lengths", "regression_labels", "id", "text_bert"])
def test_first_dimensions_must_agree(key):
    raw = make_mmsa()
    raw["train"][key] = raw["train"][key][:-1]
    with pytest.raises(DataError, match=rf"split 'train': the first dimensions .*{key}: 5"):
        validate(raw)


@pytest.mark.parametrize("bad_length", [0, -1, AUDIO_LEN + 1, 2.5])
def test_lengths_must_lie_in_one_to_t(bad_length):
    raw = make_mmsa()
    lengths = raw["test"]["audio_lengths"].astype(np.float64)
    lengths[3] = bad_length
    raw["test"]["audio_lengths"] = lengths
    with pytest.raises(DataError, match=r"split 'test', key 'audio_lengths': .*sample 3 has"):
        validate(raw)


@pytest.mark.parametrize(
    "shape", [(6, 2, 8), (6, 8), (6, 3, 8, 1)], ids=["two-rows", "2d", "4d"]
)
def test_text_bert_must_be_n_3_l(shape):
    raw = make_mmsa()
    raw["train"]["text_bert"] = np.ones(shape, dtype=np.float32)
    with pytest.raises(DataError, match=r"split 'train', key 'text_bert': expected shape \(N, 3, L\)"):
        validate(raw)


def test_attention_mask_must_be_ones_then_zeros():
    raw = make_mmsa()
    raw["valid"]["text_bert"][2, 1, 1] = 0  # a hole after [CLS]
    with pytest.raises(DataError, match=r"split 'valid', key 'text_bert': the attention mask .*sample 2"):
        validate(raw)


def test_audio_and_vision_must_be_3d():
    raw = make_mmsa()
    raw["train"]["vision"] = raw["train"]["vision"][:, :, 0]
    with pytest.raises(DataError, match=r"key 'vision': expected shape \(N, T, d\)"):
        validate(raw)


def test_labels_outside_the_range():
    raw = make_mmsa()
    raw["valid"]["regression_labels"][1] = 3.5
    validate(make_mmsa(), label_range=(-3.0, 3.0))
    expected = r"split 'valid', key 'regression_labels': labels must lie in \[-3.0, 3.0\]"
    with pytest.raises(DataError, match=expected):
        validate(raw, label_range=(-3.0, 3.0))


def test_sims_unimodal_labels_are_range_checked_and_all_or_none():
    raw = make_mmsa(sims=True)
    raw["test"]["regression_labels_A"][0] = -1.5
    with pytest.raises(DataError, match="key 'regression_labels_A'"):
        validate(raw, label_range=(-1.0, 1.0))
    raw = make_mmsa(sims=True)
    del raw["train"]["regression_labels_V"]
    with pytest.raises(DataError, match="split 'train': has .* but not regression_labels_V"):
        validate(raw)


def test_nan_in_vision_is_an_error_unless_fixed(caplog):
    raw = make_mmsa()
    raw["valid"]["vision"][0, 0, 0] = np.nan
    raw["valid"]["vision"][1, 0, 1] = np.inf
    with pytest.raises(DataError, match=r"split 'valid', key 'vision': 2 non-finite .*--fix-nonfinite"):
        validate(raw)

    raw = make_mmsa()
    raw["valid"]["vision"][0, 0, 0] = np.nan
    raw["valid"]["vision"][1, 0, 1] = -np.inf
    raw["test"]["regression_labels"][4] = np.nan
    with caplog.at_level(logging.WARNING, logger="data.schema"):
        report = validate(raw, fix_nonfinite=True, label_range=(-3.0, 3.0))
    assert report.nonfinite_fixed == {("valid", "vision"): 2, ("test", "regression_labels"): 1}
    assert raw["valid"]["vision"][0, 0, 0] == 0 and raw["valid"]["vision"][1, 0, 1] == 0
    assert np.isfinite(raw["valid"]["vision"]).all()
    assert raw["test"]["regression_labels"][4] == 0
    assert any("key 'vision'" in r.getMessage() and "2 non-finite" in r.getMessage() for r in caplog.records)


def test_audio_minus_inf_becomes_zero_but_other_nonfinite_audio_is_an_error():
    raw = make_mmsa()
    audio = raw["train"]["audio"]
    audio[0, 0, :] = -np.inf
    audio[2, 1, 0] = -np.inf
    kept = audio[0, 1].copy()
    report = validate(raw)
    assert report.audio_neg_inf_zeroed == {"train": 4}
    assert (raw["train"]["audio"][0, 0] == 0).all() and raw["train"]["audio"][2, 1, 0] == 0
    np.testing.assert_array_equal(raw["train"]["audio"][0, 1], kept)

    raw = make_mmsa()
    raw["train"]["audio"][0, 0, 0] = np.inf
    with pytest.raises(DataError, match=r"key 'audio': 1 non-finite value\(s\) \(\+inf: 1\)"):
        validate(raw)


def test_minus_inf_in_vision_is_not_silently_zeroed():
    raw = make_mmsa()
    raw["test"]["vision"][0, 0, 0] = -np.inf
    with pytest.raises(DataError, match=r"split 'test', key 'vision'.*-inf: 1"):
        validate(raw)


def test_string_features_are_refused():
    raw = make_mmsa()
    raw["train"]["audio"] = np.array(["a"] * 6, dtype=object)
    with pytest.raises(DataError, match="key 'audio': expected numbers"):
        validate(raw)


def test_feature_widths_must_agree_across_splits():
    raw = make_mmsa()
    raw["test"]["audio"] = np.concatenate([raw["test"]["audio"], raw["test"]["audio"]], axis=2)
    with pytest.raises(DataError, match=r"key 'audio': feature widths differ across splits"):
        validate(raw)



def test_text_bert_with_no_positions_is_refused():
    """Regression (property suite): L = 0 used to end in an IndexError reading the [CLS] column."""
    raw = make_mmsa()
    raw["valid"]["text_bert"] = raw["valid"]["text_bert"][:, :, :0]
    with pytest.raises(DataError, match=r"split 'valid', key 'text_bert': expected shape .*L >= 1"):
        validate(raw)


@pytest.mark.parametrize("key", ["audio", "regression_labels", "vision_lengths", "id"])
def test_ragged_nested_lists_are_refused(key):
    """Regression (property suite): numpy's ValueError on ragged lists used to escape unwrapped."""
    raw = make_mmsa()
    values = np.asarray(raw["test"][key]).tolist()
    raw["test"][key] = [*values, [1.0, 2.0]] if np.ndim(values) == 1 else [*values, [1.0]]
    with pytest.raises(DataError, match=rf"split 'test', key '{key}': cannot be read as an array"):
        validate(raw)
