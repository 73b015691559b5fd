"""Reading the official release's network pickles without running anything they contain, in bounded memory.

The release stores its networks as a pickled tuple ``(G, D, Gs)`` of ``tfutil.Network`` objects. Unpickling
those with :mod:`pickle` imports ``tfutil`` (TensorFlow 1.x) and ``exec``-utes the network source stored in the
file; a hostile file could run anything at all. Files are downloaded from mirrors and passed around, so this
reader treats every byte as an attacker's:

* **Nothing callable but a few checked rebuilders.** Globals resolve only to the ``Network`` class (mapped to
  :class:`NetworkState`, a plain stand-in that keeps the state dict) and to checked versions of numpy's array,
  dtype and scalar rebuilders (numpy 1.x and 2.x module names) and of protocol 2's ``_codecs.encode(str,
  'latin1')`` for bytes; every other global is refused *before* it is imported. ``REDUCE`` may call only
  those rebuilders, ``NEWOBJ`` may create only ``NetworkState``, and ``BUILD`` may only give a
  ``NetworkState`` its dict, an array its checked state, or a dtype numpy's own state; ``INST``, ``OBJ``,
  extension codes and persistent ids are refused. ``build_module_src`` stays a string nobody executes.
* **Nothing handed out can be turned into something else.** A dtype comes only from an allow-list of numeric
  codes and is numpy's built-in one: a pickle's ``BUILD`` can confirm its byte order but never rewrite it (a
  rewritten copy — fields at any offset, a subarray over 4 bytes — is how crafted files read or write memory
  they do not own). Arrays are rebuilt only from what numpy itself writes (``_reconstruct(ndarray, (0,), b'b')``
  then a state of exact types, or ``_frombuffer``), with ``bytes`` (or ``bytearray``) data whose length is
  exactly shape × item size; scalars from exactly one item's bytes. Every non-numeric kind is refused.
* **Memory bounded by the file.** Every length field is checked against the bytes left in the file before
  anything is allocated; an array's memory is the data the file holds. At most :data:`MAX_OPERATIONS` pickle
  operations are run (a release file needs about 5,000), so a memo, mark or container bomb ends early, and
  dict keys and set members must be plain scalars (hashing a 1 MB tuple nested a million deep recurses in C
  and kills the process). The unpickler is the pure-Python one: its stack machine never recurses.
"""

from __future__ import annotations

import math
import os
import pickle
import struct
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import numpy as np

from pggan.errors import UserError
from pggan.input_files import open_regular

#: Modules that define ``Network`` in the official releases (PGGAN, and StyleGAN's dnnlib, refused later).
NETWORK_CLASSES = {("tfutil", "Network"), ("dnnlib.tflib.network", "Network")}
_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
_NUMPY_NUMERIC = ("numpy.core.numeric", "numpy._core.numeric")
#: The dtype codes a network pickle may use (numpy's ``dtype.__reduce__`` names): real numbers and bools.
NUMERIC_CODES = frozenset({"f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1"})
#: Pickle operations one file may run. The release's (G, D, Gs) at 1024² takes about 4,800; each operation
#: allocates at most a few hundred bytes beyond the file's own bytes, so this bounds that overhead to ~40 MB.
MAX_OPERATIONS = 200_000
_MAX_DIMS = 32  # numpy's own limit is 64; networks use 4
_SCALAR_TYPES = (str, bytes, int, float, bool, type(None))


class NetworkState:
    """What a pickled ``Network`` holds: its ``__getstate__`` dict, kept as data and never built."""

    module_name = ""  # the module the pickle named: tfutil (PGGAN) or dnnlib.tflib.network (StyleGAN)
    state: Any = None  # NEWOBJ creates instances without __init__; BUILD sets this once

    def __init__(self) -> None:
        self.state = None


def _network_class(module: str) -> type:
    """A fresh NetworkState subclass that remembers which module the pickle named."""
    return type("NetworkState", (NetworkState,), {"module_name": module})


class _NdarrayName:
    """What ``numpy.ndarray`` unpickles to: a name for ``_reconstruct``, not a constructor a pickle could call."""


