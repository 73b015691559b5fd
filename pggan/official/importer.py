"""The official release's trained networks as pggan checkpoints (``pggan-import``), without TensorFlow.

A release pickle holds ``(G, D, Gs)``, each the state of a ``tfutil.Network``:
``{'version': 2, 'name', 'static_kwargs', 'build_module_src',
'build_func_name', 'variables': [(name, ndarray), ...]}`` built by ``G_paper``
/ ``D_paper`` of the release's ``networks.py``. The pickle is read by
:mod:`pggan.official.pickle_reader` (nothing in it runs); this module checks that the
three states are exactly what those two functions create, derives the
architecture from the variables' names and shapes, and copies the weights
into pggan's networks:

* the equalized-LR parametrisation is the same (weights ~ N(0, 1), He constant
  at run time), so values copy unscaled; conv weights go HWIO → OIHW, dense
  weights are transposed;
* two layouts exist. The *released* networks (converted from the paper's
  Theano run) use ``Conv0`` + ``Conv1`` blocks and a minibatch-stddev group of
  16; networks trained with the TF code's default ``fused_scale=True`` store
  G's first conv as a transposed-conv kernel ``NxN/Conv0_up`` [3, 3, out, in]
  — it becomes our 3×3 conv weight once flipped spatially *and* transposed —
  and D's ``NxN/Conv1_down`` pools before bias and lrelu (pggan's
  ``fused_downsample`` discriminator option);
* the official minibatch-stddev layer groups strided samples, so imported
  discriminators get ``mbstd_strided=True`` and score any batch as they did;
* ``lod`` (levels of detail below full resolution, fractional while fading)
  becomes resolution = 2^(log2 R − ⌊lod⌋) and alpha = 1 − frac(lod).
"""

from __future__ import annotations

import math
import numbers
import os
import re
import reprlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pggan.errors import UserError
from pggan.model.checkpoint import mismatched_networks, networks_checkpoint, save_checkpoint
from pggan.model.networks import check_max_resolution
from pggan.official.pickle_reader import NetworkState, read_official_pickle

#: The release's defaults of G_paper / D_paper for the keyword arguments we read.
SOURCE_DEFAULTS: dict[str, Any] = {
    "fmap_base": 8192,
    "fmap_decay": 1.0,
    "fmap_max": 512,
    "label_size": 0,
    "use_wscale": True,
    "dtype": "float32",
    "mbstd_group_size": 4,
    "normalize_latents": True,
    "use_pixelnorm": True,
    "pixelnorm_epsilon": 1e-8,
    "use_leakyrelu": True,
}
_SCOPE = re.compile(r"^(\d+)x(\d+)/")
STYLEGAN_FUNCS = ("G_style", "G_main", "G_mapping", "G_synthesis", "D_basic", "D_stylegan", "D_stylegan2")


