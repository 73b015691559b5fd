"""The Fréchet Inception Distance: feature statistics in float64, the distance, ``.npz`` files, ``pggan-fid``.

FID = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁Σ₂)^½) over the pool3 features of the Inception network
(``pggan.metrics.inception``), with Σ the unbiased covariance as the TF FID code and pytorch-fid compute it.
Statistics are accumulated batch by batch (Chan's merge of centred moments, in float64), so 50,000 images never
sit in memory and the result does not depend on the batch size beyond float rounding. Statistics files use
pytorch-fid's format (``mu``, ``sigma``), so files made by either tool can be read by both.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pggan.defaults import FID_IMAGES
from pggan.errors import UserError

DEFAULT_NUM_IMAGES = FID_IMAGES  # as the published numbers use
SQRTM_EPS = 1e-6  # the usual offset added to both covariances when their product is near singular


@dataclass
class FeatureStats:
    """Mean and covariance of a set's features (float64), and how many images they summarise."""

    mu: np.ndarray
    sigma: np.ndarray
    num_images: int


class StatsAccumulator:
    """Running mean and centred second moment of feature batches, merged exactly (Chan et al.) in float64."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None

    def add(self, features: torch.Tensor) -> None:
        x = features.detach().to(torch.float64)
        n = x.shape[0]
        if n == 0:
            return
        batch_mean = x.mean(dim=0)
        centred = x - batch_mean
        batch_m2 = centred.T @ centred
        if self.mean is None or self.m2 is None:
            self.count, self.mean, self.m2 = n, batch_mean, batch_m2
            return
        total = self.count + n
        delta = batch_mean - self.mean
        self.m2 = self.m2 + batch_m2 + torch.outer(delta, delta) * (self.count * n / total)
        self.mean = self.mean + delta * (n / total)
        self.count = total

    def result(self) -> FeatureStats:
        if self.mean is None or self.m2 is None or self.count < 2:
            raise UserError(f"FID needs at least 2 images per side, got {self.count}")
        sigma = (self.m2 / (self.count - 1)).cpu().numpy()
        return FeatureStats(self.mean.cpu().numpy(), sigma, self.count)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """The Fréchet distance between two Gaussians, as the TF FID code computes it.

    The matrix square root of Σ₁Σ₂ may come out non-finite when the product is near singular (fewer images than
    feature dimensions); then SQRTM_EPS·I is added to both covariances, the usual safeguard. A tiny imaginary
    part from rounding is dropped; a large one means the inputs are not covariances and is an error.
    """
    from scipy import linalg

    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise UserError(f"FID statistics do not match: mu {mu1.shape} vs {mu2.shape}, sigma {sigma1.shape} vs "
                        f"{sigma2.shape}")  # fmt: skip
    diff = mu1 - mu2
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", linalg.LinAlgWarning)  # a singular product: handled just below
        covmean = linalg.sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * SQRTM_EPS
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise UserError(f"FID: the covariance product has a large imaginary component "
                            f"({np.max(np.abs(covmean.imag)):.3g})")  # fmt: skip
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


# ---------------------------------------------------------------- .npz statistics files
def save_stats(stats: FeatureStats, path: str | os.PathLike[str], **extra: Any) -> None:
    """``mu``, ``sigma`` (pytorch-fid's names) and ``num_images``, written atomically."""
    from pggan.atomic import atomic_write_bytes

    values = {"mu": stats.mu, "sigma": stats.sigma, "num_images": np.int64(stats.num_images)}
    values.update({k: np.asarray(v) for k, v in extra.items()})
    atomic_write_bytes(path, lambda handle: np.savez(handle, **values))


#: The Inception pool3 features FID compares: statistics of any other width are not FID statistics.
FEATURES = 2048
#: A statistics file holds mu (16 KB) and sigma (32 MB) in float64; anything much larger is not one.
STATS_FILE_LIMIT = 128 << 20
_NPY_HEADER_LIMIT = 1 << 16


def _read_member(archive: Any, name: str, shape: tuple[int, ...], kinds: str, path: Path) -> np.ndarray:
    """One ``.npy`` member, its header checked (shape, dtype, size) before any of its data is read."""
    try:
        info = archive.getinfo(f"{name}.npy")
    except KeyError:
        raise UserError(f"{path} is not an FID statistics file: it has no {name}") from None
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise UserError(f"{path} is not an FID statistics file: {name} is not an .npy array")
        header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        found_shape, fortran, dtype = header(member, max_header_size=_NPY_HEADER_LIMIT)
        if dtype.kind not in kinds or dtype.hasobject or dtype.itemsize > 8 or tuple(found_shape) != shape:
            raise UserError(
                f"{path} is not an FID statistics file: {name} is {dtype} of shape {tuple(found_shape)[:4]}, expected "
                f"{'numbers' if kinds != 'U' else 'text'} of shape {shape}"
                + (f" (FID statistics are {FEATURES}-d Inception pool3 features)" if name in ("mu", "sigma") else "")
            )
        size = math.prod(shape) * dtype.itemsize
        data = member.read(size)
    if len(data) != size:
        raise UserError(f"{path} is not an FID statistics file: {name} holds {len(data):,} bytes, not {size:,}")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def read_stats_file(
    path: str | os.PathLike[str], key: bool = False, features: int = FEATURES
) -> tuple[FeatureStats, str | None]:
    """Statistics (and, with ``key``, the cache key string) from an ``.npz``, every field checked first.

    A regular file of at most :data:`STATS_FILE_LIMIT` bytes; ``mu`` (2048,) and ``sigma`` (2048, 2048) float
    arrays whose headers are checked before their data is read (a zip bomb claims any shape), finite, with a
    symmetric ``sigma``; ``num_images`` a non-negative integer scalar. A one-line UserError otherwise.
    """
    import zipfile

    from pggan.input_files import open_regular

    path = Path(path)
    try:
        with open_regular(path, STATS_FILE_LIMIT) as handle, zipfile.ZipFile(handle) as archive:
            mu = _read_member(archive, "mu", (features,), "fiu", path).astype(np.float64)
            sigma = _read_member(archive, "sigma", (features, features), "fiu", path).astype(np.float64)
            names = set(archive.namelist())
            count = _read_member(archive, "num_images", (), "iu", path) if "num_images.npy" in names else None
            saved_key = None
            if key and "key.npy" in names:
                saved_key = str(_read_member(archive, "key", (), "U", path)[()])
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path} is not an FID statistics file with mu and sigma ({reason})") from None
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise UserError(f"{path} is not an FID statistics file: mu or sigma holds NaN or infinite values")
    scale = float(np.abs(sigma).max()) or 1.0
    if not np.allclose(sigma, sigma.T, rtol=1e-6, atol=1e-9 * scale):
        raise UserError(f"{path} is not an FID statistics file: sigma is not symmetric (not a covariance)")
    num_images = int(count[()]) if count is not None else 0
    if num_images < 0:
        raise UserError(f"{path} is not an FID statistics file: num_images is {num_images}")
    return FeatureStats(mu, sigma, num_images), saved_key


