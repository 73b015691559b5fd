"""The one path from a generator to uint8 images: batching, one-face-per-call pictures, resizing for metrics.

``pggan-sample``, the video walks, the training grids, SWD and FID during training, and the checkpoint side of
``pggan-swd`` and ``pggan-fid`` all draw through here, with latents from the one seed rule
(:func:`pggan.pictures.latents.seed_latents`): metrics with ``--seed S`` score the faces of seeds
``S, S+1, …``, the faces ``pggan-sample --seed S`` shows, and the number a run logs in ``stats.jsonl`` is the
number ``pggan-swd DATASET CHECKPOINT`` reproduces.

Batched convolutions and matrix products round differently for different batch sizes (on this CPU a 512-wide
generator's uint8 images differ in a few pixels between batch 1 and batch 16). Pictures of chosen faces are
therefore drawn one latent per generator call (:func:`generate_faces_uint8`): a face's pixels then depend on
its seed alone, not on what else was asked for. Metrics keep one fixed batch (:data:`METRIC_BATCH_SIZE`), so
logged and recomputed scores agree bit for bit; their images equal the pictures' up to that rounding.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from pggan.errors import UserError
from pggan.pictures.latents import seed_latents, seed_range
from pggan.pixels import images_to_uint8

#: Images per generator call for metrics. Fixed, because a different batch may pick other kernels and change
#: the last bits of an image; one batch size everywhere keeps logged and recomputed scores equal.
METRIC_BATCH_SIZE = 64
#: Latents per generator call for pictures of chosen faces: one, so that a face never depends on its batch.
FACE_BATCH_SIZE = 1


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


def generate_faces_uint8(
    generator: torch.nn.Module,
    latents: torch.Tensor,
    resolution: int,
    alpha: float,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """All of ``latents``' images as one uint8 CPU tensor ``(N, C, R, R)``, one latent per generator call.

    What ``pggan-sample`` grids, PNGs and edits use (and the explore page): the image of a latent is bitwise the
    same alone, inside any list, and for any ``--batch-size``. On a 2-core CPU with paper widths one face per
    call took 1.1× the time of one batch at 1024², 1.2× at 256², 2.3× at 128² (``tools/bench_directions.py
    --resolution R`` prints it): little, for pictures of chosen faces.
    """
    return torch.cat(list(generate_uint8(generator, latents, resolution, alpha, FACE_BATCH_SIZE, device)))


def generate_seeded_uint8(
    generator: torch.nn.Module,
    num_images: int,
    seed: int,
    resolution: int,
    alpha: float,
    device: str | torch.device | None = None,
    out_resolution: int | None = None,
) -> Iterator[torch.Tensor]:
    """The images of seeds ``seed … seed+num_images-1``, :data:`METRIC_BATCH_SIZE` at a time, as metrics draw them."""
    seeds = seed_range(seed, num_images, limit=None)  # checked now, not at the first batch

    def batches() -> Iterator[torch.Tensor]:
        for start in range(0, len(seeds), METRIC_BATCH_SIZE):  # latents drawn per batch: 50,000 never sit in memory
            latents = seed_latents(seeds[start : start + METRIC_BATCH_SIZE], generator.latent_size)
            yield from generate_uint8(generator, latents, resolution, alpha, METRIC_BATCH_SIZE, device, out_resolution)

    return batches()
