"""One process at a time per run directory (``pggan-train``) and per dataset being built (``pggan-prepare``).

Two trainings writing the same run directory overwrite each other's checkpoints and interleave
``stats.jsonl``; a requeued job (``--resume auto``) can start while the job it replaces still runs. So the
process that trains takes an exclusive ``flock(2)`` lock on a file in the run directory, and a second one stops
at once, naming the first (host, PID, start time, written into the lock file by its holder).

``flock`` locks belong to the open file and the kernel drops them when the process ends, however it ends
(``kill -9``, the OOM killer, a crash): a lock file left behind by a dead process never blocks anyone, and no
stale-lock heuristics (PIDs, ages, host names) are needed. The holder deletes the file while it still holds
the lock, when it is done; a process that locked a file in the meantime sees that its path no longer names
the file it locked and starts over, so two processes never hold "the" lock at once. On a file system without
working locks (some network mounts) the run goes on without the lock, with a warning.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pggan.errors import UserError

#: The lock file of a run directory (inside it) and of a dataset being built (beside ``--out``, which is
#: replaced as a whole when the build succeeds).
RUN_LOCK_NAME = ".pggan-train.lock"
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


class RunLocked(UserError):
    """Another live process holds the lock: it is named in the message."""


class RunLock:
    """An exclusive lock on ``path`` held by this process until :meth:`release` (or its exit)."""

    def __init__(self, path: str | os.PathLike[str], what: str, command: str) -> None:
        self.path = Path(path)
        self.what = what  # "the run directory checkpoints/x", "the dataset datasets/y"
        self.command = command  # "pggan-train", "pggan-prepare"
        self._fd: int | None = None

    def acquire(self, warn: Callable[[str], None] | None = None) -> RunLock:
        """Take the lock now or raise :class:`RunLocked`; never waits."""
        for _ in range(5):  # retried only if the file was replaced between open and lock
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                os.close(fd)
                raise RunLocked(
                    f"{self.what} is in use by another {self.command} ({holder}); wait for it to end or stop it "
                    "before starting another"
                ) from None
            except OSError as exc:
                os.close(fd)
                if exc.errno not in _NO_LOCKS:
                    raise
                (warn or _stderr)(f"warning: cannot lock {self.path} ({os.strerror(exc.errno)}): make sure no "
                                  f"other {self.command} uses {self.what}")  # fmt: skip
                return self
            if _same_file(fd, self.path):
                self._fd = fd
                _write_holder(fd, self.command)
                return self
            os.close(fd)  # the path now names another file: lock that one instead
        raise UserError(f"cannot lock {self.path}: it keeps being replaced")

    def release(self) -> None:
        """Delete the lock file and give the lock up (in that order; see the module's docstring)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                if _same_file(fd, self.path):
                    self.path.unlink(missing_ok=True)
            except OSError:
                pass
            finally:
                os.close(fd)  # closing the last descriptor releases the flock

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def run_directory_lock(run_dir: str | os.PathLike[str]) -> RunLock:
    """The lock of a training run directory (the directory is created if needed)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    return RunLock(run_dir / RUN_LOCK_NAME, f"the run directory {run_dir}", "pggan-train")


def dataset_output_lock(out: str | os.PathLike[str]) -> RunLock:
    """The lock of a dataset that ``pggan-prepare --out`` builds: ``.NAME.pggan-prepare.lock`` beside it."""
    out = Path(out)
    return RunLock(out.with_name(f".{out.name}.pggan-prepare.lock"), f"the dataset {out}", "pggan-prepare")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _same_file(fd: int, path: Path) -> bool:
    try:
        here, there = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _write_holder(fd: int, command: str) -> None:
    """Who holds the lock, for the message of whoever is refused: host, PID, start time, command."""
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime())
    text = f"host {socket.gethostname()}, PID {os.getpid()}, started {started}\n".encode()
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, text, 0)
    except OSError:  # a full disk must not stop the run for the sake of a message
        pass


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 400, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    line = text.splitlines()[0] if text else ""
    return line if line.startswith("host ") else "host and PID unknown"
