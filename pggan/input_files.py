"""Opening the files a user names, or that a folder or archive hands us: regular files only, sizes checked first.

A path may name a FIFO (opening it waits for a writer that never comes), a device (``/dev/zero`` behind an
innocent ``face.png`` symlink reads forever), or a file far larger than anything it may hold. Every reader of
user input (images, zip archives, image lists, network pickles, checkpoints, FID statistics, Inception
weights) opens through :func:`open_regular`: the open never blocks (``O_NONBLOCK``), the file is checked with
``fstat`` on the descriptor that is then read (so a swapped path cannot slip in between), and a size limit is
enforced before a single byte is read into memory.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import BinaryIO

from pggan.errors import UserError

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class NotRegularFile(UserError):
    """The path exists but is not a regular file (a FIFO, device, socket or directory): it is never read."""

    def __init__(self, path: str | os.PathLike[str], kind: str) -> None:
        self.kind = kind
        super().__init__(f"{path} is {kind}, not a regular file")


class FileTooLarge(UserError):
    """The file is larger than the limit for its kind; it was not read."""

    def __init__(self, path: str | os.PathLike[str], size: int, limit: int) -> None:
        self.size, self.limit = size, limit
        super().__init__(f"{path} holds {human_bytes(size)}, more than the limit of {human_bytes(limit)}")


def kind_of(mode: int) -> str:
    """``"a FIFO (named pipe)"``, ``"a character device"``, ... for a ``st_mode``; ``"a regular file"`` otherwise."""
    return next((name for test, name in _KINDS if test(mode)), "a regular file")


def human_bytes(count: float) -> str:
    """``536870912`` → ``"512 MiB"``: sizes in messages."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" or count == int(count) else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} GiB"  # pragma: no cover - the loop always returns


def open_regular(path: str | os.PathLike[str], limit: int | None = None) -> BinaryIO:
    """``path`` opened for binary reading if it is a regular file of at most ``limit`` bytes.

    Raises :class:`NotRegularFile` or :class:`FileTooLarge` (one-line UserErrors naming the path and why);
    a missing or unreadable file raises the OSError ``open`` raises.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # opening a socket (or a FIFO's write side) for reading
            raise NotRegularFile(path, "a socket") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegularFile(path, kind_of(info.st_mode))
        if limit is not None and info.st_size > limit:
            raise FileTooLarge(path, info.st_size, limit)
        os.set_blocking(fd, True)  # regular files ignore O_NONBLOCK; reads behave as usual
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike[str], limit: int | None = None) -> bytes:
    """The whole content of a regular file of at most ``limit`` bytes (see :func:`open_regular`).

    At most ``limit`` bytes are ever read, even if the file grows while it is read, and no more memory than
    the file's size is asked for up front (a read of ``limit`` bytes would reserve them all at once).
    """
    with open_regular(path, limit) as handle:
        size = os.fstat(handle.fileno()).st_size
        ceiling = size if limit is None else min(size, limit)
        chunks = [handle.read(ceiling + 1)]
        while len(chunks[-1]) > 0 and (limit is None or sum(map(len, chunks)) <= limit):  # it grew meanwhile
            chunks.append(handle.read(1 << 20))
    data = b"".join(chunks) if len(chunks) > 1 else chunks[0]
    if limit is not None and len(data) > limit:
        raise FileTooLarge(path, len(data), limit)  # it grew past the limit while it was read
    return data


def check_stored_zip(path: str | os.PathLike[str], what: str, zip_only: bool = True) -> None:
    """``path`` is a regular file and a zip whose members are all stored uncompressed, within its size.

    For files ``torch.load`` reads (checkpoints, weights): torch inflates a compressed member in full before
    it compares its size with what the pickle inside claims, so a 2 MB file could make it allocate gigabytes.
    ``torch.save`` never compresses. A UserError names ``what`` the file should have been. With ``zip_only``
    False a file that is not a zip at all passes (torch's legacy format, which older weights files use).
    """
    import zipfile

    try:
        with open_regular(path) as handle:
            if not zip_only and not zipfile.is_zipfile(handle):
                return
            handle.seek(0)
            with zipfile.ZipFile(handle) as archive:
                members = archive.infolist()
                size = os.fstat(handle.fileno()).st_size
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path} is not a readable {what} (not a torch.save zip: {reason})") from None
    for member in members:
        if member.compress_type != zipfile.ZIP_STORED or member.file_size > size:
            raise UserError(
                f"{path} is not a {what}: its member {member.filename[:80]} is compressed "
                f"({member.file_size:,} bytes claimed); torch.save stores tensors as they are"
            )
