"""Reading the official release's network pickles without running anything they contain.

The release stores its networks as a pickled tuple ``(G, D, Gs)`` of
``tfutil.Network`` objects. Unpickling those with :mod:`pickle` imports
``tfutil`` (TensorFlow 1.x) and ``exec``-utes the network source stored in the
file; a hostile file could run anything at all. Here a restricted
:class:`pickle.Unpickler` resolves only the handful of globals such a file
needs — the ``Network`` class, mapped to :class:`NetworkState`, a plain
stand-in that keeps the state dict, and numpy's array, dtype and scalar
rebuilders (under both numpy 1.x and 2.x module names) — and refuses every
other global *before* it is imported or called. ``build_module_src`` stays a
string that nobody executes.
"""

from __future__ import annotations

import functools
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from pggan.errors import UserError

#: Modules that define ``Network`` in the official releases (PGGAN, and StyleGAN's dnnlib, refused later).
NETWORK_CLASSES = {("tfutil", "Network"), ("dnnlib.tflib.network", "Network")}
_NUMPY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
_NUMPY_NUMERIC = ("numpy.core.numeric", "numpy._core.numeric")


class NetworkState:
    """What a pickled ``Network`` holds: its ``__getstate__`` dict, kept as data and never built."""

    module_name = ""  # the module the pickle named: tfutil (PGGAN) or dnnlib.tflib.network (StyleGAN)

    def __init__(self) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _network_class(module: str) -> type:
    """A fresh NetworkState subclass that remembers which module the pickle named."""
    return type("NetworkState", (NetworkState,), {"module_name": module})


class _NdarrayName:
    """What ``numpy.ndarray`` unpickles to: a name for ``_reconstruct``, not a constructor a pickle could call."""


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    """numpy's ``_reconstruct``, limited to plain ndarrays (no subclass constructors run)."""
    if not isinstance(subtype, _NdarrayName):
        raise pickle.UnpicklingError("array of a type other than numpy.ndarray")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _scalar(dtype: np.dtype, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise pickle.UnpicklingError("numpy scalar that is not plain numeric data")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _frombuffer(buffer: Any, dtype: np.dtype, shape: Any, order: str) -> np.ndarray:
    if not isinstance(dtype, np.dtype) or dtype.hasobject:
        raise pickle.UnpicklingError("array of objects")
    array = np.frombuffer(bytes(buffer), dtype=dtype)
    return array.reshape(shape, order="F" if order == "F" else "C")


def _allowed_global(module: str, name: str) -> Any:
    """The object a pickle may name as ``module.name``, or None.

    Functions and classes are handed out as fresh objects (partials, new
    subclasses), so that a pickle's BUILD opcode, which may set attributes on
    anything it has built, can never alter state shared with later loads.
    """
    if (module, name) in NETWORK_CLASSES:
        return _network_class(module)
    if module in _NUMPY_MODULES and name == "_reconstruct":
        return functools.partial(_reconstruct)
    if module in _NUMPY_MODULES and name == "scalar":
        return functools.partial(_scalar)
    if module in _NUMPY_NUMERIC and name == "_frombuffer":
        return functools.partial(_frombuffer)
    if module == "numpy" and name == "ndarray":
        return _NdarrayName()
    if module == "numpy" and name == "dtype":
        return np.dtype
    return None


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that can build only plain containers, numpy arrays and ``Network`` stand-ins."""

    def find_class(self, module: str, name: str) -> Any:
        found = _allowed_global(module, name)
        if found is None:
            raise pickle.UnpicklingError(f"refused to load {module}.{name} (only network data is allowed)")
        return found


def read_official_pickle(path: str | os.PathLike[str]) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler`; a one-line UserError for anything unreadable."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"file not found: {path}")
    if path.is_dir():
        raise UserError(f"{path} is a directory, not a network pickle")
    try:
        with open(path, "rb") as handle:
            return RestrictedUnpickler(handle).load()
    except pickle.UnpicklingError as exc:
        raise UserError(f"{path} is not an official network pickle: {str(exc).strip()[:200]}") from None
    except Exception as exc:  # malformed opcodes, bad array states, absurd shapes, deep nesting: all bad input
        if isinstance(exc, OSError):
            raise
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, EOFError):
            reason = "the file ends early (truncated download?)"
        raise UserError(f"{path} is not a readable network pickle ({reason})") from None
