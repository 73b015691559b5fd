"""Hostile inputs made for real, as an attacker would write them, and a runner that caps a command's memory.

* Pickles are assembled opcode by opcode (:class:`Ops`); where an attack must sit inside an otherwise valid
  official network (so that it reaches the converter), :class:`Raw` puts hand-written opcodes in place of one
  variable while the rest of the file is written by the release's own format (``tests.official_pickles``).
* Checkpoints are real ``torch.save`` zips of tiny networks with one field edited (widths claimed far above
  the tensors, configs of the wrong type, stride-0 tensors that claim gigabytes, NaN weights).
* :func:`run_capped` runs a command in a subprocess under ``RLIMIT_AS`` (what ``ulimit -v`` sets) and a time
  limit, and reports its exit status, output and peak resident memory.

The tests in ``tests/test_hostile_*.py`` and ``tests/test_run_lock.py`` build their inputs here.
"""

from __future__ import annotations

import io
import os
import pickle
import resource
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tests.official_pickles import fake_tfutil, official_states

REPO = Path(__file__).resolve().parents[1]
GIB = 1 << 30
#: Address space a command that imports torch needs before it does anything (torch maps ~3.2 GB of
#: libraries here); caps below are this plus the memory a command may legitimately use.
TORCH_BASELINE = int(3.6 * GIB)


# ---------------------------------------------------------------------------------------------- pickle opcodes
class Ops:
    """Pickle opcodes, written by hand. Every helper returns bytes, so files are plain concatenations."""

    PROTO4 = b"\x80\x04"
    MARK, STOP, TUPLE, TUPLE1, TUPLE2, TUPLE3 = b"(", b".", b"t", b"\x85", b"\x86", b"\x87"
    REDUCE, BUILD, NONE, TRUE, FALSE = b"R", b"b", b"N", b"\x88", b"\x89"
    EMPTY_LIST, APPEND, APPENDS, EMPTY_DICT, SETITEM, SETITEMS = b"]", b"a", b"e", b"}", b"s", b"u"
    EMPTY_TUPLE, MEMOIZE, NEWOBJ, DUP = b")", b"\x94", b"\x81", b"2"

    @staticmethod
    def glob(module: str, name: str) -> bytes:
        return b"c" + module.encode() + b"\n" + name.encode() + b"\n"

    @staticmethod
    def text(value: str) -> bytes:
        data = value.encode("utf-8")
        return (b"\x8c" + bytes([len(data)]) if len(data) < 256 else b"X" + struct.pack("<I", len(data))) + data

    @staticmethod
    def data(value: bytes) -> bytes:
        return (b"C" + bytes([len(value)]) if len(value) < 256 else b"B" + struct.pack("<I", len(value))) + value

    @staticmethod
    def claimed_bytes(claimed: int, actual: bytes) -> bytes:
        """BINBYTES8 whose length field claims ``claimed`` bytes, followed by far fewer."""
        return b"\x8e" + struct.pack("<Q", claimed) + actual

    @staticmethod
    def int(value: int) -> bytes:
        if 0 <= value < 256:
            return b"K" + bytes([value])
        if -(2**31) <= value < 2**31:
            return b"J" + struct.pack("<i", value)
        raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
        return b"\x8a" + bytes([len(raw)]) + raw

    @staticmethod
    def float(value: float) -> bytes:
        return b"G" + struct.pack(">d", value)

    @staticmethod
    def get(index: int) -> bytes:
        return b"h" + bytes([index]) if index < 256 else b"j" + struct.pack("<I", index)

    @classmethod
    def tuple(cls, *items: bytes) -> bytes:
        return cls.MARK + b"".join(items) + cls.TUPLE

    @classmethod
    def call(cls, func: bytes, *args: bytes) -> bytes:
        return func + cls.tuple(*args) + cls.REDUCE

    @classmethod
    def dtype(cls, code: str, state: bytes | None = None, copy: bool = True) -> bytes:
        """``numpy.dtype(code, False, copy)`` and a BUILD with ``state`` (numpy's own state when None)."""
        _, (name, _, _), own = np.dtype(code).__reduce__()
        canonical = cls.tuple(*(cls.NONE if v is None else cls.text(v) if isinstance(v, str) else cls.int(v)
                                for v in own))  # fmt: skip
        made = cls.call(cls.glob("numpy", "dtype"), cls.text(name), cls.FALSE, cls.TRUE if copy else cls.FALSE)
        return made + (canonical if state is None else state) + cls.BUILD

    @classmethod
    def shape(cls, *dims: int) -> bytes:
        return cls.tuple(*(cls.int(d) for d in dims))

    @classmethod
    def frombuffer(cls, buffer: bytes, dtype: bytes, shape: bytes, order: str = "C") -> bytes:
        return cls.call(cls.glob("numpy._core.numeric", "_frombuffer"), buffer, dtype, shape, cls.text(order))

    @classmethod
    def array(cls, dims: tuple[int, ...], dtype: bytes, data: bytes, reconstruct_shape: bytes | None = None) -> bytes:
        """What numpy writes for an ndarray: ``_reconstruct(ndarray, (0,), b'b')`` then BUILD its state."""
        made = cls.call(cls.glob("numpy._core.multiarray", "_reconstruct"), cls.glob("numpy", "ndarray"),
                        reconstruct_shape or cls.shape(0), cls.data(b"b"))  # fmt: skip
        return made + cls.tuple(cls.int(1), cls.shape(*dims), dtype, cls.FALSE, data) + cls.BUILD

    @classmethod
    def file(cls, *body: bytes) -> bytes:
        return cls.PROTO4 + b"".join(body) + cls.STOP


