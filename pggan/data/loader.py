"""Reading a pggan-prepare dataset: one pyramid level as a Dataset, and the exact, resumable batch stream.

The batch stream is a pure function of (start, batch size, seed, rank, world
size): the global sample order is the concatenation over epochs of
:func:`epoch_order` permutations, global batch ``k`` covers stream positions
``[start + k·B, start + (k+1)·B)``, and each rank takes its contiguous slice.
Resuming at ``start = images shown`` therefore continues the very same stream,
N DDP ranks together see exactly what one process would, and loader worker
processes only change speed, never content.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lmdb
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from pggan.data.pyramid import decode_record_into, record_key, shared_env
from pggan.data.pyramid import read_meta as _read_meta
from pggan.errors import UserError
from pggan.pixels import to_float_images  # re-exported: the loader's batches become floats there

__all__ = [
    "BatchStream",
    "PyramidDataset",
    "epoch_order",
    "make_batch_loader",
    "read_meta",
    "to_float_images",
]

_MASK64 = (1 << 64) - 1


def read_meta(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The dataset's ``meta`` record; UserError for a missing path, a non-dataset, or an unfinished dataset."""
    return _read_meta(path)


class PyramidDataset(Dataset):
    """One level of a pggan-prepare dataset: ``ds[i]`` is a uint8 tensor (C, R, R).

    The LMDB environment is opened lazily and reopened whenever the process id
    changes, so a dataset object may be created before DataLoader workers fork
    or DDP processes start, and every process gets its own read-only handle.
    """

    def __init__(self, path: str | os.PathLike[str], resolution: int) -> None:
        self.path = Path(path)
        self.meta = read_meta(self.path)
        self.resolutions: list[int] = [int(r) for r in self.meta["resolutions"]]
        if resolution not in self.resolutions:
            raise UserError(
                f"{self.path} has no {resolution}×{resolution} level (stored levels: "
                f"{', '.join(str(r) for r in self.resolutions)})"
            )
        self.resolution = int(resolution)
        self.channels = int(self.meta["channels"])
        self.count = int(self.meta["count"])
        self.encoding = str(self.meta["encoding"][str(resolution)])
        self._env: Any = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return self.count

    def _environment(self) -> Any:
        if self._env is None or self._pid != os.getpid():
            self._env = shared_env(self.path)  # after a fork, the inherited handle is dropped, never shared
            self._pid = os.getpid()
        return self._env

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_env"], state["_pid"] = None, None
        return state

    def __getitem__(self, index: int) -> torch.Tensor:
        index = int(index)
        if index < 0:
            index += self.count
        if not 0 <= index < self.count:
            raise IndexError(f"index {index} out of range for a dataset of {self.count} images")
        return self.get_batch([index])[0]

    def _get(self, txn: Any, key: bytes) -> Any:
        """One record; a corrupted LMDB page becomes a one-line error naming the dataset, not a crash."""
        try:
            return txn.get(key)
        except lmdb.Error as exc:
            reason = str(exc).splitlines()[0][:160]
            raise UserError(
                f"{self.path} is damaged: record {key.decode()} cannot be read ({reason}). Copy it again, or "
                f"rebuild it with pggan-prepare SOURCE... --out {self.path} --resolution R --overwrite"
            ) from None

    def get_batch(self, indices: Sequence[int] | torch.Tensor, flip: Sequence[bool] | None = None) -> torch.Tensor:
        """Images ``indices`` as one uint8 tensor (N, C, R, R), read in a single LMDB transaction.

        ``flip`` (one bool per index) mirrors those images horizontally. All the
        per-image work is numpy, never torch ops: small torch ops wake torch's
        thread pool, which on a busy machine costs milliseconds per batch.
        """
        index_list = np.asarray(indices, dtype=np.int64).reshape(-1).tolist()
        r, c = self.resolution, self.channels
        batch = torch.empty(len(index_list), c, r, r, dtype=torch.uint8)
        out = batch.numpy()
        with self._environment().begin(buffers=True) as txn:
            for slot, index in enumerate(index_list):
                if not 0 <= index < self.count:
                    raise IndexError(f"index {index} out of range for a dataset of {self.count} images")
                record = self._get(txn, record_key(r, index))
                if record is None:
                    raise UserError(f"{self.path} is damaged: record {record_key(r, index).decode()} is missing")
                try:
                    decode_record_into(record, self.encoding, out[slot])
                except ValueError as exc:
                    raise UserError(f"{self.path} is damaged: record {record_key(r, index).decode()}: {exc}") from None
        if flip is not None:
            flipped = np.flatnonzero(np.asarray(flip, dtype=bool).reshape(-1))
            if flipped.size:
                out[flipped] = out[flipped][..., ::-1]
        return batch


