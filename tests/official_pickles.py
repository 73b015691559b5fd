"""Write network pickles in the exact format of the official release, without TensorFlow.

A throw-away module named ``tfutil`` with a ``Network`` class whose
``__getstate__`` returns the version-2 state dict stands in for the release's
``tfutil.Network``; pickling a tuple of them gives the bytes the release's
``pickle.dump((G, D, Gs), file, protocol=pickle.HIGHEST_PROTOCOL)`` wrote
under Python 3.6 (protocol 4). ``numpy1=True`` names numpy's rebuilders
``numpy.core.multiarray.*`` as numpy 1.x (which wrote the released files) did.

The variable lists are written here from the release's ``networks.py``
(``G_paper`` / ``D_paper``), independently of pggan's importer.
"""

from __future__ import annotations

import contextlib
import io
import math
import pickle
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np


@contextlib.contextmanager
def fake_tfutil(module_name: str = "tfutil") -> Iterator[type]:
    """A temporary importable module ``module_name`` with a picklable ``Network`` class."""
    module = types.ModuleType(module_name)

    class Network:
        def __init__(self, state: dict[str, Any]) -> None:
            self._state = state

        def __getstate__(self) -> dict[str, Any]:
            return self._state

    Network.__module__ = module_name
    Network.__qualname__ = "Network"
    module.Network = Network
    parts = module_name.split(".")
    names = [".".join(parts[: i + 1]) for i in range(len(parts))]  # dnnlib, dnnlib.tflib, dnnlib.tflib.network
    saved = {name: sys.modules.get(name) for name in names}
    for name in names[:-1]:
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules[module_name] = module
    try:
        yield Network
    finally:
        for name, previous in saved.items():
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous


class _Numpy1Pickler(pickle._Pickler):
    """The pure-Python pickler, naming numpy's private module as numpy 1.x did (``numpy.core``)."""

    def save_global(self, obj: Any, name: str | None = None) -> None:
        name = name or getattr(obj, "__qualname__", None) or obj.__name__
        module = pickle.whichmodule(obj, name)
        if module.startswith("numpy._core"):
            self.write(pickle.GLOBAL + f"numpy.core{module[len('numpy._core') :]}\n{name}\n".encode())
            self.memoize(obj)
            return
        super().save_global(obj, name)


def dumps(obj: Any, protocol: int = 4, numpy1: bool = False) -> bytes:
    buffer = io.BytesIO()
    (_Numpy1Pickler if numpy1 else pickle.Pickler)(buffer, protocol=protocol).dump(obj)
    return buffer.getvalue()


def network_state(func: str, static_kwargs: dict[str, Any], variables: list[tuple[str, Any]]) -> dict[str, Any]:
    return {
        "version": 2,
        "name": func,
        "static_kwargs": dict(static_kwargs),
        "build_module_src": "raise RuntimeError('build_module_src must never be executed')\n",
        "build_func_name": func,
        "variables": list(variables),
    }


def write_official_pickle(
    path: str | Path,
    states: tuple[dict[str, Any], ...],
    protocol: int = 4,
    numpy1: bool = False,
    module_name: str = "tfutil",
    extra: Any = None,
) -> Path:
    """Pickle ``(G, D, Gs)`` (plus ``extra`` as a fourth item if given) as the release did."""
    with fake_tfutil(module_name) as network:
        items = tuple(network(state) for state in states)
        if extra is not None:
            items = (*items, extra)
        data = dumps(items, protocol=protocol, numpy1=numpy1)
    path = Path(path)
    path.write_bytes(data)
    return path


def nf(stage: int, fmap_base: int, fmap_max: int) -> int:
    return min(int(fmap_base / (2.0**stage)), fmap_max)


