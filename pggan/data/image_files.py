"""Where pggan-prepare's images come from, and how one file becomes one square uint8 array.

Sources are folders (searched recursively), ``.zip`` files, text files that
list image paths, or single image files. Listing is deterministic (sources in
the order given, paths sorted inside each) so the same inputs always give the
same dataset indices, however many worker processes decode them.

Decoding is defensive because real collections are messy: anything that goes
wrong with one file (empty, truncated, not an image, too small, a decompression
bomb, not enough memory) becomes a :class:`SkipImage` with a reason for the
report, never a crash. Only regular files are read (a FIFO would block for
ever, ``/dev/zero`` behind a symlink would read for ever), and a file or zip
member larger than :data:`pggan.defaults.MAX_IMAGE_FILE_BYTES` is skipped by
its size, before anything is read (zip bombs).
"""

from __future__ import annotations

import io
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pggan.defaults import MAX_IMAGE_FILE_BYTES
from pggan.errors import UserError
from pggan.input_files import FileTooLarge, NotRegularFile, human_bytes, open_regular, read_regular

IMAGE_EXTENSIONS = frozenset(".jpg .jpeg .jpe .jfif .png .webp .bmp .dib .tif .tiff .gif .ppm .pgm .pbm .pnm".split())
LIST_EXTENSIONS = frozenset({".txt", ".lst", ".list"})
EXIF_ORIENTATION = 0x0112


class SkipImage(Exception):
    """This one file cannot be used; the message says why (it goes into the report)."""


@dataclass(frozen=True)
class ImageItem:
    """One candidate image: a file on disk, or a member of a zip archive."""

    path: str
    member: str | None = None  # set for zip members

    @property
    def name(self) -> str:
        """How the report names this file."""
        return f"{self.path}:{self.member}" if self.member is not None else self.path


def _is_hidden(part: str) -> bool:
    return part.startswith(".") or part == "__MACOSX"


def _has_image_extension(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _list_folder(folder: Path) -> list[ImageItem]:
    found: list[str] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not _is_hidden(d)]
        found.extend(os.path.join(root, f) for f in files if not _is_hidden(f))
    found.sort(key=lambda p: os.path.relpath(p, folder).replace(os.sep, "/"))
    return [ImageItem(p) for p in found]


def _list_zip(archive: Path) -> list[ImageItem]:
    try:
        with open_regular(archive) as raw, zipfile.ZipFile(raw) as handle:
            names = [info.filename for info in handle.infolist() if not info.is_dir()]
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
        raise UserError(f"cannot read zip file {archive}: {str(exc).splitlines()[0][:200]}") from None
    names = [n for n in names if not any(_is_hidden(part) for part in n.split("/"))]
    return [ImageItem(str(archive), member) for member in sorted(names)]


def _list_text(listing: Path) -> list[ImageItem]:
    try:
        lines = read_regular(listing, MAX_IMAGE_FILE_BYTES).decode("utf-8").splitlines()
    except UnicodeDecodeError:
        raise UserError(f"{listing} is not a text list of image paths (not UTF-8 text)") from None
    items = []
    for line in lines:
        entry = line.strip()
        if entry and not entry.startswith("#"):
            path = Path(entry).expanduser()
            items.append(ImageItem(str(path if path.is_absolute() else listing.parent / path)))
    return items


def list_images(sources: list[str]) -> tuple[list[ImageItem], list[tuple[str, str]]]:
    """All candidate images of ``sources`` in a deterministic order, and (name, reason) of files passed over.

    Files without an image extension are passed over (they go into the report);
    a missing or unusable source, or sources with no image files at all, is a
    UserError.
    """
    if not sources:
        raise UserError("no SOURCE given: name image folders, .zip files or text lists of image paths")
    items: list[ImageItem] = []
    passed_over: list[tuple[str, str]] = []
    for source in sources:
        path = Path(source).expanduser()
        if not path.exists():
            raise UserError(f"source not found: {source}")
        if path.is_dir():
            listed = _list_folder(path)
        elif path.suffix.lower() == ".zip":
            listed = _list_zip(path)
        elif path.suffix.lower() in LIST_EXTENSIONS:
            listed = _list_text(path)
            if not listed:
                raise UserError(f"list file {source} names no images")
            items.extend(listed)  # listed paths are taken whatever their extension: the user named them
            continue
        elif _has_image_extension(path.name):
            listed = [ImageItem(str(path))]
        else:
            raise UserError(f"source {source} is not a folder, a .zip file, a text list (.txt) or an image")
        usable = [item for item in listed if _has_image_extension(item.member or item.path)]
        if not usable:
            raise UserError(f"source {source} holds no image files")
        passed_over.extend((item.name, "not an image file (by extension)") for item in listed if item not in usable)
        items.extend(usable)
    return items, passed_over


_open_zips: dict[str, tuple[int, zipfile.ZipFile]] = {}


def _zip_member(item: ImageItem, limit: int) -> bytes:
    """A zip member's bytes, refused by its declared size before inflating, and never more than ``limit``."""
    cached = _open_zips.get(item.path)
    if cached is None or cached[0] != os.getpid():
        cached = (os.getpid(), zipfile.ZipFile(open_regular(item.path)))
        _open_zips[item.path] = cached
    archive = cached[1]
    info = archive.getinfo(item.member)
    if info.file_size > limit:
        raise SkipImage(_refused_file(FileTooLarge(item.name, info.file_size, limit)))
    with archive.open(info) as member:
        data = member.read(info.file_size + 1)  # zipfile stops at the declared size; a longer stream fails its CRC
    if len(data) > limit:
        raise SkipImage(f"larger than the {human_bytes(limit)} limit for one image")
    return data


