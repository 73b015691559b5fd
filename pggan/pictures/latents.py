"""Latents by seed, the sphere they live on, seed lists as users type them, and great-circle paths between them.

**The seed rule** (the one rule of the package): the latent of seed ``S`` is drawn by its own random generator,
``numpy.random.RandomState(S).randn(latent_size)`` — the draw NVIDIA's StyleGAN2/3 scripts number their faces
by — scaled onto the sphere of radius √latent_size. It depends on nothing but ``S`` and the latent size: not on
the batch, the device, or which other seeds are drawn beside it. ``pggan-sample --seeds``, ``--seed/--count``
(the seeds ``S … S+count-1``), the training grids, SWD and FID all draw their latents here.

The generator normalises its input (pixel norm over the latent), so the scaling changes no face; it is done
because semantic edits move a latent by ``strength × unit direction``, and a strength must mean the same step
for every face (:mod:`pggan.pictures.directions`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from pggan.errors import UserError

#: Seeds are what ``numpy.random.RandomState`` accepts: 0 … 2³² − 1.
MAX_SEED = 2**32 - 1
#: More latents than this in one request is almost certainly a typo (``0-4000000000``), and would fill memory.
MAX_SEEDS_AT_ONCE = 100_000
#: A latent whose norm is within this relative distance of √n counts as on the sphere and is left as it is, so
#: that projecting twice changes no bit (float32 norms of a projected latent are off by ~1e-7).
SPHERE_TOLERANCE = 1e-6

_SEED_TOKEN = re.compile(r"(\d+)(?:\s*-\s*(\d+))?")


def check_seed(seed: int, option: str = "seed") -> int:
    """``seed`` as an int if it is a valid seed (0 … 2³² − 1); a one-line :class:`UserError` otherwise."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) <= MAX_SEED:
        raise UserError(f"{option} must be a whole number from 0 to {MAX_SEED}, got {seed!r}")
    return int(seed)


def seed_range(first: int, count: int, option: str = "--seed", limit: int | None = MAX_SEEDS_AT_ONCE) -> range:
    """The seeds ``first … first+count-1`` (what ``--seed S --count N`` means), checked like any seed list.

    ``limit`` caps the count for requests a user types; metrics, which stream their latents, pass None.
    """
    check_seed(first, option)
    if count < 1:
        raise UserError(f"a seed range needs at least one seed, got {count}")
    if limit is not None and count > limit:
        raise UserError(f"{count:,} seeds at once is more than the {limit:,} allowed")
    if first + count - 1 > MAX_SEED:
        raise UserError(f"{option} {first} with {count} images runs past the last seed {MAX_SEED}")
    return range(first, first + count)


def parse_seeds(text: str, option: str = "--seeds") -> list[int]:
    """``"12,873,40-47"`` → ``[12, 873, 40, 41, …, 47]``: in the order given, ranges inclusive, repeats kept.

    Refused, each with one line naming ``option``: empty items, anything but digits and one ``-`` per range,
    negative numbers, ranges that run backwards, seeds above :data:`MAX_SEED`, more than
    :data:`MAX_SEEDS_AT_ONCE` seeds in all (counted before any range is expanded).
    """
    if not isinstance(text, str) or not text.strip():
        raise UserError(f"{option} needs at least one seed, like 12,873,40-47")
    spans: list[tuple[int, int]] = []
    total = 0
    for token in text.split(","):
        token = token.strip()
        match = _SEED_TOKEN.fullmatch(token)
        if match is None:
            if re.fullmatch(r"-\s*\d+", token):
                raise UserError(f"{option}: seeds are whole numbers from 0 to {MAX_SEED}, got {token!r}")
            raise UserError(f"{option} must look like 12,873,40-47 (seeds and inclusive ranges), got {token!r}")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        for value in (first, last):
            if value > MAX_SEED:
                raise UserError(f"{option}: seed {value} is above the largest seed {MAX_SEED}")
        if last < first:
            raise UserError(f"{option}: the range {token!r} runs backwards (write {last}-{first})")
        total += last - first + 1
        if total > MAX_SEEDS_AT_ONCE:
            raise UserError(f"{option} asks for more than {MAX_SEEDS_AT_ONCE:,} seeds at once")
        spans.append((first, last))
    return [seed for first, last in spans for seed in range(first, last + 1)]


