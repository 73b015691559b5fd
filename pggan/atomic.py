"""Atomic file writes (temp file + fsync + rename) and one clear error when the disk refuses them.

Every file pggan writes goes through :func:`atomic_write_bytes`, so a crash,
``kill -9`` or full disk mid-write leaves the previous file intact and no
temporary file behind. Pure standard library: building a dataset or writing a
PNG does not import torch.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from pggan.errors import UserError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Permissions of a finished file, as ``open()`` would give it (mkstemp's temp files are private, 0600).
_FILE_MODE = 0o666 & ~_current_umask()


class WriteFailed(UserError):
    """The file system refused a write (full disk, quota, read-only, I/O error); the target is unchanged."""

    def __init__(self, path: str | os.PathLike[str], reason: OSError | str) -> None:
        self.path = Path(path)
        self.reason = describe_os_error(reason) if isinstance(reason, OSError) else str(reason)
        super().__init__(f"cannot write {self.path}: {self.reason}")


def describe_os_error(exc: OSError) -> str:
    """``[Errno 28] No space left on device: '/x'`` → ``No space left on device (ENOSPC)``: the cause, no path."""
    if exc.errno is None:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    name = errno.errorcode.get(exc.errno, str(exc.errno))
    return f"{exc.strerror or os.strerror(exc.errno)} ({name})"


def atomic_write_bytes(path: str | os.PathLike[str], writer: Callable[[IO[bytes]], Any]) -> None:
    """Call ``writer(file_object)`` on a temp file beside ``path``, fsync, then rename it over ``path``.

    An OSError anywhere (creating the folder or the temp file, writing, fsync, rename) becomes
    :class:`WriteFailed` naming ``path``; the temp file is removed in every failure.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), path.parent)
        raise WriteFailed(path, f"{blocker} is a file, not a folder (ENOTDIR)") from None
    except OSError as exc:
        raise WriteFailed(path, exc) from None
    try:
        with os.fdopen(fd, "wb") as handle:
            writer(handle)
            handle.flush()
            os.fchmod(handle.fileno(), _FILE_MODE)
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except OSError as exc:
        Path(tmp_name).unlink(missing_ok=True)
        raise WriteFailed(path, exc) from None
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def append_line(path: str | os.PathLike[str], line: str) -> None:
    """Append one text line to ``path`` whole or not at all: a failed append is cut back to the old length."""
    path = Path(path)
    data = (line.rstrip("\n") + "\n").encode("utf-8")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as exc:
        raise WriteFailed(path, exc) from None
    try:
        size = os.fstat(fd).st_size
        try:
            written = os.write(fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as exc:
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass
            raise WriteFailed(path, exc) from None
    finally:
        os.close(fd)
