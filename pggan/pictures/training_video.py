"""A run's fixed-latent grids — written during training, read back as the training video (faces growing from
4×4 to the final resolution), as the official ``util_scripts.generate_training_video`` shows a run.

**Grids.** The trainer writes two kinds, both of the seeds 0, 1, 2, … (:mod:`pggan.pictures.latents`), both at
the resolution and fade-in alpha where training stands, each PNG describing itself in a tEXt chunk
(:data:`GRID_TEXT_KEY`: kimg, resolution, alpha, layout, seeds):

- *tick grids* ``ticks/grid-<kimg>.png``: every ``--grid-ticks`` ticks (default every tick, as the official
  ``image_snapshot_ticks=1``), plus one at kimg 0. Small: :func:`tick_grid_layout` gives the official "1080p"
  layout for the final resolution (3×2 faces for a 1024² run), at most ``--grid-size`` a side.
- *snapshot grids* ``grid-<kimg>.png``: ``--grid-size``² faces beside every ``checkpoint-<kimg>.pt``.

**Video.** One frame per grid in kimg order — the tick grids, or the snapshot grids for a run that has none
(runs from before tick grids) — each nearest-upscaled to the run's final resolution so every frame has the same
size, with the kimg and resolution in a strip below the grid (``caption=False`` leaves just the pixels).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from pggan.errors import UserError
from pggan.pictures.generate import METRIC_BATCH_SIZE, generate_uint8
from pggan.pictures.grids import make_grid, save_png

#: The PNG tEXt key under which a run grid stores its JSON description.
GRID_TEXT_KEY = "pggan-grid"
#: Folder of the tick grids inside a run directory.
TICK_GRID_DIR = "ticks"
_GRID_NAME = re.compile(r"grid-(\d+\.\d+)\.png")


def tick_grid_layout(final_resolution: int, grid_size: int) -> tuple[int, int]:
    """``(cols, rows)`` of a run's tick grids: the official snapshot grid for a 1080p screen at the final
    resolution (``clip(1920 // R, 3, 32)`` × ``clip(1080 // R, 2, 32)``), at most ``grid_size`` a side.

    1024²: 3×2 faces; 256²: 7×4; 128² and below: ``grid_size``² (8×8 by default). Kept small because a run
    writes hundreds (README: a full 1024² run's tick grids take about 2 GB).
    """
    cols = int(np.clip(1920 // final_resolution, 3, 32))
    rows = int(np.clip(1080 // final_resolution, 2, 32))
    return min(cols, grid_size), min(rows, grid_size)


def kimg_of_label(name: str) -> float | None:
    """``grid-0000012.345.png`` → 12.345; None for other names."""
    match = _GRID_NAME.fullmatch(name)
    return float(match.group(1)) if match else None


def write_run_grid(
    generator: torch.nn.Module,
    path: str | os.PathLike[str],
    latents: torch.Tensor,
    layout: tuple[int, int],
    resolution: int,
    alpha: float,
    images_shown: int,
    first_seed: int = 0,
    device: str | torch.device | None = None,
    batch_size: int = METRIC_BATCH_SIZE,
) -> np.ndarray:
    """Draw ``latents`` (the seeds ``first_seed, first_seed+1, …``) at ``resolution``/``alpha``, tile them
    ``layout`` = (cols, rows), and write the PNG atomically with its description; return the grid (HWC uint8).

    ``batch_size`` latents per generator call: the trainer passes its training batch at ``resolution``
    (:func:`pggan.pictures.generate.generation_batch_size`), as the official code draws its snapshot grids in
    minibatches, so a 1024² grid never needs more memory than the step beside it.
    """
    cols, rows = layout
    images = torch.cat(list(generate_uint8(generator, latents, resolution, alpha, batch_size, device)))
    grid = make_grid(images, rows, cols)
    description = {
        "kimg": images_shown / 1000,
        "resolution": int(resolution),
        "alpha": float(alpha),
        "cols": cols,
        "rows": rows,
        "seeds": f"{first_seed}-{first_seed + latents.shape[0] - 1}",
    }
    save_png(grid, path, text={GRID_TEXT_KEY: json.dumps(description)})
    return grid


@dataclass(frozen=True)
class RunGrid:
    """One grid of a run as the training video needs it."""

    path: Path
    kimg: float
    resolution: int
    alpha: float | None  # None: an older grid that did not record it
    cols: int
    rows: int


def _read_options(run_dir: Path) -> dict[str, object]:
    try:
        values = json.loads((run_dir / "options.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return values if isinstance(values, dict) else {}


def _describe(path: Path, kimg: float, options: dict[str, object]) -> RunGrid:
    """A grid's layout and resolution: from its own tEXt description, else (older grids) from options.json."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            text = image.info.get(GRID_TEXT_KEY)
    except OSError as exc:
        raise UserError(f"{path}: not a readable PNG ({exc})") from None
    if text is not None:
        try:
            meta = json.loads(text)
            return RunGrid(path, float(meta["kimg"]), int(meta["resolution"]), float(meta["alpha"]),
                           int(meta["cols"]), int(meta["rows"]))  # fmt: skip
        except (ValueError, KeyError, TypeError):
            raise UserError(f"{path}: its {GRID_TEXT_KEY} description is damaged") from None
    size = options.get("grid_size")
    if not isinstance(size, int) or size < 1 or width % size or height % size or width // size != height // size:
        raise UserError(f"{path}: an older grid without a description, and options.json does not give its layout")
    return RunGrid(path, kimg, width // size, None, size, size)


def find_run_grids(run_dir: str | os.PathLike[str]) -> list[RunGrid]:
    """The grids of a run directory in kimg order: its tick grids, or its snapshot grids when it has none."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is not a run directory (the training video reads a run's grids)")
    options = _read_options(run_dir)
    for folder in (run_dir / TICK_GRID_DIR, run_dir):
        named = [(kimg_of_label(p.name), p) for p in folder.glob("grid-*.png")] if folder.is_dir() else []
        found = sorted((kimg, p) for kimg, p in named if kimg is not None)
        if found:
            return [_describe(path, kimg, options) for kimg, path in found]
    raise UserError(
        f"{run_dir} holds no grids ({TICK_GRID_DIR}/grid-*.png or grid-*.png): train with --grid-ticks 1 "
        "(the default) to have one written every tick"
    )


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow < 10.1 or without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def caption_text(grid: RunGrid) -> str:
    """``"1234 kimg   64x64"``, plus the fade-in weight while a resolution is fading in."""
    text = f"{grid.kimg:,.0f} kimg   {grid.resolution}x{grid.resolution}"
    if grid.alpha is not None and grid.alpha < 1.0:
        text += f"   fading in {grid.alpha:.2f}"
    return text


def caption_strip(width: int, channels: int, text: str) -> np.ndarray:
    """A black strip ``(h, width, channels)`` with ``text`` in white, h ≈ width/32 (at least 16, even)."""
    height = max(16, round(width / 32))
    height += height % 2
    image = Image.new("L", (width, height), 0)
    ImageDraw.Draw(image).text(
        (max(2, height // 3), height // 2), text, fill=255, font=_font(max(8, height * 2 // 3)), anchor="lm"
    )
    strip = np.asarray(image)[:, :, None]
    return np.repeat(strip, channels, axis=2) if channels > 1 else strip


def training_video_frames(
    grids: Sequence[RunGrid], final_resolution: int, caption: bool = True
) -> Iterator[np.ndarray]:
    """One HWC uint8 frame per grid: the grid nearest-upscaled so each face is ``final_resolution`` wide,
    with :func:`caption_strip` below it when ``caption``."""
    for grid in grids:
        with Image.open(grid.path) as image:
            pixels = np.asarray(image)
        if pixels.ndim == 2:
            pixels = pixels[:, :, None]
        if pixels.shape[:2] != (grid.rows * grid.resolution, grid.cols * grid.resolution):
            raise UserError(f"{grid.path}: {pixels.shape[1]}x{pixels.shape[0]} pixels do not match its layout")
        factor = final_resolution // grid.resolution
        if factor > 1:
            pixels = np.repeat(np.repeat(pixels, factor, axis=0), factor, axis=1)
        if caption:
            pixels = np.concatenate([pixels, caption_strip(pixels.shape[1], pixels.shape[2], caption_text(grid))])
        yield pixels


def render_training_video(
    run_dir: str | os.PathLike[str],
    path: str | os.PathLike[str],
    fps: int,
    caption: bool = True,
    progress: bool = False,
) -> int:
    """Write the training video of ``run_dir`` to ``path`` (mp4, atomically); return its number of frames.

    Checked before the first frame is encoded: a run without grids, grids of differing layouts, faces that do
    not scale to the final resolution.
    """
    from tqdm import tqdm

    from pggan.pictures.video import write_mp4

    grids = find_run_grids(run_dir)
    layouts = {(g.cols, g.rows) for g in grids}
    if len(layouts) > 1:
        shown = ", ".join(f"{c}x{r}" for c, r in sorted(layouts))
        raise UserError(f"{run_dir}: its grids have different layouts ({shown}); one video needs one layout")
    final = int(_read_options(Path(run_dir)).get("resolution") or 0)
    final = max([final] + [g.resolution for g in grids])
    odd = [g for g in grids if final % g.resolution]
    if odd:
        raise UserError(f"{odd[0].path}: {odd[0].resolution}² faces do not scale to the final {final}²")
    frames = training_video_frames(grids, final, caption)
    bar = tqdm(frames, total=len(grids), unit="frame", desc=Path(path).name, disable=not progress, leave=False)
    write_mp4(bar, path, fps)
    return len(grids)