def to_sphere(latents: torch.Tensor) -> torch.Tensor:
    """Scale each latent (last axis) to norm √latent_size, the typical norm of a Gaussian draw.

    Latents already on that sphere (within :data:`SPHERE_TOLERANCE`) come back unchanged, bit for bit, so a
    seed's latent put on the sphere again — as an edit of strength 0 does — still gives exactly the same face.
    """
    radius = math.sqrt(latents.shape[-1])
    norms = latents.norm(dim=-1, keepdim=True)
    scaled = latents / norms.clamp_min(1e-12) * radius
    on_sphere = (norms - radius).abs() <= SPHERE_TOLERANCE * radius
    return torch.where(on_sphere, latents, scaled)


def seed_latents(seeds: Iterable[int], latent_size: int) -> torch.Tensor:
    """The latents of ``seeds``, one row each: ``(len(seeds), latent_size)`` float32 on the √latent_size sphere.

    Row k is ``RandomState(seeds[k]).randn(latent_size)`` scaled onto the sphere in float64, then rounded to
    float32 — the same row whatever else is drawn (the module docstring has the rule). One RandomState is
    reseeded per seed: ``seed()`` resets it completely, and reseeding costs ~20 µs where building a new one
    costs ~150 µs (50,000 FID latents: 1 s instead of 7).
    """
    seeds = [check_seed(seed) for seed in seeds]
    if latent_size < 1:
        raise ValueError(f"latent_size must be positive, got {latent_size}")
    draws = np.empty((len(seeds), latent_size), dtype=np.float64)
    rng = np.random.RandomState()
    for row, seed in enumerate(seeds):
        rng.seed(seed)
        draws[row] = rng.randn(latent_size)
    norms = np.linalg.norm(draws, axis=1, keepdims=True) if seeds else np.ones((0, 1))
    draws *= math.sqrt(latent_size) / np.maximum(norms, 1e-300)
    return torch.from_numpy(draws.astype(np.float32))


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """Spherical interpolation between the directions of ``a`` and ``b`` (last axis), on the √n sphere.

    ``t`` is a number or one value per leading row. The angle grows linearly with ``t`` (constant speed along
    the great circle). Falls back to linear interpolation of the directions when they are (nearly) parallel,
    where the great circle is undefined.
    """
    t = torch.as_tensor(t, dtype=a.dtype)
    if t.ndim == 1:
        t = t.reshape(-1, *([1] * (a.ndim - 1)))
    ua = a / a.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    ub = b / b.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    dot = (ua * ub).sum(dim=-1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.acos(dot)
    sin_omega = torch.sin(omega)
    parallel = sin_omega < 1e-6
    safe = torch.where(parallel, torch.ones_like(sin_omega), sin_omega)
    wa = torch.where(parallel, 1.0 - t, torch.sin((1.0 - t) * omega) / safe)
    wb = torch.where(parallel, t, torch.sin(t * omega) / safe)
    return to_sphere(wa * ua + wb * ub)


def slerp_path(keys: torch.Tensor, num_frames: int, loop: bool = True) -> torch.Tensor:
    """``num_frames`` latents travelling through ``keys`` ``(K, ..., n)`` in order, along great circles.

    Every segment (key k → key k+1) takes the same number of frames, at constant angular speed within it.
    ``loop``: K segments, the last one back to key 0, so frame ``num_frames`` would be key 0 again and the clip
    repeats seamlessly; key k is shown at frame ``k·num_frames/K`` when that is a whole number. Without
    ``loop``: K−1 segments, the first frame is key 0 and the last frame is exactly the last key.
    Returns ``(num_frames, ..., n)`` float32; computed in float64.
    """
    count = keys.shape[0]
    if count < 2:
        raise UserError(f"a path through faces needs at least 2 of them, got {count}")
    if num_frames < 1:
        raise UserError(f"a path needs at least one frame, got {num_frames}")
    keys = keys.double()
    frame = torch.arange(num_frames, dtype=torch.float64)
    if loop:
        position = frame * count / num_frames
        index = position.floor().long().clamp(max=count - 1)
        following = (index + 1) % count
    else:
        position = frame * (count - 1) / max(1, num_frames - 1)
        index = position.floor().long().clamp(max=count - 2)
        following = index + 1
    return slerp(keys[index], keys[following], position - index).float()


def seed_path(seeds: Sequence[int], latent_size: int, num_frames: int, loop: bool = True) -> torch.Tensor:
    """``slerp_path`` through the faces of ``seeds``: ``(num_frames, latent_size)``, what ``--keyframe-seeds`` shows."""
    return slerp_path(seed_latents(seeds, latent_size), num_frames, loop)