def _param(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def _bias(rng: np.random.Generator, n: int) -> np.ndarray:
    return (0.5 * rng.standard_normal(n)).astype(np.float32)  # non-zero biases: their placement is tested too


def g_variables(
    rng: np.random.Generator,
    resolution: int,
    channels: int,
    latent_size: int,
    fmap_base: int,
    fmap_max: int,
    fused: bool,
    lod: float,
) -> list[tuple[str, Any]]:
    """G_paper's variables in its creation order (template graph, linear structure)."""
    log2 = int(math.log2(resolution))
    n = [nf(s, fmap_base, fmap_max) for s in range(log2 + 1)]
    v: list[tuple[str, Any]] = [("lod", np.float32(lod))]
    v += [("4x4/Dense/weight", _param(rng, latent_size, n[1] * 16)), ("4x4/Dense/bias", _bias(rng, n[1]))]
    v += [("4x4/Conv/weight", _param(rng, 3, 3, n[1], n[1])), ("4x4/Conv/bias", _bias(rng, n[1]))]
    v += [(f"ToRGB_lod{log2 - 2}/weight", _param(rng, 1, 1, n[1], channels))]
    v += [(f"ToRGB_lod{log2 - 2}/bias", _bias(rng, channels))]
    for res in range(3, log2 + 1):
        scope = f"{2**res}x{2**res}"
        if fused:  # upscale2d_conv2d: get_weight([k, k, fmaps, x.shape[1]])
            v += [(f"{scope}/Conv0_up/weight", _param(rng, 3, 3, n[res - 1], n[res - 2]))]
            v += [(f"{scope}/Conv0_up/bias", _bias(rng, n[res - 1]))]
        else:
            v += [(f"{scope}/Conv0/weight", _param(rng, 3, 3, n[res - 2], n[res - 1]))]
            v += [(f"{scope}/Conv0/bias", _bias(rng, n[res - 1]))]
        v += [(f"{scope}/Conv1/weight", _param(rng, 3, 3, n[res - 1], n[res - 1]))]
        v += [(f"{scope}/Conv1/bias", _bias(rng, n[res - 1]))]
        v += [(f"ToRGB_lod{log2 - res}/weight", _param(rng, 1, 1, n[res - 1], channels))]
        v += [(f"ToRGB_lod{log2 - res}/bias", _bias(rng, channels))]
    return v


def d_variables(
    rng: np.random.Generator,
    resolution: int,
    channels: int,
    fmap_base: int,
    fmap_max: int,
    fused: bool,
    mbstd_group_size: int,
    lod: float,
) -> list[tuple[str, Any]]:
    """D_paper's variables in its creation order."""
    log2 = int(math.log2(resolution))
    n = [nf(s, fmap_base, fmap_max) for s in range(log2 + 1)]
    v: list[tuple[str, Any]] = [("lod", np.float32(lod))]
    v += [
        ("FromRGB_lod0/weight", _param(rng, 1, 1, channels, n[log2 - 1])),
        ("FromRGB_lod0/bias", _bias(rng, n[log2 - 1])),
    ]
    for res in range(log2, 2, -1):
        scope = f"{2**res}x{2**res}"
        v += [(f"{scope}/Conv0/weight", _param(rng, 3, 3, n[res - 1], n[res - 1]))]
        v += [(f"{scope}/Conv0/bias", _bias(rng, n[res - 1]))]
        conv1 = "Conv1_down" if fused else "Conv1"
        v += [(f"{scope}/{conv1}/weight", _param(rng, 3, 3, n[res - 1], n[res - 2]))]
        v += [(f"{scope}/{conv1}/bias", _bias(rng, n[res - 2]))]
        lod_index = log2 - (res - 1)
        v += [(f"FromRGB_lod{lod_index}/weight", _param(rng, 1, 1, channels, n[res - 2]))]
        v += [(f"FromRGB_lod{lod_index}/bias", _bias(rng, n[res - 2]))]
    extra = 1 if mbstd_group_size > 1 else 0
    v += [("4x4/Conv/weight", _param(rng, 3, 3, n[1] + extra, n[1])), ("4x4/Conv/bias", _bias(rng, n[1]))]
    v += [("4x4/Dense0/weight", _param(rng, n[1] * 16, n[0])), ("4x4/Dense0/bias", _bias(rng, n[0]))]
    v += [("4x4/Dense1/weight", _param(rng, n[0], 1)), ("4x4/Dense1/bias", _bias(rng, 1))]
    return v


def official_states(
    seed: int = 0,
    resolution: int = 32,
    channels: int = 3,
    latent_size: int = 12,
    fmap_base: int = 64,
    fmap_max: int = 16,
    fused: bool = False,
    mbstd_group_size: int = 4,
    lod: float = 0.0,
    g_kwargs: dict[str, Any] | None = None,
    d_kwargs: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Random (G, D, Gs) states; ``fused=False`` is the released layout, True the TF ``fused_scale`` one."""
    rng = np.random.default_rng(seed)
    common = {"num_channels": channels, "resolution": resolution, "fmap_base": fmap_base, "fmap_max": fmap_max}
    gk = {**common, "latent_size": latent_size, "fused_scale": fused, **(g_kwargs or {})}
    dk = {**common, "fused_scale": fused, "mbstd_group_size": mbstd_group_size, **(d_kwargs or {})}
    g = network_state(
        "G_paper", gk, g_variables(rng, resolution, channels, latent_size, fmap_base, fmap_max, fused, lod)
    )
    d = network_state(
        "D_paper", dk, d_variables(rng, resolution, channels, fmap_base, fmap_max, fused, mbstd_group_size, lod)
    )
    gs = network_state(
        "G_paper", gk, g_variables(rng, resolution, channels, latent_size, fmap_base, fmap_max, fused, lod)
    )
    return g, d, gs
