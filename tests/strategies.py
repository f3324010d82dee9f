"""Hypothesis strategies for the data-layer property tests (tests/test_properties_data.py).

* :func:`valid_masks`: (N, T) bool valid-position masks as the loader builds them (text: 1s then 0s with
  at least [CLS]; frames: ``t < length``).
* :func:`mmsa_dicts`: tiny random MMSA feature dicts (docs/REFERENCE.md §3.1) that the loader must accept, with
  random split sizes, lengths, token counts, feature widths, value seeds and the harmless variations real
  files show (float64 / int text, float lengths, (N, 1) labels, Python lists, SIMS unimodal labels).
* :data:`BENIGN` / :data:`BREAKING`: edits of such a dict that keep it loadable, or that make it certainly
  invalid (each names what it broke); :func:`broken_mmsa` applies some benign edits and then one breaking.
* :data:`opcode_soup`: random pickle opcodes with random argument bytes.
* :func:`pickle_calls`: expression trees over the globals the restricted unpickler admits (``float``,
  ``bytes``, ``_codecs.encode``, ``numpy.ndarray``, ``_reconstruct`` ...) with odd arguments, serialised
  by :func:`dumps` into a pickle that calls them on load.
"""

from __future__ import annotations

import collections
import pickle
import pickletools
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
from hypothesis import strategies as st

from data.safe_pickle import _ALLOWED
from data.schema import FEATURE_KEYS, LABEL_KEY, LENGTH_KEYS, REQUIRED_KEYS, REQUIRED_SPLITS, UNIMODAL_LABEL_KEYS

CLS_ID, SEP_ID = 101, 102
SIMS_RANGE, MOSI_RANGE = (-1.0, 1.0), (-3.0, 3.0)
MAX_N, MAX_L, MAX_T, MAX_D = 4, 8, 6, 3

seeds = st.integers(0, 2**32 - 1)
rates = st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0, allow_nan=False))


# --------------------------------------------------------------------------------------------------------
# valid-position masks


@st.composite
def valid_masks(draw, *, is_text: bool, max_n: int = 6, max_t: int = 10) -> np.ndarray:
    """(N, T) bool: text rows are 1..T leading Trues; frame rows 0..T (the loader needs >= 1, masks don't)."""
    n = draw(st.integers(1, max_n))
    t = draw(st.integers(1, max_t))
    counts = draw(st.lists(st.integers(1 if is_text else 0, t), min_size=n, max_size=n))
    return np.arange(t)[None, :] < np.asarray(counts)[:, None]


# --------------------------------------------------------------------------------------------------------
# valid MMSA dicts


@dataclass
class MMSACase:
    """A generated feature dict and the label range it was generated for (SIMS or MOSI/MOSEI)."""

    raw: Any
    label_range: tuple[float, float]
    edits: list[str]

    @property
    def sims(self) -> bool:
        return self.label_range == SIMS_RANGE


def _split(draw, rng: np.random.Generator, dims: dict, *, sims: bool, variant: dict) -> dict:
    n = draw(st.integers(1, MAX_N), label="n")
    length, t_a, t_v = dims["L"], dims["T_a"], dims["T_v"]
    counts = draw(st.lists(st.integers(1, length), min_size=n, max_size=n), label="token counts")
    audio_lengths = draw(st.lists(st.integers(1, t_a), min_size=n, max_size=n), label="audio lengths")
    vision_lengths = draw(st.lists(st.integers(1, t_v), min_size=n, max_size=n), label="vision lengths")

    text_bert = np.zeros((n, 3, length), dtype=np.float64)
    for i, count in enumerate(counts):
        words = rng.integers(1000, 2000, max(count - 2, 0))
        text_bert[i, 0, :count] = [CLS_ID, *words, SEP_ID][:count] if count > 1 else [CLS_ID]
        text_bert[i, 1, :count] = 1
    audio = np.zeros((n, t_a, dims["d_a"]))
    vision = np.zeros((n, t_v, dims["d_v"]))
    for i in range(n):
        audio[i, : audio_lengths[i]] = rng.normal(0.5, 2.0, (audio_lengths[i], dims["d_a"]))
        vision[i, : vision_lengths[i]] = rng.normal(-1.0, 3.0, (vision_lengths[i], dims["d_v"]))
    low, high = SIMS_RANGE if sims else MOSI_RANGE
    split = {
        "id": np.array([f"v{i}$_${i % 2}" for i in range(n)], dtype=object),
        "raw_text": np.array([f"utterance {i}" for i in range(n)], dtype=object),
        "text_bert": text_bert.astype(variant["text_bert"]),
        "audio": audio.astype(variant["frames"]),
        "vision": vision.astype(variant["frames"]),
        "audio_lengths": np.asarray(audio_lengths).astype(variant["lengths"]),
        "vision_lengths": np.asarray(vision_lengths).astype(variant["lengths"]),
        "regression_labels": rng.uniform(low, high, n).astype(variant["labels"]),
        "classification_labels": np.zeros(n),
        "annotations": np.array(["Neutral"] * n, dtype=object),
    }
    if variant["with_text"]:
        split["text"] = rng.normal(size=(n, length, 5)).astype(np.float32)
    if variant["label_bounds"]:
        split["regression_labels"][0] = high  # the range is closed
    if sims:
        for key in UNIMODAL_LABEL_KEYS.values():
            split[key] = rng.uniform(low, high, n).astype(variant["labels"])
    if variant["column_vectors"]:
        split["regression_labels"] = split["regression_labels"].reshape(n, 1)
        split["audio_lengths"] = split["audio_lengths"].reshape(n, 1)
    return split