class _DType:
    """What ``numpy.dtype(code, align, copy)`` unpickles to: an allow-listed code, resolved to numpy's own dtype.

    numpy's pickle gives a dtype its state with ``BUILD``; here that state must be exactly the one numpy
    writes for the code (only the byte order may differ), and it is recorded, never applied to a dtype.
    """

    def __init__(self, code: str) -> None:
        self.code = code
        self.byteorder: str | None = None  # set once by BUILD

    def resolve(self) -> np.dtype:
        base = np.dtype(self.code)
        return base if self.byteorder in (None, "|", "=") else base.newbyteorder(self.byteorder)

    def build(self, state: Any) -> None:
        if self.byteorder is not None:
            raise pickle.UnpicklingError("a dtype's state given twice")
        own = np.dtype(self.code).__reduce__()[2]
        if type(state) is not tuple or len(state) != len(own) or type(state[1]) is not str:
            raise pickle.UnpicklingError(f"dtype {self.code} with a state numpy does not write")
        order = state[1]
        allowed = ("|",) if own[1] == "|" else ("<", ">", "=")
        others = [(a, b) for i, (a, b) in enumerate(zip(state, own, strict=True)) if i != 1]
        if order not in allowed or not all(_same(a, b) for a, b in others):
            raise pickle.UnpicklingError(f"dtype {self.code} with a state numpy does not write (fields, "
                                         "subarrays or sizes of its own)")  # fmt: skip
        self.byteorder = order


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same exact type (so ``True`` does not pass for ``1``); scalars only."""
    return type(a) is type(b) and a == b


class _Rebuilder:
    """A numpy rebuilder as a pickle may name it: ``REDUCE`` calls the unpickler's checked version, nothing else."""

    __slots__ = ("_method",)

    def __init__(self, method: Any) -> None:
        self._method = method

    def __call__(self, *args: Any) -> Any:
        return self._method(*args)