@dataclass
class OfficialNetworks:
    """What an official pickle holds, in pggan's terms: configs, state dicts and a description."""

    resolution: int
    channels: int
    latent_size: int
    fmap_base: int
    fmap_max: int
    g_fused: bool
    d_fused: bool
    mbstd_group_size: int
    lod: float
    generator: dict[str, torch.Tensor] = field(repr=False)
    generator_ema: dict[str, torch.Tensor] = field(repr=False)
    discriminator: dict[str, torch.Tensor] = field(repr=False)

    @property
    def current(self) -> tuple[int, float]:
        """(resolution, alpha) where training stood: the stored lod in pggan's terms."""
        return lod_to_resolution_alpha(self.lod, self.resolution)

    def generator_config(self) -> dict[str, Any]:
        return {
            "max_resolution": self.resolution,
            "channels": self.channels,
            "latent_size": self.latent_size,
            "fmap_base": self.fmap_base,
            "fmap_max": self.fmap_max,
        }

    def discriminator_config(self) -> dict[str, Any]:
        return {
            "max_resolution": self.resolution,
            "channels": self.channels,
            "fmap_base": self.fmap_base,
            "fmap_max": self.fmap_max,
            "mbstd_group_size": self.mbstd_group_size if self.mbstd_group_size > 1 else 0,
            "fused_downsample": self.d_fused,
            "mbstd_strided": True,
        }

    def checkpoint(self) -> dict[str, Any]:
        """A pggan checkpoint dict (networks only: ``pggan-sample``, ``-swd``, ``-train --init`` read it)."""
        resolution, alpha = self.current
        return networks_checkpoint(
            self.generator_config(),
            self.discriminator_config(),
            self.generator,
            self.generator_ema,
            self.discriminator,
            resolution,
            alpha,
            imported_from={"format": "tfutil.Network v2", "lod": self.lod, "layout": self.layout},
        )

    @property
    def layout(self) -> str:
        if not self.g_fused and not self.d_fused:
            return "released (Conv0 + Conv1)"
        if self.g_fused and self.d_fused:
            return "TF fused_scale (Conv0_up / Conv1_down)"
        return f"mixed (G {'Conv0_up' if self.g_fused else 'Conv0'}, D {'Conv1_down' if self.d_fused else 'Conv1'})"

    def summary(self) -> str:
        resolution, alpha = self.current
        counts = [sum(v.numel() for v in sd.values()) for sd in (self.generator, self.discriminator)]
        mbstd = self.mbstd_group_size if self.mbstd_group_size > 1 else "off"
        return "\n".join(
            [
                f"resolution      {self.resolution}x{self.resolution}, {self.channels} channels",
                f"latent size     {self.latent_size}",
                f"layout          {self.layout}",
                f"widths          fmap_base {self.fmap_base}, fmap_max {self.fmap_max}",
                f"minibatch std   group {mbstd} (strided, as the official layer)",
                f"lod             {self.lod:g} -> resolution {resolution}, alpha {alpha:g}",
                f"parameters      G and Gs {counts[0]:,} each, D {counts[1]:,}",
            ]
        )


def lod_to_resolution_alpha(lod: float, max_resolution: int) -> tuple[int, float]:
    """The official ``lod`` as (resolution, alpha): 2^(log2 R − ⌊lod⌋) and 1 − frac(lod).

    lod outside [0, log2 R − 2] selects the same images as its nearest end (the
    official networks clip it the same way), so it is clamped there.
    """
    top = int(math.log2(max_resolution)) - 2
    lod = min(max(float(lod), 0.0), float(top))
    level = math.floor(lod)
    return 2 ** (top + 2 - level), 1.0 - (lod - level)


def _nf(stage: int, fmap_base: int, fmap_max: int) -> int:
    return min(int(fmap_base / (2.0**stage)), fmap_max)


def expected_generator_shapes(
    resolution: int, channels: int, latent_size: int, fmap_base: int, fmap_max: int, fused: bool
) -> dict[str, tuple[int, ...]]:
    """Every variable G_paper creates, with its shape (HWIO convs, [in, out] dense)."""
    log2 = int(math.log2(resolution))
    nf1 = _nf(1, fmap_base, fmap_max)
    shapes: dict[str, tuple[int, ...]] = {
        "lod": (),
        "4x4/Dense/weight": (latent_size, nf1 * 16),
        "4x4/Dense/bias": (nf1,),
        "4x4/Conv/weight": (3, 3, nf1, nf1),
        "4x4/Conv/bias": (nf1,),
    }
    for res in range(3, log2 + 1):
        scope, fin, fout = f"{2**res}x{2**res}", _nf(res - 2, fmap_base, fmap_max), _nf(res - 1, fmap_base, fmap_max)
        if fused:
            shapes[f"{scope}/Conv0_up/weight"] = (3, 3, fout, fin)
            shapes[f"{scope}/Conv0_up/bias"] = (fout,)
        else:
            shapes[f"{scope}/Conv0/weight"] = (3, 3, fin, fout)
            shapes[f"{scope}/Conv0/bias"] = (fout,)
        shapes[f"{scope}/Conv1/weight"] = (3, 3, fout, fout)
        shapes[f"{scope}/Conv1/bias"] = (fout,)
    for res in range(2, log2 + 1):
        shapes[f"ToRGB_lod{log2 - res}/weight"] = (1, 1, _nf(res - 1, fmap_base, fmap_max), channels)
        shapes[f"ToRGB_lod{log2 - res}/bias"] = (channels,)
    return shapes


