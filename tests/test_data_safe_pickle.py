"""The restricted unpickler: numpy/builtin content loads under every protocol, anything else is refused."""

import collections
import os
import pickle

import numpy as np
import pytest

from data.safe_pickle import safe_load, safe_loads
from tests.data_fixtures import isolated_data_state, make_mmsa, write_pickle  # noqa: F401 (fixture)
from utils.errors import DataError


class _RunsShell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _WritesFile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_numpy_and_builtin_content_round_trips_under_every_protocol(tmp_path, protocol):
    content = {
        "features": np.arange(12, dtype=np.float32).reshape(2, 3, 2),
        "fortran": np.asfortranarray(np.arange(6, dtype=np.float64).reshape(2, 3)),
        "ids": np.array(["a$_$1", "b$_$2"], dtype=object),
        "unicode": np.array(["x", "yy"]),
        "scalars": [np.float32(1.5), np.int64(3), np.str_("hi"), np.bool_(True)],
        "builtins": (1, 2.0, 3j, "s", b"b", bytearray(b"ba"), True, {1, 2}, frozenset([3]), None),
        "ordered": collections.OrderedDict(a=1),
    }
    loaded = safe_load(write_pickle(tmp_path / "ok.pkl", content, protocol=protocol))
    np.testing.assert_array_equal(loaded["features"], content["features"])
    assert loaded["features"].dtype == np.float32
    np.testing.assert_array_equal(loaded["fortran"], content["fortran"])
    assert loaded["ids"].dtype == object and loaded["ids"].tolist() == ["a$_$1", "b$_$2"]
    assert loaded["unicode"].tolist() == ["x", "yy"]
    assert loaded["scalars"] == content["scalars"]
    assert loaded["builtins"] == content["builtins"]
    assert loaded["ordered"] == content["ordered"]


def test_a_whole_mmsa_file_loads(tmp_path):
    raw = make_mmsa(sims=True)
    loaded = safe_load(write_pickle(tmp_path / "f.pkl", raw))
    assert set(loaded) == {"train", "valid", "test"}
    np.testing.assert_array_equal(loaded["train"]["audio"], raw["train"]["audio"])


@pytest.mark.parametrize("payload", [_RunsShell, _WritesFile])
@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_crafted_pickle_is_refused_without_running_code(tmp_path, payload, protocol):
    marker = tmp_path / "marker"
    path = write_pickle(tmp_path / "evil.pkl", {"train": {"audio": payload(marker)}}, protocol=protocol)
    with pytest.raises(DataError) as info:
        safe_load(path)
    message = str(info.value)
    assert str(path) in message
    assert ("system" in message) or ("exec" in message)
    assert not marker.exists()


def test_refused_global_is_named(tmp_path):
    path = write_pickle(tmp_path / "cls.pkl", {"x": collections.Counter("ab")})
    with pytest.raises(DataError, match=r"collections\.Counter"):
        safe_load(path)


@pytest.mark.parametrize("keep_fraction", [0.0, 0.3, 0.9, 0.999])
def test_truncated_file_gives_one_line_error(tmp_path, keep_fraction):
    data = pickle.dumps(make_mmsa(), protocol=4)
    path = tmp_path / "cut.pkl"
    path.write_bytes(data[: int(len(data) * keep_fraction)])
    with pytest.raises(DataError) as info:
        safe_load(path)
    message = str(info.value)
    assert "truncated or corrupt" in message and str(path) in message
    assert "\n" not in message


def test_garbage_bytes_are_corrupt():
    with pytest.raises(DataError, match="truncated or corrupt"):
        safe_loads(b"\x80\x04this is not a pickle at all", source="garbage.pkl")


def test_missing_file_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="cannot open data file"):
        safe_load(tmp_path / "absent.pkl")


@pytest.mark.parametrize("protocol", [0, 2])
def test_numpy_1_module_names_load(tmp_path, protocol):
    """Files written by numpy 1.x (the official ones) name ``numpy.core.*`` instead of ``numpy._core.*``."""
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    data = pickle.dumps({"a": array, "s": np.float32(2.5)}, protocol=protocol)
    legacy = data.replace(b"numpy._core.", b"numpy.core.")
    assert legacy != data and b"numpy._core" not in legacy
    loaded = safe_loads(legacy, source="legacy.pkl")
    np.testing.assert_array_equal(loaded["a"], array)
    assert loaded["s"] == np.float32(2.5)


