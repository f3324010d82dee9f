"""Property-based tests (hypothesis) of the data layer: the mask protocol and the loader on random inputs.

Mask protocol (docs/REFERENCE.md §3.2 step 3), on random valid masks, rates, seeds, protocols and epochs, both for
:func:`data.missing.keep_mask` and for the items of :class:`MMSADataset` built on random tiny files:

* keep-masks stay inside the valid positions; padded text ids stay 0, padded frames stay zero, lengths,
  attention masks and segment ids are unchanged;
* [CLS] and [SEP] are always kept; dropped ids are [UNK] = 100 exactly where keep = 0 on a valid position;
  dropped frames are zero vectors, kept ones unchanged;
* masks are nested in the rate (same seed): what is dropped at r1 <= r2 is dropped at r2;
* rate 0 is the identity, rate 1 drops every droppable valid position.

Loader (:func:`load_mmsa` + datasets + every item), on pickles written to a temporary folder:

* valid files (with harmless variations) load and their items are finite and follow the protocol;
* audio -inf always, and nan/inf with ``fix_nonfinite=True``, become 0: items are always finite;
* malformed files (keys or splits removed, shapes, first dimensions or dtypes changed, lengths or labels
  out of range, broken attention masks, top level or splits not dicts, truncated, random or mutated
  bytes, pickles calling the admitted globals with odd arguments) end in a UserError (DataError for
  certainly-broken files), never in another exception, and never hang (an alarm per example).

Examples are derandomized, so CI runs are reproducible (about 20 s). To search harder locally, raise the
count and draw fresh examples: ``EMT_HYPOTHESIS_MAX_EXAMPLES=400 EMT_HYPOTHESIS_RANDOM=1 pytest -n 2 ...``.
The bugs this suite found have focused regression tests in tests/test_data_{schema,safe_pickle,load}.py.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pickle
import signal
import threading
from datetime import timedelta

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from config import MODALITIES
from data.load_data import MMSADataset, build_loaders, clear_load_cache, load_mmsa
from data.missing import PROTOCOLS, UNK_ID, keep_mask, mask_frames, mask_text_ids
from data.schema import LABEL_KEY, LENGTH_KEYS, REQUIRED_SPLITS, UNIMODAL_LABEL_KEYS
from tests.strategies import (
    BREAKING,
    DISTINCT_GLOBALS,
    broken_mmsa,
    dumps,
    loadable_mmsa,
    mmsa_dicts,
    opcode_soup,
    pickle_calls,
    rates,
    seeds,
    valid_masks,
)
from utils.errors import DataError, UserError

#: Odd pickled arguments of numpy.dtype() make numpy warn before it fails; the warning is not the point.
pytestmark = pytest.mark.filterwarnings("ignore::numpy.exceptions.VisibleDeprecationWarning")

MAX_EXAMPLES = int(os.environ.get("EMT_HYPOTHESIS_MAX_EXAMPLES", "40"))
#: Examples per kind in the tests parametrised over kinds of breakage (41) and admitted globals (19 + any).
PER_KIND_EXAMPLES = max(1, MAX_EXAMPLES // 5)
#: Wall-clock limit of one example (loading a tiny pickle takes milliseconds): beyond it, it is a hang.
HANG_SECONDS = 10

PROPERTY_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=timedelta(seconds=3),
    derandomize=os.environ.get("EMT_HYPOTHESIS_RANDOM") != "1",  # fixed examples unless exploring
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

rate_triples = st.tuples(rates, rates, rates)
seed_triples = st.tuples(seeds, seeds, seeds)
pickle_protocols = st.integers(0, pickle.HIGHEST_PROTOCOL)
masks_with_kind = st.booleans().flatmap(lambda is_text: st.tuples(st.just(is_text), valid_masks(is_text=is_text)))


# --------------------------------------------------------------------------------------------------------
# helpers


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder for the examples' pickles, with the SHA-1 cache in a temporary folder (not ~/.cache)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMT_DLFR_CACHE_DIR", str(tmp_path_factory.mktemp("sha1-cache")))
        patch.delenv("MMSA_DATA_ROOT", raising=False)
        clear_load_cache()
        yield tmp_path_factory.mktemp("pickles")
        clear_load_cache()


class Hang(Exception):
    """An example ran past HANG_SECONDS (not a UserError, so it fails the test)."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise Hang in the main thread after ``seconds`` (no guard off the main thread or without SIGALRM)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def on_alarm(signum, frame):
        raise Hang(f"loading took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


_file_numbers = itertools.count()


def load_everything(payload: bytes, workdir, label_range, *, rates=(0.5, 0.5, 0.5), seeds=(111, 1111, 11111),
                    fix_nonfinite=False, protocol="static", check_hash=False):
    """Write ``payload``, load it, build the three datasets and read every item (under the hang guard).

    Returns (data, datasets, items by split). A UserError propagates; so does anything else (a bug).
    The SHA-1 check (whose cache write fsyncs) is off unless asked for: it reads bytes, not their content.
    """
    path = workdir / f"example-{next(_file_numbers)}.pkl"
    path.write_bytes(payload)
    clear_load_cache()
    try:
        with time_limit(HANG_SECONDS):
            data = load_mmsa(path, label_range=label_range, fix_nonfinite=fix_nonfinite, check_hash=check_hash)
            datasets = {
                split: MMSADataset(None, split, rates, seeds, data=data, protocol=protocol)
                for split in REQUIRED_SPLITS
            }
            items = {split: [ds[i] for i in range(len(ds))] for split, ds in datasets.items()}
        return data, datasets, items
    finally:
        path.unlink()
        clear_load_cache()


def load_outcome(payload: bytes, workdir, label_range, **kwargs):
    """(loaded, None) or (None, the UserError); any other exception is a bug and fails the test."""
    try:
        return load_everything(payload, workdir, label_range, **kwargs), None
    except UserError as exc:
        return None, exc


def _np(tensor: torch.Tensor) -> np.ndarray:
    return tensor.numpy()


def check_item(item: dict, label_range) -> None:
    """What every item of a loaded file must satisfy, whatever the file held."""
    for key, value in item.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            assert torch.isfinite(value).all(), f"non-finite values in item field {key}"
    for name, label in item["labels"].items():
        assert label.shape == (1,) and torch.isfinite(label).all(), name
        assert label_range[0] <= float(label) <= label_range[1], name

    text, text_m = _np(item["text"]), _np(item["text_m"])
    assert text.ndim == 2 and text.shape[0] == 3 and text_m.shape == text.shape
    valid = text[1] == 1
    count = int(valid.sum())
    assert count >= 1 and valid[:count].all() and not valid[count:].any()  # 1s ([CLS] first) then 0s
    keep_f = _np(item["text_missing_mask"])
    assert set(np.unique(keep_f)) <= {0.0, 1.0}
    keep = keep_f == 1
    assert not (keep & ~valid).any(), "a padded text position is kept"
    assert keep[0] and keep[count - 1], "[CLS] or [SEP] dropped"
    np.testing.assert_array_equal(text_m[1:], text[1:])  # attention mask and segment ids unchanged
    ids_m = text_m[0]
    assert (ids_m[~valid] == 0).all(), "padding of text ids is not 0"
    np.testing.assert_array_equal(ids_m[keep], text[0][keep])
    assert (ids_m[valid & ~keep] == UNK_ID).all(), "a dropped token is not [UNK]"

    for modality in LENGTH_KEYS:
        x, x_m = _np(item[modality]), _np(item[f"{modality}_m"])
        assert x.ndim == 2 and x_m.shape == x.shape
        length = int(item[f"{modality}_lengths"])
        assert 1 <= length <= x.shape[0]
        mask = _np(item[f"{modality}_mask"])
        np.testing.assert_array_equal(mask, (np.arange(x.shape[0]) < length).astype(np.int64))
        frame_keep = _np(item[f"{modality}_missing_mask"])
        assert set(np.unique(frame_keep)) <= {0, 1}
        assert not (frame_keep & (1 - mask)).any(), f"a padded {modality} frame is kept"
        np.testing.assert_array_equal(x_m[frame_keep == 1], x[frame_keep == 1])
        assert not x_m[frame_keep == 0].any(), f"a dropped {modality} frame is not zero"


def check_loaded(loaded, label_range) -> None:
    data, datasets, items = loaded
    for split in REQUIRED_SPLITS:
        assert len(items[split]) == data.splits[split].num_samples >= 1
        for item in items[split]:
            check_item(item, label_range)


def check_matches_file(items: dict, raw: dict) -> None:
    """Items of a valid generated file carry the file's values; its zero padding stays zero in the views."""
    for split in REQUIRED_SPLITS:
        source = raw[split]
        text_bert = np.asarray(source["text_bert"], dtype=np.float32)
        labels = np.asarray(source[LABEL_KEY], dtype=np.float32).reshape(-1)
        for i, item in enumerate(items[split]):
            np.testing.assert_array_equal(_np(item["text"]), text_bert[i])
            assert float(item["labels"]["M"]) == labels[i]
            for modality, length_key in LENGTH_KEYS.items():
                features = np.asarray(source[modality], dtype=np.float32)[i]
                length = int(np.asarray(source[length_key]).reshape(-1)[i])
                np.testing.assert_array_equal(_np(item[modality]), features)
                assert int(item[f"{modality}_lengths"]) == length
                assert not _np(item[f"{modality}_m"])[length:].any(), f"padded {modality} frames not zero"


# --------------------------------------------------------------------------------------------------------
# the mask protocol on random masks (data.missing)


@PROPERTY_SETTINGS
@given(masks_with_kind, rates, seeds, st.sampled_from(PROTOCOLS), st.integers(0, 3), st.integers(0, 2**16))
def test_keep_masks_stay_in_valid_positions_and_keep_cls_and_sep(masked, rate, seed, protocol, epoch, seed_x):
    is_text, valid = masked
    keep = keep_mask(valid, rate, seed, is_text=is_text, protocol=protocol, epoch=epoch)
    assert keep.dtype == bool and keep.shape == valid.shape
    assert not (keep & ~valid).any(), "a padded position is kept"
    again = keep_mask(valid, rate, seed, is_text=is_text, protocol=protocol, epoch=epoch)
    np.testing.assert_array_equal(keep, again)  # a function of the seed alone

    rng = np.random.default_rng(seed_x)
    if is_text:
        counts = valid.sum(axis=1)
        rows = np.arange(len(valid))
        assert keep[:, 0].all() and keep[rows, counts - 1].all(), "[CLS] or [SEP] dropped"
        ids = np.where(valid, rng.integers(1000, 30000, valid.shape), 0).astype(np.float32)
        ids_m = mask_text_ids(ids, valid.astype(np.float32), keep.astype(np.float32))
        np.testing.assert_array_equal(ids_m[keep], ids[keep])
        assert (ids_m[valid & ~keep] == UNK_ID).all()
        assert (ids_m[~valid] == 0).all()
    else:
        features = np.where(valid[..., None], rng.normal(size=(*valid.shape, 3)), 0.0).astype(np.float32)
        features_m = mask_frames(features, keep)
        np.testing.assert_array_equal(features_m[keep], features[keep])
        assert not features_m[~keep].any()


@PROPERTY_SETTINGS
@given(masks_with_kind, rates, rates, seeds, st.integers(0, 3))
def test_keep_masks_are_nested_in_the_rate(masked, rate_a, rate_b, seed, epoch):
    is_text, valid = masked
    low, high = sorted((rate_a, rate_b))
    keep_low = keep_mask(valid, low, seed, is_text=is_text, epoch=epoch)
    keep_high = keep_mask(valid, high, seed, is_text=is_text, epoch=epoch)
    dropped_low, dropped_high = valid & ~keep_low, valid & ~keep_high
    assert not (dropped_low & ~dropped_high).any(), f"dropped at {low} but kept at {high}"


@PROPERTY_SETTINGS
@given(masks_with_kind, seeds, st.integers(0, 3))
def test_rate_zero_keeps_everything_and_rate_one_drops_every_droppable_position(masked, seed, epoch):
    is_text, valid = masked
    np.testing.assert_array_equal(keep_mask(valid, 0.0, seed, is_text=is_text, epoch=epoch), valid)
    forced = np.zeros_like(valid)
    if is_text:
        forced[:, 0] = True
        forced[np.arange(len(valid)), valid.sum(axis=1) - 1] = True
    np.testing.assert_array_equal(keep_mask(valid, 1.0, seed, is_text=is_text, epoch=epoch), forced)


# --------------------------------------------------------------------------------------------------------
# the mask protocol in the loader's items (random valid files)


@PROPERTY_SETTINGS
@given(mmsa_dicts(), rate_triples, seed_triples, st.sampled_from(PROTOCOLS), pickle_protocols)
def test_items_of_valid_files_follow_the_mask_protocol(workdir, case, rates_, seeds_, protocol, pickle_protocol):
    data, datasets, items = load_everything(
        pickle.dumps(case.raw, protocol=pickle_protocol), workdir, case.label_range, rates=rates_, seeds=seeds_,
        protocol=protocol, check_hash=True,
    )
    check_loaded((data, datasets, items), case.label_range)
    check_matches_file(items, case.raw)
    assert data.has_unimodal_labels == case.sims
    for split in REQUIRED_SPLITS:
        for item in items[split]:
            assert set(item["labels"]) == ({"M", *UNIMODAL_LABEL_KEYS} if case.sims else {"M"})


def _dropped(item: dict, modality: str) -> np.ndarray:
    if modality == "text":
        return (_np(item["text"])[1] == 1) & (_np(item["text_missing_mask"]) == 0)
    return (_np(item[f"{modality}_mask"]) == 1) & (_np(item[f"{modality}_missing_mask"]) == 0)


@PROPERTY_SETTINGS
@given(mmsa_dicts(), rate_triples, rate_triples, seed_triples)
def test_loader_masks_are_nested_in_the_rate(workdir, case, rates_a, rates_b, seeds_):
    low = tuple(min(a, b) for a, b in zip(rates_a, rates_b))
    high = tuple(max(a, b) for a, b in zip(rates_a, rates_b))
    payload = pickle.dumps(case.raw)
    data, _, items_low = load_everything(payload, workdir, case.label_range, rates=low, seeds=seeds_)
    for split in REQUIRED_SPLITS:
        dataset_high = MMSADataset(None, split, high, seeds_, data=data)
        for i, item_low in enumerate(items_low[split]):
            item_high = dataset_high[i]
            for modality, r_low, r_high in zip(MODALITIES, low, high):
                dropped_low, dropped_high = _dropped(item_low, modality), _dropped(item_high, modality)
                assert not (dropped_low & ~dropped_high).any(), f"{modality}: dropped at {r_low}, kept at {r_high}"


@PROPERTY_SETTINGS
@given(mmsa_dicts(), seed_triples)
def test_loader_rate_zero_is_the_identity_and_rate_one_drops_everything(workdir, case, seeds_):
    payload = pickle.dumps(case.raw)
    data, _, items = load_everything(payload, workdir, case.label_range, rates=(0, 0, 0), seeds=seeds_)
    for split in REQUIRED_SPLITS:
        everything = MMSADataset(None, split, (1.0, 1.0, 1.0), seeds_, data=data)
        for i, item in enumerate(items[split]):
            np.testing.assert_array_equal(_np(item["text_m"]), _np(item["text"]))
            np.testing.assert_array_equal(_np(item["text_missing_mask"]), _np(item["text"])[1])
            for modality in LENGTH_KEYS:
                np.testing.assert_array_equal(_np(item[f"{modality}_m"]), _np(item[modality]))
                keep, valid = _np(item[f"{modality}_missing_mask"]), _np(item[f"{modality}_mask"])
                np.testing.assert_array_equal(keep, valid)

            dropped = everything[i]
            text = _np(dropped["text"])
            count = int(text[1].sum())
            expected_keep = np.zeros(text.shape[1], dtype=np.float32)
            expected_keep[[0, count - 1]] = 1
            np.testing.assert_array_equal(_np(dropped["text_missing_mask"]), expected_keep)
            expected_ids = np.where(text[1] == 1, UNK_ID, 0).astype(np.float32)
            expected_ids[[0, count - 1]] = text[0, [0, count - 1]]
            np.testing.assert_array_equal(_np(dropped["text_m"])[0], expected_ids)
            for modality in LENGTH_KEYS:
                assert not _np(dropped[f"{modality}_missing_mask"]).any()
                assert not _np(dropped[f"{modality}_m"]).any()
                assert int(dropped[f"{modality}_lengths"]) == int(item[f"{modality}_lengths"])  # unchanged


# --------------------------------------------------------------------------------------------------------
# non-finite values


@st.composite
def nonfinite_cases(draw):
    """A valid file with 1-4 non-finite values at random places of the keys the fix may touch."""
    case = draw(mmsa_dicts())
    injected = []
    for _ in range(draw(st.integers(1, 4))):
        split = draw(st.sampled_from(REQUIRED_SPLITS))
        key = draw(st.sampled_from(["audio", "audio", "vision", "text_bert", LABEL_KEY]))
        value = draw(st.sampled_from([-np.inf, np.nan, np.inf]))
        array = np.asarray(case.raw[split][key], dtype=np.float64)
        if key == "text_bert":  # ids (row 0) or segment ids (row 2); a non-finite attention mask is fatal
            n, _, length = array.shape
            index = (draw(st.integers(0, n - 1)), draw(st.sampled_from([0, 2])), draw(st.integers(0, length - 1)))
        else:
            index = tuple([draw(st.integers(0, dim - 1)) for dim in array.shape])
        array[index] = value
        case.raw[split][key] = array
        injected.append((split, key, index, value))
    return case, injected


@PROPERTY_SETTINGS
@given(nonfinite_cases(), st.booleans(), rate_triples, pickle_protocols)
def test_the_loader_never_returns_nonfinite_values(workdir, case_injected, fix, rates_, pickle_protocol):
    case, injected = case_injected
    note(f"injected: {injected}")
    finals = {}
    for split, key, index, value in injected:  # a later injection at the same place wins
        finals[(split, key, index)] = value
    needs_fix = any(not (key == "audio" and value == -np.inf) for (split, key, index), value in finals.items())
    payload = pickle.dumps(case.raw, protocol=pickle_protocol)
    loaded, error = load_outcome(payload, workdir, case.label_range, fix_nonfinite=fix, rates=rates_)
    if needs_fix and not fix:
        assert isinstance(error, DataError) and "non-finite" in str(error), error
        return
    assert error is None, error
    check_loaded(loaded, case.label_range)
    data, datasets, items = loaded
    for (split, key, index), value in finals.items():
        if key == LABEL_KEY:
            assert float(items[split][index[0]]["labels"]["M"]) == 0.0
        else:
            field = "text" if key == "text_bert" else key
            assert float(items[split][index[0]][field][index[1:]]) == 0.0  # replaced by 0
    audio_neg_inf = sum(1 for (s, k, i), v in finals.items() if k == "audio" and v == -np.inf)
    assert sum(data.report.audio_neg_inf_zeroed.values()) == audio_neg_inf
    assert sum(data.report.nonfinite_fixed.values()) == len(finals) - audio_neg_inf
    for loader in build_loaders(datasets, batch_size=2, seed=0).values():
        for batch in loader:
            for name in ("text", "text_m", "audio", "audio_m", "vision", "vision_m"):
                assert torch.isfinite(batch[name]).all()


# --------------------------------------------------------------------------------------------------------
# malformed files: always our clear error, never a crash or a hang


@pytest.mark.parametrize("breaking", sorted(BREAKING))
@given(data=st.data())
@settings(PROPERTY_SETTINGS, max_examples=PER_KIND_EXAMPLES)
def test_certainly_broken_files_end_in_a_data_error(workdir, breaking, data):
    case = data.draw(broken_mmsa(breaking), label="case")
    pickle_protocol = data.draw(pickle_protocols, label="pickle protocol")
    note(f"edits: {case.edits}")
    loaded, error = load_outcome(pickle.dumps(case.raw, protocol=pickle_protocol), workdir, case.label_range)
    assert isinstance(error, DataError), f"loaded a broken file ({case.edits})"
    assert str(workdir) in str(error), "the message does not name the file"


def test_every_breaking_edit_is_drawn():
    """Guard for the strategy: the breaking edits are the ones the issue lists (and a few more)."""
    kinds = {name.split(":")[0] for name in BREAKING}
    assert {"drop_key", "drop_split", "shape", "first_dim", "dtype", "lengths", "labels", "top_level",
            "split_type"} <= kinds
    assert {"dtype: str", "dtype: ragged list", "shape: text_bert L=0"} <= set(BREAKING)


@PROPERTY_SETTINGS
@given(loadable_mmsa(), pickle_protocols)
def test_harmless_variations_still_load(workdir, case, pickle_protocol):
    note(f"edits: {case.edits}")
    loaded, error = load_outcome(pickle.dumps(case.raw, protocol=pickle_protocol), workdir, case.label_range)
    assert error is None, f"refused a loadable file ({case.edits}): {error}"
    check_loaded(loaded, case.label_range)


@st.composite
def truncated_pickles(draw):
    case = draw(mmsa_dicts())
    payload = pickle.dumps(case.raw, protocol=draw(pickle_protocols))
    return case, payload[: draw(st.integers(0, len(payload) - 1))]


@PROPERTY_SETTINGS
@given(truncated_pickles())
def test_truncated_pickles_end_in_a_data_error(workdir, case_payload):
    case, payload = case_payload
    loaded, error = load_outcome(payload, workdir, case.label_range)
    assert isinstance(error, DataError), f"loaded {len(payload)} truncated bytes"


@PROPERTY_SETTINGS
@given(st.one_of(
    st.binary(max_size=300),
    st.builds(lambda proto, body: bytes([0x80, proto]) + body, st.integers(0, 5), st.binary(max_size=300)),
    opcode_soup,
))
def test_random_bytes_end_in_a_data_error(workdir, payload):
    loaded, error = load_outcome(payload, workdir, (-3.0, 3.0), check_hash=True)
    assert isinstance(error, DataError)


@st.composite
def mutated_pickles(draw):
    """A valid pickle with 1-4 bytes replaced, inserted or deleted."""
    case = draw(mmsa_dicts())
    payload = bytearray(pickle.dumps(case.raw, protocol=draw(pickle_protocols)))
    edits = []
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(payload) - 1))
        op = draw(st.sampled_from(["replace", "insert", "delete"]))
        byte = draw(st.integers(0, 255))
        if op == "replace":
            payload[position] = byte
        elif op == "insert":
            payload.insert(position, byte)
        elif len(payload) > 1:
            del payload[position]
        edits.append((op, position, byte))
    return case, bytes(payload), edits


