"""The paper's Laplacian-pyramid sliced Wasserstein distance (SWD), in torch, fast and memory-bounded.

The algorithm is the official one (Karras et al. 2018, ``metrics/sliced_wasserstein.py``), so numbers can be
compared with published tables:

1. each uint8 image becomes a float32 Laplacian pyramid from R down to 16 (``pyr_down``/``pyr_up`` with the
   5×5 binomial kernel and mirror borders, as OpenCV's pyrDown/pyrUp); the coarsest level is the Gaussian one;
2. from every image and level, 128 random 7×7 neighbourhoods (all channels) become descriptors;
3. each set's descriptors are normalised per level by that set's own per-channel mean and std;
4. 4 repeats × 128 random unit directions: project both sets, sort, mean absolute difference;
5. ×10³ per level, plus their average.

What makes it fast without changing the result: torch convolutions written as separable strided slices (only
the outputs that are kept are computed), descriptors gathered straight from each level, the per-set
normalisation folded into the projection directions (descriptors are never rewritten), projections computed
directly in a row-per-direction layout and sorted in place by numpy's SIMD sort on all cores (no index arrays),
directions processed in chunks so memory stays bounded. Descriptors are the only thing kept per image:
``128 · 49 · C · 4`` bytes per image and level (75 KiB for RGB).

Randomness comes from ``seed`` alone, split into independent streams (patch positions of the real set, of the
fake set, directions; one per level), so that a cached real set stays valid for any later fake set and results
do not depend on the batch size.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import warnings
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pggan.errors import UserError
from pggan.metrics.laplacian import laplacian_pyramid, pyr_down, pyr_up
from pggan.resolutions import SWD_MIN_RESOLUTION
from pggan.resolutions import swd_resolutions as _levels

NHOOD_SIZE = 7
NHOODS_PER_IMAGE = 128
DIR_REPEATS = 4
DIRS_PER_REPEAT = 128
MIN_RESOLUTION = SWD_MIN_RESOLUTION
PIXELS_PER_BATCH = 1 << 24  # float32 values per batch of images: ~64 MiB per pyramid level tensor
PROJECTION_BYTES = 1 << 30  # bound on the projections held at once (both sets)

CACHE_FORMAT = "pggan-swd-descriptors"
CACHE_VERSION = 1

ImageSource = torch.Tensor | Iterable[torch.Tensor]
__all__ = ["SWDEvaluator", "laplacian_pyramid", "pyr_down", "pyr_up", "sliced_wasserstein_pyramid"]


# ---------------------------------------------------------------- random streams
_STREAMS = {"reals": 1, "fakes": 2, "directions": 3}


def stream_seed(seed: int, stream: str, level: int) -> int:
    """A 63-bit seed for one independent random stream (``reals``/``fakes``/``directions``) at one level."""
    state = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(seed) >> 32, _STREAMS[stream], level])
    return int(state.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def random_directions(dim: int, seed: int, level: int) -> torch.Tensor:
    """The ``DIR_REPEATS·DIRS_PER_REPEAT`` unit directions of one level, float64 ``(directions, dim)``."""
    gen = torch.Generator().manual_seed(stream_seed(seed, "directions", level))
    dirs = torch.randn(DIR_REPEATS * DIRS_PER_REPEAT, dim, dtype=torch.float64, generator=gen)
    return dirs / dirs.norm(dim=1, keepdim=True)


def swd_resolutions(resolution: int) -> list[int]:
    """Laplacian levels kept for an image size: R, R/2, …, 16 (largest first; pggan.resolutions)."""
    try:
        return _levels(resolution)
    except ValueError:
        raise UserError(
            f"SWD needs square images whose size is a power of two ≥ {MIN_RESOLUTION}, got {resolution}"
        ) from None


# ---------------------------------------------------------------- descriptors
def patch_corners(num_images: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """Top-left (y, x) of ``NHOODS_PER_IMAGE`` random 7×7 patches per image, ``(num_images, 128, 2)`` int64.

    The official code draws centres uniformly in [3, size-4], i.e. corners in [0, size-7].
    """
    return torch.randint(0, size - NHOOD_SIZE + 1, (num_images, NHOODS_PER_IMAGE, 2), generator=generator)


def extract_descriptors(level: torch.Tensor, corners: torch.Tensor) -> torch.Tensor:
    """Gather the patches at ``corners`` from ``level`` (B, C, S, S): ``(B·128, C·7·7)``, channel-major."""
    batch, count = corners.shape[:2]
    windows = level.unfold(2, NHOOD_SIZE, 1).unfold(3, NHOOD_SIZE, 1)  # (B, C, S-6, S-6, 7, 7), a view
    windows = windows.permute(0, 2, 3, 1, 4, 5)  # (B, y, x, C, 7, 7): one advanced index gathers a patch
    corners = corners.to(level.device)
    images = torch.arange(batch, device=level.device).repeat_interleave(count)
    patches = windows[images, corners[..., 0].reshape(-1), corners[..., 1].reshape(-1)]
    return patches.reshape(batch * count, -1)


@dataclass
class DescriptorSet:
    """One image set's descriptors per pyramid level, raw, with the per-channel statistics to normalise them."""

    resolutions: list[int]
    channels: int
    num_images: int
    descriptors: list[torch.Tensor]  # per level: (num_images·128, channels·49) float32
    mean: list[torch.Tensor]  # per level: (channels,) float64
    std: list[torch.Tensor]  # per level: (channels,) float64

    def to(self, device: str | torch.device) -> DescriptorSet:
        return DescriptorSet(
            self.resolutions,
            self.channels,
            self.num_images,
            [d.to(device) for d in self.descriptors],
            [m.to(device) for m in self.mean],
            [s.to(device) for s in self.std],
        )