def _call(module: str, name: str, *args) -> bytes:
    """A protocol-2 pickle whose loading calls ``module.name(*args)``."""
    argument_bytes = pickle.dumps(args, protocol=2)[2:-1]
    return b"\x80\x02c" + f"{module}\n{name}\n".encode() + argument_bytes + b"R."


@pytest.mark.parametrize(
    "payload",
    [
        _call("builtins", "float", 10**400),  # OverflowError: int too large to convert to float
        _call("builtins", "int", float("inf")),  # OverflowError: cannot convert float infinity
        _call("builtins", "bytes", 2**63),  # OverflowError: cannot fit 'int' into an index-sized integer
        _call("_codecs", "encode", "x", "bogus-codec"),  # LookupError: unknown encoding
        b"\x80\x04\x95" + b"\xff" * 8 + b"N.",  # OverflowError: FRAME length beyond 2**63
    ],
    ids=["float-huge-int", "int-inf", "bytes-huge", "unknown-codec", "huge-frame"],
)
def test_overflow_and_lookup_errors_while_unpickling_are_corrupt(payload):
    """Regression (property suite): these escaped as OverflowError / LookupError instead of a DataError."""
    with pytest.raises(DataError, match="truncated or corrupt"):
        safe_loads(payload, source="odd.pkl")


def _object_array_with_shape(length: int) -> bytes:
    """A protocol-2 pickle of a 2-item object array whose pickled shape says ``length`` items."""
    data = pickle.dumps(np.array(["a$_$1", "b$_$2"], dtype=object), protocol=2)
    assert data.count(b"K\x02\x85") == 1  # BININT1 2, TUPLE1: the shape (2,)
    return data.replace(b"K\x02\x85", b"K" + bytes([length]) + b"\x85")


def _with_dtype_flags(array: np.ndarray, flags: int) -> bytes:
    """A protocol-4 pickle of ``array`` whose dtype state carries ``flags`` instead of numpy's."""
    data = pickle.dumps(array, protocol=4)
    state_end = b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK" + bytes([array.dtype.flags]) + b"t"
    assert data.count(state_end) == 1  # ... elsize -1, alignment -1, flags; TUPLE
    return data.replace(state_end, state_end[:-2] + bytes([flags]) + b"t")


def _object_scalar_from_bytes() -> bytes:
    """``scalar(object dtype whose state drops its object flags, 8 bytes)``: numpy took the bytes for a pointer."""
    dtype = pickle.dumps(np.dtype(object), protocol=2)[2:-1]
    assert dtype.count(b"K?t") == 1  # flags 63, TUPLE
    dtype = dtype.replace(b"K?t", b"K\x00t")
    return b"\x80\x02cnumpy._core.multiarray\nscalar\n(" + dtype + b"C\x08" + b"A" * 8 + b"tR."


@pytest.mark.parametrize(
    "payload",
    [
        _object_scalar_from_bytes(),  # numpy dereferenced 0x4141414141414141
        _object_array_with_shape(3),  # one byte of the shape flipped: numpy read an unset pointer
        _object_array_with_shape(127),
        _with_dtype_flags(np.arange(3, dtype=np.float32), 0x3F),  # floats flagged as object pointers
        _with_dtype_flags(np.arange(3, dtype=np.float32), 0x7F),
        _with_dtype_flags(np.array(["x", "y"], dtype=object), 0),  # pointers not flagged as such
    ],
    ids=[
        "forged-pointer", "object-shape-3", "object-shape-127", "float-flags-3f", "float-flags-7f", "object-flags-0"
    ],
)
def test_corrupt_numpy_states_are_refused_not_crashing(payload):
    """Regression (property suite): these states made numpy crash the process (segmentation fault) or fail
    later with internal errors; they are checked before numpy applies them."""
    with pytest.raises(DataError, match="truncated or corrupt"):
        safe_loads(payload, source="odd.pkl")


def test_arrays_and_shared_dtypes_cannot_be_built_around_the_checks():
    """A pickle may not construct an ndarray directly, nor change numpy's shared dtype objects."""
    direct = _call("numpy", "ndarray", (2,), "O")
    with pytest.raises(DataError, match="constructed directly"):
        safe_loads(direct, source="odd.pkl")
    shared_float32 = pickle.dumps(np.dtype("f4"), protocol=2).replace(b"\x89\x88", b"\x89\x89")  # copy=False
    assert shared_float32 != pickle.dumps(np.dtype("f4"), protocol=2)
    with pytest.raises(DataError, match="shared dtype"):
        safe_loads(shared_float32, source="odd.pkl")
    assert np.dtype("f4").flags == 0 and np.dtype("f4").byteorder == "="