def expected_discriminator_shapes(
    resolution: int, channels: int, fmap_base: int, fmap_max: int, fused: bool, mbstd: bool
) -> dict[str, tuple[int, ...]]:
    """Every variable D_paper creates (no labels), with its shape."""
    log2 = int(math.log2(resolution))
    nf0, nf1 = _nf(0, fmap_base, fmap_max), _nf(1, fmap_base, fmap_max)
    shapes: dict[str, tuple[int, ...]] = {"lod": ()}
    for res in range(2, log2 + 1):
        shapes[f"FromRGB_lod{log2 - res}/weight"] = (1, 1, channels, _nf(res - 1, fmap_base, fmap_max))
        shapes[f"FromRGB_lod{log2 - res}/bias"] = (_nf(res - 1, fmap_base, fmap_max),)
    for res in range(3, log2 + 1):
        scope, fin, fout = f"{2**res}x{2**res}", _nf(res - 1, fmap_base, fmap_max), _nf(res - 2, fmap_base, fmap_max)
        shapes[f"{scope}/Conv0/weight"] = (3, 3, fin, fin)
        shapes[f"{scope}/Conv0/bias"] = (fin,)
        conv1 = "Conv1_down" if fused else "Conv1"
        shapes[f"{scope}/{conv1}/weight"] = (3, 3, fin, fout)
        shapes[f"{scope}/{conv1}/bias"] = (fout,)
    shapes["4x4/Conv/weight"] = (3, 3, nf1 + (1 if mbstd else 0), nf1)
    shapes["4x4/Conv/bias"] = (nf1,)
    shapes["4x4/Dense0/weight"] = (nf1 * 16, nf0)
    shapes["4x4/Dense0/bias"] = (nf0,)
    shapes["4x4/Dense1/weight"] = (nf0, 1)
    shapes["4x4/Dense1/bias"] = (1,)
    return shapes


# ---------------------------------------------------------------------------------------------- validation
#: Bounds on what a network pickle's static_kwargs may say. Variables are compared with the shapes these
#: imply, so the bounds only keep absurd numbers (2**1000) out of arithmetic and messages.
FMAP_LIMIT = 1 << 20
GROUP_LIMIT = 1 << 16
_SHOW = reprlib.Repr()
_SHOW.maxstring = _SHOW.maxother = _SHOW.maxlong = 60
_SHOW.maxlevel, _SHOW.maxlist, _SHOW.maxtuple, _SHOW.maxdict = 2, 4, 4, 4


def describe(value: Any) -> str:
    """A bounded, one-line repr of a value read from the file: never recursion, never a huge string."""
    return _SHOW.repr(value).replace("\n", "\\n")


def _fail(where: str, message: str) -> UserError:
    return UserError(f"{where}: {message}")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _int_field(value: Any, what: str, role: str, low: int, high: int) -> int:
    """``value`` as an int in [low, high] (Python or numpy integers only); a one-line refusal otherwise."""
    if not _is_int(value):
        raise _fail(role, f"{what} is {describe(value)}, not an integer")
    if not low <= int(value) <= high:
        raise _fail(role, f"{what} {int(value)} is outside [{low}, {high}]")
    return int(value)


def _float_field(value: Any, what: str, role: str) -> float:
    """``value`` as a finite float (ints, floats, numpy scalars); a one-line refusal otherwise."""
    if not isinstance(value, (numbers.Real, np.integer, np.floating)) or isinstance(value, (bool, np.bool_)):
        raise _fail(role, f"{what} is {describe(value)}, not a number")
    number = float(value)
    if not math.isfinite(number):
        raise _fail(role, f"{what} is {number}, not a finite number")
    return number


def _bool_field(value: Any, what: str, role: str) -> bool:
    """``value`` as a bool (bools, numpy bools, the ints 0 and 1); a one-line refusal otherwise."""
    if isinstance(value, (bool, np.bool_)) or (_is_int(value) and int(value) in (0, 1)):
        return bool(value)
    raise _fail(role, f"{what} is {describe(value)}, not True or False")