class Raw:
    """Stands for hand-written opcodes inside a pickle written by :func:`dumps_with_raw`."""

    def __init__(self, opcodes: bytes) -> None:
        self.opcodes = opcodes


class _RawPickler(pickle._Pickler):
    """The pure-Python pickler, writing a :class:`Raw`'s opcodes verbatim (they must not use the memo)."""

    def save(self, obj: Any, save_persistent_id: bool = True) -> None:
        if isinstance(obj, Raw):
            self.framer.commit_frame()
            self.write(obj.opcodes)
            return
        super().save(obj, save_persistent_id)


def dumps_with_raw(obj: Any) -> bytes:
    buffer = io.BytesIO()
    _RawPickler(buffer, protocol=4).dump(obj)
    return buffer.getvalue()


def network_pickle(
    path: Path, g: dict[str, Any] | None = None, d: dict[str, Any] | None = None, gs: dict[str, Any] | None = None,
    states: tuple[dict[str, Any], ...] | None = None, **state_kwargs: Any,
) -> Path:  # fmt: skip
    """A small valid (G, D, Gs) pickle in the release's format, with fields or variables replaced.

    ``g``, ``d``, ``gs`` map a state key (``"version"``, ``"static_kwargs"`` ...) or ``"var:NAME"`` to the
    value to put there; a :class:`Raw` value is written as its opcodes.
    """
    states = states or official_states(resolution=8, **state_kwargs)
    edited = []
    for state, edits in zip(states, (g, d, gs), strict=True):
        state = dict(state)
        for key, value in (edits or {}).items():
            if key.startswith("var:"):
                name = key[4:]
                state["variables"] = [(n, value if n == name else v) for n, v in state["variables"]]
            elif key.startswith("kw:"):
                state["static_kwargs"] = {**state["static_kwargs"], key[3:]: value}
            elif value is _DELETE:
                state.pop(key)
            else:
                state[key] = value
        edited.append(state)
    with fake_tfutil() as network:
        data = dumps_with_raw(tuple(network(state) for state in edited))
    path.write_bytes(data)
    return path


_DELETE = object()
DELETE = _DELETE  # as an edit value: remove the key


# ---------------------------------------------------------------------------------------------- the importer
def subarray_view(path: Path, claimed: int = 1 << 18) -> Path:
    """A 4-byte buffer read through a dtype that BUILD rewrote into a subarray of ``claimed`` float32 values.

    G's and Gs's dense weight then claim ``claimed`` × 256 values over 4 bytes of data: the converter copies
    them and reads far past the buffer (a segmentation fault, or the process's heap leaked into the file).
    """
    ops = Ops
    subarray = ops.tuple(ops.dtype("f4"), ops.shape(claimed, 256))
    state = ops.tuple(ops.int(3), ops.text("<"), subarray, ops.NONE, ops.NONE, ops.int(4), ops.int(4), ops.int(0))
    weight = Raw(ops.frombuffer(ops.data(b"\0" * 4), ops.dtype("f4", state), ops.shape(claimed, 256)))
    kwargs = {"kw:latent_size": claimed}
    return network_pickle(path, g={"var:4x4/Dense/weight": weight, **kwargs}, gs={"var:4x4/Dense/weight": weight,
                                                                                   **kwargs})  # fmt: skip