def _image_batches(images: ImageSource, batch_size: int | None) -> Iterator[torch.Tensor]:
    """Yield uint8 (B, C, R, R) batches of bounded size from a tensor or an iterable of batches."""
    chunks = [images] if isinstance(images, torch.Tensor) else images
    for chunk in chunks:
        if not isinstance(chunk, torch.Tensor) or chunk.dtype != torch.uint8 or chunk.ndim != 4:
            got = f"{chunk.dtype} {tuple(chunk.shape)}" if isinstance(chunk, torch.Tensor) else type(chunk).__name__
            raise UserError(f"SWD needs uint8 image tensors shaped (N, C, R, R), got {got}")
        if chunk.shape[-1] != chunk.shape[-2]:
            raise UserError(f"SWD needs square images, got {chunk.shape[-2]}×{chunk.shape[-1]}")
        per_image = chunk.shape[1] * chunk.shape[2] * chunk.shape[3]
        step = batch_size or max(1, PIXELS_PER_BATCH // per_image)
        for start in range(0, chunk.shape[0], step):
            yield chunk[start : start + step]


def _merge_moments(
    running: tuple[torch.Tensor, torch.Tensor], images_before: int, desc: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold a batch's per-channel mean and sum of squared deviations into the running ones (Chan et al.).

    Per-batch moments in float32 are exact enough; merging in float64 keeps a 16k-image set accurate.
    """
    var, mean = torch.var_mean(desc, dim=(0, 2), correction=0)
    n_b = desc.shape[0] * desc.shape[2]
    n_a = images_before * NHOODS_PER_IMAGE * desc.shape[2]
    mean_b, m2_b = mean.to(torch.float64), var.to(torch.float64) * n_b
    mean_a, m2_a = running
    delta = mean_b - mean_a
    total = n_a + n_b
    return mean_a + delta * (n_b / total), m2_a + m2_b + delta.square() * (n_a * n_b / total)


def compute_descriptors(
    images: ImageSource,
    seed: int = 0,
    stream: str = "reals",
    device: str | torch.device = "cpu",
    batch_size: int | None = None,
    progress: Any = None,
    num_images: int | None = None,
) -> DescriptorSet:
    """Descriptors of every pyramid level of an image set (a tensor or an iterable of uint8 batches).

    ``stream`` picks the patch-position stream (``"reals"`` or ``"fakes"``); ``progress`` is an optional tqdm
    bar advanced by the number of images processed. ``num_images`` (known for a tensor) lets the storage be
    allocated once: no final concatenation, no heap fragmentation from thousands of freed chunks.
    """
    device = torch.device(device)
    capacity = images.shape[0] if isinstance(images, torch.Tensor) else num_images
    resolutions: list[int] = []
    channels = count = 0
    generators: list[torch.Generator] = []
    stores: list[torch.Tensor] = []  # preallocated when the set size is known: no final concatenation
    chunks: list[list[torch.Tensor]] = []
    stats: list[tuple[torch.Tensor, torch.Tensor]] = []  # running (mean, M2) per channel, float64
    rows_per_image = NHOODS_PER_IMAGE
    for batch in _image_batches(images, batch_size):
        if not resolutions:
            resolutions, channels = swd_resolutions(batch.shape[-1]), batch.shape[1]
            generators = [torch.Generator().manual_seed(stream_seed(seed, stream, i)) for i in range(len(resolutions))]
            width = channels * NHOOD_SIZE * NHOOD_SIZE
            if capacity is not None:
                stores = [torch.empty(capacity * rows_per_image, width, device=device) for _ in resolutions]
            chunks = [[] for _ in resolutions]
            zero = torch.zeros(channels, dtype=torch.float64, device=device)
            stats = [(zero, zero) for _ in resolutions]
        elif (batch.shape[1], batch.shape[-1]) != (channels, resolutions[0]):
            raise UserError(
                f"images of one set must share a shape: got {batch.shape[1]}×{batch.shape[-1]}² "
                f"after {channels}×{resolutions[0]}²"
            )
        if capacity is not None and count + batch.shape[0] > capacity:
            raise UserError(f"SWD got more than the {capacity} images announced")
        levels = laplacian_pyramid(batch.to(device, non_blocking=True), len(resolutions))
        for i, level in enumerate(levels):
            corners = patch_corners(batch.shape[0], level.shape[-1], generators[i])
            desc = extract_descriptors(level, corners)
            stats[i] = _merge_moments(stats[i], count, desc.view(desc.shape[0], channels, -1))
            if stores:
                stores[i][count * rows_per_image : count * rows_per_image + desc.shape[0]] = desc
            else:
                chunks[i].append(desc)
        del levels
        count += batch.shape[0]
        if progress is not None:
            progress.update(batch.shape[0])
    if not resolutions:
        raise UserError("SWD got an empty image set")
    descriptors, means, stds = [], [], []
    for i in range(len(resolutions)):
        if stores:
            descriptors.append(stores[i][: count * rows_per_image])
        else:
            level_chunks, chunks[i] = chunks[i], []
            descriptors.append(level_chunks[0] if len(level_chunks) == 1 else torch.cat(level_chunks))
            del level_chunks
        mean, m2 = stats[i]
        means.append(mean)
        stds.append((m2 / (count * rows_per_image * NHOOD_SIZE * NHOOD_SIZE)).sqrt().clamp_min(1e-12))
    return DescriptorSet(resolutions, channels, count, descriptors, means, stds)


# ---------------------------------------------------------------- distance
def _sort_rows_(x: torch.Tensor) -> torch.Tensor:
    """Sort each row of a 2-D tensor in place; on the CPU with numpy's SIMD sort on all threads, no indices."""
    if x.device.type != "cpu":
        return torch.sort(x, dim=1).values
    array = x.numpy()
    workers = max(1, min(torch.get_num_threads(), x.shape[0], x.numel() >> 18))  # threads only pay for big sorts
    if workers == 1:
        array.sort(axis=1)
        return x
    bounds = np.linspace(0, x.shape[0], workers + 1).astype(int)
    with ThreadPoolExecutor(workers) as pool:  # numpy releases the GIL while sorting
        list(pool.map(lambda ab: array[ab[0] : ab[1]].sort(axis=1), itertools.pairwise(bounds)))
    return x


def _normalised_projection(
    desc: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, dirs: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted projections of raw descriptors and the per-direction offset that normalisation subtracts.

    ((d − μ)/σ)·w = d·(w/σ) − (μ/σ)·w, so the descriptors themselves are never rewritten.
    """
    per_channel = desc.shape[1] // mean.shape[0]
    inv_std = (1.0 / std).repeat_interleave(per_channel)
    scaled = dirs * inv_std  # (d, dim) float64
    offset = scaled @ mean.repeat_interleave(per_channel)
    projected = scaled.to(torch.float32) @ desc.T  # (d, n), each direction a contiguous row
    return _sort_rows_(projected), offset


def level_distance(
    a: torch.Tensor,
    a_mean: torch.Tensor,
    a_std: torch.Tensor,
    b: torch.Tensor,
    b_mean: torch.Tensor,
    b_std: torch.Tensor,
    directions: torch.Tensor,
) -> float:
    """Sliced Wasserstein distance between two normalised descriptor sets along ``directions`` (not ×10³)."""
    if a.shape != b.shape:
        raise UserError(f"SWD compares sets of equal size: {a.shape[0]} vs {b.shape[0]} descriptors")
    directions = directions.to(a.device)
    n = a.shape[0]
    chunk = int(max(1, min(directions.shape[0], PROJECTION_BYTES // (8 * n))))
    total = torch.zeros((), dtype=torch.float64, device=a.device)
    for start in range(0, directions.shape[0], chunk):
        dirs = directions[start : start + chunk]
        pa, offset_a = _normalised_projection(a, a_mean, a_std, dirs)
        pb, offset_b = _normalised_projection(b, b_mean, b_std, dirs)
        shift = (offset_a - offset_b).to(torch.float32)[:, None]
        total += pa.sub_(pb).sub_(shift).abs_().sum(dim=1).to(torch.float64).sum()  # f32 row sums are pairwise
        del pa, pb
    return float(total) / (directions.shape[0] * n)


def distances(reals: DescriptorSet, fakes: DescriptorSet, seed: int = 0) -> dict[int | str, float]:
    """``{resolution: swd×1e3, ..., "avg": mean}`` between two descriptor sets."""
    if reals.resolutions != fakes.resolutions or reals.channels != fakes.channels:
        raise UserError(
            f"SWD compares like with like: reals are {reals.channels}×{reals.resolutions[0]}², "
            f"fakes {fakes.channels}×{fakes.resolutions[0]}²"
        )
    if reals.num_images != fakes.num_images:
        raise UserError(f"SWD compares sets of equal size: {reals.num_images} reals vs {fakes.num_images} fakes")
    result: dict[int | str, float] = {}
    for i, res in enumerate(reals.resolutions):
        dirs = random_directions(reals.descriptors[i].shape[1], seed, i)
        swd = level_distance(
            reals.descriptors[i], reals.mean[i], reals.std[i], fakes.descriptors[i], fakes.mean[i], fakes.std[i], dirs
        )
        result[res] = swd * 1e3
    result["avg"] = float(np.mean([result[r] for r in reals.resolutions]))
    return result


# ---------------------------------------------------------------- evaluator and cache
def _content_id(images: torch.Tensor) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(tuple(images.shape)).encode())
    digest.update(images.detach().cpu().contiguous().numpy().tobytes())
    return "sha:" + digest.hexdigest()


def _cache_key(dataset_id: str, seed: int) -> str:
    params = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "dataset": dataset_id,
        "seed": int(seed),
        "nhood_size": NHOOD_SIZE,
        "nhoods_per_image": NHOODS_PER_IMAGE,
        "min_resolution": MIN_RESOLUTION,
    }
    return json.dumps(params, sort_keys=True)


def _load_cache(path: Path, key: str) -> DescriptorSet | None:
    """The cached descriptors if ``path`` holds them for exactly ``key``; None (with a warning) otherwise."""
    if not path.is_file():
        return None
    try:
        from pggan.input_files import check_stored_zip

        check_stored_zip(path, "SWD cache")  # no compressed member that torch.load would inflate in full
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("format") != CACHE_FORMAT or state.get("key") != key:
            return None
        cached = DescriptorSet(
            [int(r) for r in state["resolutions"]],
            int(state["channels"]),
            int(state["num_images"]),
            list(state["descriptors"]),
            list(state["mean"]),
            list(state["std"]),
        )
        _check_cached(cached)
    except Exception as exc:  # unreadable, foreign or forged: the run's own cache is simply made again
        warnings.warn(f"ignoring unreadable SWD cache {path} ({type(exc).__name__}); recomputing", stacklevel=3)
        return None
    return cached


def _check_cached(desc: DescriptorSet) -> None:
    """Descriptors of the shapes the cache's own counts imply, each backed by its bytes (no stride-0 claims)."""
    width = desc.channels * NHOOD_SIZE * NHOOD_SIZE
    rows = desc.num_images * NHOODS_PER_IMAGE
    parts = (desc.descriptors, desc.mean, desc.std)
    if not all(len(part) == len(desc.resolutions) for part in parts):
        raise ValueError("levels do not match")
    for tensor, shape in [(d, (rows, width)) for d in desc.descriptors] + [
        (t, (desc.channels,)) for t in desc.mean + desc.std
    ]:
        if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != shape or not tensor.is_contiguous():
            raise ValueError("descriptors of the wrong shape")
        if (tensor.storage_offset() + tensor.numel()) * tensor.element_size() > tensor.untyped_storage().nbytes():
            raise ValueError("descriptors that the file does not hold")


def _save_cache(path: Path, key: str, desc: DescriptorSet) -> None:
    from pggan.atomic import atomic_write_bytes

    state = {
        "format": CACHE_FORMAT,
        "version": CACHE_VERSION,
        "key": key,
        "resolutions": desc.resolutions,
        "channels": desc.channels,
        "num_images": desc.num_images,
        "descriptors": [d.cpu() for d in desc.descriptors],
        "mean": [m.cpu() for m in desc.mean],
        "std": [s.cpu() for s in desc.std],
    }
    atomic_write_bytes(path, lambda handle: torch.save(state, handle))


class SWDEvaluator:
    """The real set's descriptors computed once (or loaded from ``cache_path``), then ``evaluate(fakes)``.

    ``reals_uint8`` is a uint8 tensor (N, C, R, R) or an iterable of such batches (so that 16k megapixel images
    never sit in memory at once); with a cache it is only consumed on a miss. The cache file is keyed by
    ``dataset_id`` (default: a hash of the tensor's bytes; required for an iterable), the seed and the
    descriptor parameters; a file holding another key is recomputed and replaced atomically.
    """

    def __init__(
        self,
        reals_uint8: ImageSource | None,
        seed: int = 0,
        device: str | torch.device = "cpu",
        cache_path: str | os.PathLike[str] | None = None,
        dataset_id: str | None = None,
        batch_size: int | None = None,
        progress: Any = None,
        num_images: int | None = None,
    ) -> None:
        self.seed = int(seed)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.from_cache = False
        reals: DescriptorSet | None = None
        key = None
        if cache_path is not None:
            if dataset_id is None:
                if not isinstance(reals_uint8, torch.Tensor):
                    raise ValueError("SWDEvaluator needs dataset_id to cache a real set given as an iterable")
                dataset_id = _content_id(reals_uint8)
            key = _cache_key(dataset_id, self.seed)
            reals = _load_cache(Path(cache_path), key)
            self.from_cache = reals is not None
            if progress is not None and reals is not None:
                progress.update(reals.num_images)
        if reals is None:
            if reals_uint8 is None:
                raise UserError(f"no SWD descriptor cache at {cache_path} and no real images to compute it from")
            reals = compute_descriptors(reals_uint8, self.seed, "reals", self.device, batch_size, progress, num_images)
            if cache_path is not None and key is not None:
                _save_cache(Path(cache_path), key, reals)
        self.reals = reals.to(self.device)

    @property
    def resolutions(self) -> list[int]:
        return self.reals.resolutions

    @property
    def num_images(self) -> int:
        return self.reals.num_images

    @torch.no_grad()
    def evaluate(self, fakes_uint8: ImageSource, progress: Any = None) -> dict[int | str, float]:
        """``{resolution: swd×1e3, ..., "avg": mean}`` of a fake set as large as the real one."""
        try:  # as many fakes as reals are expected: allocate for them once
            fakes = compute_descriptors(
                fakes_uint8, self.seed, "fakes", self.device, self.batch_size, progress, self.num_images
            )
        except UserError as exc:
            if "more than the" not in str(exc):
                raise
            raise UserError(f"SWD compares sets of equal size: more fakes than the {self.num_images} reals") from None
        return distances(self.reals, fakes, self.seed)


@torch.no_grad()
def sliced_wasserstein_pyramid(
    reals_uint8: ImageSource,
    fakes_uint8: ImageSource,
    seed: int = 0,
    device: str | torch.device = "cpu",
    batch_size: int | None = None,
    progress: Any = None,
    num_images: int | None = None,
) -> dict[int | str, float]:
    """The paper's SWD between two equally large uint8 sets (N, C, R, R): ``{R: …, R/2: …, …, 16: …, "avg": …}``.

    Values are ×10³ as in the paper's tables; lower is closer. Deterministic for a given ``seed``. Either side
    may be an iterable of batches; ``num_images`` then lets memory be allocated once.
    """
    evaluator = SWDEvaluator(
        reals_uint8, seed=seed, device=device, batch_size=batch_size, progress=progress, num_images=num_images
    )
    return evaluator.evaluate(fakes_uint8, progress=progress)