def _network_state(obj: Any, role: str, func: str) -> dict[str, Any]:
    """The state dict of one pickled network, checked for the version-2 tfutil format and ``func``."""
    if not isinstance(obj, NetworkState):
        raise _fail(role, f"expected a tfutil.Network, found {type(obj).__name__}")
    state = obj.state
    if not isinstance(state, dict):
        raise _fail(role, "the network holds no state dict")
    name = state.get("build_func_name")
    if obj.module_name.startswith("dnnlib") or name in STYLEGAN_FUNCS or "components" in state:
        raise _fail(role, f"a StyleGAN network ({describe(name)}) cannot be represented by pggan; only G_paper/D_paper")
    version = state.get("version")
    if not (_is_int(version) and int(version) == 2):
        raise _fail(role, f"unsupported tfutil.Network state version {describe(version)} (expected 2)")
    if name != func:
        raise _fail(role, f"built by {describe(name)}, expected {func!r}: not a network of the paper's architecture")
    if not isinstance(state.get("static_kwargs"), dict) or not isinstance(state.get("variables"), (list, tuple)):
        raise _fail(role, "malformed state (static_kwargs or variables missing)")
    return state


def _variables(state: dict[str, Any], role: str) -> dict[str, np.ndarray]:
    """``{name: array}``; numeric arrays only, no duplicates, float16 refused."""
    result: dict[str, np.ndarray] = {}
    for item in state["variables"]:
        if not isinstance(item, (tuple, list)) or len(item) != 2 or not isinstance(item[0], str):
            raise _fail(role, "malformed variable list (expected (name, array) pairs)")
        name, value = item
        shown = describe(name)
        if isinstance(value, (float, int)) and not isinstance(value, bool):
            value = np.asarray(value, dtype=np.float64)
        if not isinstance(value, (np.ndarray, np.generic)):
            raise _fail(role, f"variable {shown} is a {type(value).__name__}, not a numeric array")
        value = np.asarray(value)
        if value.dtype == np.float16:
            raise _fail(role, f"variable {shown} is float16: float16 networks are not supported")
        if value.dtype.kind not in "fiu":
            raise _fail(role, f"variable {shown} has dtype {value.dtype}, expected numeric data")
        if name in result:
            raise _fail(role, f"variable {shown} appears twice")
        result[name] = value
    return result


def _check_kwargs(kwargs: dict[str, Any], role: str) -> None:
    """Refuse the static_kwargs of G_paper / D_paper that pggan cannot represent (every one type-checked)."""

    def get(key: str) -> Any:
        return kwargs.get(key, SOURCE_DEFAULTS[key])

    label_size = _int_field(get("label_size"), "label_size", role, 0, 1 << 30)
    if label_size:
        raise _fail(role, f"conditional network (label_size {label_size}): labels are not supported")
    if not _bool_field(get("use_wscale"), "use_wscale", role):
        raise _fail(role, "use_wscale=False (no equalized learning rate) is not supported")
    if not isinstance(get("dtype"), str) or get("dtype") != "float32":
        raise _fail(role, f"dtype {describe(get('dtype'))} networks are not supported (float32 only)")
    if _float_field(get("fmap_decay"), "fmap_decay", role) != 1.0:
        raise _fail(role, f"fmap_decay {describe(get('fmap_decay'))} is not supported (1.0 only)")
    for key in ("normalize_latents", "use_pixelnorm", "use_leakyrelu"):
        if not _bool_field(get(key), key, role):
            raise _fail(role, f"{key}=False is not supported")
    if _float_field(get("pixelnorm_epsilon"), "pixelnorm_epsilon", role) != 1e-8:
        raise _fail(role, f"pixelnorm_epsilon {describe(get('pixelnorm_epsilon'))} is not supported (1e-8 only)")
    for key, high in (("fmap_base", FMAP_LIMIT), ("fmap_max", FMAP_LIMIT), ("mbstd_group_size", GROUP_LIMIT)):
        if key in kwargs or key in SOURCE_DEFAULTS:
            _int_field(get(key), key, role, 0 if key == "mbstd_group_size" else 1, high)
    for key, (low, high) in (("resolution", (4, 1024)), ("num_channels", (1, 1 << 16)),
                             ("latent_size", (1, 1 << 20))):  # fmt: skip
        if kwargs.get(key) is not None:
            _int_field(kwargs[key], key, role, low, high)
    if "fused_scale" in kwargs:
        _bool_field(kwargs["fused_scale"], "fused_scale", role)


