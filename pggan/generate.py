"""The one path from a generator to uint8 images: the latent-seed rule, batching, and resizing for metrics.

``pggan-sample``, the video walks, SWD and FID during training, and the checkpoint side of ``pggan-swd`` and
``pggan-fid`` all draw through here, so that one checkpoint, seed and image count give the same images
everywhere: the number a run logs in ``stats.jsonl`` is the number ``pggan-swd DATASET CHECKPOINT`` reproduces,
and image k of ``pggan-sample --seed S --outdir`` is image k those metrics score with ``--seed S``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from pggan.errors import UserError
from pggan.pixels import images_to_uint8

#: Images per generator call for metrics. Fixed, because a different batch may pick other kernels and change
#: the last bits of an image; one batch size everywhere keeps logged and recomputed scores equal.
METRIC_BATCH_SIZE = 64


def random_latents(count: int, latent_size: int, seed: int) -> torch.Tensor:
    """The seed rule: ``count`` Gaussian latents from one CPU generator seeded with ``seed``, in one draw.

    A CPU generator makes them identical on every machine and device.
    """
    rng = torch.Generator(device="cpu").manual_seed(int(seed))
    return torch.randn(count, latent_size, generator=rng)


def resize_generated(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """Float images to ``resolution``: 2×2 box filters down (as the dataset pyramid is made), nearest up."""
    size = images.shape[-1]
    while size > resolution:
        images = torch.nn.functional.avg_pool2d(images, 2)
        size //= 2
    if size < resolution:
        images = torch.nn.functional.interpolate(images, scale_factor=resolution // size, mode="nearest")
    return images


def generate_uint8(
    generator: torch.nn.Module,
    latents: torch.Tensor,
    resolution: int,
    alpha: float,
    batch_size: int = METRIC_BATCH_SIZE,
    device: str | torch.device | None = None,
    out_resolution: int | None = None,
) -> Iterator[torch.Tensor]:
    """Yield uint8 CPU image batches ``(B, C, R, R)`` for ``latents``, ``batch_size`` at a time.

    ``resolution`` and ``alpha`` say where in its growth the generator is run; ``out_resolution`` (default: the
    same) resizes the float images before rounding. Batches bound memory (a 1024² batch of 64 does not fit most
    machines); yielding lets callers stream to an encoder or a metric without holding every image.
    """
    if batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {batch_size}")
    if device is None:
        device = next(generator.parameters()).device
    with torch.inference_mode():
        for start in range(0, latents.shape[0], batch_size):
            images = generator(latents[start : start + batch_size].to(device), resolution, alpha).float()
            if not bool(torch.isfinite(images).all()):  # would become grey pixels, or metric scores of 1e10
                raise UserError(
                    "the generator's output holds NaN or infinite values (its weights overflow): "
                    "no image can be written or scored from it"
                )
            if out_resolution is not None and out_resolution != images.shape[-1]:
                images = resize_generated(images, out_resolution)
            yield images_to_uint8(images)


def generate_seeded_uint8(
    generator: torch.nn.Module,
    num_images: int,
    seed: int,
    resolution: int,
    alpha: float,
    device: str | torch.device | None = None,
    out_resolution: int | None = None,
) -> Iterator[torch.Tensor]:
    """``num_images`` images of latents ``random_latents(num_images, latent_size, seed)``, as metrics draw them."""
    latents = random_latents(num_images, generator.latent_size, seed)
    return generate_uint8(generator, latents, resolution, alpha, METRIC_BATCH_SIZE, device, out_resolution)
