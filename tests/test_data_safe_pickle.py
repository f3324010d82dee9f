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
