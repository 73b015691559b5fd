"""Pictures: image grids and PNG files.

Everything a user shows the world goes through here, and so do the training
loop's snapshot grids (``save_image_grid``). Pixels come from
``pggan.pixels.images_to_uint8``, the same conversion the metrics use. Every
file is written atomically: a failed or interrupted run leaves earlier
outputs untouched. The ``pggan-sample`` driver is ``pggan.pictures.sample_command``.
"""

from __future__ import annotations

import io
import os
import re

import numpy as np
import torch
from PIL import Image

from pggan.atomic import atomic_write_bytes
from pggan.errors import UserError
from pggan.pixels import images_to_uint8

IMAGE_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def make_grid(images_uint8: torch.Tensor | np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Tile ``(N, C, H, W)`` uint8 images row by row into one ``(rows·H, cols·W, C)`` array.

    Image k lands in row ``k // cols``, column ``k % cols``; cells beyond N
    stay black, so a partial last batch still makes a grid.
    """
    array = images_uint8.numpy() if isinstance(images_uint8, torch.Tensor) else np.asarray(images_uint8)
    if array.dtype != np.uint8 or array.ndim != 4:
        raise ValueError(f"make_grid wants uint8 images shaped (N, C, H, W), got {array.dtype} {array.shape}")
    if rows < 1 or cols < 1:
        raise ValueError(f"a grid needs at least one row and one column, got {rows}x{cols}")
    count, channels, height, width = array.shape
    if count > rows * cols:
        raise ValueError(f"{count} images do not fit a grid of {rows} rows × {cols} columns")
    grid = np.zeros((rows * cols, height, width, channels), dtype=np.uint8)
    grid[:count] = array.transpose(0, 2, 3, 1)
    grid = grid.reshape(rows, cols, height, width, channels).transpose(0, 2, 1, 3, 4)
    return np.ascontiguousarray(grid.reshape(rows * height, cols * width, channels))


def to_pil(array: np.ndarray) -> Image.Image:
    """An HWC uint8 array as a PIL image: 1 channel → L (true grayscale PNG), 3 → RGB, 4 → RGBA."""
    channels = array.shape[2]
    if channels not in IMAGE_MODES:
        raise UserError(f"cannot write images with {channels} channels (supported: 1, 3, 4)")
    return Image.fromarray(array[:, :, 0] if channels == 1 else array, mode=IMAGE_MODES[channels])


def png_bytes(array: np.ndarray, text: dict[str, str] | None = None) -> bytes:
    """An HWC uint8 array encoded as PNG bytes: the one encoder behind every PNG file and every served image.

    One encoder (and one set of its settings) is why a face served by ``pggan-explore`` is the same bytes as the
    file ``pggan-sample`` writes. ``text`` goes into the PNG's tEXt chunks.
    """
    image = to_pil(array)
    buffer = io.BytesIO()
    info = None
    if text:
        from PIL.PngImagePlugin import PngInfo

        info = PngInfo()
        for key, value in text.items():
            info.add_text(key, value)
    image.save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


def save_png(array: np.ndarray, path: str | os.PathLike[str], text: dict[str, str] | None = None) -> None:
    """Write an HWC uint8 array as a PNG, atomically (temp file + rename).

    ``text`` goes into the PNG's tEXt chunks: the training grids describe themselves this way (kimg,
    resolution, layout), so the training video needs nothing but the files.
    """
    data = png_bytes(array, text)
    atomic_write_bytes(path, lambda handle: handle.write(data))


def save_image_grid(images: torch.Tensor, path: str | os.PathLike[str], rows: int, cols: int) -> None:
    """Float images in [-1, 1] (or uint8), ``(N, C, H, W)`` → one PNG grid at ``path``, atomically."""
    save_png(make_grid(images_to_uint8(images), rows, cols), path)


def parse_grid_size(text: str) -> tuple[int, int]:
    """``"3x2"`` → ``(3, 2)``: columns × rows, width first as in screen sizes."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise UserError(f"--grid-size must look like COLSxROWS (e.g. 1x1, 2x2, 3x2), got {text!r}")
    return int(match.group(1)), int(match.group(2))
