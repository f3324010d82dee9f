"""Restricted unpickling of MMSA feature files: numpy arrays and builtin containers, nothing else.

The reference (§3.2) reads its feature files with a bare ``pickle.load``, which runs whatever code a
crafted file names in a ``__reduce__``. This module reads the same files with an unpickler whose
``find_class`` admits only the globals that numpy arrays, numpy scalars, dtypes and builtin containers
need, as written by numpy 1.x (``numpy.core.*``) and numpy 2.x (``numpy._core.*``) under every pickle
protocol (0-5). Any other global is refused with a :class:`~utils.errors.DataError` naming the file and
the global, before anything is called. A truncated or corrupt file gives a one-line DataError.

numpy's own unpickling trusts the pickle's array and dtype states, and some corrupt states crash the
process instead of raising: an object array whose item list is shorter than its shape (one flipped byte in
the shape of an ``id`` array) leaves unset pointers that are read later (a segmentation fault), and a dtype
state with wrong flags, size or byte order makes numpy treat numbers as object pointers. So the unpickler is
the pure-Python one (same speed for these files: their time goes to reading the large arrays), which lets
:class:`SafeUnpickler` check each array state before numpy applies it; and every dtype an array or scalar is
built with is rebuilt from its description after checking that the pickled one agrees with it
(:func:`_rebuilt_dtype`), so numpy only ever lays out memory with dtypes it made itself.
"""

from __future__ import annotations

import _codecs
import collections
import io
import math
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
#: OverflowError: a FRAME/BINBYTES8 length beyond 2**63, or ``float``/``bytes`` of a huge int;
#: LookupError (KeyError, IndexError, unknown codec names): a bad memo index or ``_codecs.encode(s, "bogus")``;
#: RuntimeError: numpy's "the pickle file may be corrupted?" (and RecursionError).
_CORRUPT_ERRORS = (
    EOFError,
    pickle.UnpicklingError,
    ValueError,
    TypeError,
    LookupError,
    OverflowError,
    AttributeError,
    RuntimeError,
    struct.error,
    UnicodeDecodeError,
    MemoryError,
)


def _rebuilt_dtype(dtype: Any) -> np.dtype:
    """A dtype numpy builds afresh from the description of the pickled ``dtype``, which must agree with it.

    Fields and subarray bases are rebuilt the same way. A pickled dtype whose flags, item size, alignment or
    byte order differ from the rebuilt one (a corrupt dtype state) is refused.
    """
    if not isinstance(dtype, np.dtype):
        raise pickle.UnpicklingError(f"expected a numpy dtype, got {type(dtype).__name__}")
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        rebuilt = np.dtype((_rebuilt_dtype(base), shape))
    elif dtype.names is not None:
        fields = [dtype.fields[name] for name in dtype.names]
        description = {
            "names": list(dtype.names),
            "formats": [_rebuilt_dtype(field[0]) for field in fields],
            "offsets": [field[1] for field in fields],
            "titles": [field[2] if len(field) > 2 else None for field in fields],
            "itemsize": dtype.itemsize,
            "aligned": dtype.isalignedstruct,
        }
        rebuilt = np.dtype(description)
    else:
        rebuilt = np.dtype(dtype.str)
    described = (dtype.str, dtype.flags, dtype.itemsize, dtype.alignment)
    if described != (rebuilt.str, rebuilt.flags, rebuilt.itemsize, rebuilt.alignment):
        raise pickle.UnpicklingError(f"inconsistent numpy dtype state {described}")
    return rebuilt


def _checked_array_state(state: Any) -> tuple:
    """numpy's ndarray state ([version,] shape, dtype, is_fortran, data) with a rebuilt dtype; an object
    array's item list must hold exactly one item per element."""
    if not isinstance(state, tuple) or len(state) not in (4, 5):
        raise pickle.UnpicklingError("malformed numpy array state")
    *version, shape, dtype, is_fortran, data = state
    dtype = _rebuilt_dtype(dtype)
    if not (isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)):
        raise pickle.UnpicklingError(f"malformed numpy array shape {shape!r}")
    items_match = dtype.subdtype is None and isinstance(data, list) and len(data) == math.prod(shape)
    if dtype.hasobject and not items_match:
        raise pickle.UnpicklingError(f"object array of shape {shape} whose items do not match it")
    return (*version, shape, dtype, is_fortran, data)