@PROPERTY_SETTINGS
@given(mutated_pickles())
def test_mutated_pickles_load_or_end_in_a_user_error(workdir, mutated):
    case, payload, edits = mutated
    note(f"byte edits: {edits}")
    loaded, error = load_outcome(payload, workdir, case.label_range)
    if error is None:
        check_loaded(loaded, case.label_range)


@pytest.mark.parametrize("admitted", [*DISTINCT_GLOBALS, None], ids=lambda g: ".".join(g) if g else "any")
@given(data=st.data())
@settings(PROPERTY_SETTINGS, max_examples=PER_KIND_EXAMPLES)
def test_pickles_calling_admitted_globals_oddly_load_or_end_in_a_user_error(workdir, admitted, data):
    call = data.draw(pickle_calls(admitted), label="call")
    where = data.draw(st.sampled_from(["top level", "split", "key"]), label="where")
    case = data.draw(mmsa_dicts(), label="case")
    split = data.draw(st.sampled_from(REQUIRED_SPLITS), label="split")
    keys = ["text_bert", "audio", "vision_lengths", LABEL_KEY, "id", "text"]
    key = data.draw(st.sampled_from(keys), label="key")
    note(f"{where}: {call!r}")
    if where == "top level":
        raw = call
    elif where == "split":
        raw = {**case.raw, split: call}
    else:
        raw = {**case.raw, split: {**case.raw[split], key: call}}
    loaded, error = load_outcome(dumps(raw), workdir, case.label_range)
    if error is None:
        check_loaded(loaded, case.label_range)