def _check_shapes(found: dict[str, np.ndarray], expected: dict[str, tuple[int, ...]], role: str) -> None:
    missing = [name for name in expected if name not in found]
    extra = [describe(name) for name in found if name not in expected]
    if missing:
        raise _fail(role, f"missing variable(s) {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
    if extra:
        raise _fail(role, f"unexpected variable(s) {', '.join(extra[:4])}{' ...' if len(extra) > 4 else ''}")
    for name, shape in expected.items():
        if tuple(found[name].shape) != shape:
            raise _fail(role, f"variable {name} has shape {tuple(found[name].shape)[:8]}, expected {shape}")


def _generator_architecture(variables: dict[str, np.ndarray], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Resolution, channels, latent size and layout of a G from its variable names and shapes."""
    dense = variables.get("4x4/Dense/weight")
    torgb = variables.get("ToRGB_lod0/weight")
    if dense is None or dense.ndim != 2 or torgb is None or torgb.ndim != 4:
        raise _fail("G", "missing variable 4x4/Dense/weight or ToRGB_lod0/weight")
    scopes = [int(m.group(1)) for m in map(_SCOPE.match, variables) if m and m.group(1) == m.group(2)]
    resolution = max(scopes, default=4)
    try:
        check_max_resolution(resolution)
    except ValueError as exc:
        raise _fail("G", str(exc)[:200]) from None
    arch = {
        "resolution": resolution,
        "channels": int(torgb.shape[-1]),
        "latent_size": int(dense.shape[0]),
        "fused": any(name.endswith("/Conv0_up/weight") for name in variables),
        "fmap_base": int(kwargs.get("fmap_base", SOURCE_DEFAULTS["fmap_base"])),
        "fmap_max": int(kwargs.get("fmap_max", SOURCE_DEFAULTS["fmap_max"])),
    }
    if arch["channels"] < 1 or arch["latent_size"] < 1:
        raise _fail("G", f"{arch['channels']} image channels and latent size {arch['latent_size']}: not a network")
    for key, kwarg in (("resolution", "resolution"), ("channels", "num_channels"), ("latent_size", "latent_size")):
        if kwargs.get(kwarg) is not None and int(kwargs[kwarg]) != arch[key]:
            raise _fail("G", f"static_kwargs say {kwarg}={kwargs[kwarg]} but the variables hold {arch[key]}")
    if "fused_scale" in kwargs and bool(kwargs["fused_scale"]) != arch["fused"]:
        raise _fail("G", f"static_kwargs say fused_scale={kwargs['fused_scale']} but the variables disagree")
    narrowest = _nf(int(math.log2(resolution)) - 1, arch["fmap_base"], arch["fmap_max"])
    if narrowest < 1:
        raise _fail("G", f"fmap_base {arch['fmap_base']} leaves no feature maps at {resolution}x{resolution}")
    return arch


def _lod(variables: dict[str, np.ndarray], role: str) -> float:
    lod = float(variables["lod"])
    if not math.isfinite(lod):
        raise _fail(role, f"lod is {lod}")
    return lod


# ---------------------------------------------------------------------------------------------- conversion
def _conv(w: np.ndarray) -> torch.Tensor:
    """HWIO → OIHW."""
    return torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1), dtype=np.float32))


def _transposed_conv(w: np.ndarray) -> torch.Tensor:
    """A ``conv2d_transpose`` kernel [3, 3, out, in] → the 3×3 conv (out, in, 3, 3) applied after upsampling.

    The transposed convolution scatters with the kernel as stored, a convolution
    gathers with it; the two agree once the kernel is flipped in both spatial
    directions. Transposing alone gives a network that outputs noise.
    """
    return torch.from_numpy(np.ascontiguousarray(w[::-1, ::-1].transpose(2, 3, 0, 1), dtype=np.float32))


def _vector(b: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(b, dtype=np.float32))


def _dense(w: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(w.T, dtype=np.float32))


def convert_generator(v: dict[str, np.ndarray], resolution: int, fused: bool) -> dict[str, torch.Tensor]:
    """G_paper variables → the state dict of :class:`pggan.model.networks.Generator`."""
    log2 = int(math.log2(resolution))
    sd = {
        "blocks.0.dense.weight": _dense(v["4x4/Dense/weight"]),
        "blocks.0.bias": _vector(v["4x4/Dense/bias"]),
        "blocks.0.conv.weight": _conv(v["4x4/Conv/weight"]),
        "blocks.0.conv.bias": _vector(v["4x4/Conv/bias"]),
    }
    for res in range(3, log2 + 1):
        scope, stage = f"{2**res}x{2**res}", res - 2
        if fused:
            sd[f"blocks.{stage}.conv0.weight"] = _transposed_conv(v[f"{scope}/Conv0_up/weight"])
            sd[f"blocks.{stage}.conv0.bias"] = _vector(v[f"{scope}/Conv0_up/bias"])
        else:
            sd[f"blocks.{stage}.conv0.weight"] = _conv(v[f"{scope}/Conv0/weight"])
            sd[f"blocks.{stage}.conv0.bias"] = _vector(v[f"{scope}/Conv0/bias"])
        sd[f"blocks.{stage}.conv1.weight"] = _conv(v[f"{scope}/Conv1/weight"])
        sd[f"blocks.{stage}.conv1.bias"] = _vector(v[f"{scope}/Conv1/bias"])
    for res in range(2, log2 + 1):
        sd[f"to_rgb.{res - 2}.weight"] = _conv(v[f"ToRGB_lod{log2 - res}/weight"])
        sd[f"to_rgb.{res - 2}.bias"] = _vector(v[f"ToRGB_lod{log2 - res}/bias"])
    return sd


def convert_discriminator(v: dict[str, np.ndarray], resolution: int, fused: bool) -> dict[str, torch.Tensor]:
    """D_paper variables → the state dict of :class:`pggan.model.networks.Discriminator`."""
    log2 = int(math.log2(resolution))
    sd = {
        "blocks.0.conv.weight": _conv(v["4x4/Conv/weight"]),
        "blocks.0.conv.bias": _vector(v["4x4/Conv/bias"]),
        "blocks.0.dense.weight": _dense(v["4x4/Dense0/weight"]),
        "blocks.0.dense.bias": _vector(v["4x4/Dense0/bias"]),
        "blocks.0.out.weight": _dense(v["4x4/Dense1/weight"]),
        "blocks.0.out.bias": _vector(v["4x4/Dense1/bias"]),
    }
    for res in range(3, log2 + 1):
        scope, stage, conv1 = f"{2**res}x{2**res}", res - 2, "Conv1_down" if fused else "Conv1"
        sd[f"blocks.{stage}.conv0.weight"] = _conv(v[f"{scope}/Conv0/weight"])
        sd[f"blocks.{stage}.conv0.bias"] = _vector(v[f"{scope}/Conv0/bias"])
        sd[f"blocks.{stage}.conv1.weight"] = _conv(v[f"{scope}/{conv1}/weight"])
        sd[f"blocks.{stage}.conv1.bias"] = _vector(v[f"{scope}/{conv1}/bias"])
    for res in range(2, log2 + 1):
        sd[f"from_rgb.{res - 2}.weight"] = _conv(v[f"FromRGB_lod{log2 - res}/weight"])
        sd[f"from_rgb.{res - 2}.bias"] = _vector(v[f"FromRGB_lod{log2 - res}/bias"])
    return sd


def official_networks(obj: Any) -> OfficialNetworks:
    """Validate an unpickled ``(G, D, Gs)`` and convert it; a one-line UserError for anything unexpected."""
    if not isinstance(obj, (tuple, list)) or len(obj) != 3:
        raise UserError("expected a pickled (G, D, Gs) tuple of three networks")
    states = [
        _network_state(net, role, func)
        for net, role, func in zip(obj, "G D Gs".split(), "G_paper D_paper G_paper".split(), strict=True)
    ]
    g_vars, d_vars, gs_vars = (_variables(state, role) for state, role in zip(states, ("G", "D", "Gs"), strict=True))
    for state, role in zip(states, ("G", "D", "Gs"), strict=True):
        _check_kwargs(state["static_kwargs"], role)
    g_kwargs, d_kwargs = states[0]["static_kwargs"], states[1]["static_kwargs"]
    arch = _generator_architecture(g_vars, g_kwargs)
    base, fmax = arch["fmap_base"], arch["fmap_max"]
    g_shapes = expected_generator_shapes(
        arch["resolution"], arch["channels"], arch["latent_size"], base, fmax, arch["fused"]
    )
    _check_shapes(g_vars, g_shapes, "G")
    _check_shapes(gs_vars, g_shapes, "Gs")
    for key, value in (("resolution", arch["resolution"]), ("num_channels", arch["channels"])):
        if d_kwargs.get(key) is not None and int(d_kwargs[key]) != value:  # type-checked by _check_kwargs
            raise _fail("D", f"static_kwargs say {key}={d_kwargs[key]} but G holds {value}")
    for key in ("fmap_base", "fmap_max"):
        if int(d_kwargs.get(key, SOURCE_DEFAULTS[key])) != arch[key]:
            raise _fail(
                "D", f"static_kwargs {key}={d_kwargs.get(key, SOURCE_DEFAULTS[key])} differ from G's {arch[key]}"
            )
    group = int(d_kwargs.get("mbstd_group_size", SOURCE_DEFAULTS["mbstd_group_size"]))
    d_fused = any(name.endswith("/Conv1_down/weight") for name in d_vars)
    if "fused_scale" in d_kwargs and bool(d_kwargs["fused_scale"]) != d_fused:
        raise _fail("D", f"static_kwargs say fused_scale={d_kwargs['fused_scale']} but the variables disagree")
    d_shapes = expected_discriminator_shapes(arch["resolution"], arch["channels"], base, fmax, d_fused, group > 1)
    _check_shapes(d_vars, d_shapes, "D")
    for role, variables in (("G", g_vars), ("D", d_vars)):
        _lod(variables, role)
    return OfficialNetworks(
        resolution=arch["resolution"],
        channels=arch["channels"],
        latent_size=arch["latent_size"],
        fmap_base=base,
        fmap_max=fmax,
        g_fused=arch["fused"],
        d_fused=d_fused,
        mbstd_group_size=group,
        lod=_lod(gs_vars, "Gs"),
        generator=convert_generator(g_vars, arch["resolution"], arch["fused"]),
        generator_ema=convert_generator(gs_vars, arch["resolution"], arch["fused"]),
        discriminator=convert_discriminator(d_vars, arch["resolution"], d_fused),
    )


def load_official(path: str | os.PathLike[str]) -> OfficialNetworks:
    """Read, validate and convert an official network pickle (nothing from the file is executed)."""
    try:
        return official_networks(read_official_pickle(path))
    except UserError as exc:
        if str(exc).startswith(str(path)):
            raise
        raise UserError(f"{path}: {exc}") from None


def import_official(
    path: str | os.PathLike[str], out: str | os.PathLike[str], overwrite: bool = False
) -> OfficialNetworks:
    """``pggan-import``: convert ``path`` and write it as a pggan checkpoint at ``out`` (atomically)."""
    out = Path(out)
    if out.exists() and not overwrite:
        raise UserError(f"{out} exists; pass --overwrite to replace it")
    if out.is_dir():
        raise UserError(f"{out} is a directory")
    networks = load_official(path)
    state = networks.checkpoint()
    # Prove the dicts fit pggan's networks before anything is written (built on the meta device: no memory, no init).
    wrong = mismatched_networks(state)
    if wrong:  # unreachable after the checks above; still one line, never an assertion or traceback
        raise UserError(f"{path}: the converted {', '.join(wrong)} do not fit pggan's networks")
    save_checkpoint(state, out)
    return networks