class _BoundedFile:
    """A file whose every read is checked against the bytes left in it before anything is allocated."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self._handle = handle
        self.left = size

    def _take(self, count: int) -> None:
        if count > self.left:
            raise pickle.UnpicklingError(
                f"an item claims {count:,} bytes but only {self.left:,} are left in the file (truncated or forged)"
            )
        self.left -= count

    def read(self, count: int = -1) -> bytes:
        count = self.left if count is None or count < 0 else count
        self._take(count)
        data = self._handle.read(count)
        if len(data) != count:
            raise pickle.UnpicklingError("the file changed size while it was read")
        return data

    def readinto(self, buffer: Any) -> int:
        self._take(len(buffer))
        return self._handle.readinto(buffer)

    def readline(self) -> bytes:
        line = self._handle.readline(self.left)
        self.left -= len(line)
        return line


def _refuse(message: str) -> Any:
    def refuse(self: RestrictedUnpickler) -> None:
        raise pickle.UnpicklingError(message)

    return refuse


class RestrictedUnpickler(pickle._Unpickler):
    """An Unpickler that can build only plain containers, numeric numpy arrays and ``Network`` stand-ins.

    The pure-Python unpickler, so that each operation can be checked: see the module's docstring.
    """

    dispatch: ClassVar[dict[int, Any]] = dict(pickle._Unpickler.dispatch)

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self._bounded = _BoundedFile(handle, size)
        super().__init__(self._bounded)
        self._operations = 0
        self._unbuilt_arrays: dict[int, np.ndarray] = {}

    # ------------------------------------------------------------------ globals
    def find_class(self, module: str, name: str) -> Any:
        """The object a pickle may name as ``module.name``; anything else is refused before any import."""
        if (module, name) in NETWORK_CLASSES:
            return _network_class(module)
        if module in _NUMPY_MODULES and name == "_reconstruct":
            return _Rebuilder(self._reconstruct)
        if module in _NUMPY_MODULES and name == "scalar":
            return _Rebuilder(self._scalar)
        if module in _NUMPY_NUMERIC and name == "_frombuffer":
            return _Rebuilder(self._frombuffer)
        if module == "numpy" and name == "ndarray":
            return _NdarrayName()
        if module == "numpy" and name == "dtype":
            return _Rebuilder(self._dtype)
        if module == "_codecs" and name == "encode":  # protocol 2's way to write bytes
            return _Rebuilder(self._latin1)
        raise pickle.UnpicklingError(f"refused to load {module[:80]}.{name[:80]} (only network data is allowed)")

    # ------------------------------------------------------------------ numpy, checked
    @staticmethod
    def _dtype(code: Any, align: Any = False, copy: Any = False) -> _DType:
        if type(code) is not str or code not in NUMERIC_CODES or align not in (False, 0) or copy not in (0, 1):
            shown = code[:40] if isinstance(code, str) else type(code).__name__
            raise pickle.UnpicklingError(f"dtype {shown!r} is not a numeric type a network holds")
        return _DType(code)

    @staticmethod
    def _latin1(text: Any, encoding: Any = "utf-8") -> bytes:
        """``_codecs.encode(text, 'latin1')``, how protocol 2 writes bytes: one byte per character, nothing else."""
        if type(text) is not str or encoding not in ("latin1", "latin-1"):
            raise pickle.UnpicklingError("_codecs.encode used for something other than protocol 2's bytes")
        return text.encode("latin-1")

    def _reconstruct(self, subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
        """numpy's ``_reconstruct`` exactly as numpy writes it: an empty ndarray that BUILD then fills."""
        if not isinstance(subtype, _NdarrayName):
            raise pickle.UnpicklingError("array of a type other than numpy.ndarray")
        if not (type(shape) is tuple and len(shape) == 1 and _same(shape[0], 0) and _same(dtype, b"b")):
            raise pickle.UnpicklingError("array reconstruction that numpy does not write")
        array = np.empty(0, np.int8)
        self._unbuilt_arrays[id(array)] = array
        return array

    def _scalar(self, dtype: Any, data: Any = None) -> Any:
        if not isinstance(dtype, _DType) or type(data) is not bytes:
            raise pickle.UnpicklingError("numpy scalar that is not plain numeric data")
        resolved = dtype.resolve()
        if len(data) != resolved.itemsize:
            raise pickle.UnpicklingError(f"numpy scalar of {len(data)} bytes for dtype {resolved}")
        return np.frombuffer(data, dtype=resolved, count=1)[0]

    def _frombuffer(self, buffer: Any, dtype: Any, shape: Any, order: Any = "C") -> np.ndarray:
        if type(buffer) not in (bytes, bytearray):
            raise pickle.UnpicklingError(f"array data of type {type(buffer).__name__}, not bytes")
        if not isinstance(dtype, _DType) or order not in ("C", "F"):
            raise pickle.UnpicklingError("array of a non-numeric type")
        resolved = dtype.resolve()
        _check_size(shape, resolved, len(buffer))
        return np.frombuffer(buffer, dtype=resolved).reshape(shape, order=order)

    def _build_array(self, array: np.ndarray, state: Any) -> None:
        """An array's BUILD: ``(1, shape, dtype, fortran, data)`` of exact types, data exactly its size."""
        if self._unbuilt_arrays.pop(id(array), None) is not array:
            raise pickle.UnpicklingError("BUILD on an array that already has its data")
        if type(state) is not tuple or len(state) != 5 or not _same(state[0], 1):
            raise pickle.UnpicklingError("array state that numpy does not write")
        _, shape, dtype, fortran, data = state
        if not isinstance(dtype, _DType):
            raise pickle.UnpicklingError("array of a non-numeric type")
        if type(fortran) is not bool or type(data) is not bytes:
            raise pickle.UnpicklingError("array whose data is not bytes (object arrays are refused)")
        resolved = dtype.resolve()
        _check_size(shape, resolved, len(data))
        array.__setstate__((1, shape, resolved, fortran, data))

    # ------------------------------------------------------------------ operations that call or change objects
    def load_reduce(self) -> None:
        args = self.stack.pop()
        func = self.stack[-1]
        if type(func) is not _Rebuilder or type(args) is not tuple:
            raise pickle.UnpicklingError("a call to something other than numpy's array, dtype or scalar rebuilders")
        self.stack[-1] = func(*args)

    def load_newobj(self) -> None:
        args = self.stack.pop()
        cls = self.stack.pop()
        if not (isinstance(cls, type) and issubclass(cls, NetworkState)) or args != ():
            raise pickle.UnpicklingError("an object of a class other than tfutil.Network")
        self.append(cls.__new__(cls))

    def load_newobj_ex(self) -> None:
        kwargs = self.stack.pop()
        if kwargs != {}:
            raise pickle.UnpicklingError("an object created with keyword arguments")
        self.load_newobj()

    def load_build(self) -> None:
        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, NetworkState):
            if inst.state is not None or type(state) is not dict:
                raise pickle.UnpicklingError("a Network whose state is not one dict")
            inst.state = state
        elif isinstance(inst, _DType):
            inst.build(state)
        elif type(inst) is np.ndarray:
            self._build_array(inst, state)
        else:
            raise pickle.UnpicklingError(f"BUILD on a {type(inst).__name__[:40]} (only networks and arrays get state)")

    # ------------------------------------------------------------------ containers: scalar keys, exact targets
    @staticmethod
    def _check_keys(keys: Any) -> None:
        for key in keys:
            if type(key) not in _SCALAR_TYPES:
                raise pickle.UnpicklingError(f"a dict key or set member of type {type(key).__name__[:40]}")

    def _target(self, kind: type) -> Any:
        target = self.stack[-1]
        if type(target) is not kind:
            raise pickle.UnpicklingError(f"{kind.__name__} items added to a {type(target).__name__[:40]}")
        return target

    def load_setitem(self) -> None:
        value = self.stack.pop()
        key = self.stack.pop()
        self._check_keys((key,))
        self._target(dict)[key] = value

    def load_setitems(self) -> None:
        items = self.pop_mark()
        self._check_keys(items[0::2])
        target = self._target(dict)
        for index in range(0, len(items) - 1, 2):
            target[items[index]] = items[index + 1]

    def load_dict(self) -> None:
        items = self.pop_mark()
        self._check_keys(items[0::2])
        self.append({items[i]: items[i + 1] for i in range(0, len(items) - 1, 2)})

    def load_additems(self) -> None:
        items = self.pop_mark()
        self._check_keys(items)
        self._target(set).update(items)

    def load_frozenset(self) -> None:
        items = self.pop_mark()
        self._check_keys(items)
        self.append(frozenset(items))

    def load_append(self) -> None:
        value = self.stack.pop()
        self._target(list).append(value)

    def load_appends(self) -> None:
        items = self.pop_mark()
        self._target(list).extend(items)

    def load_bytearray8(self) -> None:
        (size,) = struct.unpack("<Q", self.read(8))
        self.append(bytearray(self.read(size)))  # read() checks the size against the file before allocating

    dispatch[pickle.SETITEM[0]] = load_setitem
    dispatch[pickle.SETITEMS[0]] = load_setitems
    dispatch[pickle.DICT[0]] = load_dict
    dispatch[pickle.ADDITEMS[0]] = load_additems
    dispatch[pickle.FROZENSET[0]] = load_frozenset
    dispatch[pickle.APPEND[0]] = load_append
    dispatch[pickle.APPENDS[0]] = load_appends
    dispatch[pickle.REDUCE[0]] = load_reduce
    dispatch[pickle.NEWOBJ[0]] = load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex
    dispatch[pickle.BUILD[0]] = load_build
    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8
    dispatch[pickle.INST[0]] = _refuse("INST (protocol 0 instances) is not used by network pickles")
    dispatch[pickle.OBJ[0]] = _refuse("OBJ (protocol 1 instances) is not used by network pickles")
    for _code in (pickle.EXT1, pickle.EXT2, pickle.EXT4):
        dispatch[_code[0]] = _refuse("extension codes are not used by network pickles")
    for _code in (pickle.PERSID, pickle.BINPERSID):
        dispatch[_code[0]] = _refuse("persistent ids are not used by network pickles")
    del _code