@st.composite
def mmsa_dicts(draw, *, sims: bool | None = None) -> MMSACase:
    """A random, valid, tiny MMSA dict (N <= 4 per split, L <= 8, T <= 6, d <= 3)."""
    sims = draw(st.booleans(), label="sims") if sims is None else sims
    dims = {
        "L": draw(st.integers(1, MAX_L), label="L"),
        "T_a": draw(st.integers(1, MAX_T), label="T_a"),
        "T_v": draw(st.integers(1, MAX_T), label="T_v"),
        "d_a": draw(st.integers(1, MAX_D), label="d_a"),
        "d_v": draw(st.integers(1, MAX_D), label="d_v"),
    }
    variant = {
        "text_bert": draw(st.sampled_from([np.float32, np.float64, np.int64, np.int32])),
        "frames": draw(st.sampled_from([np.float32, np.float64])),
        "lengths": draw(st.sampled_from([np.int64, np.int32, np.float64, np.uint8])),
        "labels": draw(st.sampled_from([np.float32, np.float64])),
        "with_text": draw(st.booleans()),
        "label_bounds": draw(st.booleans()),
        "column_vectors": draw(st.booleans()),
    }
    rng = np.random.default_rng(draw(st.integers(0, 2**16), label="value seed"))
    raw = {}
    for split in REQUIRED_SPLITS:  # a loop, not a comprehension: hypothesis checks that draw is used here
        raw[split] = _split(draw, rng, dims, sims=sims, variant=variant)
    return MMSACase(raw=raw, label_range=SIMS_RANGE if sims else MOSI_RANGE, edits=[])


# --------------------------------------------------------------------------------------------------------
# edits: benign ones keep the dict loadable, breaking ones make it certainly invalid


def _keys(split: dict, *, sims: bool) -> list[str]:
    return [*REQUIRED_KEYS, *(UNIMODAL_LABEL_KEYS.values() if sims else ())]


def _pick_split(draw, case: MMSACase) -> tuple[str, dict]:
    name = draw(st.sampled_from(REQUIRED_SPLITS), label="split")
    return name, case.raw[name]


def _n(split: dict) -> int:
    return len(np.asarray(split["id"]))


# benign ---------------------------------------------------------------------------------------------------


def benign_to_list(draw, case):
    name, split = _pick_split(draw, case)
    key = draw(st.sampled_from(_keys(split, sims=case.sims)))
    split[key] = np.asarray(split[key]).tolist()
    return f"{name}.{key} as a Python list"


def benign_pad_frames(draw, case):
    name, split = _pick_split(draw, case)
    modality = draw(st.sampled_from(list(LENGTH_KEYS)))
    extra = draw(st.integers(1, 3))
    array = np.asarray(split[modality])
    split[modality] = np.concatenate([array, np.zeros((array.shape[0], extra, array.shape[2]))], axis=1)
    return f"{name}.{modality} with {extra} more zero frames"


