"""load_mmsa, MMSADataset items, build_loaders and the empty-modality check."""

import logging

import numpy as np
import pytest
import torch

import data.load_data as load_data
from data.load_data import MMSADataset, build_loaders, find_empty_modalities, load_mmsa, loader_seed
from data.missing import UNK_ID
from tests.data_fixtures import (  # noqa: F401 (fixtures)
    AUDIO_DIM,
    AUDIO_LEN,
    SPLIT_SIZES,
    TEXT_FEATURE_DIM,
    TEXT_LEN,
    VISION_DIM,
    VISION_LEN,
    isolated_data_state,
    make_mmsa,
    mmsa_file,
    mmsa_raw,
    sims_file,
    write_pickle,
)
from utils.errors import ConfigError, DataError

SEEDS = (111, 1111, 11111)


def dataset(path, split="train", rates=(0.5, 0.5, 0.5), **kwargs):
    return MMSADataset(path, split, rates, SEEDS, **kwargs)


def test_load_mmsa_keeps_one_float32_copy_and_drops_unused_text(mmsa_file, mmsa_raw):
    data = load_mmsa(mmsa_file, label_range=(-3.0, 3.0))
    train = data.splits["train"]
    assert set(data.splits) == {"train", "valid", "test"}
    assert train.audio.dtype == np.float32 and train.audio_lengths.dtype == np.int64
    np.testing.assert_array_equal(train.vision, mmsa_raw["train"]["vision"])
    assert not train.audio.flags.writeable  # shared by every dataset built on it
    assert not hasattr(train, "text")
    assert data.feature_dims == (TEXT_FEATURE_DIM, AUDIO_DIM, VISION_DIM)
    assert data.seq_lens == (TEXT_LEN, AUDIO_LEN, VISION_LEN)
    assert data.has_unimodal_labels is False
    assert data.integrity is not None and data.integrity.official is None


def test_load_mmsa_caches_the_last_file(mmsa_file, monkeypatch):
    first = load_mmsa(mmsa_file, label_range=(-3.0, 3.0))
    calls = []
    monkeypatch.setattr(load_data, "safe_load", lambda path: calls.append(path))
    assert load_mmsa(mmsa_file, label_range=(-3.0, 3.0)) is first
    assert calls == []
    with pytest.raises(DataError, match="expected a dict"):
        load_mmsa(mmsa_file, label_range=(-1.0, 1.0))  # other options: read again (here: the stub's None)
    assert len(calls) == 1


def test_load_mmsa_rereads_a_changed_file(mmsa_file):
    first = load_mmsa(mmsa_file)
    raw = make_mmsa(seed=5)
    write_pickle(mmsa_file, raw)
    second = load_mmsa(mmsa_file)
    assert second is not first
    np.testing.assert_array_equal(second.splits["test"].audio, raw["test"]["audio"])


def test_load_mmsa_refuses_a_modified_official_file_when_strict(tmp_path, mmsa_raw):
    path = write_pickle(tmp_path / "MOSI" / "Processed" / "unaligned_50.pkl", mmsa_raw)
    assert load_mmsa(path).integrity.mismatch is True
    with pytest.raises(DataError, match="--strict-data"):
        load_mmsa(path, strict_data=True)
    assert load_mmsa(path, strict_data=True, check_hash=False).integrity is None


def test_load_mmsa_missing_file(tmp_path):
    with pytest.raises(DataError, match="cannot read data file"):
        load_mmsa(tmp_path / "nope.pkl")


