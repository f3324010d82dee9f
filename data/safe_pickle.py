"""Restricted unpickling of MMSA feature files: numpy arrays and builtin containers, nothing else.

The reference (§3.2) reads its feature files with a bare ``pickle.load``, which runs whatever code a
crafted file names in a ``__reduce__``. This module reads the same files with an unpickler whose
``find_class`` admits only the globals that numpy arrays, numpy scalars, dtypes and builtin containers
need, as written by numpy 1.x (``numpy.core.*``) and numpy 2.x (``numpy._core.*``) under every pickle
protocol (0-5). Any other global is refused with a :class:`~utils.errors.DataError` naming the file and
the global, before anything is called. A truncated or corrupt file gives a one-line DataError.
"""

from __future__ import annotations

import _codecs
import collections
import io
import os
import pickle
import struct
from pathlib import Path
from typing import Any

import numpy as np

from utils.errors import DataError

#: Read buffer for large feature files (1 MiB).
_READ_BUFFER_BYTES = 1 << 20

_NUMPY_CORE = np._core  # the numpy 2.x home of what numpy 1.x pickles name as ``numpy.core``

#: Globals a pickle of numpy arrays / scalars / dtypes and builtin containers may name, per module.
#: ``_codecs.encode`` appears in protocol 0-2 pickles, which encode ``bytes`` through it; the
#: ``_frombuffer`` helpers appear in protocol-5 pickles of contiguous arrays.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _codecs.encode,
    ("collections", "OrderedDict"): collections.OrderedDict,
}
for _core_name in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_core_name}.multiarray", "_reconstruct")] = _NUMPY_CORE.multiarray._reconstruct
    _ALLOWED[(f"{_core_name}.multiarray", "scalar")] = _NUMPY_CORE.multiarray.scalar
    _ALLOWED[(f"{_core_name}.numeric", "_frombuffer")] = _NUMPY_CORE.numeric._frombuffer
for _builtin in (list, dict, tuple, set, frozenset, str, bytes, bytearray, int, float, complex, bool):
    for _builtins_name in ("builtins", "__builtin__"):  # protocol 0-2 pickles use the Python 2 name
        _ALLOWED[(_builtins_name, _builtin.__name__)] = _builtin

#: What a broken file can raise inside ``pickle.load`` (besides our own DataError for refused globals).
_CORRUPT_ERRORS = (
    EOFError,
    pickle.UnpicklingError,
    ValueError,
    TypeError,
    IndexError,
    KeyError,
    AttributeError,
    struct.error,
    UnicodeDecodeError,
    MemoryError,
)


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals in ``_ALLOWED``; ``source`` names the file in errors."""

    def __init__(self, file, *, source: str):
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise DataError(
                f"refusing to load {self.source}: it names the global '{module}.{name}', which a "
                "feature file of numpy arrays never needs (the file may be crafted to run code)"
            ) from None


def _load(handle, source: str) -> Any:
    try:
        return SafeUnpickler(handle, source=source).load()
    except DataError:
        raise
    except _CORRUPT_ERRORS as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        raise DataError(
            f"data file {source} is truncated or corrupt and cannot be unpickled ({type(exc).__name__}: "
            f"{detail}); download it again"
        ) from None


def safe_load(path: str | os.PathLike) -> Any:
    """Unpickle the file at ``path`` admitting only numpy arrays/scalars/dtypes and builtin containers."""
    path = Path(path)
    try:
        handle = open(path, "rb", buffering=_READ_BUFFER_BYTES)
    except OSError as exc:
        raise DataError(f"cannot open data file {path}: {exc.strerror or exc}") from None
    with handle:
        return _load(handle, str(path))


def safe_loads(data: bytes, *, source: str = "<bytes>") -> Any:
    """:func:`safe_load` for a pickle already in memory."""
    return _load(io.BytesIO(data), source)