def benign_extra_keys(draw, case):
    name, split = _pick_split(draw, case)
    value = draw(st.sampled_from([None, "x", 3, np.zeros(2), [1, [2]], {"a": 1}]))
    split["extra"] = value
    case.raw[draw(st.sampled_from(["meta", "extra_split"]))] = value
    return f"extra key in {name} and at the top: {value!r}"


def benign_drop_optional(draw, case):
    name, split = _pick_split(draw, case)
    key = draw(st.sampled_from(["raw_text", "annotations", "classification_labels", "text"]))
    split.pop(key, None)
    return f"{name} without optional {key}"


def benign_ids(draw, case):
    name, split = _pick_split(draw, case)
    n = _n(split)
    kind = draw(st.sampled_from(["int", "bytes", "invalid utf-8", "unicode", "object mix"]))
    if kind == "int":
        split["id"] = np.arange(n)
    elif kind == "bytes":
        split["id"] = np.array([f"v{i}".encode() for i in range(n)])
    elif kind == "invalid utf-8":
        split["id"] = np.array([b"\xff\xfe" + bytes([i]) for i in range(n)], dtype=object)
    elif kind == "unicode":
        split["id"] = np.array([f"\u00e9{i}$_$0" for i in range(n)])
    else:
        split["id"] = np.array([[None, 1.5, b"\x80", "s"][i % 4] for i in range(n)], dtype=object)
    return f"{name}.id as {kind}"


def benign_ordered_dict(draw, case):
    name, split = _pick_split(draw, case)
    case.raw[name] = collections.OrderedDict(reversed(list(split.items())))
    return f"{name} as an OrderedDict"


def benign_odd_text(draw, case):
    """The precomputed BERT ``text`` features are unused: an odd value there must not matter."""
    name, split = _pick_split(draw, case)
    n = _n(split)
    value = draw(
        st.sampled_from(["string", "2-D", "ragged list", "None", "dict", "wrong N"]),
    )
    split["text"] = {
        "string": "abc",
        "2-D": np.zeros((n, 2)),
        "ragged list": [[1.0, 2.0], [3.0]],
        "None": None,
        "dict": {"a": 1},
        "wrong N": np.zeros((n + 1, 2, 3)),
    }[value]
    return f"{name}.text as {value}"


BENIGN: dict[str, Callable] = {
    "to_list": benign_to_list,
    "pad_frames": benign_pad_frames,
    "extra_keys": benign_extra_keys,
    "drop_optional": benign_drop_optional,
    "ids": benign_ids,
    "ordered_dict": benign_ordered_dict,
    "odd_text": benign_odd_text,
}


# breaking ---------------------------------------------------------------------------------------------------


def break_drop_split(draw, case):
    name = draw(st.sampled_from(REQUIRED_SPLITS))
    del case.raw[name]
    return f"no split {name}"


def break_drop_key(draw, case):
    name, split = _pick_split(draw, case)
    key = draw(st.sampled_from(_keys(split, sims=case.sims)))
    del split[key]
    return f"{name} without {key}"


def break_unimodal_labels(draw, case):
    """SIMS: one of T/A/V missing; otherwise: unimodal labels in one split only."""
    name, split = _pick_split(draw, case)
    if case.sims:
        key = draw(st.sampled_from(list(UNIMODAL_LABEL_KEYS.values())))
        del split[key]
        return f"{name} without {key}"
    keys = draw(st.sampled_from([["regression_labels_T"], list(UNIMODAL_LABEL_KEYS.values())]))
    for key in keys:
        split[key] = np.zeros(_n(split))
    return f"only {name} has {keys}"


def break_top_level(draw, case):
    kind = draw(st.sampled_from(["list", "None", "int", "str", "tuple", "array", "frozenset"]))
    raw = case.raw
    case.raw = {
        "list": list(raw.values()),
        "None": None,
        "int": 42,
        "str": "train",
        "tuple": tuple(raw.items()),
        "array": np.zeros(3),
        "frozenset": frozenset(raw),
    }[kind]
    return f"top level is a {kind}"


def break_split_type(draw, case):
    name, split = _pick_split(draw, case)
    kind = draw(st.sampled_from(["list of values", "list of items", "None", "array", "str", "float"]))
    case.raw[name] = {
        "list of values": list(split.values()),
        "list of items": list(split.items()),
        "None": None,
        "array": np.arange(3),
        "str": "text_bert",
        "float": 1.5,
    }[kind]
    return f"{name} is a {kind}"


