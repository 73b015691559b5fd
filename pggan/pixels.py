"""The one conversion each way between network images (float in [-1, 1]) and pixels (uint8 in [0, 255]).

Training reads uint8 batches and feeds floats; grids, PNGs, videos, SWD and FID turn generator output back into
uint8. Doing both in one place keeps what a metric scores identical to what a user sees in a PNG.
"""

from __future__ import annotations

import torch


def images_to_uint8(images: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] → uint8 in [0, 255], same shape, on the CPU.

    Rounds to nearest (not truncation, which would darken every image by half a level) and clamps, because
    generator outputs overshoot [-1, 1], as the official code does. NaNs become mid-gray rather than undefined
    bytes.
    """
    if images.dtype == torch.uint8:
        return images.cpu()
    scaled = (torch.nan_to_num(images.detach().float(), nan=0.0) + 1.0) * 127.5
    return scaled.round().clamp(0, 255).to(torch.uint8).cpu()


def to_float_images(
    batch_uint8: torch.Tensor,
    device: torch.device | str | None = None,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> torch.Tensor:
    """uint8 images → float32 in [-1, 1] (x / 127.5 − 1), moved to ``device`` as uint8 first (4× fewer bytes)."""
    if device is not None:
        batch_uint8 = batch_uint8.to(device, non_blocking=True)
    return batch_uint8.to(dtype=torch.float32, memory_format=memory_format).div_(127.5).sub_(1.0)
