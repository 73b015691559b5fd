"""What every metric reads: a prepared dataset, an image folder or zip, or a checkpoint, as uint8 batches.

Each side of a comparison is opened once (cheap: headers, metadata), then streamed in batches so that 16k
megapixel images never sit in memory at once. Sets are brought to one resolution and channel count: a dataset
reads the pyramid level itself; a folder (or .zip) is read by ``pggan-prepare``'s own reader
(``pggan.data.image_files``: same file list, EXIF orientation, 16-bit scaling, centre crop and Lanczos resize), so
a folder scores as the dataset made from it; a checkpoint's EMA generator draws through
``pggan.pictures.generate`` (the seed rule training uses) at its own resolution and is box-filtered down or
nearest-upsampled. ``pggan-swd`` (:mod:`pggan.metrics.swd_command`), ``pggan-fid``, ``pggan-msssim`` and the
training metrics all read their images through here.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pggan.data.image_files import (
    IMAGE_EXTENSIONS,
    ImageItem,
    SkipImage,
    list_images,
    load_square,
    probe_image,
    read_bytes,
)
from pggan.defaults import SWD_IMAGES
from pggan.errors import UserError
from pggan.metrics import swd

CHECKPOINT_SUFFIXES = {".pt", ".pth"}
DEFAULT_NUM_IMAGES = SWD_IMAGES  # the paper's
_SUBSET_STREAM = 0x5EED


@dataclass
class ImageSet:
    """One side of a comparison. ``count`` is None for a generator (it draws as many as asked)."""

    path: Path
    kind: str  # "dataset" | "folder" | "checkpoint"
    native_resolution: int
    channels: int | None  # None: a folder that can be read either way
    count: int | None
    files: list[ImageItem] = field(default_factory=list)  # a folder's images
    checkpoint: dict[str, Any] | None = None  # a checkpoint's loaded state

    def describe(self) -> str:
        size = "any number of" if self.count is None else f"{self.count}"
        return f"{self.kind} {self.path} ({size} images, {self.native_resolution}²)"


def _largest_power_of_two(n: int) -> int:
    return 1 << (max(1, n).bit_length() - 1)


def _subset_seed(seed: int) -> int:
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, _SUBSET_STREAM]).generate_state(1)[0])


def _open_folder(path: Path) -> ImageSet:
    files, _ = list_images([str(path)])  # pggan-prepare's list: same files, same order
    short_side, gray = None, True
    for item in files:
        try:
            width, height, item_gray = probe_image(item)
        except SkipImage as exc:
            raise UserError(f"cannot read image {item.name} ({exc})") from None
        gray = gray and item_gray
        short_side = min(width, height) if short_side is None else min(short_side, width, height)
    native = _largest_power_of_two(short_side or 1)
    return ImageSet(path, "folder", native, 1 if gray else None, len(files), files=files)


def _open_checkpoint(path: Path) -> ImageSet:
    import sys

    from pggan.model.checkpoint import image_channels, load_checkpoint_or_run, position, require_generator

    state = load_checkpoint_or_run(path, warn=lambda line: print(line, file=sys.stderr))
    require_generator(state, path)
    return ImageSet(path, "checkpoint", position(state)[0], image_channels(state), None, checkpoint=state)


def _open_dataset(path: Path) -> ImageSet:
    from pggan.data.loader import PyramidDataset

    probe = PyramidDataset(str(path), 4)  # the smallest level always exists; it tells the others
    native = max(probe.resolutions)
    sample = probe[0]
    return ImageSet(path, "dataset", native, int(sample.shape[0]), len(probe))


def open_image_set(path: str | os.PathLike[str]) -> ImageSet:
    """Recognise what ``path`` is: an LMDB dataset dir, a run dir or checkpoint file, a folder or .zip of images."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"not found: {path}")
    if path.is_file():
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            raise UserError(f"{path} is a single image; give the folder that holds the set")
        if path.suffix.lower() == ".zip":
            return _open_folder(path)
        return _open_checkpoint(path)
    if (path / "data.mdb").is_file():
        return _open_dataset(path)
    from pggan.model.checkpoint import run_checkpoints

    if run_checkpoints(path):
        return _open_checkpoint(path)
    return _open_folder(path)


def _folder_batches(files: list[ImageItem], resolution: int, channels: int, batch: int) -> Iterator[torch.Tensor]:
    for start in range(0, len(files), batch):
        arrays = []
        for item in files[start : start + batch]:
            try:
                array = load_square(read_bytes(item), resolution, channels, min_size=1)
            except SkipImage as exc:
                raise UserError(f"cannot read image {item.name} ({exc})") from None
            arrays.append(array.transpose(2, 0, 1))
        yield torch.from_numpy(np.stack(arrays))


def _dataset_batches(path: Path, indices: list[int], resolution: int, batch: int) -> Iterator[torch.Tensor]:
    from pggan.data.loader import PyramidDataset

    dataset = PyramidDataset(str(path), resolution)
    for start in range(0, len(indices), batch):
        yield torch.as_tensor(dataset.get_batch(indices[start : start + batch]))


def _checkpoint_batches(
    state: dict[str, Any], num: int, resolution: int, seed: int, device: torch.device
) -> Iterator[torch.Tensor]:
    from pggan.model.checkpoint import build_generator, generation_batch, position
    from pggan.pictures.generate import generate_seeded_uint8, generation_batch_size

    generator = build_generator(state, ema=True, device=device)
    own_resolution, alpha = position(state)
    # The batch the run drew its logged metrics with (its training batch there): the same images, the same score.
    batch = generation_batch_size(generation_batch(state))
    yield from generate_seeded_uint8(generator, num, seed, own_resolution, alpha, device, resolution, batch)


def image_batches(
    image_set: ImageSet,
    num_images: int,
    resolution: int,
    channels: int,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> Iterator[torch.Tensor]:
    """``num_images`` uint8 images (B, channels, resolution, resolution) from one side, in batches.

    A dataset or folder larger than ``num_images`` gives a random subset chosen by ``seed`` (datasets are
    often ordered); a checkpoint draws the faces of seeds ``seed … seed+num_images-1`` (the one seed rule,
    ``pggan.pictures.latents.seed_latents``).
    """
    batch = max(1, swd.PIXELS_PER_BATCH // (4 * channels * resolution * resolution))
    if image_set.kind == "checkpoint":
        if image_set.channels != channels:
            raise UserError(f"{image_set.path} makes {image_set.channels}-channel images, the other side {channels}")
        state = image_set.checkpoint or {}
        return _checkpoint_batches(state, num_images, resolution, seed, torch.device(device))
    assert image_set.count is not None
    if num_images > image_set.count:
        raise UserError(f"{image_set.describe()} has fewer than {num_images} images; lower --num-images")
    order = torch.randperm(image_set.count, generator=torch.Generator().manual_seed(_subset_seed(seed)))
    indices = sorted(order[:num_images].tolist())
    if image_set.kind == "folder":
        return _folder_batches([image_set.files[i] for i in indices], resolution, channels, batch)
    if image_set.channels != channels:
        raise UserError(f"{image_set.path} holds {image_set.channels}-channel images, the other side {channels}")
    if resolution > image_set.native_resolution:
        raise UserError(f"{image_set.path} goes up to {image_set.native_resolution}², not {resolution}²")
    return _dataset_batches(image_set.path, indices, resolution, batch)