def break_first_dim(draw, case):
    name, split = _pick_split(draw, case)
    key = draw(st.sampled_from(_keys(split, sims=case.sims)))
    array = np.asarray(split[key])
    if draw(st.booleans()):
        split[key] = array[:-1]
        return f"{name}.{key} lacks its last sample"
    split[key] = np.concatenate([array, array[-1:]])
    return f"{name}.{key} has one sample more"


#: Shape changes that certainly break a file: label -> (key, change of the array).
SHAPE_BREAKS: dict[str, tuple[str, Callable]] = {
    "text_bert 2-D": ("text_bert", lambda a: a.reshape(a.shape[0], -1)),
    "text_bert 2 rows": ("text_bert", lambda a: a[:, :2]),
    "text_bert 4 rows": ("text_bert", lambda a: np.concatenate([a, a[:, :1]], axis=1)),
    "text_bert 4-D": ("text_bert", lambda a: a[..., None]),
    "text_bert L=0": ("text_bert", lambda a: a[:, :, :0]),
    "audio 2-D": ("audio", lambda a: a.reshape(a.shape[0], -1)),
    "vision 4-D": ("vision", lambda a: a[..., None]),
    "audio T=0": ("audio", lambda a: a[:, :0]),
    "vision T=0": ("vision", lambda a: a[:, :0]),
    "audio wider": ("audio", lambda a: np.concatenate([a, a[:, :, :1]], axis=2)),
    "vision narrower": ("vision", lambda a: a[:, :, :0]),
    "labels (N, 2)": (LABEL_KEY, lambda a: np.stack([a.reshape(-1)] * 2, axis=1)),
    "labels (N, 1, 1)": (LABEL_KEY, lambda a: a.reshape(-1, 1, 1)),
    "labels 0-d": (LABEL_KEY, lambda a: a.reshape(-1)[0]),
    "lengths (N, 2)": ("vision_lengths", lambda a: np.stack([a.reshape(-1)] * 2, axis=1)),
    "lengths (N, 1, 1)": ("audio_lengths", lambda a: a.reshape(-1, 1, 1)),
    "lengths 0-d": ("vision_lengths", lambda a: a.reshape(-1)[0]),
    "id (N, 2)": ("id", lambda a: np.stack([a] * 2, axis=1)),
    "id 0-d": ("id", lambda a: a[0]),
}


def _break_shape(label: str) -> Callable:
    key, change = SHAPE_BREAKS[label]

    def edit(draw, case):
        name, split = _pick_split(draw, case)
        split[key] = change(np.asarray(split[key]))
        return f"{name}: {label}"

    return edit


#: Values of the wrong type for a numeric key: label -> the replacement made from the array.
DTYPE_BREAKS: dict[str, Callable] = {
    "str": lambda a: a.astype(str),
    "bytes": lambda a: a.astype("S8"),
    "object": lambda a: a.astype(object),
    "complex": lambda a: a.astype(np.complex64),
    "datetime": lambda a: np.zeros(a.shape, dtype="M8[s]"),
    "void": lambda a: np.zeros(a.shape, dtype="V4"),
    "ragged list": lambda a: [*a.tolist(), [1.0, 2.0]] if a.ndim == 1 else [*a.tolist(), [1.0]],
    "None": lambda a: None,
    "dict": lambda a: {"values": a},
    "string": lambda a: "1.0",
}


def _break_dtype(label: str) -> Callable:
    def edit(draw, case):
        name, split = _pick_split(draw, case)
        key = draw(st.sampled_from([*FEATURE_KEYS, *LENGTH_KEYS.values(), LABEL_KEY]))
        split[key] = DTYPE_BREAKS[label](np.asarray(split[key]))
        return f"{name}.{key} as {label}"

    return edit


def break_lengths(draw, case):
    name, split = _pick_split(draw, case)
    modality = draw(st.sampled_from(list(LENGTH_KEYS)))
    key = LENGTH_KEYS[modality]
    t = np.asarray(split[modality]).shape[1]
    lengths = np.asarray(split[key]).astype(np.float64)
    i = draw(st.integers(0, len(lengths) - 1))
    value = draw(st.sampled_from([0, -1, t + 1, t + 100, 2**40, 1.5, float("nan"), float("inf")]))
    lengths.reshape(-1)[i] = value
    split[key] = lengths
    return f"{name}.{key}[{i}] = {value} (T = {t})"