def dtype_rewrite(path: Path) -> Path:
    """A float32 scalar whose dtype BUILD gives fields at an offset of 1 TiB (a mutable copy rewritten)."""
    ops = Ops
    fields = ops.EMPTY_DICT + ops.text("a") + ops.tuple(ops.dtype("f8"), ops.int(1 << 40)) + ops.SETITEM
    state = ops.tuple(ops.int(3), ops.text("<"), ops.NONE, ops.tuple(ops.text("a")), fields, ops.int(4),
                      ops.int(4), ops.int(16))  # fmt: skip
    lod = Raw(ops.call(ops.glob("numpy._core.multiarray", "scalar"), ops.dtype("f4", state), ops.data(b"\0" * 4)))
    return network_pickle(path, g={"var:lod": lod})


def claimed_shape(path: Path) -> Path:
    """``_reconstruct(ndarray, (2**33,), b'b')``: an 8 GiB array claimed by 60 bytes."""
    ops = Ops
    body = ops.call(ops.glob("numpy._core.multiarray", "_reconstruct"), ops.glob("numpy", "ndarray"),
                    ops.shape(1 << 33), ops.data(b"b"))  # fmt: skip
    path.write_bytes(ops.file(body))
    return path


def array_state_shape(path: Path) -> Path:
    """numpy's own array form, whose BUILD state claims a (2**31, 4) float32 array with 8 bytes of data."""
    path.write_bytes(Ops.file(Ops.array((1 << 31, 4), Ops.dtype("f4"), Ops.data(b"\0" * 8))))
    return path


def frombuffer_int(path: Path) -> Path:
    """``_frombuffer(8_000_000_000, float32, ...)``: an int where the buffer belongs (``bytes(n)`` is n zeros)."""
    ops = Ops
    path.write_bytes(ops.file(ops.frombuffer(ops.int(8_000_000_000), ops.dtype("f4"), ops.shape(2_000_000_000))))
    return path


def claimed_length(path: Path) -> Path:
    """A BINBYTES8 that claims 6 GiB in a 40-byte file (a reader that trusts it allocates first)."""
    path.write_bytes(Ops.PROTO4 + Ops.claimed_bytes(6 * GIB, b"\0" * 16) + Ops.STOP)
    return path


def unicode_array(path: Path) -> Path:
    """An 8-element array of dtype U268435456 (1 GiB per element), refused only after it was allocated."""
    ops = Ops
    big = ops.call(ops.glob("numpy", "dtype"), ops.text("U268435456"), ops.FALSE, ops.TRUE)
    body = ops.call(ops.glob("numpy._core.multiarray", "_reconstruct"), ops.glob("numpy", "ndarray"),
                    ops.shape(8), big)  # fmt: skip
    path.write_bytes(ops.file(body))
    return path


def object_array(path: Path) -> Path:
    """An object array as a variable (numpy's format for dtype('O'): a list of Python objects)."""
    ops = Ops
    items = ops.EMPTY_LIST + ops.MARK + ops.text("x") * 4 + ops.APPENDS
    return network_pickle(path, g={"var:4x4/Conv/bias": Raw(ops.array((4,), ops.dtype("O8"), items))})


def memo_bomb(path: Path, count: int = 4_000_000) -> Path:
    """``count`` empty dicts, each kept in the memo: 2 bytes of file for ~150 bytes of memory each."""
    path.write_bytes(Ops.PROTO4 + (Ops.EMPTY_DICT + Ops.MEMOIZE) * count + Ops.NONE + Ops.STOP)
    return path


def nested_key(path: Path, depth: int = 1_000_000) -> Path:
    """A dict whose key is a tuple nested ``depth`` deep: hashing it recurses in C (a 1 MB segfault)."""
    body = Ops.EMPTY_DICT + Ops.EMPTY_TUPLE + Ops.TUPLE1 * depth + Ops.int(1) + Ops.SETITEM
    path.write_bytes(Ops.file(body))
    return path


def nested_version(path: Path, depth: int = 60_000) -> Path:
    """A network whose ``version`` is a list nested ``depth`` deep (printing it recurses without limit)."""
    deep = Ops.EMPTY_LIST * depth + Ops.APPEND * (depth - 1)
    return network_pickle(path, g={"version": Raw(deep)})


