"""The ``pggan-sample`` driver: check every option and output path, load the checkpoint, write grids, PNGs, videos.

Kept apart from ``pggan.pictures.grids`` (pictures) and ``pggan.pictures.video`` (walks) so that both of those are
libraries the driver uses, with no import running back from them to here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from pggan import defaults
from pggan.devices import resolve_device
from pggan.errors import UserError
from pggan.pictures.generate import generate_uint8, random_latents
from pggan.pictures.grids import make_grid, parse_grid_size, save_png


def load_sampler(checkpoint: str | os.PathLike[str], raw: bool, device: torch.device) -> tuple[Any, int, float]:
    """Load a checkpoint (or a run directory's newest readable one) and rebuild its generator.

    Returns ``(generator, resolution, alpha)`` where training stands.
    """
    import sys

    from pggan.model.checkpoint import build_generator, load_checkpoint_or_run, position, require_generator

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
    rows: int = defaults.SAMPLE_ROWS,
    cols: int = defaults.SAMPLE_COLS,
    outdir: str | os.PathLike[str] | None = None,
    count: int = defaults.SAMPLE_COUNT,
    video: str | os.PathLike[str] | None = None,
    seconds: float = defaults.VIDEO_SECONDS,
    fps: int = defaults.VIDEO_FPS,
    grid_size: str = defaults.VIDEO_GRID,
    smoothing: float = defaults.VIDEO_SMOOTHING,
    keyframes: int | None = None,
    seed: int = 0,
    raw: bool = False,
    device: str = "auto",
    overwrite: bool = False,
    batch_size: int = defaults.SAMPLE_BATCH,
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
        from pggan.pictures.video import check_video_options

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
        from pggan.pictures.video import render_video

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
