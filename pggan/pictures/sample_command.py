"""The ``pggan-sample`` driver: check every option and output path, load the checkpoint, write grids, PNGs, videos.

Kept apart from the other ``pggan.pictures`` modules (grids, video walks, seeds, directions, the training video) so
that those are libraries the driver uses, with no import running back from them to here.

Which faces: ``--seeds`` names them; without it the seeds are ``--seed``, ``--seed``+1, … (as many as the output
needs: rows×cols for ``--grid``, ``--count`` for ``--outdir``, ``--rows`` rows for a ``--direction`` grid, the
``--grid-size`` cells for a ``--direction`` video). Every face is drawn one latent per generator call
(:func:`pggan.pictures.generate.generate_faces_uint8`), so it is the same picture in any grid, list or batch size.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pggan import defaults
from pggan.atomic import atomic_write_bytes
from pggan.devices import resolve_device
from pggan.errors import UserError
from pggan.pictures.directions import (
    DEFAULT_STRENGTHS,
    edit_latents,
    parse_direction,
    parse_strengths,
    resolve_direction,
    sweep_latents,
    sweep_strengths,
)
from pggan.pictures.generate import generate_faces_uint8
from pggan.pictures.grids import make_grid, parse_grid_size, save_png
from pggan.pictures.latents import check_seed, parse_seeds, seed_latents, seed_range


def load_sampler(checkpoint: str | os.PathLike[str], raw: bool, device: torch.device) -> tuple[Any, int, float]:
    """Load a checkpoint (or a run directory's newest readable one) and rebuild its generator.

    Returns ``(generator, resolution, alpha)`` where training stands.
    """
    import sys

    from pggan.model.checkpoint import load_checkpoint_or_run

    state = load_checkpoint_or_run(checkpoint, warn=lambda line: print(line, file=sys.stderr))
    return sampler_from_state(state, checkpoint, raw, device)


def sampler_from_state(
    state: dict[str, Any], where: str | os.PathLike[str], raw: bool, device: torch.device
) -> tuple[Any, int, float]:
    """A loaded checkpoint's generator (EMA unless ``raw``), in eval mode on ``device``, and where it stood.

    ``pggan-sample`` and ``pggan-explore`` (which loads each checkpoint of a run itself) both rebuild through
    here, so they draw with the same network. Returns ``(generator, resolution, alpha)``.
    """
    from pggan.model.checkpoint import build_generator, position, require_generator

    require_generator(state, where)
    try:
        generator = build_generator(state, ema=not raw, device=device)
    except (RuntimeError, TypeError, KeyError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{where}: the generator cannot be rebuilt ({reason[:200]})") from None
    resolution, alpha = position(state)
    return generator, resolution, alpha


def _check_output(path: Path, overwrite: bool) -> None:
    if path.is_dir():
        raise UserError(f"{path} is a directory; give a file name")
    if path.exists() and not overwrite:
        raise UserError(f"{path} already exists (use --overwrite to replace it)")


def image_file_name(seed: int) -> str:
    """Name of the face of ``seed`` under ``--outdir``: ``seed00012.png`` (NVIDIA's numbering, 5 digits)."""
    return f"seed{seed:05d}.png"


def seeds_file(grid: str | os.PathLike[str]) -> Path:
    """The JSON written beside a grid, naming its seeds: ``faces.png`` → ``faces.json``."""
    grid = Path(grid)
    return grid.with_suffix(".json") if grid.suffix.lower() != ".json" else grid.with_name(grid.name + ".json")


def seed_layout(count: int, cols: int) -> tuple[int, int]:
    """``(cols, rows)`` of a seed list in reading order: ``--cols`` wide (fewer when there are fewer seeds)."""
    width = min(count, cols)
    return width, math.ceil(count / width)


@dataclass
class _Plan:
    """Everything ``run_sample`` will do, fully checked before the checkpoint is loaded."""

    grid_seeds: list[int]
    grid_layout: tuple[int, int]  # (cols, rows)
    outdir_seeds: list[int]
    video_seeds: list[int]  # the cells of a --direction video
    video_layout: tuple[int, int]
    keyframe_seeds: list[int] | None
    strengths: list[float] | None
    walk_fps: int
    video_fps: int


def _plan(
    *,
    grid: Any,
    rows: int,
    cols: int,
    outdir: Any,
    count: int,
    video: Any,
    seconds: float,
    fps: int | None,
    cells: tuple[int, int],
    smoothing: float,
    keyframes: int | None,
    seed: int,
    seeds: str | None,
    keyframe_seeds: str | None,
    loop: bool,
    direction: str | None,
    strengths: str | None,
    training_video: Any,
) -> _Plan:
    if grid is None and video is None and outdir is None and training_video is None:
        raise UserError("nothing to do: give --grid OUT.png, --outdir DIR, --video OUT.mp4 and/or --training-video")
    if rows < 1 or cols < 1:
        raise UserError(f"--rows and --cols must be at least 1, got {rows} and {cols}")
    if count < 1:
        raise UserError(f"--count must be at least 1, got {count}")
    check_seed(seed, "--seed")
    chosen = parse_seeds(seeds) if seeds is not None else None
    keys = parse_seeds(keyframe_seeds, "--keyframe-seeds") if keyframe_seeds is not None else None
    if keys is not None:
        if video is None:
            raise UserError("--keyframe-seeds makes a video: give --video OUT.mp4")
        if len(keys) < 2:
            raise UserError("--keyframe-seeds needs at least 2 seeds to travel between")
        if keyframes is not None or direction is not None:
            raise UserError("--keyframe-seeds goes alone: not with --keyframes or --direction")
        if cells != (1, 1):
            raise UserError("--keyframe-seeds shows one face travelling: leave --grid-size at 1x1")
    if not loop and keys is None and keyframes is None:
        raise UserError("--no-loop applies to --keyframe-seeds and --keyframes videos")
    if strengths is not None and direction is None:
        raise UserError("--strengths goes with --direction")
    values = None
    if direction is not None:
        parse_direction(direction)
        values = parse_strengths(strengths if strengths is not None else DEFAULT_STRENGTHS)
        if outdir is not None:
            raise UserError("--direction draws a --grid (seeds × strengths) or a --video; --outdir is for plain faces")
        if grid is None and video is None:
            raise UserError("--direction needs --grid OUT.png and/or --video OUT.mp4")
    if video is not None and chosen is not None and direction is None:
        raise UserError("--seeds with --video needs --direction (a strength sweep); --keyframe-seeds morphs faces")
    walk_fps = fps if fps is not None else defaults.VIDEO_FPS
    video_fps = fps if fps is not None else defaults.TRAINING_VIDEO_FPS
    if video is not None:
        from pggan.pictures.video import check_video_options

        check_video_options(seconds, walk_fps, smoothing, keyframes)
        if keyframes is not None:
            seed_range(seed, keyframes * cells[0] * cells[1])
    if training_video is not None and video_fps < 1:
        raise UserError(f"--fps must be at least 1, got {video_fps}")

    grid_seeds: list[int] = []
    grid_layout = (cols, rows)
    if grid is not None and values is not None:
        grid_seeds = chosen if chosen is not None else list(seed_range(seed, rows))
        grid_layout = (len(values), len(grid_seeds))
    elif grid is not None and chosen is not None:
        grid_seeds, grid_layout = chosen, seed_layout(len(chosen), cols)
    elif grid is not None:
        grid_seeds = list(seed_range(seed, rows * cols))
    outdir_seeds = [] if outdir is None else chosen if chosen is not None else list(seed_range(seed, count))
    video_seeds: list[int] = []
    video_layout = cells
    if video is not None and values is not None:
        if chosen is not None:
            video_seeds, video_layout = chosen, seed_layout(len(chosen), cols)
        else:
            video_seeds = list(seed_range(seed, cells[0] * cells[1]))
    return _Plan(grid_seeds, grid_layout, outdir_seeds, video_seeds, video_layout, keys, values, walk_fps, video_fps)


def _run_dir_of(checkpoint: str | os.PathLike[str]) -> Path:
    path = Path(checkpoint)
    return path if path.is_dir() else path.parent


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
    fps: int | None = None,
    grid_size: str = defaults.VIDEO_GRID,
    smoothing: float = defaults.VIDEO_SMOOTHING,
    keyframes: int | None = None,
    seed: int = 0,
    seeds: str | None = None,
    keyframe_seeds: str | None = None,
    loop: bool = True,
    direction: str | None = None,
    strengths: str | None = None,
    training_video: str | os.PathLike[str] | None = None,
    caption: bool = True,
    raw: bool = False,
    device: str = "auto",
    overwrite: bool = False,
    batch_size: int = defaults.SAMPLE_BATCH,
    progress: bool = False,
) -> list[Path]:
    """Everything ``pggan-sample`` does; returns the files written.

    All options and output paths are checked before the checkpoint is loaded or anything is generated (a
    ``sefa:K`` beyond the latent size right after loading, still before anything is written), so bad input
    costs nothing and destroys nothing. ``fps`` defaults to 30 for videos and 10 for the training video.
    """
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    cells = parse_grid_size(grid_size)
    plan = _plan(
        grid=grid, rows=rows, cols=cols, outdir=outdir, count=count, video=video, seconds=seconds, fps=fps,
        cells=cells, smoothing=smoothing, keyframes=keyframes, seed=seed, seeds=seeds, keyframe_seeds=keyframe_seeds,
        loop=loop, direction=direction, strengths=strengths, training_video=training_video,
    )  # fmt: skip
    targets = [Path(p) for p in (grid, video, training_video) if p is not None]
    if grid is not None:
        targets.append(seeds_file(grid))
    if outdir is not None:
        if Path(outdir).exists() and not Path(outdir).is_dir():
            raise UserError(f"--outdir {outdir} exists and is not a directory")
        targets += [Path(outdir) / image_file_name(s) for s in plan.outdir_seeds]
    for path in targets:
        _check_output(path, overwrite)
    if training_video is not None:
        from pggan.pictures.training_video import find_run_grids

        find_run_grids(_run_dir_of(checkpoint))  # a run without grids is refused before anything is written
    written: list[Path] = []
    if grid is not None or outdir is not None or video is not None:
        torch_device = resolve_device(device)
        generator, resolution, alpha = load_sampler(checkpoint, raw, torch_device)
        chosen = resolve_direction(direction, generator) if direction is not None else None
        latent_size = generator.latent_size

        def faces(latents: torch.Tensor) -> torch.Tensor:
            return generate_faces_uint8(generator, latents, resolution, alpha, torch_device)

        drawn: dict[int, torch.Tensor] = {}
        if grid is not None:
            cols_g, rows_g = plan.grid_layout
            latents = seed_latents(plan.grid_seeds, latent_size)
            record: dict[str, Any] = {
                "checkpoint": str(checkpoint),
                "generator": "raw" if raw else "ema",
                "resolution": resolution,
                "alpha": alpha,
                "rows": rows_g,
                "cols": cols_g,
            }
            if chosen is not None:
                images = faces(edit_latents(latents, chosen.vector, plan.strengths or []))
                record.update(seeds=plan.grid_seeds, direction=chosen.name, strengths=plan.strengths)
                if direction is not None and chosen.eigenvalue is None:
                    record["direction_file"] = str(Path(direction).resolve())
            else:
                images = faces(latents)
                drawn = dict(zip(plan.grid_seeds, images, strict=True))
                record["seeds"] = plan.grid_seeds  # row-major, as tiled
            save_png(make_grid(images, rows_g, cols_g), grid)
            text = json.dumps(record, indent=1) + "\n"
            atomic_write_bytes(seeds_file(grid), lambda handle: handle.write(text.encode()))
            written += [Path(grid), seeds_file(grid)]
        if outdir is not None:
            for s in plan.outdir_seeds:  # one face at a time: 100,000 faces never sit in memory together
                image = drawn.get(s)
                if image is None:
                    image = faces(seed_latents([s], latent_size))[0]
                path = Path(outdir) / image_file_name(s)
                save_png(make_grid(image[None], 1, 1), path)
                written.append(path)
        if video is not None:
            from pggan.pictures.video import (
                check_video_options,
                render_latent_video,
                render_morph_video,
                render_video,
            )

            common: dict[str, Any] = dict(batch_size=batch_size, device=torch_device, progress=progress)
            if plan.keyframe_seeds is not None:
                render_morph_video(
                    generator, video, plan.keyframe_seeds, resolution, alpha, seconds=seconds, fps=plan.walk_fps,
                    loop=loop, **common,
                )  # fmt: skip
            elif chosen is not None:
                assert plan.strengths is not None
                frames = check_video_options(seconds, plan.walk_fps, smoothing, keyframes)
                sweep = sweep_strengths(frames, min(plan.strengths), max(plan.strengths))
                walk = sweep_latents(seed_latents(plan.video_seeds, latent_size), chosen.vector, sweep)
                render_latent_video(
                    generator, video, walk, resolution, alpha, fps=plan.walk_fps, grid_size=plan.video_layout, **common
                )
            else:
                render_video(
                    generator, video, resolution, alpha, seconds=seconds, fps=plan.walk_fps, grid_size=cells,
                    smoothing=smoothing, keyframes=keyframes, loop=loop, seed=seed, **common,
                )  # fmt: skip
            written.append(Path(video))
    if training_video is not None:
        from pggan.pictures.training_video import render_training_video

        render_training_video(_run_dir_of(checkpoint), training_video, plan.video_fps, caption, progress)
        written.append(Path(training_video))
    return written
