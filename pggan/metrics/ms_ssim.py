"""MS-SSIM as the official release computes it (``metrics/ms_ssim.py``), vectorised in torch, and ``pggan-msssim``.

The paper's diversity figure (its Table 1): the mean multi-scale structural similarity of pairs of images. A
generator whose pairs score higher than real pairs do (``pggan-msssim DATASET``) draws too alike images; a collapsed
generator nears 1.

What is computed, per pair of uint8 images (the official ``msssim``, line by line):

- the images as floats, 5 levels; at each level a Gaussian window of ``min(11, height, width)`` taps whose σ shrinks
  with it (``size · 1.5 / 11``; even sizes sample the Gaussian at half-integers, as MATLAB's ``fspecial``), applied
  as a *valid* correlation (no padding) to x, y, x², y², xy;
- with ``c1 = (0.01·255)²``, ``c2 = (0.03·255)²``: ``cs = (2σxy + c2) / (σx² + σy² + c2)`` and
  ``ssim = (2μxμy + c1)/(μx² + μy² + c1) · cs``, each averaged over the valid pixels and the channels;
- between levels the 2×2 box average ``(x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2]) / 4``,
  which never looks past the border: it needs even sides, so each side must be a multiple of 16 (four halvings)
  and at least 16 (the fifth level is then 1×1). The official code fails or broadcasts a lone row on other sizes;
  pggan refuses them with one line. (The official file still defines its TF ancestor's reflect-padded 2×2 filter,
  ``downsample_filter``, but never uses it.)
- per-level values clipped at 0, then ``Π cs[0..3]^w[0..3] · ssim[4]^w[4]`` with the weights
  ``[0.0448, 0.2856, 0.3001, 0.2363, 0.1333]`` (they sum to 0.9999, as in the paper and the MATLAB code).

Pairs are formed as the official ``API.feed`` forms them: image 2i with image 2i + 1 of the stream (``images[0::2]``
with ``images[1::2]`` of every even minibatch), and the result is the mean over all pairs. pggan carries an odd
image over to the next batch, so the pairs do not depend on how the stream is batched.

Arithmetic is float64 throughout. The official code casts the images to float32, so its products and (through
scipy) the FFTs of its images run in single precision; it differs from float64 by a few 1e-6. The window is
applied as two 1-D passes of shifted multiply-adds (exactly the 2-D window's sums, in another order: the Gaussian
is separable), on the CPU in row strips that stay in cache; the official code uses FFT convolutions. Tests compare
with a float64 transcription of the official code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from pggan import defaults
from pggan.errors import UserError

WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
LEVELS = len(WEIGHTS)
FILTER_SIZE = 11
FILTER_SIGMA = 1.5
K1 = 0.01
K2 = 0.03
MAX_VALUE = 255.0
#: Four 2×2 halvings need sides divisible by 16; the fifth level of a 16×16 image is 1×1.
SIDE_MULTIPLE = 2 ** (LEVELS - 1)
MIN_SIZE = SIDE_MULTIPLE
DEFAULT_NUM_IMAGES = defaults.MSSSIM_IMAGES
PIXELS_PER_CHUNK = 1 << 21  # pixels (pairs × channels × H × W) per chunk: x and y in float64, 32 MiB (GPU: ×~12)
STRIP_ELEMENTS = 1 << 16  # CPU: values blurred per strip, so that a strip's passes stay in the core's cache

_DTYPE = torch.float64


def size_problem(height: int, width: int) -> str | None:
    """Why MS-SSIM cannot measure ``height``×``width`` images, or None when it can."""
    if height < MIN_SIZE or width < MIN_SIZE:
        return f"MS-SSIM needs images of at least {MIN_SIZE}×{MIN_SIZE} (five levels, each half the last), " \
               f"got {height}×{width}"  # fmt: skip
    if height % SIDE_MULTIPLE or width % SIDE_MULTIPLE:
        return f"MS-SSIM needs image sides divisible by {SIDE_MULTIPLE} (four 2×2 halvings), got {height}×{width}"
    return None


def check_size(height: int, width: int) -> None:
    """A UserError naming the minimum when MS-SSIM cannot measure images of this size."""
    problem = size_problem(height, width)
    if problem is not None:
        raise UserError(problem)


def window_taps(size: int, sigma: float) -> torch.Tensor:
    """The 1-D factor of the official ``_FSpecialGauss(size, sigma)``, normalised: its outer square is the window.

    Odd sizes sample the Gaussian at -r … r, even ones at -r + ½ … r - ½ (``fspecial``'s centring).
    """
    radius = size // 2
    offset = 0.5 if size % 2 == 0 else 0.0
    x = torch.arange(size, dtype=_DTYPE) + (offset - radius)
    taps = torch.exp(-(x * x) / (2.0 * sigma**2))
    return taps / taps.sum()


def _level_window(height: int, width: int) -> list[float]:
    size = min(FILTER_SIZE, height, width)
    sigma = size * FILTER_SIGMA / FILTER_SIZE  # the official's expression, so 11 taps give σ = 1.5 exactly
    return window_taps(size, sigma).tolist()


def _blur_block(x: torch.Tensor, taps: list[float]) -> torch.Tensor:
    """Valid correlation of the last two dims with ``outer(taps, taps)``: a vertical then a horizontal pass."""
    k = len(taps)
    rows, cols = x.shape[-2] - k + 1, x.shape[-1] - k + 1
    vertical = x[..., 0:rows, :] * taps[0]
    for i in range(1, k):
        vertical.add_(x[..., i : i + rows, :], alpha=taps[i])
    out = vertical[..., 0:cols] * taps[0]
    for i in range(1, k):
        out.add_(vertical[..., i : i + cols], alpha=taps[i])
    return out


def _strip_sums(x: torch.Tensor, y: torch.Tensor, taps: list[float]) -> tuple[torch.Tensor, torch.Tensor]:
    """Sums over the valid pixels of the ssim and cs maps of float64 planes ``(G, rows + k - 1, W)``: ``(G,)`` each.

    The official ``_SSIMForMultiScale`` arithmetic; σx² + σy² is only ever needed as a sum, so x² + y² is blurred as
    one map (four maps, not five).
    """
    maps = torch.stack((x, y, x * x + y * y, x * y))
    mu1, mu2, squares, cross = _blur_block(maps, taps).unbind(0)
    del maps
    c1, c2 = (K1 * MAX_VALUE) ** 2, (K2 * MAX_VALUE) ** 2
    mu12 = mu1 * mu2
    v1 = cross.sub_(mu12).mul_(2.0).add_(c2)  # 2·σxy + c2
    luminance = mu1.mul_(mu1).addcmul_(mu2, mu2)  # μx² + μy²
    v2 = squares.sub_(luminance).add_(c2)  # σx² + σy² + c2
    cs_sum = torch.div(v1, v2).sum(dim=(1, 2))
    ssim_map = mu12.mul_(2.0).add_(c1).mul_(v1).div_(luminance.add_(c1).mul_(v2))
    return ssim_map.sum(dim=(1, 2)), cs_sum


def _level(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The official ``_SSIMForMultiScale`` of float64 pairs ``(P, C, H, W)``: per-pair mean ssim and cs ``(P,)``.

    On the CPU the planes are worked through in groups of whole planes or strips of rows of about
    :data:`STRIP_ELEMENTS` values, from the four maps to the sums, so that every pass runs in the core's cache
    (a pass over whole 1024² maps would stream them from memory some forty times); a GPU takes them whole.
    """
    pairs, channels, height, width = x.shape
    taps = _level_window(height, width)
    k = len(taps)
    rows_out, cols_out = height - k + 1, width - k + 1
    planes = pairs * channels
    xs, ys = x.reshape(planes, height, width), y.reshape(planes, height, width)
    if x.device.type != "cpu":
        group, rows = planes, rows_out
    elif height * width <= STRIP_ELEMENTS:
        group, rows = max(1, STRIP_ELEMENTS // (height * width)), rows_out
    else:
        group, rows = 1, max(1, STRIP_ELEMENTS // width - (k - 1))
    ssim_sum = x.new_zeros(planes)
    cs_sum = x.new_zeros(planes)
    for g in range(0, planes, group):
        for r in range(0, rows_out, rows):
            end = min(rows_out, r + rows) + k - 1
            ssim, cs = _strip_sums(xs[g : g + group, r:end], ys[g : g + group, r:end], taps)
            ssim_sum[g : g + group] += ssim
            cs_sum[g : g + group] += cs
    count = channels * rows_out * cols_out
    return ssim_sum.view(pairs, channels).sum(dim=1) / count, cs_sum.view(pairs, channels).sum(dim=1) / count


def _halve(x: torch.Tensor) -> torch.Tensor:
    """The official ``_HoxDownsample``: the mean of each 2×2 block, in its order of additions."""
    return (x[..., 0::2, 0::2] + x[..., 1::2, 0::2] + x[..., 0::2, 1::2] + x[..., 1::2, 1::2]) * 0.25


def _check_pairs(a: torch.Tensor, b: torch.Tensor) -> None:
    for images in (a, b):
        if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.ndim != 4:
            got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
            raise UserError(f"MS-SSIM needs uint8 image tensors shaped (N, C, H, W), got {got}")
    if a.shape != b.shape:
        raise UserError(f"MS-SSIM compares images of one shape, got {tuple(a.shape)} and {tuple(b.shape)}")
    check_size(a.shape[-2], a.shape[-1])


@torch.no_grad()
def ms_ssim_pairs(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """MS-SSIM of each pair ``(a[i], b[i])`` of uint8 images ``(P, C, H, W)``: float64 ``(P,)`` on their device.

    Pairs are processed in chunks of about :data:`PIXELS_PER_CHUNK` pixels, so memory stays bounded.
    """
    _check_pairs(a, b)
    per_pair = a.shape[1] * a.shape[2] * a.shape[3]
    step = max(1, PIXELS_PER_CHUNK // per_pair)
    weights = torch.tensor(WEIGHTS, dtype=_DTYPE, device=a.device)
    scores = [torch.zeros(0, dtype=_DTYPE, device=a.device)]
    for start in range(0, a.shape[0], step):
        x = a[start : start + step].to(_DTYPE)
        y = b[start : start + step].to(_DTYPE)
        ssims, css = [], []
        for level in range(LEVELS):
            ssim, cs = _level(x, y)
            ssims.append(ssim)
            css.append(cs)
            if level + 1 < LEVELS:  # the official halves once more after the last level; nothing reads it
                x, y = _halve(x), _halve(y)
        cs_levels = torch.stack(css[:-1]).clamp_min(0.0)  # clipped at 0: a negative base to a fractional power is NaN
        last = ssims[-1].clamp_min(0.0)
        product = torch.prod(cs_levels ** weights[:-1, None], dim=0) * last ** weights[-1]
        scores.append(product)
    return torch.cat(scores)


def ms_ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """The official ``msssim(a, b)`` for uint8 tensors ``(P, C, H, W)``: the mean over the P pairs."""
    return float(ms_ssim_pairs(a, b).mean())


# ---------------------------------------------------------------- streams of images
@dataclass
class MSSSIMResult:
    """The mean MS-SSIM of ``num_pairs`` pairs of consecutive images."""

    score: float
    num_pairs: int


class PairAccumulator:
    """Sums per-pair MS-SSIM over a stream of uint8 batches, pairing image 2i with 2i + 1 across batch borders."""

    def __init__(self, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.total = 0.0
        self.num_pairs = 0
        self._shape: tuple[int, ...] | None = None
        self._pending: torch.Tensor | None = None  # the odd image of the last batch, waiting for its partner

    def add(self, batch: torch.Tensor) -> None:
        if not isinstance(batch, torch.Tensor) or batch.dtype != torch.uint8 or batch.ndim != 4:
            got = f"{batch.dtype} {tuple(batch.shape)}" if isinstance(batch, torch.Tensor) else type(batch).__name__
            raise UserError(f"MS-SSIM needs uint8 image tensors shaped (N, C, H, W), got {got}")
        if self._shape is None:
            check_size(batch.shape[-2], batch.shape[-1])
            self._shape = tuple(batch.shape[1:])
        elif tuple(batch.shape[1:]) != self._shape:
            raise UserError(f"images of one set must share a shape: got {tuple(batch.shape[1:])} after {self._shape}")
        batch = batch.to(self.device, non_blocking=True)
        if self._pending is not None:
            batch = torch.cat((self._pending, batch))
            self._pending = None
        if batch.shape[0] % 2:
            self._pending, batch = batch[-1:], batch[:-1]
        if batch.shape[0]:
            self.total += float(ms_ssim_pairs(batch[0::2], batch[1::2]).sum())
            self.num_pairs += batch.shape[0] // 2

    def result(self) -> MSSSIMResult:
        if self._pending is not None:
            raise UserError("MS-SSIM pairs consecutive images: got an odd number of images")
        if self.num_pairs == 0:
            raise UserError("MS-SSIM needs at least 2 images (one pair)")
        return MSSSIMResult(self.total / self.num_pairs, self.num_pairs)


def ms_ssim_of_batches(
    batches: Iterable[torch.Tensor], device: str | torch.device = "cpu", progress: Any = None
) -> MSSSIMResult:
    """Mean MS-SSIM of the pairs (2i, 2i + 1) of a stream of uint8 batches; ``progress``: a tqdm bar (images)."""
    accumulator = PairAccumulator(device)
    for batch in batches:
        accumulator.add(batch)
        if progress is not None:
            progress.update(batch.shape[0])
    return accumulator.result()


# ---------------------------------------------------------------- pggan-msssim
def check_num_images(num_images: int, option: str = "--num-images") -> None:
    """Pairs need an even count of at least 2 (the official API asserts ``num_images % 2 == 0``)."""
    if num_images < 2:
        raise UserError(f"{option} must be at least 2 (one pair), got {num_images}")
    if num_images % 2:
        raise UserError(f"{option} must be even: MS-SSIM pairs consecutive images, got {num_images}")


def measure(
    source: str | os.PathLike[str],
    num_images: int | None = None,
    seed: int = 0,
    resolution: int | None = None,
    device: str = "auto",
    json_path: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Everything ``pggan-msssim`` does: open the source as ``pggan-swd`` does, draw or read, measure, write JSON.

    A dataset or folder gives a random subset chosen by ``seed`` (all of it, rounded down to an even count, by
    default up to :data:`DEFAULT_NUM_IMAGES`); a checkpoint or run draws the latents of ``seed``.
    """
    from tqdm import tqdm

    from pggan.devices import resolve_device
    from pggan.metrics.sources import image_batches, open_image_set

    if num_images is not None:
        check_num_images(num_images)
    torch_device = resolve_device(device)
    side = open_image_set(source)
    if side.count is not None and side.count < 2:
        raise UserError(f"MS-SSIM needs at least 2 images (one pair); {source} holds {side.count}")
    if resolution is None:
        resolution = side.native_resolution
    if resolution < 1 or resolution & (resolution - 1):
        raise UserError(f"--resolution must be a power of two, got {resolution}")
    check_size(resolution, resolution)
    if num_images is None:
        num_images = DEFAULT_NUM_IMAGES if side.count is None else min(DEFAULT_NUM_IMAGES, side.count) // 2 * 2
    channels = side.channels if side.channels is not None else 3
    batches = image_batches(side, num_images, resolution, channels, seed, torch_device)
    bar = tqdm(total=num_images, desc="MS-SSIM", unit="img", disable=not progress)
    try:
        result = ms_ssim_of_batches(batches, torch_device, bar)
    finally:
        bar.close()
    report: dict[str, Any] = {
        "msssim": result.score,
        "num_pairs": result.num_pairs,
        "num_images": 2 * result.num_pairs,
        "source": str(source),
        "kind": side.kind,
        "resolution": resolution,
        "channels": channels,
        "seed": seed,
    }
    if json_path is not None:
        from pggan.atomic import atomic_write_bytes

        text = json.dumps(report, indent=2) + "\n"
        atomic_write_bytes(json_path, lambda handle: handle.write(text.encode()))
    return report
