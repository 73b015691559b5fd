"""The on-disk LMDB pyramid: keys, the 2×2 box filter, record encodings and the ``meta`` record.

One module owns the format so that the builder (``pggan.data.prepare``), the checker
(``pggan.data.verify``) and the reader (``pggan.data.loader``) can never disagree about it.

Layout: one LMDB environment (a directory) per dataset. Image ``i`` of level
``R`` lives under the key ``f"{R:04d}-{i:08d}"``. A record is either ``raw``
(the uint8 pixels in CHW order, exactly C·R·R bytes, so reading is a memcpy)
or ``png`` (lossless, for the big levels where bytes matter). The ``meta``
record (JSON) is written last: a dataset without it was never finished and is
refused.
"""

from __future__ import annotations

import errno
import io
import json
import mmap
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from pggan.errors import UserError
from pggan.resolutions import MIN_RESOLUTION, check_resolution, growth_resolutions

FORMAT_NAME = "pggan-pyramid"
FORMAT_VERSION = 1
META_KEY = b"meta"
ENCODINGS = ("raw", "png")
PNG_COMPRESS_LEVEL = 4  # about the size of levels 6-9 on photos at less encode time (tools/bench_data.py)
MAP_SIZE = 1 << 40  # 1 TiB of address space for building; LMDB files are sparse, so this costs nothing on disk


def record_key(resolution: int, index: int) -> bytes:
    """The LMDB key of image ``index`` at level ``resolution``."""
    return f"{resolution:04d}-{index:08d}".encode("ascii")


#: How the lower levels are made (the meta record's ``level_rule``). ``float-rint`` is the official
#: dataset_tool.py: each level is the 2×2 mean of the *unrounded* float level above, and every level is
#: quantised on its own with ``np.rint`` (half to even) and clipped. ``uint8-half-up`` is what pggan made
#: before (each level the 2×2 mean of the *rounded* level above, rounded half up); such datasets still load.
LEVEL_RULES = ("float-rint", "uint8-half-up")
LEVEL_RULE = "float-rint"
LEGACY_LEVEL_RULE = "uint8-half-up"


