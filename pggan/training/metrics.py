"""Quality metrics during training, behind one interface: each is due on the run's timeline every --NAME-kimg.

A metric compares the EMA generator, at the resolution and alpha where the run stands, with the dataset's level
of that resolution (:mod:`pggan.metrics.dataset_metrics`: SWD, FID, MS-SSIM, real side cached per resolution),
drawing in batches of the training batch at that resolution, which the checkpoint records — so the standalone
command reproduces the logged number for the checkpoint written at the same tick.

To add one: a class with ``evaluate(generator, resolution, alpha)`` and a :class:`MetricSpec` in
:func:`training_metrics` (its name is both the timeline's event and the ``stats.jsonl`` key).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from pggan.metrics.dataset_metrics import BatchFor, DatasetFID, DatasetMSSSIM, DatasetSWD
from pggan.model.networks import Generator
from pggan.pictures.generate import generation_batch_size
from pggan.training.options import TrainOptions


class TrainingMetric(Protocol):
    """A metric the trainer evaluates on its timeline."""

    def evaluate(self, generator: Generator, resolution: int, alpha: float) -> Any:
        """The metric's value (JSON-ready) for ``generator`` at ``resolution`` and ``alpha``."""


@dataclass(frozen=True)
class MetricSpec:
    """A training metric as the run's options configure it: its name, its cadence, how to build it."""

    name: str
    every_kimg: float | None
    build: Callable[[], TrainingMetric]


def training_metrics(
    options: TrainOptions, device: torch.device, run_dir: Path, batch_for: BatchFor | None = None
) -> list[MetricSpec]:
    """The metrics a run can evaluate; those whose ``every_kimg`` is None are off. ``batch_for`` gives the
    generation batch at a resolution (default: :func:`pggan.pictures.generate.generation_batch_size`'s cap)."""
    batches = batch_for or (lambda resolution: generation_batch_size())
    return [
        MetricSpec(
            "swd",
            options.swd_kimg,
            lambda: DatasetSWD(options.data, options.swd_images, options.seed, device, run_dir, batches),
        ),
        MetricSpec(
            "fid",
            options.fid_kimg,
            lambda: DatasetFID(
                options.data,
                options.fid_images,
                options.seed,
                device,
                run_dir,
                options.inception or "",
                options.allow_unverified_inception,
                batches,
            ),
        ),
        MetricSpec(
            "msssim",
            options.msssim_kimg,
            lambda: DatasetMSSSIM(options.data, options.msssim_images, options.seed, device, run_dir, batches),
        ),
    ]