def test_item_fields_dtypes_and_shapes(mmsa_file, mmsa_raw):
    ds = dataset(mmsa_file)
    raw = mmsa_raw["train"]
    assert len(ds) == ds.num_samples == SPLIT_SIZES["train"]
    assert ds.seq_lens == (TEXT_LEN, AUDIO_LEN, VISION_LEN)
    assert ds.feature_dims == (TEXT_FEATURE_DIM, AUDIO_DIM, VISION_DIM)
    assert ds.has_unimodal_labels is False
    item = ds[1]
    expected = {
        "text": (torch.float32, (3, TEXT_LEN)),
        "text_m": (torch.float32, (3, TEXT_LEN)),
        "text_missing_mask": (torch.float32, (TEXT_LEN,)),
        "audio": (torch.float32, (AUDIO_LEN, AUDIO_DIM)),
        "audio_m": (torch.float32, (AUDIO_LEN, AUDIO_DIM)),
        "audio_lengths": (torch.int64, ()),
        "audio_mask": (torch.int64, (AUDIO_LEN,)),
        "audio_missing_mask": (torch.int64, (AUDIO_LEN,)),
        "vision": (torch.float32, (VISION_LEN, VISION_DIM)),
        "vision_m": (torch.float32, (VISION_LEN, VISION_DIM)),
        "vision_lengths": (torch.int64, ()),
        "vision_mask": (torch.int64, (VISION_LEN,)),
        "vision_missing_mask": (torch.int64, (VISION_LEN,)),
    }
    for key, (dtype, shape) in expected.items():
        assert item[key].dtype == dtype, key
        assert tuple(item[key].shape) == shape, key
    assert set(item) == set(expected) | {"labels", "index", "id"}
    assert set(item["labels"]) == {"M"}
    assert item["labels"]["M"].dtype == torch.float32 and item["labels"]["M"].shape == (1,)
    assert item["labels"]["M"].item() == pytest.approx(float(raw["regression_labels"][1]))
    assert item["index"] == 1 and item["id"] == "video1$_$1"
    np.testing.assert_array_equal(item["audio"].numpy(), raw["audio"][1])
    assert item["audio_lengths"].item() == raw["audio_lengths"][1]
    length = int(raw["audio_lengths"][1])
    assert item["audio_mask"].tolist() == [1] * length + [0] * (AUDIO_LEN - length)


def test_item_incomplete_view_follows_the_keep_masks(mmsa_file, mmsa_raw):
    ds = dataset(mmsa_file, "test", rates=(0.5, 0.4, 0.6))
    raw = mmsa_raw["test"]
    for i in range(len(ds)):
        item = ds[i]
        keep_t = ds.keep["text"][i]
        ids, attention = raw["text_bert"][i, 0], raw["text_bert"][i, 1]
        expected_ids = np.where(keep_t, ids, np.where(attention == 1, UNK_ID, 0))
        np.testing.assert_array_equal(item["text_m"][0].numpy(), expected_ids)
        np.testing.assert_array_equal(item["text_m"][1:].numpy(), raw["text_bert"][i, 1:])  # mask, segments
        np.testing.assert_array_equal(item["text_missing_mask"].numpy(), keep_t.astype(np.float32))
        for modality in ("audio", "vision"):
            keep = ds.keep[modality][i]
            np.testing.assert_array_equal(item[f"{modality}_m"].numpy(), raw[modality][i] * keep[:, None])
            np.testing.assert_array_equal(item[f"{modality}_missing_mask"].numpy(), keep.astype(np.int64))
            assert item[f"{modality}_lengths"].item() == raw[f"{modality}_lengths"][i]  # lengths unchanged
    assert 0 < ds.keep["audio"].sum() < (np.arange(AUDIO_LEN) < raw["audio_lengths"][:, None]).sum()


def test_every_split_uses_the_same_seed(mmsa_file):
    data = load_mmsa(mmsa_file)
    train = MMSADataset(None, "train", (0.5, 0.5, 0.5), data=data)
    valid = MMSADataset(None, "valid", (0.5, 0.5, 0.5), data=data)
    rng = np.random.RandomState(1111)
    uniform = rng.uniform(size=(SPLIT_SIZES["valid"], AUDIO_LEN))
    valid_frames = np.arange(AUDIO_LEN) < data.splits["valid"].audio_lengths[:, None]
    np.testing.assert_array_equal(valid.keep["audio"], (uniform > 0.5) & valid_frames)
    assert train.missing_seeds == valid.missing_seeds == SEEDS


def test_sims_items_carry_unimodal_labels(sims_file):
    ds = dataset(sims_file, "valid", label_range=(-1.0, 1.0))
    assert ds.has_unimodal_labels
    labels = ds[0]["labels"]
    assert set(labels) == {"M", "T", "A", "V"}
    assert all(v.shape == (1,) and v.dtype == torch.float32 for v in labels.values())