def _mix_seed(seed: int, epoch: int) -> int:
    """A well-mixed 64-bit generator seed from (seed, epoch) (SplitMix64 finaliser), the same on every machine."""
    z = (int(seed) * 0x9E3779B97F4A7C15 + (int(epoch) + 1) * 0xD1B54A32D192ED03) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def epoch_order(count: int, seed: int, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Epoch ``epoch``'s permutation of ``range(count)`` and its per-index mirror flags; deterministic everywhere."""
    generator = torch.Generator(device="cpu")
    generator.manual_seed(_mix_seed(seed, epoch))
    permutation = torch.randperm(count, generator=generator)
    mirror = torch.rand(count, generator=generator) < 0.5
    return permutation, mirror


class _StreamPlan:
    """Which dataset indices (and flips) make up global batch ``k`` for one rank; pure arithmetic, in numpy."""

    def __init__(self, count: int, batch_size: int, start: int, seed: int, rank: int, world_size: int) -> None:
        if batch_size < 1 or world_size < 1 or batch_size % world_size:
            raise UserError(f"batch size {batch_size} is not divisible by the number of processes ({world_size})")
        if not 0 <= rank < world_size:
            raise UserError(f"rank {rank} is outside 0..{world_size - 1}")
        if start < 0:
            raise UserError(f"stream start must be >= 0, got {start}")
        self.count, self.batch_size, self.start, self.seed = count, batch_size, start, seed
        self.local = batch_size // world_size
        self.offset = rank * self.local
        self._orders: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def _order(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        if epoch not in self._orders:
            if len(self._orders) >= 4:
                self._orders.pop(min(self._orders))
            permutation, mirror = epoch_order(self.count, self.seed, epoch)
            self._orders[epoch] = (permutation.numpy(), mirror.numpy())
        return self._orders[epoch]

    def batch(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        first = self.start + k * self.batch_size + self.offset
        positions = np.arange(first, first + self.local, dtype=np.int64)
        epochs, offsets = positions // self.count, positions % self.count
        indices = np.empty(self.local, dtype=np.int64)
        flips = np.empty(self.local, dtype=bool)
        for epoch in np.unique(epochs).tolist():
            where = epochs == epoch
            permutation, mirror = self._order(epoch)
            indices[where] = permutation[offsets[where]]
            flips[where] = mirror[indices[where]]
        return indices, flips


class BatchStream:
    """This rank's uint8 batches (B/W, C, R, R) of the global stream, forever, in this process.

    ``first`` and ``step`` pick every ``step``-th global batch starting at
    ``first``: a DataLoader worker ``w`` of ``n`` uses (w, n).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        resolution: int,
        batch_size: int,
        start: int = 0,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        mirror: bool = False,
        first: int = 0,
        step: int = 1,
    ) -> None:
        self.dataset = PyramidDataset(path, resolution)
        self.plan = _StreamPlan(len(self.dataset), batch_size, start, seed, rank, world_size)
        self.mirror = mirror
        self._batches = itertools.count(first, step)

    def read(self, k: int) -> torch.Tensor:
        """Global batch ``k``'s slice for this rank (mirror applied)."""
        indices, flips = self.plan.batch(k)
        return self.dataset.get_batch(indices, flips if self.mirror else None)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self

    def __next__(self) -> torch.Tensor:
        return self.read(next(self._batches))


class _StreamDataset(IterableDataset):
    """Worker ``w`` of ``n`` yields global batches w, w+n, w+2n, ...; DataLoader's round-robin restores the order."""

    def __init__(self, **stream_args: Any) -> None:
        super().__init__()
        self.stream_args = stream_args
        BatchStream(**stream_args)  # fail fast, in the parent, on a bad path or batch size

    def __iter__(self) -> Iterator[torch.Tensor]:
        info = get_worker_info()
        first, step = (info.id, info.num_workers) if info is not None else (0, 1)
        return BatchStream(**self.stream_args, first=first, step=step)


class BatchLoader:
    """The iterator returned by :func:`make_batch_loader`; ``close()`` stops its worker processes."""

    def __init__(self, stream: Iterator[torch.Tensor], pin_memory: bool, loader: DataLoader | None = None) -> None:
        self._stream = stream
        self._pin = pin_memory and loader is None and torch.cuda.is_available()
        self._loader = loader

    def __iter__(self) -> BatchLoader:
        return self

    def __next__(self) -> torch.Tensor:
        try:
            batch = next(self._stream)
        except UserError as exc:  # from a worker process, re-raised with its traceback as the message
            text = str(exc).strip()
            if text.startswith("Caught ") and "UserError: " in text:
                raise UserError(text.rpartition("UserError: ")[2].splitlines()[0]) from None
            raise
        return batch.pin_memory() if self._pin else batch

    def close(self) -> None:
        """Shut down loader workers now (they would otherwise live as long as this object)."""
        shutdown = getattr(self._stream, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        self._stream = iter(())
        self._loader = None


def make_batch_loader(
    path: str | os.PathLike[str],
    resolution: int,
    batch_size: int,
    start: int,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
    num_workers: int = 0,
    mirror: bool = False,
    pin_memory: bool = False,
) -> BatchLoader:
    """An endless iterator of this rank's uint8 batches (batch_size // world_size, C, R, R).

    The output depends only on (start, batch_size, seed, rank, world_size) and
    ``mirror``; ``num_workers > 0`` decodes ahead in worker processes
    (persistent, prefetching) and yields the identical sequence.
    """
    if num_workers < 0:
        raise UserError(f"num_workers must be >= 0, got {num_workers}")
    args = dict(
        path=path,
        resolution=resolution,
        batch_size=batch_size,
        start=start,
        seed=seed,
        rank=rank,
        world_size=world_size,
        mirror=mirror,
    )
    if num_workers == 0:
        return BatchLoader(BatchStream(**args), pin_memory)
    loader = DataLoader(
        _StreamDataset(**args),
        batch_size=None,
        num_workers=num_workers,
        persistent_workers=True,
        prefetch_factor=4,
        pin_memory=pin_memory and torch.cuda.is_available(),
    )
    return BatchLoader(iter(loader), pin_memory, loader)