def repr_bomb(path: Path, copies: int = 20_000, size: int = 1 << 20) -> Path:
    """``build_func_name`` = one 1 MiB string referenced ``copies`` times: 1 MB of file, 20 GB of repr."""
    ops = Ops
    body = ops.EMPTY_LIST + ops.MARK + ops.text("A" * size) + ops.DUP * (copies - 1) + ops.APPENDS  # no memo
    return network_pickle(path, g={"build_func_name": Raw(body)})


IMPORT_FIELDS: dict[str, dict[str, Any]] = {
    "fmap_base is a list": {"g": {"kw:fmap_base": [64]}},
    "fmap_base is inf": {"g": {"kw:fmap_base": float("inf")}},
    "fmap_max is None": {"g": {"kw:fmap_max": None}},
    "resolution is a list": {"g": {"kw:resolution": [8]}},
    "mbstd_group_size is a list": {"d": {"kw:mbstd_group_size": [4]}},
    "label_size is a string": {"g": {"kw:label_size": "0"}},
    "fused_scale is an array": {"g": {"kw:fused_scale": np.array([1, 2])}},
    "version missing": {"g": {"version": DELETE}},
    "static_kwargs is a list": {"d": {"static_kwargs": [1, 2]}},
}


def zero_widths(path: Path) -> Path:
    """fmap_base 0 in every network and variables of matching zero-width shapes (0-channel convs)."""
    states = official_states(resolution=8, fmap_base=0, fmap_max=0)
    return network_pickle(path, states=states)


# ---------------------------------------------------------------------------------------------- checkpoints
def tiny_checkpoint(path: Path, seed: int = 0, **edits: Any) -> Path:
    """A real pggan checkpoint of 16x16 networks 8 wide, with keys replaced (``DELETE`` removes one)."""
    import torch

    from pggan.model.checkpoint import network_state, save_checkpoint
    from pggan.model.networks import Discriminator, Generator

    torch.manual_seed(seed)
    g, d = Generator(16, 3, 8, 32, 8), Discriminator(16, 3, 32, 8)
    state = network_state(g, d, g, 16, 1.0)
    for key, value in edits.items():
        if value is DELETE:
            state.pop(key)
        else:
            state[key] = value(state) if callable(value) else value
    save_checkpoint(state, path)
    return path


def huge_width_checkpoint(path: Path) -> Path:
    """A 30 KB checkpoint whose config claims 16384-wide 1024² networks (tens of GB once built)."""
    return tiny_checkpoint(path, generator_config={"max_resolution": 1024, "channels": 3, "latent_size": 512,
                                                    "fmap_base": 1 << 24, "fmap_max": 16384})  # fmt: skip


def stride0_checkpoint(path: Path) -> Path:
    """Config and tensor shapes agree on 16x16 networks 4096 wide, but every tensor is one float, stride 0.

    Shape checks pass; building the networks the config describes allocates gigabytes from a small file.
    """
    import torch

    from pggan.model.checkpoint import save_checkpoint
    from pggan.model.networks import Discriminator, Generator

    with torch.device("meta"):
        g, d = Generator(16, 3, 512, 1 << 16, 4096), Discriminator(16, 3, 1 << 16, 4096)

    def fake(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: torch.zeros(1).as_strided(tuple(v.shape), (0,) * v.ndim) for k, v in sd.items()}

    state = {"generator_config": g.config, "discriminator_config": d.config, "generator": fake(g.state_dict()),
             "generator_ema": fake(g.state_dict()), "discriminator": fake(d.state_dict()), "resolution": 16,
             "alpha": 1.0}  # fmt: skip
    save_checkpoint(state, path)
    return path


def nan_checkpoint(path: Path) -> Path:
    """A checkpoint whose EMA generator's weights are NaN (what a diverged run might have saved)."""

    def poisoned(state: dict[str, Any]) -> dict[str, Any]:
        return {k: v.clone().fill_(float("nan")) if v.is_floating_point() else v
                for k, v in state["generator_ema"].items()}  # fmt: skip

    return tiny_checkpoint(path, generator_ema=poisoned)