@pytest.mark.parametrize(
    "rates", [(0.1, 1.5, 0.0), (-0.1, 0.0, 0.0), (0.1, 0.1), (float("nan"), 0.0, 0.0), ("0.1", 0.0, 0.0)]
)
def test_bad_missing_rates_are_refused(mmsa_file, rates):
    with pytest.raises(ConfigError, match="missing"):
        dataset(mmsa_file, rates=rates)


def test_bad_seed_protocol_and_split_are_refused(mmsa_file):
    with pytest.raises(ConfigError, match="missing seed of audio"):
        MMSADataset(mmsa_file, "train", (0.1, 0.1, 0.1), (1, -2, 3))
    with pytest.raises(ConfigError, match="protocol"):
        dataset(mmsa_file, protocol="random")
    with pytest.raises(DataError, match="no split 'dev'"):
        dataset(mmsa_file, "dev")


def test_default_collate_through_build_loaders(mmsa_file):
    datasets = {split: dataset(mmsa_file, split) for split in ("train", "valid", "test")}
    loaders = build_loaders(datasets, batch_size=4, seed=3)
    batch = next(iter(loaders["train"]))
    assert batch["text_m"].shape == (4, 3, TEXT_LEN)
    assert batch["audio_m"].shape == (4, AUDIO_LEN, AUDIO_DIM)
    assert batch["audio_lengths"].shape == (4,) and batch["audio_lengths"].dtype == torch.int64
    assert batch["labels"]["M"].shape == (4, 1)
    assert isinstance(batch["id"], list) and all(isinstance(s, str) for s in batch["id"])
    assert batch["index"].dtype == torch.int64
    sizes = [len(b["index"]) for b in loaders["test"]]
    assert sizes == [4, 1]  # no drop_last, as the reference


def epoch_order(loader):
    return [i for batch in loader for i in batch["index"].tolist()]


def test_same_seed_same_order_and_generator_state_restores(mmsa_file):
    data = load_mmsa(mmsa_file)
    datasets = {split: MMSADataset(None, split, (0.0, 0.0, 0.0), data=data) for split in ("train", "valid")}
    first = build_loaders(datasets, batch_size=2, seed=11)
    second = build_loaders(datasets, batch_size=2, seed=11)
    other = build_loaders(datasets, batch_size=2, seed=12)
    orders = [epoch_order(first["train"]) for _ in range(3)]
    assert orders == [epoch_order(second["train"]) for _ in range(3)]
    assert sorted(orders[0]) == list(range(SPLIT_SIZES["train"]))
    assert orders[0] != orders[1] or orders[1] != orders[2]  # reshuffled every epoch
    assert [epoch_order(other["train"]) for _ in range(3)] != orders
    assert loader_seed(11, "train") != loader_seed(11, "valid")

    state = first["train"].generator.get_state()
    expected = epoch_order(first["train"])
    first["train"].generator.set_state(state)
    assert epoch_order(first["train"]) == expected


def test_build_loaders_argument_checks(mmsa_file):
    datasets = {"train": dataset(mmsa_file)}
    bad = ({"batch_size": 0, "seed": 1}, {"batch_size": 2, "seed": -1}, {"batch_size": 2.5, "seed": 1})
    for kwargs in bad:
        with pytest.raises(ConfigError):
            build_loaders(datasets, **kwargs)


def test_set_epoch_redraws_only_when_enabled(mmsa_file):
    static = dataset(mmsa_file)
    redraw = dataset(mmsa_file, redraw_masks=True)
    initial = {m: k.copy() for m, k in redraw.keep.items()}
    for modality in initial:
        np.testing.assert_array_equal(initial[modality], static.keep[modality])
    static.set_epoch(3)
    redraw.set_epoch(3)
    np.testing.assert_array_equal(static.keep["audio"], initial["audio"])
    assert not np.array_equal(redraw.keep["audio"], initial["audio"])
    epoch3 = redraw.keep["vision"].copy()
    redraw.set_epoch(0)
    np.testing.assert_array_equal(redraw.keep["vision"], initial["vision"])
    redraw.set_epoch(3)
    np.testing.assert_array_equal(redraw.keep["vision"], epoch3)
    item = redraw[0]
    np.testing.assert_array_equal(item["vision_missing_mask"].numpy(), epoch3[0].astype(np.int64))
    with pytest.raises(ValueError):
        redraw.set_epoch(-1)