def read_bytes(item: ImageItem, limit: int = MAX_IMAGE_FILE_BYTES) -> bytes:
    """The file's bytes; SkipImage if it cannot be read. Zip handles are cached per process.

    Only regular files are read, and only when they (or a zip member's declared size) are at most ``limit``.
    """
    try:
        if item.member is None:
            return read_regular(item.path, limit)
        return _zip_member(item, limit)
    except (NotRegularFile, FileTooLarge) as exc:
        raise SkipImage(_refused_file(exc)) from None
    except MemoryError:
        raise SkipImage("not enough memory to read it") from None
    except FileNotFoundError:
        raise SkipImage("file not found") from None
    except IsADirectoryError:
        raise SkipImage("is a directory") from None
    except (OSError, zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, KeyError, ValueError) as exc:
        raise SkipImage(f"cannot read: {str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__}") from None


GRAY_MODES = frozenset({"1", "L", "LA", "La", "I", "F"})


def _refused_file(exc: NotRegularFile | FileTooLarge) -> str:
    """The report's reason for a file that is never read."""
    if isinstance(exc, NotRegularFile):
        return f"not a regular file ({exc.kind})"
    return f"larger than the {human_bytes(exc.limit)} limit for one image ({human_bytes(exc.size)})"


def _open_for_probe(item: ImageItem) -> BinaryIO:
    """The image file open for reading its header: a regular file within the limit, else SkipImage."""
    try:
        return open_regular(item.path, MAX_IMAGE_FILE_BYTES)
    except (NotRegularFile, FileTooLarge) as exc:
        raise SkipImage(_refused_file(exc)) from None


def probe_image(item: ImageItem) -> tuple[int, int, bool]:
    """(width, height, grayscale) from the file's header, without decoding the pixels; SkipImage if unreadable."""
    try:
        source = _open_for_probe(item) if item.member is None else io.BytesIO(read_bytes(item))
        with source, Image.open(source) as image:
            width, height = image.size
            return width, height, image.mode in GRAY_MODES or image.mode.startswith("I;16")
    except SkipImage:
        raise
    except Exception as exc:  # Pillow raises many types for damaged headers
        raise SkipImage(f"unreadable image header ({type(exc).__name__})") from None


def _to_8bit(image: Image.Image) -> Image.Image:
    """Bring any Pillow mode to 8-bit ``L`` or ``RGB``: alpha dropped, 16-bit scaled (not clipped)."""
    mode = image.mode
    if mode in ("L", "RGB"):
        return image
    if mode.startswith("I;16") or mode == "I":
        values = np.asarray(image).astype(np.int64)
        scaled = (np.clip(values, 0, 65535) * 255 + 32767) // 65535
        return Image.fromarray(scaled.astype(np.uint8), "L")
    if mode == "F":
        return Image.fromarray(np.clip(np.rint(np.asarray(image)), 0, 255).astype(np.uint8), "L")
    if mode in ("1", "LA", "La"):
        return image.convert("L")
    if mode in ("P", "PA"):
        image = image.convert("RGBA")
    return image.convert("RGB")  # RGBA/RGBa/RGBX (alpha dropped), CMYK, YCbCr, LAB, HSV


def load_square(data: bytes, resolution: int, channels: int, min_size: int) -> np.ndarray:
    """Decode an image file's bytes into an (R, R, C) uint8 array: EXIF orientation, centre crop, Lanczos resize.

    Large JPEGs are decoded at a reduced DCT scale (never below twice the target
    size) before the Lanczos filter, which keeps preparing a 1024 dataset from
    multi-megapixel photos fast without visible loss.
    """
    if not data:
        raise SkipImage("empty file (0 bytes)")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise SkipImage("not an image (unrecognised format)") from None
    except Exception as exc:  # Pillow raises many types for damaged headers
        raise SkipImage(f"unreadable image header ({type(exc).__name__}: {exc})") from None
    try:
        if image.format == "PNG":  # Pillow skips pixel-data checksums when decoding; verify() checks every chunk
            image.verify()
            image = Image.open(io.BytesIO(data))
        width, height = image.size
        if min(width, height) < min_size:
            raise SkipImage(f"too small ({width}×{height}; the shorter side must be at least {min_size})")
        try:
            orientation = int(image.getexif().get(EXIF_ORIENTATION, 1))
        except Exception:  # damaged EXIF is not worth losing the picture over
            orientation = 1
        factor = min(width, height) // (2 * resolution)
        if image.format == "JPEG" and factor >= 2:
            image.draft(image.mode, (math.ceil(width / factor), math.ceil(height / factor)))
        image.load()
        if orientation != 1:
            image = ImageOps.exif_transpose(image)
        image = _to_8bit(image)
        target_mode = "L" if channels == 1 else "RGB"
        if image.mode != target_mode:
            image = image.convert(target_mode)  # RGB→L uses ITU-R 601 luma; L→RGB replicates
        width, height = image.size
        side = min(width, height)
        left, top = (width - side) // 2, (height - side) // 2
        box = (left, top, left + side, top + side)
        if side == resolution:
            image = image.crop(box)
        else:
            image = image.resize((resolution, resolution), Image.Resampling.LANCZOS, box=box)
        array = np.asarray(image, dtype=np.uint8)
    except SkipImage:
        raise
    except Exception as exc:  # truncated data, bad compressed stream, decompression bomb, ...
        message = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise SkipImage(f"cannot decode ({type(exc).__name__}{': ' + message if message else ''})") from None
    finally:
        image.close()
    if array.ndim == 2:
        array = array[:, :, None]
    return np.ascontiguousarray(array)