def break_labels(draw, case):
    name, split = _pick_split(draw, case)
    key = draw(st.sampled_from([LABEL_KEY, *(UNIMODAL_LABEL_KEYS.values() if case.sims else ())]))
    labels = np.asarray(split[key], dtype=np.float64)
    low, high = case.label_range
    value = draw(st.sampled_from([high + 0.01, low - 0.01, high + 1, 1e6, -1e30]))
    labels.reshape(-1)[draw(st.integers(0, labels.size - 1))] = value
    split[key] = labels
    return f"{name}.{key} has {value} outside {case.label_range}"


def break_attention(draw, case):
    name, split = _pick_split(draw, case)
    text = np.asarray(split["text_bert"], dtype=np.float64)
    mask = text[:, 1]
    n, length = mask.shape
    i = draw(st.integers(0, n - 1))
    count = int(mask[i].sum())
    kind = draw(st.sampled_from(["no [CLS]", "hole", "not binary"]))
    if kind == "no [CLS]":
        mask[i, 0] = 0
    elif kind == "hole" and count >= 3:
        mask[i, draw(st.integers(1, count - 2))] = 0
    elif kind == "hole" and count <= length - 2:
        mask[i, length - 1] = 1
    else:
        kind = "not binary"
        mask[i, draw(st.integers(0, length - 1))] = draw(st.sampled_from([0.5, 2.0, -1.0]))
    split["text_bert"] = text
    return f"{name}.text_bert attention mask of sample {i}: {kind}"


def break_text_ids(draw, case):
    name, split = _pick_split(draw, case)
    text = np.asarray(split["text_bert"], dtype=np.float64)
    i = draw(st.integers(0, text.shape[0] - 1))
    j = draw(st.integers(0, text.shape[2] - 1))
    value = draw(st.sampled_from([-1.0, 1.5, -100.0, 0.001]))
    text[i, 0, j] = value
    split["text_bert"] = text
    return f"{name}.text_bert ids[{i}, {j}] = {value}"


def break_nonfinite(draw, case):
    """A non-finite value that only --fix-nonfinite may repair (audio -inf is always zeroed: not here)."""
    name, split = _pick_split(draw, case)
    key = draw(st.sampled_from(["audio", "vision", "text_bert", LABEL_KEY]))
    array = np.asarray(split[key], dtype=np.float64)
    value = draw(st.sampled_from([np.nan, np.inf] + ([] if key == "audio" else [-np.inf])))
    array.reshape(-1)[draw(st.integers(0, array.size - 1))] = value
    split[key] = array
    return f"{name}.{key} holds {value}"


def break_empty_split(draw, case):
    name, split = _pick_split(draw, case)
    for key, value in split.items():
        array = np.asarray(value) if not isinstance(value, (str, dict, type(None))) else None
        if array is not None and array.ndim:
            split[key] = array[:0]
    return f"{name} has no samples"


BREAKING: dict[str, Callable] = {
    "drop_split": break_drop_split,
    "drop_key": break_drop_key,
    "unimodal_labels": break_unimodal_labels,
    "top_level": break_top_level,
    "split_type": break_split_type,
    "first_dim": break_first_dim,
    **{f"shape: {label}": _break_shape(label) for label in SHAPE_BREAKS},
    **{f"dtype: {label}": _break_dtype(label) for label in DTYPE_BREAKS},
    "lengths": break_lengths,
    "labels": break_labels,
    "attention": break_attention,
    "text_ids": break_text_ids,
    "nonfinite": break_nonfinite,
    "empty_split": break_empty_split,
}


@st.composite
def broken_mmsa(draw, breaking: str | None = None) -> MMSACase:
    """A valid dict, 0-2 benign edits, then one breaking edit (``breaking``, else a random one): certainly
    invalid."""
    case = draw(mmsa_dicts())
    for name in draw(st.lists(st.sampled_from(sorted(BENIGN)), max_size=2), label="benign edits"):
        case.edits.append(BENIGN[name](draw, case))
    name = breaking or draw(st.sampled_from(sorted(BREAKING)), label="breaking edit")
    case.edits.append(BREAKING[name](draw, case))
    return case