def test_lnln_protocol_gives_each_sample_its_own_rate(mmsa_file):
    ds = dataset(mmsa_file, rates=(0.0, 0.0, 0.0), protocol="lnln")
    static = dataset(mmsa_file, rates=(0.0, 0.0, 0.0))
    assert not np.array_equal(ds.keep["audio"], static.keep["audio"])
    again = dataset(mmsa_file, rates=(0.0, 0.0, 0.0), protocol="lnln")
    for modality in ("text", "audio", "vision"):
        np.testing.assert_array_equal(ds.keep[modality], again.keep[modality])
    assert ds.keep["text"][:, 0].all()  # [CLS] still kept


def test_empty_modality_is_reported(tmp_path, caplog, mmsa_raw):
    mmsa_raw["valid"]["vision"][:] = 0
    data = load_mmsa(write_pickle(tmp_path / "f.pkl", mmsa_raw))
    with caplog.at_level(logging.WARNING, logger="data.load_data"):
        assert find_empty_modalities(MMSADataset(None, "valid", (0.0, 0.0, 0.0), data=data)) == ["vision"]
        assert find_empty_modalities(MMSADataset(None, "train", (1.0, 1.0, 1.0), data=data)) == []
    assert any("split 'valid'" in r.getMessage() and "vision" in r.getMessage() for r in caplog.records)


def test_nonfinite_option_reaches_the_validator(tmp_path, mmsa_raw):
    mmsa_raw["train"]["vision"][0, 0, 0] = np.nan
    path = write_pickle(tmp_path / "f.pkl", mmsa_raw)
    with pytest.raises(DataError, match="non-finite"):
        load_mmsa(path)
    data = load_mmsa(path, fix_nonfinite=True)
    assert data.report.nonfinite_fixed == {("train", "vision"): 1}
    assert dataset(path, fix_nonfinite=True)[0]["vision"][0, 0].item() == 0.0


def test_worker_processes_see_the_same_items(mmsa_file):
    ds = dataset(mmsa_file, "valid")
    single = build_loaders({"valid": ds}, batch_size=2, seed=5)["valid"]
    workers = build_loaders({"valid": ds}, batch_size=2, seed=5, num_workers=2)["valid"]
    a, b = list(single), list(workers)
    assert [x["id"] for x in a] == [x["id"] for x in b]
    for x, y in zip(a, b):
        assert torch.equal(x["audio_m"], y["audio_m"])


def test_path_given_with_data_must_be_its_file(mmsa_file, tmp_path):
    data = load_mmsa(mmsa_file)
    MMSADataset(mmsa_file, "train", (0.1, 0.1, 0.1), data=data)
    other = write_pickle(tmp_path / "other.pkl", make_mmsa())
    with pytest.raises(ValueError, match="is not the file of the given data"):
        MMSADataset(other, "train", (0.1, 0.1, 0.1), data=data)


def test_odd_ids_and_unused_text_do_not_break_loading(tmp_path, mmsa_raw):
    """Regression (property suite): non-UTF-8 byte ids raised UnicodeDecodeError in __getitem__, and a ragged
    ``text`` (unused) raised numpy's ValueError in load_mmsa."""
    mmsa_raw["train"]["id"] = np.array([b"\xff\xfe" + bytes([i]) for i in range(6)], dtype=object)
    mmsa_raw["valid"]["text"] = [[1.0, 2.0], [3.0]]
    path = write_pickle(tmp_path / "odd.pkl", mmsa_raw)
    assert dataset(path)[1]["id"] == "\\xff\\xfe\x01"  # the valid byte 0x01 decodes as itself
    assert dataset(path, "valid").data.splits["valid"].text_dim is None
    assert dataset(path, "test").data.splits["test"].text_dim == TEXT_FEATURE_DIM