CHECKPOINT_FIELDS: dict[str, dict[str, Any]] = {
    "config is a list": {"generator_config": [1, 2]},
    "resolution missing": {"resolution": DELETE},
    "resolution is a list": {"resolution": [16]},
    "config has an extra key": {"generator_config": lambda s: {**s["generator_config"], "evil": 1}},
    "alpha is a string": {"alpha": "half"},
    "weights of another shape": {"generator_ema": lambda s: {k: v[..., :1] if v.ndim == 4 else v
                                                             for k, v in s["generator_ema"].items()}},
}  # fmt: skip


# ---------------------------------------------------------------------------------------------- image sources
def zip_bomb(path: Path, size: int = 2 * GIB, name: str = "bomb.png") -> Path:
    """A zip of a few MB whose one member inflates to ``size`` bytes of zeros."""
    chunk = b"\0" * (16 << 20)
    info = zipfile.ZipInfo(name)
    info.compress_type = zipfile.ZIP_DEFLATED  # a bare ZipInfo would store it uncompressed
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open(info, "w", force_zip64=True) as member:
            for _ in range(size // len(chunk)):
                member.write(chunk)
        archive.writestr("good.png", _png_bytes())
    return path


def _png_bytes(size: int = 40) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    rng = np.random.default_rng(size)
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def good_images(folder: Path, count: int = 3, size: int = 40) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        (folder / f"good{index}.png").write_bytes(_png_bytes(size + index))
    return folder


def huge_png(path: Path, side: int = 12000) -> Path:
    """A grey PNG of side × side pixels (side² bytes decoded): small on disk, big in memory."""
    import zlib

    row = b"\0" + b"\x80" * side
    raw = zlib.compress(row * side, 9)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b""))
    return path


def fid_stats(path: Path, mu: Any = None, sigma: Any = None, **extra: Any) -> Path:
    """An FID statistics file (pytorch-fid's names), 2048-d by default."""
    rng = np.random.default_rng(0)
    if mu is None:
        mu = rng.standard_normal(2048)
    if sigma is None:
        a = rng.standard_normal((2048, 64))
        sigma = a @ a.T / 64 + np.eye(2048) * 0.1
    with open(path, "wb") as handle:
        np.savez(handle, mu=mu, sigma=sigma, **extra)
    return path


def fid_stats_bomb(path: Path, side: int = 40_000) -> Path:
    """An .npz whose sigma member claims side² float64 (12.8 GB at 40,000) and deflates from zeros."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, np.zeros(2048))
        archive.writestr("mu.npy", buffer.getvalue())
        info = zipfile.ZipInfo("sigma.npy")
        info.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(info, "w", force_zip64=True) as member:
            member.write(_npy_header((side, side)))
            member.write(b"\0" * (16 << 20))  # 16 MB of the 12.8 GB claimed: the header is what lies
    return path


def _npy_header(shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return buffer.getvalue()  # magic string and header


# ---------------------------------------------------------------------------------------------- running
@dataclass
class Outcome:
    """How a command ended: exit status (negative: killed by that signal), output, peak RSS (VmHWM), time."""

    returncode: int
    stdout: str
    stderr: str
    max_rss_mb: float
    seconds: float
    timed_out: bool

    @property
    def errors(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("Error:")]

    def summary(self) -> str:
        """A cell of the before/after table."""
        if self.timed_out:
            return f"hangs (killed after {self.seconds:.0f} s)"
        if self.returncode < 0:
            return f"killed by {signal.Signals(-self.returncode).name}"
        if "Traceback" in self.stderr:
            last = [line for line in self.stderr.strip().splitlines() if line and not line.startswith(" ")][-1]
            return f"traceback: {last[:90]}"
        if self.returncode == 0:
            return "exit 0"
        line = self.errors[0] if len(self.errors) == 1 else self.stderr.strip().splitlines()[-1]
        return f"exit {self.returncode}: {line[:110]}"


def run_capped(
    args: list[Any], address_space: int | None = None, timeout: float = 120, env: dict[str, str] | None = None,
    cwd: Path | None = None, data: int | None = None,
) -> Outcome:  # fmt: skip
    """Run ``args`` with ``RLIMIT_AS`` = ``address_space`` bytes (as ``ulimit -v``), killed after ``timeout``.

    ``data`` caps ``RLIMIT_DATA`` instead (heap and private memory, not file mappings): for commands that map
    a large LMDB file, where an address-space cap would measure the map rather than what was allocated. The
    peak resident memory is this process's own (``wait4``), not the maximum over all children so far.
    """

    def limit() -> None:
        if address_space is not None:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
        if data is not None:
            resource.setrlimit(resource.RLIMIT_DATA, (data, data))

    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", **(env or {})}
    start = time.monotonic()
    peak_kb = 0
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, open(os.devnull, "rb") as stdin:
        process = subprocess.Popen([str(a) for a in args], stdin=stdin, stdout=out, stderr=err,
                                   preexec_fn=limit, env=full_env, cwd=cwd)  # fmt: skip
        timed_out = False
        while True:
            peak_kb = max(peak_kb, _high_water_kb(process.pid))
            pid, status, _ = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - start > timeout:
                timed_out = True
                os.kill(process.pid, signal.SIGKILL)
                _, status, _ = os.wait4(process.pid, 0)
                break
            time.sleep(0.02)
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    return Outcome(process.returncode, stdout.decode(errors="replace"), stderr.decode(errors="replace"),
                   peak_kb / 1024, time.monotonic() - start, timed_out)  # fmt: skip


def _high_water_kb(pid: int) -> int:
    """``VmHWM`` of a live process: the peak resident memory of its own address space.

    Not ``wait4``'s ``ru_maxrss``: Linux carries the high-water mark across fork and exec, so a child of a big
    pytest process would report pytest's size. Sampled every 20 ms while the process runs (VmHWM only grows).
    """
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def pggan_args(*args: Any) -> list[Any]:
    return [sys.executable, "-m", "pggan", *args]



# -------------------------------------------------------------------------------- many commands in one process
_DRIVER = r"""
import contextlib, io, json, sys
from pggan.__main__ import main
for args in json.loads(sys.argv[1]):
    print(json.dumps({"start": args}), flush=True)
    err, out = io.StringIO(), io.StringIO()
    code, crash = 0, None
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            main(args, standalone_mode=True, prog_name="pggan")
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException as exc:  # what a console script would print as a traceback
            code, crash = 1, f"{type(exc).__name__}: {str(exc)[:200]}"
    rss = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0]) / 1024  # this process's own peak
    print(json.dumps({"args": args, "code": code, "stderr": err.getvalue()[-4000:], "stdout": out.getvalue()[-2000:],
                      "crash": crash, "max_rss_mb": rss}), flush=True)