@st.composite
def loadable_mmsa(draw) -> MMSACase:
    """A valid dict after 1-3 benign edits: it must still load."""
    case = draw(mmsa_dicts())
    for name in draw(st.lists(st.sampled_from(sorted(BENIGN)), min_size=1, max_size=3), label="benign edits"):
        case.edits.append(BENIGN[name](draw, case))
    return case


# --------------------------------------------------------------------------------------------------------
# random pickle opcodes

_OPCODES = sorted({op.code.encode("latin-1") for op in pickletools.opcodes})

#: Random opcodes, each followed by 0-9 random argument bytes, after a random protocol header: reaches
#: far more of the unpickler (frames, counted lengths, memo) than uniformly random bytes do.
opcode_soup = st.builds(
    lambda proto, ops: bytes([0x80, proto]) + b"".join(code + arg for code, arg in ops),
    st.integers(0, 5),
    st.lists(st.tuples(st.sampled_from(_OPCODES), st.binary(max_size=9)), max_size=12),
)


# --------------------------------------------------------------------------------------------------------
# pickles that call the admitted globals with odd arguments


@dataclass(frozen=True)
class Call:
    """``module.name(*args)`` when unpickled."""

    module: str
    name: str
    args: tuple

    def __repr__(self) -> str:
        return f"{self.module}.{self.name}{self.args!r}"


#: (module, name) of every admitted global; DISTINCT_GLOBALS keeps one name per object.
GLOBALS = sorted(_ALLOWED)
DISTINCT_GLOBALS = sorted({id(obj): key for key, obj in sorted(_ALLOWED.items(), reverse=True)}.values())
#: Ints that are either tiny or too large for C sizes: no argument here makes ``bytes(n)`` allocate much.
_ODD_INTS = [2**63, 2**64, -(2**63) - 1, 10**400]
_ODD_STRINGS = [
    "f4", "<f8", "U3", "O", "V8", "M8[s]", "i8", "b", "S2", "utf-8", "latin1", "hex", "zlib", "base64",
    "rot13", "idna", "bogus-codec", "", "C", "F", "1e400", "nan", "x",
]

_leaves = st.one_of(
    st.integers(-3, 8),
    st.sampled_from(_ODD_INTS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(_ODD_STRINGS),
    st.binary(max_size=12),
    st.none(),
    st.booleans(),
    st.sampled_from([np.dtype("f4"), np.dtype("O"), np.dtype("U2"), np.float32(1.5), np.arange(3)]),
)


def _extend(children):
    return st.one_of(
        st.lists(children, max_size=4).map(tuple),
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(["a", "b", 1]), children, max_size=2),
        st.builds(
            lambda g, args: Call(g[0], g[1], tuple(args)),
            st.sampled_from(GLOBALS),
            st.lists(children, max_size=4),
        ),
    )


def pickle_calls(module_name: tuple[str, str] | None = None):
    """Calls of the admitted global ``module_name`` (else a random one) with 0-4 odd arguments."""
    return st.builds(
        lambda g, args: Call(g[0], g[1], tuple(args)),
        st.just(module_name) if module_name else st.sampled_from(GLOBALS),
        st.lists(st.recursive(_leaves, _extend, max_leaves=8), max_size=4),
    )


def _fragment(obj: Any) -> bytes:
    """Protocol-2 opcodes building ``obj`` (without PROTO and STOP); Calls become GLOBAL + args + REDUCE."""
    if isinstance(obj, Call):
        return b"c" + f"{obj.module}\n{obj.name}\n".encode() + _fragment(tuple(obj.args)) + b"R"
    if isinstance(obj, tuple):
        return b"(" + b"".join(_fragment(item) for item in obj) + b"t"
    if isinstance(obj, list):
        return b"(" + b"".join(_fragment(item) for item in obj) + b"l"
    if type(obj) is dict:
        return b"(" + b"".join(_fragment(k) + _fragment(v) for k, v in obj.items()) + b"d"
    return pickle.dumps(obj, protocol=2)[2:-1]


def dumps(obj: Any) -> bytes:
    """A protocol-2 pickle of ``obj`` in which every :class:`Call` is performed by the unpickler."""
    return b"\x80\x02" + _fragment(obj) + b"."