def _counted(handler: Any) -> Any:
    """``handler`` (one opcode's) preceded by the count of operations run, refused past MAX_OPERATIONS."""

    def run(self: RestrictedUnpickler) -> None:
        self._operations += 1
        if self._operations > MAX_OPERATIONS:
            raise pickle.UnpicklingError(f"more than {MAX_OPERATIONS:,} pickle operations (a network needs "
                                         "about 5,000): not a network pickle")  # fmt: skip
        handler(self)

    return run


RestrictedUnpickler.dispatch = {code: _counted(handler) for code, handler in RestrictedUnpickler.dispatch.items()}


def _check_size(shape: Any, dtype: np.dtype, data_bytes: int) -> None:
    """``shape`` is a tuple of non-negative ints whose product × item size is exactly ``data_bytes``."""
    if type(shape) is not tuple or len(shape) > _MAX_DIMS or any(type(d) is not int or d < 0 for d in shape):
        raise pickle.UnpicklingError("array shape that is not a tuple of sizes")
    claimed = math.prod(shape) * dtype.itemsize
    if claimed != data_bytes:
        raise pickle.UnpicklingError(f"array of shape {shape[:8]} {dtype} needs {claimed:,} bytes but its data "
                                     f"holds {data_bytes:,}")  # fmt: skip


def read_official_pickle(path: str | os.PathLike[str]) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler`; a one-line UserError for anything unreadable."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"file not found: {path}")
    if path.is_dir():
        raise UserError(f"{path} is a directory, not a network pickle")
    try:
        with open_regular(path) as handle:
            size = os.fstat(handle.fileno()).st_size
            return RestrictedUnpickler(handle, size).load()
    except UserError:
        raise
    except pickle.UnpicklingError as exc:
        raise UserError(f"{path} is not an official network pickle: {_first_line(exc)}") from None
    except MemoryError:
        raise UserError(f"not enough memory to read {path} ({os.path.getsize(path):,} bytes)") from None
    except OSError:
        raise
    except Exception as exc:  # malformed opcodes, truncated files: bad input, whatever the exception type
        reason = "the file ends early (truncated download?)" if isinstance(exc, EOFError) else _first_line(exc)
        raise UserError(f"{path} is not a readable network pickle ({reason})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:200] if text else type(exc).__name__
