"""The one path from a generator to uint8 images: batching, one-face-per-call pictures, resizing for metrics.

``pggan-sample``, the video walks, the training grids, SWD and FID during training, and the checkpoint side of
``pggan-swd`` and ``pggan-fid`` all draw through here, with latents from the one seed rule
(:func:`pggan.pictures.latents.seed_latents`): metrics with ``--seed S`` score the faces of seeds
``S, S+1, …``, the faces ``pggan-sample --seed S`` shows, and the number a run logs in ``stats.jsonl`` is the
number ``pggan-swd DATASET CHECKPOINT`` reproduces.

Batched convolutions and matrix products round differently for different batch sizes (on this CPU a 512-wide
generator's uint8 images differ in a few pixels between batch 1 and batch 16). Pictures of chosen faces are
therefore drawn one latent per generator call (:func:`generate_faces_uint8`): a face's pixels then depend on
its seed alone, not on what else was asked for. Metrics and a run's grids draw in batches of
:func:`generation_batch_size`: during training the training batch at that resolution (per process), at most
:data:`METRIC_BATCH_SIZE`, so that no generator call outside the step needs more memory than the step beside
it (a 1024² grid of 64 faces in one call took the process from 4.2 to 14.5 GB). A checkpoint records that
batch (``generation_batch``), and ``pggan-swd``/``pggan-fid`` on it draw with it, so logged and recomputed
scores agree bit for bit; their images equal the pictures' up to that rounding.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from pggan.errors import UserError
from pggan.pictures.latents import seed_latents, seed_range
from pggan.pixels import images_to_uint8

#: The most images per generator call for metrics and grids (what a checkpoint without ``generation_batch``, from
#: before it was recorded, was measured with). A different batch may pick other kernels and change the last bits
#: of an image: logged and recomputed scores use the same one.
METRIC_BATCH_SIZE = 64
#: Latents per generator call for pictures of chosen faces: one, so that a face never depends on its batch.
FACE_BATCH_SIZE = 1


def generation_batch_size(training_batch: int | None = None) -> int:
    """Images per generator call outside the training step: the (per-process) training batch at the resolution
    drawn, capped at :data:`METRIC_BATCH_SIZE`; the cap alone when there is no training batch (a checkpoint from
    before it was recorded, an imported network)."""
    if not training_batch:
        return METRIC_BATCH_SIZE
    return max(1, min(METRIC_BATCH_SIZE, int(training_batch)))


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
    batch_size: int = METRIC_BATCH_SIZE,
) -> Iterator[torch.Tensor]:
    """The images of seeds ``seed … seed+num_images-1``, ``batch_size`` at a time, as metrics draw them."""
    seeds = seed_range(seed, num_images, limit=None)  # checked now, not at the first batch
    if batch_size < 1:
        raise UserError(f"the generation batch must be at least 1, got {batch_size}")

    def batches() -> Iterator[torch.Tensor]:
        for start in range(0, len(seeds), batch_size):  # latents drawn per batch: 50,000 never sit in memory
            latents = seed_latents(seeds[start : start + batch_size], generator.latent_size)
            yield from generate_uint8(generator, latents, resolution, alpha, batch_size, device, out_resolution)

    return batches()
