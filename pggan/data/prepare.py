"""The pyramid builder behind ``pggan-prepare``: images in, one finished LMDB dataset out, or nothing.

Safety first: the dataset is built in a hidden temporary directory beside
``--out``; the ``meta`` record is written last, the data flushed to disk, and
only then is the directory renamed into place. A crash, ``kill -9`` or Ctrl-C
at any moment leaves an earlier dataset at ``--out`` exactly as it was (a
killed run's leftovers are removed by the next run).

Nothing of the user's is lost: ``--overwrite`` replaces only a directory
whose ``meta`` record says it is a pggan dataset and that holds nothing but
the dataset's own files; ``DATASET.skipped.txt`` belongs to the dataset (it is
replaced only with ``--overwrite``, and a failed run leaves the previous one in
place); file names are escaped in it, so a name with a newline cannot forge a
line. Two ``pggan-prepare`` runs on one ``--out`` cannot overlap: the second
stops at once, naming the first (:mod:`pggan.run_lock`).

Speed: files are decoded, resized, filtered and encoded by ``--workers``
processes; the parent only writes records, in the sorted source order, so the
dataset is identical for any number of workers.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from pggan import __version__
from pggan.atomic import WriteFailed, atomic_write_bytes, describe_os_error
from pggan.data.image_files import ImageItem, SkipImage, list_images, load_square, read_bytes
from pggan.data.pyramid import (
    FORMAT_NAME,
    FORMAT_VERSION,
    LEVEL_RULE,
    MAP_SIZE,
    META_KEY,
    PNG_COMPRESS_LEVEL,
    build_levels,
    confirm_dataset,
    record_key,
)
from pggan.data.storage_choice import choose_encodings
from pggan.errors import UserError
from pggan.resolutions import check_resolution, growth_resolutions
from pggan.run_lock import dataset_output_lock

CALIBRATION_IMAGES = 6
COMMIT_EVERY_BYTES = 256 << 20


@dataclass
class PrepareResult:
    """What a finished ``prepare_dataset`` call did (also printed as the summary line)."""

    path: Path
    report_path: Path
    count: int
    skipped: list[tuple[str, str]]
    seconds: float
    bytes_per_level: dict[int, int]
    encoding: dict[int, str]
    workers: int
    meta: dict[str, Any] = field(repr=False)

    def summary(self) -> str:
        """One line: images written and skipped, time, speed, bytes per level."""
        rate = self.count / self.seconds if self.seconds > 0 else float("inf")
        levels = ", ".join(
            f"{r}: {_human(b)} {self.encoding[r]}" for r, b in sorted(self.bytes_per_level.items(), reverse=True)
        )
        return (
            f"wrote {self.count} images to {self.path} (skipped {len(self.skipped)}, listed in {self.report_path}) "
            f"in {self.seconds:.1f} s, {rate:.1f} images/s with {self.workers} workers; bytes per level: {levels}"
        )


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


# ---- work done in the decoding processes -------------------------------------------------------------------
_job: dict[str, Any] = {}


def _init_job(resolution: int, channels: int, min_size: int, encoding: dict[int, str]) -> None:
    _job.update(resolution=resolution, channels=channels, min_size=min_size, encoding=encoding)


def _process(item: ImageItem) -> tuple[str, Any]:
    """Decode one file into its encoded pyramid: ("ok", {resolution: bytes}) or ("skip", reason)."""
    from pggan.data.pyramid import encode_record

    try:
        top = load_square(read_bytes(item), _job["resolution"], _job["channels"], _job["min_size"])
        levels = build_levels(top)
        return "ok", {r: encode_record(levels[r], _job["encoding"][r]) for r in levels}
    except SkipImage as exc:
        return "skip", str(exc)
    except MemoryError:  # one image too large for this process's memory limit: skip it, keep the others
        return "skip", "not enough memory to decode it"


def _results(items: list[ImageItem], workers: int) -> Iterator[tuple[str, Any]]:
    """Results in item order, from a process pool (or in this process for one worker)."""
    if workers <= 1:
        for item in items:
            yield _process(item)
        return
    import multiprocessing

    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    args = (_job["resolution"], _job["channels"], _job["min_size"], _job["encoding"])
    with context.Pool(workers, initializer=_init_job, initargs=args) as pool:
        chunk = max(1, min(16, len(items) // (workers * 8)))
        yield from pool.imap(_process, items, chunksize=chunk)


# ---- placing the dataset -------------------------------------------------------------------------------------
def _partial_prefix(out: Path) -> str:
    return f".{out.name}.partial-{socket.gethostname()}-"


def _remove_stale_partials(out: Path) -> None:
    """Delete temporary directories left by killed runs on this host (their process no longer exists)."""
    prefix = _partial_prefix(out)
    if not out.parent.is_dir():
        return
    for entry in out.parent.iterdir():
        if not entry.name.startswith(prefix):
            continue
        try:
            pid = int(entry.name[len(prefix) :].split("-")[0])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(entry, ignore_errors=True)
        except (ValueError, PermissionError, OSError):
            continue


def report_path_for(out: Path) -> Path:
    """Where the list of skipped files goes: a text file next to the dataset."""
    return out.with_name(out.name + ".skipped.txt")


REPORT_HEADER = "# pggan-prepare report: "
_FAILED_REPORT = REPORT_HEADER + "0 images written"


def escape_name(text: str) -> str:
    """``text`` with backslashes and control characters escaped (``\\n``, ``\\x1b``, ...), on one line.

    File names may hold newlines, tabs or terminal escapes; written raw into the report they would forge lines
    or reasons. Undecodable bytes of a name (``surrogateescape``) become ``\\xNN`` too.
    """
    out = []
    for char in text:
        code = ord(char)
        if char == "\\":
            out.append("\\\\")
        elif char in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[char])
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        elif code < 0x20 or 0x7F <= code < 0xA0 or code in (0x2028, 0x2029) or 0xD800 <= code < 0xE000:
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def _write_report(path: Path, sources: list[str], skipped: list[tuple[str, str]], count: int) -> None:
    lines = [
        f"{REPORT_HEADER}{count} images written, {len(skipped)} files skipped",
        f"# sources: {' '.join(escape_name(source) for source in sources)}",
        *(f"{escape_name(name)}\t{escape_name(reason)}" for name, reason in skipped),
    ]
    atomic_write_bytes(path, lambda handle: handle.write(("\n".join(lines) + "\n").encode("utf-8")))
    path.chmod(0o644)  # a report is an ordinary file, not a private temp file


def _fsync_tree(folder: Path) -> None:
    for entry in [*folder.iterdir(), folder]:
        fd = os.open(entry, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _move_into_place(temp: Path, out: Path) -> None:
    """Rename the finished dataset to ``out``, replacing an old one only after the new one is complete."""
    old = None
    if out.exists() or out.is_symlink():
        old = out.with_name(f".{out.name}.old-{os.getpid()}-{time.time_ns()}")
        os.replace(out, old)
    try:
        os.replace(temp, out)
    except BaseException:
        if old is not None:
            os.replace(old, out)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


#: What a finished dataset directory holds; anything else in it is the user's and is never deleted.
DATASET_FILES = frozenset({"data.mdb", "lock.mdb"})


def _check_out(out: Path, overwrite: bool) -> None:
    """Refuse, before any work, an ``--out`` (or report) that this run must not replace."""
    if out.exists() or out.is_symlink():
        if not overwrite:
            raise UserError(f"{out} already exists; pass --overwrite to replace it (only once the new one is complete)")
        if not out.is_dir():
            raise UserError(f"{out} exists and is not a dataset directory; refusing to replace it")
        entries = sorted(entry.name for entry in out.iterdir())
        if entries:  # an empty directory holds nothing to lose
            try:
                confirm_dataset(out)
            except UserError as exc:
                reason = str(exc).replace(str(out), "it").splitlines()[0][:200]
                raise UserError(
                    f"{out} is not a pggan dataset ({reason}); refusing to replace it. If it is a damaged dataset, "
                    "remove it yourself and run again"
                ) from None
            others = [name for name in entries if name not in DATASET_FILES]
            if others:
                listed = ", ".join(escape_name(name)[:60] for name in others[:3]) + (" ..." if len(others) > 3 else "")
                raise UserError(
                    f"{out} holds files that are not part of the dataset ({listed}); refusing to replace it: "
                    "move them elsewhere first"
                )
    report = report_path_for(out)
    if report.exists() or report.is_symlink():
        if report.is_symlink() or not report.is_file():
            raise UserError(f"{report} exists and is not a pggan-prepare report; refusing to replace it")
        if not overwrite and not (_is_failed_report(report) and not out.exists()):
            raise UserError(f"{report} already exists; pass --overwrite to replace it")
    if not out.parent.exists():
        raise UserError(f"the folder for --out does not exist: {out.parent}")


def _is_failed_report(report: Path) -> bool:
    """Whether ``report`` is what a run that wrote no dataset left (its first line says 0 images written)."""
    try:
        with open(report, "rb") as handle:
            first = handle.readline(200).decode("utf-8", "replace")
    except OSError:
        return False
    return first.startswith(_FAILED_REPORT + ",")


def _failed(report: Path, sources: list[str], skipped: list[tuple[str, str]], considered: int) -> UserError:
    """The error of a run in which no file was usable; its report is written only where none exists yet."""
    message = f"none of the {considered} image files could be used"
    if report.exists() or report.is_symlink():
        reasons = "; ".join(f"{escape_name(Path(name).name)[:60]}: {reason[:60]}" for name, reason in skipped[:3])
        return UserError(f"{message} ({reasons}{' ...' if len(skipped) > 3 else ''}; the earlier {report} was "
                         "left in place)")  # fmt: skip
    _write_report(report, sources, skipped, 0)
    return UserError(f"{message} (reasons in {report})")


def _address_space_limit() -> int | None:
    import resource

    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    return None if limit == resource.RLIM_INFINITY else int(limit)


def _write_map_size() -> int:
    """The LMDB map for building: 1 TiB of sparse address space, or half of what ``ulimit -v`` leaves.

    LMDB maps the whole file it writes; under an address-space limit a 1 TiB map fails outright, so the map
    takes half the room left (the other half is for decoding), and a dataset that outgrows it is reported as
    needing a higher limit.
    """
    limit = _address_space_limit()
    if limit is None:
        return MAP_SIZE
    try:
        with open("/proc/self/statm") as handle:
            used = int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        used = limit // 2
    room = max(64 << 20, (limit - used) // 2)
    return min(MAP_SIZE, room // (1 << 20) * (1 << 20))


# ---- the builder ----------------------------------------------------------------------------------------------
def _calibrate(items: list[ImageItem], resolution: int, channels: int, min_size: int) -> list[dict[int, np.ndarray]]:
    """Decode the first few usable images in this process, to measure encodings on real data."""
    samples = []
    for item in items:
        try:
            top = load_square(read_bytes(item), resolution, channels, min_size)
        except SkipImage:
            continue
        samples.append(build_levels(top))
        if len(samples) >= CALIBRATION_IMAGES:
            break
    return samples


def prepare_dataset(
    sources: list[str],
    out: str | os.PathLike[str],
    resolution: int,
    channels: int = 3,
    workers: int | None = None,
    min_size: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
    encoding: dict[int, str] | None = None,
) -> PrepareResult:
    """Build the LMDB pyramid of ``sources`` at ``out`` (top level ``resolution``) and return what was done.

    ``encoding`` forces an encoding per level (tests, benchmarks); by default it
    is measured on the first images (see :mod:`pggan.data.storage_choice`).
    """
    start = time.perf_counter()
    check_resolution(resolution)
    if channels not in (1, 3):
        raise UserError(f"--channels must be 1 or 3, got {channels}")
    min_size = resolution // 2 if min_size is None else int(min_size)
    if min_size < 1:
        raise UserError(f"--min-size must be at least 1, got {min_size}")
    if workers is None:
        workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    out = Path(out).expanduser().absolute()
    if not out.parent.is_dir():
        raise UserError(f"the folder for --out does not exist: {out.parent}")
    with dataset_output_lock(out):  # a second pggan-prepare on this --out stops here, naming this one
        return _prepare_locked(list(sources), out, resolution, channels, workers, min_size, overwrite, progress,
                               encoding, start)  # fmt: skip


def _prepare_locked(
    sources: list[str], out: Path, resolution: int, channels: int, workers: int, min_size: int, overwrite: bool,
    progress: bool, encoding: dict[int, str] | None, start: float,
) -> PrepareResult:  # fmt: skip
    """``prepare_dataset`` once this process holds the lock of ``out``."""
    import lmdb
    from tqdm import tqdm

    _check_out(out, overwrite)
    items, skipped = list_images(list(sources))
    report = report_path_for(out)
    resolutions = growth_resolutions(resolution)

    measurement: dict[str, Any] = {}
    if encoding is None:
        samples = _calibrate(items, resolution, channels, min_size)
        if not samples:
            skipped_now = list(skipped)
            for item in items:
                try:
                    load_square(read_bytes(item), resolution, channels, min_size)
                except SkipImage as exc:
                    skipped_now.append((item.name, str(exc)))
            raise _failed(report, list(sources), skipped_now, len(items))
        encoding, measurement = choose_encodings(samples, resolutions, channels)
    encoding = {r: encoding[r] for r in resolutions}
    _init_job(resolution, channels, min_size, encoding)

    _remove_stale_partials(out)
    temp = out.with_name(f"{_partial_prefix(out)}{os.getpid()}-{time.time_ns()}")
    try:
        temp.mkdir()
    except OSError as exc:
        raise WriteFailed(out, exc) from None
    count = 0
    bytes_per_level = dict.fromkeys(resolutions, 0)
    results: Any = None
    try:
        env = lmdb.open(str(temp), map_size=_write_map_size(), subdir=True, sync=False, metasync=False, readahead=False)
        try:
            txn = env.begin(write=True)
            pending = 0
            desc = f"prepare {resolution}px"
            bar = tqdm(total=len(items), unit="img", desc=desc, disable=not progress, file=sys.stderr)
            results = _results(items, workers)
            with bar:
                for item, (status, value) in zip(items, results, strict=True):
                    bar.update(1)
                    if status == "skip":
                        skipped.append((item.name, value))
                        continue
                    for r, record in value.items():
                        txn.put(record_key(r, count), record)
                        bytes_per_level[r] += len(record)
                        pending += len(record)
                    count += 1
                    if pending >= COMMIT_EVERY_BYTES:
                        txn.commit()
                        txn = env.begin(write=True)
                        pending = 0
            results.close()  # shuts the worker pool down now, not at garbage collection
            if count == 0:
                txn.abort()
                raise _failed(report, list(sources), skipped, len(items))
            meta = {
                "format": FORMAT_NAME,
                "version": FORMAT_VERSION,
                "count": count,
                "resolution": resolution,
                "resolutions": resolutions,
                "channels": channels,
                "encoding": {str(r): encoding[r] for r in resolutions},
                "raw_layout": "CHW uint8",
                "png_compress_level": PNG_COMPRESS_LEVEL,
                "key_format": "{resolution:04d}-{index:08d}",
                "bytes_per_level": {str(r): bytes_per_level[r] for r in resolutions},
                "encoding_measurement": measurement,
                "level_rule": LEVEL_RULE,
                "source": {
                    "sources": [str(Path(s).expanduser().absolute()) for s in sources],
                    "files_considered": len(items),
                    "files_skipped": len(skipped),
                    "min_size": min_size,
                    "top_level": "EXIF orientation, centre crop, Lanczos resize",
                    "lower_levels": "2x2 means of the unrounded float level above, each level rounded with np.rint",
                },
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "pggan_version": __version__,
            }
            txn.put(META_KEY, json.dumps(meta, indent=1).encode("utf-8"))  # last: marks the dataset complete
            txn.commit()
            env.sync(True)
        finally:
            if results is not None:
                results.close()
            env.close()
        (temp / "lock.mdb").unlink(missing_ok=True)  # readers open without locking; a finished dataset never changes
        _fsync_tree(temp)
        _move_into_place(temp, out)
    except (lmdb.Error, OSError) as exc:  # a full disk, quota, read-only or failing file system
        shutil.rmtree(temp, ignore_errors=True)
        reason = describe_os_error(exc) if isinstance(exc, OSError) else str(exc).splitlines()[0][:200]
        if isinstance(exc, (lmdb.MapFullError, lmdb.MemoryError)) and _address_space_limit() is not None:
            reason = (f"the dataset needs more address space than the limit leaves (ulimit -v: "
                      f"{_address_space_limit() / 2**30:.1f} GiB); raise it")  # fmt: skip
        raise WriteFailed(out, f"{reason}; nothing was written (the partial dataset was removed)") from None
    except BaseException:
        shutil.rmtree(temp, ignore_errors=True)
        raise
    _write_report(report, list(sources), skipped, count)
    seconds = time.perf_counter() - start
    return PrepareResult(out, report, count, skipped, seconds, bytes_per_level, encoding, workers, meta)