"""


@dataclass
class CommandResult:
    """One command run by :func:`run_commands`: exit code, output, and an escaped exception if any."""

    args: list[str]
    code: int
    stderr: str
    stdout: str
    crash: str | None
    max_rss_mb: float

    def one_line_error(self, *fragments: str) -> str:
        """Assert exit code 1, no traceback, exactly one ``Error:`` line holding ``fragments``; return it."""
        assert self.crash is None, f"{self.args}: escaped {self.crash}"
        assert self.code == 1, (self.args, self.code, self.stderr[-1000:])
        lines = [line for line in (self.stderr + self.stdout).splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("Error:")]
        assert len(errors) == 1 and "Traceback" not in self.stderr, (self.args, self.stderr[-1000:])
        assert errors[-1] == lines[-1], (self.args, lines)
        for fragment in fragments:
            assert fragment in errors[0], (self.args, errors[0])
        return errors[0]


def run_commands(commands: list[list[Any]], address_space: int, timeout: float = 240) -> list[CommandResult]:
    """Run pggan commands one after another in ONE subprocess, under ``RLIMIT_AS`` = ``address_space``.

    The commands go through ``python -m pggan``'s own entry point (click's standalone mode, as a console
    script), so exit codes and messages are the user's; one process saves a torch start-up per command. A
    signal (a crash) fails the caller's assertion naming the command that was running.
    """
    import json

    payload = json.dumps([[str(a) for a in args] for args in commands])
    outcome = run_capped([sys.executable, "-c", _DRIVER, payload], address_space=address_space, timeout=timeout,
                         env={"PYTHONPATH": str(REPO)})  # fmt: skip
    records = [json.loads(line) for line in outcome.stdout.splitlines() if line.startswith("{")]
    running = next((r["start"] for r in reversed(records) if "start" in r), None)
    done = [r for r in records if "code" in r]
    assert outcome.returncode == 0 and not outcome.timed_out and len(done) == len(commands), (
        f"the driver ended with {outcome.summary()} while running {running}: {outcome.stderr[-2000:]}"
    )
    return [CommandResult(r["args"], r["code"], r["stderr"], r["stdout"], r["crash"], r["max_rss_mb"]) for r in done]


# -------------------------------------------------------------------------------- more checkpoints
TINY_TRAIN = [
    "--fade-kimg", "0.016", "--stable-kimg", "0.016", "--total-kimg", "0.08", "--batch-schedule", "4:8,8:8,16:8",
    "--device", "cpu", "--workers", "0", "--grid-size", "2", "--no-tensorboard",
]  # fmt: skip


def resumable_checkpoint(path: Path, data: Path, **edits: Any) -> Path:
    """A real resumable training state of a tiny 16x16 run on ``data`` (3 channels), with keys replaced."""
    import torch

    from pggan.model.checkpoint import RunProgress, network_state, save_checkpoint, training_state
    from pggan.training.options import TrainOptions
    from pggan.training.step import build_gan_state

    options = TrainOptions(data=str(data), resolution=16, out=str(path.parent.parent), run_name=path.parent.name,
                           fade_kimg=0.016, stable_kimg=0.016, total_kimg=0.08, batch_schedule="4:8,8:8,16:8",
                           fmap_base=32, fmap_max=8, latent_size=8, device="cpu", workers=0, grid_size=2,
                           tensorboard=False).resolved(1)  # fmt: skip
    gan = build_gan_state(16, 3, torch.device("cpu"), latent_size=8, fmap_base=32, fmap_max=8,
                          mbstd_group_size=options.mbstd_group_size)  # fmt: skip
    networks = network_state(gan.generator, gan.discriminator, gan.generator_ema, 4, 1.0)
    progress = RunProgress(images_shown=8, step=1, optimizer_phase=0, timeline={"tick": 16, "snapshot": 32})
    state = training_state(networks, gan.g_optimizer, gan.d_optimizer, progress, torch.Generator().get_state(),
                           options.to_dict(), None)  # fmt: skip
    for key, value in edits.items():
        if value is DELETE:
            state.pop(key)
        else:
            state[key] = value(state) if callable(value) else value
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(state, path)
    return path


def _wrong_moment(state: dict[str, Any]) -> dict[str, Any]:
    import torch

    saved = state["g_optimizer"]
    moments = {"step": torch.tensor(1.0), "exp_avg": torch.zeros(3), "exp_avg_sq": torch.zeros(3)}
    return {**saved, "state": {0: moments}}


RESUME_FIELDS: dict[str, dict[str, Any]] = {
    "progress is a string": {"progress": "far"},
    "options is a list": {"options": [1, 2]},
    "option resolution is a list": {"options": lambda s: {**s["options"], "resolution": [16]}},
    "Adam moment of the wrong shape": {"g_optimizer": _wrong_moment},
    "random state of the wrong type": {"noise_rng": [1, 2, 3]},
    "noise_rng missing": {"noise_rng": DELETE},
}


def compressed_checkpoint(path: Path) -> Path:
    """A valid checkpoint rewritten with its members deflated (torch.load would inflate them in full)."""
    source = tiny_checkpoint(path.with_suffix(".src.pt"))
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for info in original.infolist():
            archive.writestr(info.filename, original.read(info.filename))
    source.unlink()
    return path


def overflow_checkpoint(path: Path) -> Path:
    """Finite weights whose output is not: every toRGB weight 3e38, so the sums over channels overflow."""

    def scaled(state: dict[str, Any]) -> dict[str, Any]:
        return {k: v.clone().fill_(3e38) if k.startswith("to_rgb") and k.endswith("weight") else v
                for k, v in state["generator_ema"].items()}  # fmt: skip

    return tiny_checkpoint(path, generator_ema=scaled)


def patched_zip(path: Path, declared: int, actual: bytes, name: str = "bomb.png") -> Path:
    """A zip with one deflated member whose headers declare ``declared`` bytes, holding ``actual`` inflated.

    ``declared`` far above ``actual`` is a bomb announced by its size; far below it, a bomb that lies.
    """
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, actual)
        archive.writestr("good.png", _png_bytes())
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
        local = info.header_offset
    struct.pack_into("<I", data, local + 22, declared)  # the local header's uncompressed size
    offset = 0
    while True:  # the central directory entry of ``name``
        central = data.find(b"PK\x01\x02", offset)
        length = struct.unpack_from("<H", data, central + 28)[0]
        if bytes(data[central + 46 : central + 46 + length]) == name.encode():
            break
        offset = central + 4
    struct.pack_into("<I", data, central + 24, declared)  # the central directory's uncompressed size
    path.write_bytes(bytes(data))
    return path
