"""Pictures from a generator: uint8 conversion, image grids, PNG files, and the ``pggan-sample`` driver.

Everything a user shows the world goes through here, and so do the training
loop's snapshot grids (``save_image_grid``), so both agree on how a float
image in [-1, 1] becomes pixels. Latents are drawn by a seeded CPU
``torch.Generator`` so the same seed gives the same faces on any device.
Every file is written atomically: a failed or interrupted run leaves earlier
outputs untouched.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from pggan.atomic import atomic_write_bytes
from pggan.distributed import resolve_device
from pggan.errors import UserError

IMAGE_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


# ---------------------------------------------------------------- pixels and grids
def images_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] → uint8 in [0, 255], same shape, on the CPU.

    Rounds to nearest (not truncation, which would darken every image by half
    a level) and clamps, because generator outputs overshoot [-1, 1]. NaNs
    become mid-gray rather than undefined bytes.
    """
    if images.dtype == torch.uint8:
        return images.cpu()
    scaled = (torch.nan_to_num(images.detach().float(), nan=0.0) + 1.0) * 127.5
    return scaled.round().clamp(0, 255).to(torch.uint8).cpu()


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


def save_png(array: np.ndarray, path: str | os.PathLike[str]) -> None:
    """Write an HWC uint8 array as a PNG, atomically (temp file + rename)."""
    image = to_pil(array)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic_write_bytes(path, lambda handle: handle.write(buffer.getvalue()))


def save_image_grid(images: torch.Tensor, path: str | os.PathLike[str], rows: int, cols: int) -> None:
    """Float images in [-1, 1] (or uint8), ``(N, C, H, W)`` → one PNG grid at ``path``, atomically."""
    save_png(make_grid(images_to_uint8(images), rows, cols), path)


# ---------------------------------------------------------------- latents and generation
def random_latents(count: int, latent_size: int, seed: int) -> torch.Tensor:
    """``count`` Gaussian latents from a seeded CPU generator: identical on every machine and device."""
    rng = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(count, latent_size, generator=rng)


def generate_uint8(
    generator: torch.nn.Module,
    latents: torch.Tensor,
    resolution: int,
    alpha: float,
    batch_size: int = 8,
    device: str | torch.device | None = None,
) -> Iterator[torch.Tensor]:
    """Yield uint8 CPU image batches ``(B, C, R, R)`` for ``latents``, ``batch_size`` at a time.

    Batches bound memory (a 1024² batch of 64 does not fit most machines);
    yielding lets callers stream frames to an encoder without holding a video.
    """
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    if device is None:
        device = next(generator.parameters()).device
    with torch.inference_mode():
        for start in range(0, latents.shape[0], batch_size):
            batch = latents[start : start + batch_size].to(device)
            yield images_to_uint8(generator(batch, resolution, alpha))


def parse_grid_size(text: str) -> tuple[int, int]:
    """``"3x2"`` → ``(3, 2)``: columns × rows, width first as in screen sizes."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX×]\s*(\d+)\s*", text)
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise UserError(f"--grid-size must look like COLSxROWS (e.g. 1x1, 2x2, 3x2), got {text!r}")
    return int(match.group(1)), int(match.group(2))


# ---------------------------------------------------------------- the pggan-sample driver
def load_sampler(checkpoint: str | os.PathLike[str], raw: bool, device: torch.device) -> tuple[Any, int, float]:
    """Load a checkpoint (or a run directory's newest readable one) and rebuild its generator.

    Returns ``(generator, resolution, alpha)`` where training stands.
    """
    import sys

    from pggan.checkpoint import build_generator, load_checkpoint_or_run, position, require_generator

    state = load_checkpoint_or_run(checkpoint, warn=lambda line: print(line, file=sys.stderr))
    require_generator(state, checkpoint)
    try:
        generator = build_generator(state, ema=not raw, device=device)
    except (RuntimeError, TypeError, KeyError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{checkpoint}: the generator cannot be rebuilt ({reason[:200]})") from None
    resolution, alpha = position(state)
    return generator, resolution, alpha


def _check_output(path: Path, overwrite: bool) -> None:
    if path.is_dir():
        raise UserError(f"{path} is a directory; give a file name")
    if path.exists() and not overwrite:
        raise UserError(f"{path} already exists (use --overwrite to replace it)")


def image_file_name(seed: int, index: int) -> str:
    """Name of image ``index`` of ``seed`` under ``--outdir``; the seed keeps runs with different seeds apart."""
    return f"seed{seed}-{index:06d}.png"


def run_sample(
    checkpoint: str | os.PathLike[str],
    *,
    grid: str | os.PathLike[str] | None = None,
    rows: int = 8,
    cols: int = 8,
    outdir: str | os.PathLike[str] | None = None,
    count: int = 64,
    video: str | os.PathLike[str] | None = None,
    seconds: float = 10.0,
    fps: int = 30,
    grid_size: str = "1x1",
    smoothing: float = 1.0,
    keyframes: int | None = None,
    seed: int = 0,
    raw: bool = False,
    device: str = "auto",
    overwrite: bool = False,
    batch_size: int = 8,
    progress: bool = False,
) -> list[Path]:
    """Everything ``pggan-sample`` does; returns the files written.

    All options and output paths are checked before the checkpoint is loaded
    or anything is generated, so bad input costs nothing and destroys nothing.
    Grid tile k and ``--outdir`` image k come from the same latent k of the
    seed, so the two agree.
    """
    if grid is None and video is None and outdir is None:
        raise UserError("nothing to do: give --grid OUT.png, --outdir DIR and/or --video OUT.mp4")
    if rows < 1 or cols < 1:
        raise UserError(f"--rows and --cols must be at least 1, got {rows} and {cols}")
    if count < 1:
        raise UserError(f"--count must be at least 1, got {count}")
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    cells = parse_grid_size(grid_size)
    if video is not None:
        from pggan.video import check_video_options

        check_video_options(seconds, fps, smoothing, keyframes)
    targets: list[Path] = []
    if grid is not None:
        targets.append(Path(grid))
    if video is not None:
        targets.append(Path(video))
    image_paths = [Path(outdir) / image_file_name(seed, k) for k in range(count)] if outdir is not None else []
    if outdir is not None and Path(outdir).exists() and not Path(outdir).is_dir():
        raise UserError(f"--outdir {outdir} exists and is not a directory")
    for path in targets + image_paths:
        _check_output(path, overwrite)
    torch_device = resolve_device(device)

    generator, resolution, alpha = load_sampler(checkpoint, raw, torch_device)
    written: list[Path] = []
    if grid is not None or outdir is not None:
        needed = max(rows * cols if grid is not None else 0, count if outdir is not None else 0)
        latents = random_latents(needed, generator.latent_size, seed)
        images = torch.cat(list(generate_uint8(generator, latents, resolution, alpha, batch_size, torch_device)))
        if grid is not None:
            save_png(make_grid(images[: rows * cols], rows, cols), grid)
            written.append(Path(grid))
        for index, path in enumerate(image_paths):
            save_png(make_grid(images[index : index + 1], 1, 1), path)
        written.extend(image_paths)
    if video is not None:
        from pggan.video import render_video

        render_video(
            generator,
            video,
            resolution,
            alpha,
            seconds=seconds,
            fps=fps,
            grid_size=cells,
            smoothing=smoothing,
            keyframes=keyframes,
            seed=seed,
            batch_size=batch_size,
            device=torch_device,
            progress=progress,
        )
        written.append(Path(video))
    return written