def box_downsample(image: np.ndarray) -> np.ndarray:
    """Halve an (H, W, C) uint8 image with a 2×2 box filter, rounded half up (the ``uint8-half-up`` rule)."""
    h, w, c = image.shape
    blocks = image.reshape(h // 2, 2, w // 2, 2, c).astype(np.uint16)
    total = blocks[:, 0, :, 0] + blocks[:, 0, :, 1] + blocks[:, 1, :, 0] + blocks[:, 1, :, 1]
    return ((total + 2) >> 2).astype(np.uint8)


def box_mean(image: np.ndarray) -> np.ndarray:
    """The 2×2 mean of an (H, W, C) float32 image, summed in dataset_tool.py's order and kept unrounded.

    Exact in float32 for every level from 1024 down to 4: level k below the top holds multiples of 4^-k up
    to 255, which need 8 + 2k ≤ 24 bits of mantissa.
    """
    return (image[0::2, 0::2] + image[0::2, 1::2] + image[1::2, 0::2] + image[1::2, 1::2]) * np.float32(0.25)


def build_levels(top: np.ndarray, rule: str = LEVEL_RULE) -> dict[int, np.ndarray]:
    """The whole pyramid (HWC uint8 arrays) from the top-level image, keyed by resolution."""
    if rule not in LEVEL_RULES:
        raise ValueError(f"unknown level rule {rule!r}")
    levels = {top.shape[0]: top}
    if rule == LEGACY_LEVEL_RULE:
        current = top
        while current.shape[0] > MIN_RESOLUTION:
            current = box_downsample(current)
            levels[current.shape[0]] = current
        return levels
    exact = top.astype(np.float32)
    while exact.shape[0] > MIN_RESOLUTION:
        exact = box_mean(exact)
        levels[exact.shape[0]] = np.rint(exact).clip(0, 255).astype(np.uint8)
    return levels


def level_rule(meta: dict[str, Any]) -> str:
    """The rule that built a dataset's lower levels (datasets from before the field: the legacy rule)."""
    return str(meta.get("level_rule", LEGACY_LEVEL_RULE))


def encode_record(image: np.ndarray, encoding: str) -> bytes:
    """Encode one HWC uint8 image for storage (``raw`` is stored CHW so that reads need no transpose)."""
    if encoding == "raw":
        return np.ascontiguousarray(image.transpose(2, 0, 1)).tobytes()
    if encoding == "png":
        buffer = io.BytesIO()
        Image.fromarray(image[:, :, 0] if image.shape[2] == 1 else image).save(
            buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL
        )
        return buffer.getvalue()
    raise ValueError(f"unknown encoding {encoding!r}")


try:  # libspng decodes our PNG records faster than Pillow's libpng path (pip install pggan[fast]; tools/bench_data.py)
    import pyspng
except ImportError:  # pragma: no cover - depends on the environment
    pyspng = None


def _decode_png(buffer: Any) -> np.ndarray:
    """HWC (or HW) uint8 pixels of a PNG record, with pyspng when it is installed, else Pillow."""
    if pyspng is not None:
        try:
            return pyspng.load(bytes(buffer))
        except Exception:  # let Pillow decode it, or explain why it cannot
            pass
    with Image.open(io.BytesIO(buffer), formats=["PNG"]) as image:
        return np.asarray(image)


def decode_record_into(buffer: Any, encoding: str, out: np.ndarray) -> None:
    """Decode one stored record into ``out`` (a uint8 array (C, R, R)); raise ValueError if it does not fit.

    ``buffer`` may be a memoryview into the LMDB map (valid only inside its
    transaction), so it is copied or decoded here and never kept.
    """
    channels, height, width = out.shape
    if encoding == "raw":
        if len(buffer) != out.size:
            raise ValueError(f"raw record holds {len(buffer)} bytes, expected {out.size}")
        out[...] = np.frombuffer(buffer, dtype=np.uint8).reshape(channels, height, width)
        return
    if encoding == "png":
        try:
            pixels = _decode_png(buffer)
        except Exception as exc:  # a damaged record: Pillow raises several types
            raise ValueError(f"PNG record does not decode ({type(exc).__name__}: {str(exc)[:100]})") from None
        expected = (height, width) if channels == 1 else (height, width, channels)
        if pixels.shape != expected or pixels.dtype != np.uint8:
            raise ValueError(f"PNG record holds {pixels.dtype} {pixels.shape}, expected uint8 {expected}")
        out[...] = pixels[None] if channels == 1 else pixels.transpose(2, 0, 1)
        return
    raise ValueError(f"unknown encoding {encoding!r}")


def validate_meta(meta: Any, where: str) -> dict[str, Any]:
    """Check that a parsed ``meta`` record describes a dataset this version can read; return it."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise UserError(f"{where} is not a pggan-prepare dataset (its meta record is not ours)")
    if meta.get("version", 0) > FORMAT_VERSION:
        raise UserError(f"{where} was written by a newer pggan (dataset format {meta.get('version')})")
    try:
        count = int(meta["count"])
        channels = int(meta["channels"])
        resolutions = [int(r) for r in meta["resolutions"]]
        encoding = {int(r): str(e) for r, e in meta["encoding"].items()}
    except (KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{where} has a damaged meta record ({exc})") from None
    if (
        count < 1
        or channels not in (1, 3)
        or resolutions != growth_resolutions(check_resolution(max(resolutions, default=4)))
        or set(encoding) != set(resolutions)
        or any(e not in ENCODINGS for e in encoding.values())
        or level_rule(meta) not in LEVEL_RULES
    ):
        raise UserError(f"{where} has a damaged meta record")
    return meta


class DatasetDamaged(UserError):
    """The dataset's files are truncated or corrupted: it must be copied again or rebuilt."""


class DatasetUnmappable(UserError):
    """``data.mdb`` is fine but cannot be mapped into this process's address space (``ulimit -v``)."""


def _damaged(path: str | os.PathLike[str], what: str, meta_lost: bool = False) -> DatasetDamaged:
    """The one-line damage report; ``meta_lost``: its meta record cannot be read, so --overwrite cannot confirm it."""
    if meta_lost:
        return DatasetDamaged(
            f"{path} is damaged: {what}. Copy it again from a good copy, or remove it and rebuild it with "
            f"pggan-prepare SOURCE... --out {path} --resolution R (--overwrite replaces only a dataset whose meta "
            "record can be read)"
        )
    return DatasetDamaged(
        f"{path} is damaged: {what}. Copy it again from a good copy, or rebuild it with "
        f"pggan-prepare SOURCE... --out {path} --resolution R --overwrite"
    )


def _unmappable(path: str | os.PathLike[str], size: int) -> DatasetUnmappable:
    import resource

    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    shown = "unlimited" if limit == resource.RLIM_INFINITY else f"{limit / 2**30:.1f} GiB"
    return DatasetUnmappable(
        f"cannot map {Path(path) / 'data.mdb'} ({size / 2**30:.2f} GiB) into memory: the address-space limit "
        f"(ulimit -v: {shown}) leaves too little room. The dataset is not damaged; raise the limit"
    )


def read_map_size(path: str | os.PathLike[str]) -> int:
    """The map size for reading a finished dataset: its file's size, in whole pages.

    Reading needs no room to grow, so the map is as large as the data and no larger: a dataset opens under an
    address-space limit (``ulimit -v``, common on clusters) as long as the file itself fits. LMDB enlarges it
    to what the file's header says if that is more (a truncated file, refused before any page is read).
    """
    size = os.stat(Path(path) / "data.mdb").st_size
    return max(mmap.PAGESIZE, -(-size // mmap.PAGESIZE) * mmap.PAGESIZE)


def open_env(path: str | os.PathLike[str]) -> Any:
    """Open a finished dataset read-only (no lock file: a finished dataset never changes).

    LMDB maps ``data.mdb`` into memory, and reading a page past the end of a truncated file kills the process
    with SIGBUS, which no ``except`` can catch. So before any data page is touched, the file's size is checked
    against what the environment's header says it holds (its last page × the page size): LMDB reads that header
    with ``pread``, never through the map. A map that the address-space limit refuses is reported as such.
    """
    import lmdb

    data_file = Path(path) / "data.mdb"
    map_size = read_map_size(path)
    try:
        env = lmdb.open(
            str(path), readonly=True, lock=False, readahead=False, max_readers=2048, subdir=True, map_size=map_size
        )
    except lmdb.Error as exc:
        if isinstance(exc, lmdb.MemoryError) or getattr(exc, "errno", None) == errno.ENOMEM or (
            "Cannot allocate memory" in str(exc)
        ):
            raise _unmappable(path, map_size) from None
        raise _damaged(path, f"data.mdb is not a readable LMDB file ({str(exc).splitlines()[0][:120]})", True) from None
    try:
        needed = (int(env.info()["last_pgno"]) + 1) * int(env.stat()["psize"])
        size = os.stat(data_file).st_size
    except (lmdb.Error, OSError) as exc:
        env.close()
        raise _damaged(path, f"its LMDB header cannot be read ({str(exc).splitlines()[0][:120]})", True) from None
    if size < needed:
        env.close()
        raise _damaged(
            path, f"data.mdb holds {size:,} bytes but its LMDB needs {needed:,} (a partial copy or sync?)", True
        )
    return env


_shared_envs: dict[tuple[int, int], tuple[int, Any]] = {}
_mapped: dict[int, int] = {}  # id(env) -> the map size it was opened with


def shared_env(path: str | os.PathLike[str]) -> Any:
    """This process's read-only handle on the dataset at ``path``, opened once and shared by every reader.

    LMDB allows one open handle per environment file per process, so all
    readers (every level, ``read_meta``, verify) share it. After a fork the
    child drops the handles it inherited (closing its copy of the mapping
    only) and opens its own: a handle must not cross processes. A dataset
    replaced by ``--overwrite`` has a new data file, hence a new handle.
    """
    stat = os.stat(Path(path) / "data.mdb")
    key = (stat.st_dev, stat.st_ino)
    pid = os.getpid()
    entry = _shared_envs.get(key)
    if entry is not None and entry[0] == pid:
        env = entry[1]
        if stat.st_size > _mapped.get(id(env), stat.st_size):  # rewritten in place since (tests do): map it all
            _mapped[id(env)] = read_map_size(path)
            env.set_mapsize(_mapped[id(env)])
        return env
    for inherited_key, (owner, env) in list(_shared_envs.items()):
        if owner != pid:
            env.close()
            _mapped.pop(id(env), None)
            del _shared_envs[inherited_key]
    env = open_env(path)
    _shared_envs[key] = (pid, env)
    _mapped[id(env)] = read_map_size(path)
    return env


def confirm_dataset(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``meta`` record of the dataset at ``path``, read through a handle of its own that is closed again.

    For deciding whether a directory may be replaced (``pggan-prepare --overwrite``): only a directory whose
    meta record says it is a pggan dataset is; a UserError says why not. Nothing stays mapped afterwards.
    """
    import lmdb

    path = Path(path)
    if not (path / "data.mdb").is_file():
        raise UserError(f"{path} has no data.mdb")
    stat = os.stat(path / "data.mdb")
    entry = _shared_envs.get((stat.st_dev, stat.st_ino))
    shared = entry is not None and entry[0] == os.getpid()
    env = shared_env(path) if shared else open_env(path)  # one handle per file and process, as LMDB requires
    try:
        with env.begin() as txn:
            raw = txn.get(META_KEY)
    except lmdb.Error as exc:
        raise UserError(f"its LMDB cannot be read ({str(exc).splitlines()[0][:120]})") from None
    finally:
        if not shared:
            env.close()
    if raw is None:
        raise UserError(f"{path} has no meta record")
    return parse_meta(raw, path)


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed ``meta`` record of the dataset at ``path``; UserError if it is missing, foreign or unfinished."""
    import lmdb

    path = Path(path)
    if not path.exists():
        raise UserError(f"dataset not found: {path}")
    if not path.is_dir() or not (path / "data.mdb").is_file():
        raise UserError(f"{path} is not a pggan-prepare dataset (expected an LMDB directory with data.mdb)")
    try:
        with shared_env(path).begin() as txn:
            raw = txn.get(META_KEY)
    except lmdb.Error as exc:
        raise _damaged(path, f"its LMDB cannot be read ({str(exc).splitlines()[0][:200]})") from None
    if raw is None:
        raise UserError(f"{path} is incomplete: it has no meta record (was pggan-prepare interrupted?)")
    return parse_meta(raw, path)


def parse_meta(raw: bytes, path: str | os.PathLike[str]) -> dict[str, Any]:
    """A ``meta`` record's bytes as the checked dict (``validate_meta``); UserError when it is not JSON."""
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise UserError(f"{path} has a damaged meta record (not JSON)") from None
    return validate_meta(meta, str(path))
