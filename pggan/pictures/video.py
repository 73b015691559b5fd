"""Latent videos: walks, morphs and direction sweeps, generated in batches, encoded to mp4 with PyAV.

The default walk is the official release's: white Gaussian noise over time, low-pass filtered with a Gaussian
of σ = smoothing·fps frames (circular, so the clip loops seamlessly), each frame's latent put back on the sphere
of radius √latent_size where the generator's training latents live. ``keyframes`` instead travels along great
circles (slerp) through the faces of K seeds per cell and returns to the first; ``pggan-sample`` also hands in
ready paths (``--keyframe-seeds`` morphs, ``--direction`` sweeps) through :func:`render_latent_video`. Frames
are streamed to the encoder batch by batch, so a long 1024² video never sits in memory.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pggan import defaults
from pggan.atomic import atomic_write_bytes
from pggan.errors import UserError
from pggan.pictures.generate import generate_uint8
from pggan.pictures.grids import make_grid
from pggan.pictures.latents import seed_latents, seed_path, seed_range, slerp_path, to_sphere

DEFAULT_CODECS = ("libx264", "mpeg4")


def check_video_options(seconds: float, fps: int, smoothing: float, keyframes: int | None) -> int:
    """Validate the video options; return the number of frames, ``round(seconds·fps)``."""
    if fps < 1:
        raise UserError(f"--fps must be at least 1, got {fps}")
    if not seconds > 0 or not math.isfinite(seconds):
        raise UserError(f"--seconds must be positive, got {seconds}")
    if not smoothing >= 0 or not math.isfinite(smoothing):
        raise UserError(f"--smoothing must be zero or positive, got {smoothing}")
    if keyframes is not None and keyframes < 2:
        raise UserError(f"--keyframes needs at least 2 latents to travel between, got {keyframes}")
    frames = round(seconds * fps)
    if frames < 1:
        raise UserError(f"--seconds {seconds} at --fps {fps} makes no frame at all")
    return frames


def gaussian_walk(num_frames: int, cells: int, latent_size: int, seed: int, sigma: float) -> torch.Tensor:
    """A looping smooth random walk, ``(num_frames, cells, latent_size)`` float32.

    Gaussian noise per frame, filtered along time with ``sigma`` frames and
    ``mode='wrap'`` (the last frame flows into the first), then renormalised
    per frame: filtering shrinks the norm, and the generator was trained on
    latents of norm ≈ √latent_size.
    """
    from scipy.ndimage import gaussian_filter1d

    rng = torch.Generator(device="cpu").manual_seed(seed)
    noise = torch.randn(num_frames, cells, latent_size, generator=rng).double().numpy()
    if sigma > 0:
        noise = gaussian_filter1d(noise, sigma, axis=0, mode="wrap")
    return to_sphere(torch.from_numpy(noise)).float()


def keyframe_walk(
    num_frames: int, cells: int, latent_size: int, seed: int, keyframes: int, loop: bool = True
) -> torch.Tensor:
    """Slerp through the faces of ``keyframes`` seeds per cell: ``(num_frames, cells, latent_size)``.

    Keyframe k of cell c is the face of seed ``seed + k·cells + c`` (the one seed rule), so ``--keyframes K
    --seed S`` in a 1x1 video travels through seeds S … S+K−1. Constant angular speed between keyframes; with
    ``loop`` the walk returns to keyframe 0 and keyframe k is shown at frame ``k·num_frames/keyframes`` when that
    is a whole number (:func:`pggan.pictures.latents.slerp_path`).
    """
    seeds = seed_range(seed, keyframes * cells, "--seed")
    keys = seed_latents(seeds, latent_size).reshape(keyframes, cells, latent_size)
    return slerp_path(keys, num_frames, loop)


def pad_to_even(frame: np.ndarray) -> np.ndarray:
    """Pad an odd height or width by one edge row/column: yuv420p needs even sizes."""
    height, width = frame.shape[:2]
    pad = ((0, height % 2), (0, width % 2)) + ((0, 0),) * (frame.ndim - 2)
    return np.pad(frame, pad, mode="edge") if height % 2 or width % 2 else frame


def write_mp4(
    frames: Iterable[np.ndarray],
    path: str | os.PathLike[str],
    fps: int,
    codecs: Sequence[str] = DEFAULT_CODECS,
    crf: int = 16,
) -> str:
    """Encode HWC uint8 frames (1 channel = gray, 3 = RGB) to an mp4 at ``path``, atomically; return the codec used.

    H.264 (libx264, yuv420p, so every player accepts it) when this PyAV build
    has it, else the next codec in ``codecs`` (MPEG-4 part 2). Odd sizes are
    padded to even. The file appears only once the last frame is written.
    """
    import av

    available = [codec for codec in codecs if codec in av.codecs_available]
    if not available:
        raise UserError(f"this PyAV build has none of the video encoders {', '.join(codecs)}")
    chosen: list[str] = []

    def writer(handle: object) -> None:
        with av.open(handle, mode="w", format="mp4") as container:
            stream = None
            for frame in frames:
                frame = pad_to_even(np.ascontiguousarray(frame))
                if frame.ndim != 3 or frame.shape[2] not in (1, 3):
                    raise UserError(f"cannot encode frames shaped {frame.shape} (want H×W×1 gray or H×W×3 RGB)")
                if stream is None:
                    stream = _add_stream(container, available, fps, frame.shape[1], frame.shape[0], crf, chosen)
                pixel_format = "gray" if frame.shape[2] == 1 else "rgb24"
                image = frame[:, :, 0] if frame.shape[2] == 1 else frame
                # Convert to yuv420p here rather than letting encode() do it: under CPU load the implicit
                # conversion made x264 output differ now and then for identical input (~1% of encodes).
                video_frame = av.VideoFrame.from_ndarray(image, format=pixel_format).reformat(format="yuv420p")
                for packet in stream.encode(video_frame):
                    container.mux(packet)
            if stream is None:
                raise UserError("no frames to write")
            for packet in stream.encode():
                container.mux(packet)

    atomic_write_bytes(path, writer)
    return chosen[0]


def _add_stream(
    container: Any, codecs: list[str], fps: int, width: int, height: int, crf: int, chosen: list[str]
) -> Any:
    """The first codec of ``codecs`` that this build can open; H.264 by quality (CRF), others by bit rate."""
    last_error: Exception | None = None
    for codec in codecs:
        try:
            stream = container.add_stream(codec, rate=fps)
        except ValueError as exc:  # UnknownCodecError and friends
            last_error = exc
            continue
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": "medium"}
        else:
            stream.bit_rate = max(1_000_000, int(width * height * fps * 0.4))
        chosen.append(codec)
        return stream
    raise UserError(f"no usable video encoder among {', '.join(codecs)} ({last_error})")


def video_frames(
    generator: torch.nn.Module,
    walk: torch.Tensor,
    resolution: int,
    alpha: float,
    grid_size: tuple[int, int],
    batch_size: int,
    device: torch.device,
) -> Iterator[np.ndarray]:
    """Yield one HWC uint8 frame per time step of ``walk`` ``(frames, cells, latent)``, cells tiled cols×rows."""
    cols, rows = grid_size
    frames, cells, latent_size = walk.shape
    per_batch = max(1, batch_size // cells)
    for start in range(0, frames, per_batch):
        chunk = walk[start : start + per_batch]
        flat = chunk.reshape(-1, latent_size)
        images = torch.cat(list(generate_uint8(generator, flat, resolution, alpha, batch_size, device)))
        for frame_images in images.reshape(chunk.shape[0], cells, *images.shape[1:]):
            yield make_grid(frame_images, rows, cols)


def render_latent_video(
    generator: torch.nn.Module,
    path: str | os.PathLike[str],
    walk: torch.Tensor,
    resolution: int,
    alpha: float,
    *,
    fps: int = defaults.VIDEO_FPS,
    grid_size: tuple[int, int] = (1, 1),
    batch_size: int = defaults.SAMPLE_BATCH,
    device: str | torch.device = "cpu",
    progress: bool = False,
    codecs: Sequence[str] = DEFAULT_CODECS,
) -> str:
    """Write an mp4 with one frame per step of ``walk`` ``(frames, cells, latent)``, cells tiled ``grid_size``
    (cols, rows); return the codec used."""
    from tqdm import tqdm

    frames = video_frames(generator, walk, resolution, alpha, grid_size, batch_size, torch.device(device))
    bar = tqdm(frames, total=walk.shape[0], unit="frame", desc=Path(path).name, disable=not progress, leave=False)
    return write_mp4(bar, path, fps, codecs=codecs)


def render_morph_video(
    generator: torch.nn.Module,
    path: str | os.PathLike[str],
    seeds: Sequence[int],
    resolution: int,
    alpha: float,
    *,
    seconds: float = defaults.VIDEO_SECONDS,
    fps: int = defaults.VIDEO_FPS,
    loop: bool = True,
    batch_size: int = defaults.SAMPLE_BATCH,
    device: str | torch.device = "cpu",
    progress: bool = False,
    codecs: Sequence[str] = DEFAULT_CODECS,
) -> str:
    """A morph through the faces of ``seeds`` (``pggan-sample --keyframe-seeds``, the explore page's export).

    ``round(seconds·fps)`` frames along great circles through exactly those faces
    (:func:`pggan.pictures.latents.seed_path`), back to the first one when ``loop``; returns the codec used. Both
    commands call this one function, so the same seeds and options make the same video.
    """
    if len(seeds) < 2:
        raise UserError(f"a morph needs at least 2 faces to travel between, got {len(seeds)}")
    num_frames = check_video_options(seconds, fps, 0.0, None)
    walk = seed_path(seeds, generator.latent_size, num_frames, loop)[:, None, :]
    return render_latent_video(
        generator, path, walk, resolution, alpha, fps=fps, grid_size=(1, 1), batch_size=batch_size, device=device,
        progress=progress, codecs=codecs,
    )  # fmt: skip


def render_video(
    generator: torch.nn.Module,
    path: str | os.PathLike[str],
    resolution: int,
    alpha: float,
    *,
    seconds: float = defaults.VIDEO_SECONDS,
    fps: int = defaults.VIDEO_FPS,
    grid_size: tuple[int, int] = (1, 1),
    smoothing: float = defaults.VIDEO_SMOOTHING,
    keyframes: int | None = None,
    loop: bool = True,
    seed: int = 0,
    batch_size: int = defaults.SAMPLE_BATCH,
    device: str | torch.device = "cpu",
    progress: bool = False,
    codecs: Sequence[str] = DEFAULT_CODECS,
) -> str:
    """Write a latent-walk mp4 of ``round(seconds·fps)`` frames; return the codec used."""
    num_frames = check_video_options(seconds, fps, smoothing, keyframes)
    cols, rows = grid_size
    latent_size = generator.latent_size
    if keyframes is None:
        walk = gaussian_walk(num_frames, cols * rows, latent_size, seed, smoothing * fps)
    else:
        walk = keyframe_walk(num_frames, cols * rows, latent_size, seed, keyframes, loop)
    return render_latent_video(
        generator, path, walk, resolution, alpha, fps=fps, grid_size=grid_size, batch_size=batch_size,
        device=device, progress=progress, codecs=codecs,
    )  # fmt: skip