def _reconstruct(subtype: Any, shape: Any, typecode: Any) -> np.ndarray:
    """numpy's ``_reconstruct`` as its pickles call it: an empty ndarray that BUILD then fills."""
    if subtype is not np.ndarray or shape != (0,):
        raise pickle.UnpicklingError("unexpected arguments of numpy's _reconstruct")
    if isinstance(typecode, np.dtype):
        typecode = _rebuilt_dtype(typecode)
    return _NUMPY_CORE.multiarray._reconstruct(subtype, shape, typecode)


def _scalar(dtype: Any, *args: Any) -> Any:
    return _NUMPY_CORE.multiarray.scalar(_rebuilt_dtype(dtype), *args)


def _frombuffer(buffer: Any, dtype: Any, *args: Any) -> np.ndarray:
    return _NUMPY_CORE.numeric._frombuffer(buffer, _rebuilt_dtype(dtype), *args)


#: What ``find_class`` hands out instead of numpy's pickle helpers: the same, with checked dtypes.
_CHECKED = {
    _NUMPY_CORE.multiarray._reconstruct: _reconstruct,
    _NUMPY_CORE.multiarray.scalar: _scalar,
    _NUMPY_CORE.numeric._frombuffer: _frombuffer,
}


class SafeUnpickler(pickle._Unpickler):
    """An unpickler that resolves only the globals in ``_ALLOWED``; ``source`` names the file in errors.

    It is the pure-Python unpickler with four opcodes checked (see the module docstring): BUILD of an
    ndarray (its state) or a dtype (never a shared one), and REDUCE / NEWOBJ, which may not construct an
    ndarray directly (numpy's pickles never do; arrays come from ``_reconstruct`` + BUILD).
    """

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, *, source: str):
        super().__init__(file)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            found = _ALLOWED[(module, name)]
        except KeyError:
            raise DataError(
                f"refusing to load {self.source}: it names the global '{module}.{name}', which a "
                "feature file of numpy arrays never needs (the file may be crafted to run code)"
            ) from None
        return _CHECKED.get(found, found)

    def _load_build(self) -> None:
        inst = self.stack[-2] if len(self.stack) >= 2 else None
        if type(inst) is np.ndarray:
            if inst.size:
                raise pickle.UnpicklingError("a numpy array's state is set twice")
            self.stack[-1] = _checked_array_state(self.stack[-1])
        elif isinstance(inst, np.dtype):
            if np.dtype(inst.str) is inst:
                raise pickle.UnpicklingError("a pickle may not change numpy's shared dtype objects")
        elif isinstance(inst, (np.ndarray, np.generic)):
            raise pickle.UnpicklingError(f"unexpected state for a {type(inst).__name__}")
        pickle._Unpickler.load_build(self)

    def _load_reduce(self) -> None:
        if len(self.stack) >= 2 and self.stack[-2] is np.ndarray:
            raise pickle.UnpicklingError("a numpy array constructed directly")
        pickle._Unpickler.load_reduce(self)

    def _load_newobj(self) -> None:  # stack: ... cls args
        if len(self.stack) >= 2 and self.stack[-2] is np.ndarray:
            raise pickle.UnpicklingError("a numpy array constructed directly")
        pickle._Unpickler.load_newobj(self)

    def _load_newobj_ex(self) -> None:  # stack: ... cls args kwargs
        if len(self.stack) >= 3 and self.stack[-3] is np.ndarray:
            raise pickle.UnpicklingError("a numpy array constructed directly")
        pickle._Unpickler.load_newobj_ex(self)

    def _instantiate(self, klass: Any, args: Any) -> None:  # the INST and OBJ opcodes of protocol 0-1
        if klass is np.ndarray:
            raise pickle.UnpicklingError("a numpy array constructed directly")
        super()._instantiate(klass, args)

    def _load_bytearray8(self) -> None:
        """As pickle's, but without first allocating (and zeroing) a buffer of the declared, maybe corrupt,
        size: read what is there, then copy."""
        (size,) = struct.unpack("<Q", self.read(8))
        data = self.read(size)
        if len(data) != size:
            raise pickle.UnpicklingError("pickle data was truncated")
        self.append(bytearray(data))

    dispatch[pickle.BUILD[0]] = _load_build
    dispatch[pickle.REDUCE[0]] = _load_reduce
    dispatch[pickle.NEWOBJ[0]] = _load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = _load_newobj_ex
    dispatch[pickle.BYTEARRAY8[0]] = _load_bytearray8


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