def load_stats(path: str | os.PathLike[str], features: int = FEATURES) -> FeatureStats:
    """Statistics from an ``.npz`` with ``mu`` (2048,) and ``sigma`` (2048, 2048); see :func:`read_stats_file`.

    ``features`` other than 2048 is for tests of the distance on small statistics only.
    """
    return read_stats_file(path, features=features)[0]


# ---------------------------------------------------------------- images → statistics
def stats_of_batches(batches: Iterable[torch.Tensor], inception: Any, progress: Any = None) -> FeatureStats:
    """Feature statistics of uint8 image batches (B, C, H, W), any size: the network resizes to 299²."""
    accumulator = StatsAccumulator()
    for batch in batches:
        accumulator.add(inception.features(batch))
        if progress is not None:
            progress.update(batch.shape[0])
    return accumulator.result()


def _is_stats_file(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() == ".npz"


def image_set_statistics(
    side: Any,
    count: int,
    resolution: int,
    seed: int,
    device: torch.device,
    inception: Any,
    batch_size: int | None = None,
    progress: Any = None,
) -> FeatureStats:
    """Statistics of ``count`` images of an opened image set (``pggan.metrics.sources``), read as pggan-swd
    reads them: a subset chosen by ``seed`` or, for a checkpoint, the latents of ``seed``."""
    from pggan.metrics.sources import image_batches

    channels = side.channels if side.kind != "folder" and side.channels is not None else 3
    batches = image_batches(side, count, resolution, channels, seed, device)
    if batch_size is not None:
        batches = _rebatch(batches, batch_size)
    return stats_of_batches(batches, inception, progress)


def _rebatch(batches: Iterable[torch.Tensor], size: int) -> Iterable[torch.Tensor]:
    pending: list[torch.Tensor] = []
    held = 0
    for batch in batches:
        pending.append(batch)
        held += batch.shape[0]
        while held >= size:
            joined = torch.cat(pending)
            yield joined[:size]
            pending, held = [joined[size:]], held - size
    if held:
        yield torch.cat(pending)


def compare(
    real: str | os.PathLike[str],
    fake: str | os.PathLike[str],
    inception_path: str | os.PathLike[str] | None = None,
    num_images: int | None = None,
    resolution: int | None = None,
    seed: int = 0,
    device: str = "auto",
    batch_size: int | None = None,
    save_stats_path: str | os.PathLike[str] | None = None,
    json_path: str | os.PathLike[str] | None = None,
    allow_unverified: bool = False,
    progress: bool = True,
    features: int = FEATURES,
) -> dict[str, Any]:
    """Everything ``pggan-fid`` does: open both sides, embed the image sides, measure, write the outputs.

    A side that is an ``.npz`` is taken as statistics. ``save_stats_path`` keeps the statistics of the real
    side (or of the fake side when the real one was an ``.npz``), to be passed as a side next time.
    """
    from tqdm import tqdm

    from pggan.devices import resolve_device
    from pggan.metrics.sources import open_image_set

    if num_images is not None and num_images < 2:
        raise UserError("--num-images must be at least 2")
    if batch_size is not None and batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    paths = [str(real), str(fake)]
    for path in paths:
        if _is_stats_file(path) and not Path(path).is_file():
            raise UserError(f"not found: {path}")
    # Statistics files are read and checked first: a bad one stops the command before any image is embedded.
    preloaded = {i: load_stats(p, features) for i, p in enumerate(paths) if _is_stats_file(p)}
    sides = [None if _is_stats_file(p) else open_image_set(p) for p in paths]
    image_sides = [s for s in sides if s is not None]
    if resolution is None and image_sides:
        resolution = min(s.native_resolution for s in image_sides)
    if resolution is not None and (resolution < 1 or resolution & (resolution - 1)):
        raise UserError(f"--resolution must be a power of two, got {resolution}")
    counts = []  # a generator draws N; a dataset or folder gives all its images up to N
    for side in sides:
        wanted = num_images or DEFAULT_NUM_IMAGES
        counts.append(0 if side is None else wanted if side.count is None else min(wanted, side.count))
    inception = None
    if image_sides:
        if inception_path is None:
            raise UserError("--inception PATH (the Inception-v3 weights file) is needed to embed images")
        from pggan.metrics.inception import load_inception

        torch_device = resolve_device(device)
        inception = load_inception(inception_path, allow_unverified, torch_device)
    else:
        torch_device = torch.device("cpu")
    stats: list[FeatureStats] = []
    bar = tqdm(total=sum(counts), desc="FID", unit="img", disable=not progress or not image_sides)
    try:
        for index, (side, count) in enumerate(zip(sides, counts, strict=True)):
            if side is None:
                stats.append(preloaded[index])
            else:
                assert resolution is not None
                stats.append(image_set_statistics(side, count, resolution, seed, torch_device, inception,
                                                  batch_size, bar))  # fmt: skip
    finally:
        bar.close()
    fid = frechet_distance(stats[0].mu, stats[0].sigma, stats[1].mu, stats[1].sigma)
    if save_stats_path is not None:
        keep = 0 if sides[0] is not None else 1
        if sides[keep] is None:
            raise UserError("--save-stats: both sides are already statistics files")
        save_stats(stats[keep], save_stats_path, resolution=resolution, seed=seed,
                   inception_sha256=inception.sha256 if inception else "")  # fmt: skip
    report: dict[str, Any] = {
        "fid": fid,
        "num_images": stats[1].num_images,
        "num_real": stats[0].num_images,
        "real": paths[0],
        "fake": paths[1],
        "resolution": resolution,
        "seed": seed,
        "inception_sha256": inception.sha256 if inception else None,
        "comparable": inception.verified if inception else None,
    }
    if json_path is not None:
        from pggan.atomic import atomic_write_bytes

        text = json.dumps(report, indent=2) + "\n"
        atomic_write_bytes(json_path, lambda handle: handle.write(text.encode()))
    return report
