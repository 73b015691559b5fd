"""Quality metrics during training, behind one interface: each is due on the run's timeline every --NAME-kimg.

A metric compares the EMA generator, at the resolution and alpha where the run stands, with the dataset's level
of that resolution. The real side is computed once per resolution and cached in the run directory, so each
evaluation only generates and measures the fakes; reals and fakes are drawn exactly as the standalone command
(``pggan-swd`` / ``pggan-fid DATASET CHECKPOINT --seed S --num-images N``) draws them — in batches of the
training batch at that resolution, which the checkpoint records — so that command reproduces the logged number
for the checkpoint written at the same tick.

To add one: a class with ``evaluate(generator, resolution, alpha)`` and a :class:`MetricSpec` in
:func:`training_metrics` (its name is both the timeline's event and the ``stats.jsonl`` key).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from pggan.data.loader import read_meta
from pggan.errors import UserError
from pggan.metrics.fid import (
    FeatureStats,
    frechet_distance,
    image_set_statistics,
    read_stats_file,
    save_stats,
    stats_of_batches,
)
from pggan.metrics.inception import load_inception
from pggan.metrics.sources import image_batches, open_image_set
from pggan.metrics.swd import SWDEvaluator
from pggan.model.networks import Generator
from pggan.pictures.generate import generate_seeded_uint8, generation_batch_size
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


#: resolution -> images per generator call there (the trainer's training batch, pggan.pictures.generate).
BatchFor = Callable[[int], int]


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
            lambda: TrainingSWD(options.data, options.swd_images, options.seed, device, run_dir, batches),
        ),
        MetricSpec(
            "fid",
            options.fid_kimg,
            lambda: TrainingFID(
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
    ]


MIN_SWD_RESOLUTION = 16


class TrainingSWD:
    """Evaluates ``SWD(dataset level R, G_ema at R)`` for the current R; keeps one evaluator at a time."""

    def __init__(
        self,
        data: str,
        num_images: int,
        seed: int,
        device: torch.device,
        cache_dir: Path,
        batch_for: BatchFor = lambda resolution: generation_batch_size(),
    ) -> None:
        self.data = data
        self.num_images = min(num_images, int(read_meta(data)["count"]))
        self.seed = seed
        self.device = device
        self.cache_dir = Path(cache_dir)
        self.batch_for = batch_for
        self._evaluator: tuple[int, SWDEvaluator] | None = None

    def _evaluator_for(self, resolution: int, channels: int) -> SWDEvaluator:
        if self._evaluator is None or self._evaluator[0] != resolution:
            self._evaluator = None  # free the previous resolution's descriptors first
            reals = image_batches(open_image_set(self.data), self.num_images, resolution, channels, self.seed)
            dataset_id = f"{Path(self.data).resolve()}:{resolution}:{self.num_images}:{self.seed}"
            evaluator = SWDEvaluator(
                reals,
                seed=self.seed,
                device=self.device,
                cache_path=self.cache_dir / f"swd-reals-{resolution}.pt",
                dataset_id=dataset_id,
            )
            self._evaluator = (resolution, evaluator)
        return self._evaluator[1]

    @torch.inference_mode()
    def evaluate(self, generator: Generator, resolution: int, alpha: float) -> dict[str, float]:
        """SWD ×1e3 per level and "avg", keyed by strings (JSON-ready); {} below 16×16."""
        if resolution < MIN_SWD_RESOLUTION:
            return {}
        evaluator = self._evaluator_for(resolution, generator.channels)
        batch = self.batch_for(resolution)
        fakes = generate_seeded_uint8(
            generator, self.num_images, self.seed, resolution, alpha, self.device, None, batch
        )
        return {str(k): float(v) for k, v in evaluator.evaluate(fakes).items()}


class TrainingFID:
    """Evaluates ``FID(dataset level R, G_ema at R)`` for the current R."""

    def __init__(
        self,
        data: str,
        num_images: int,
        seed: int,
        device: torch.device,
        cache_dir: Path,
        inception_path: str,
        allow_unverified: bool = False,
        batch_for: BatchFor = lambda resolution: generation_batch_size(),
    ) -> None:
        self.data = data
        self.batch_for = batch_for
        self.num_fakes = num_images
        self.num_reals = min(num_images, int(read_meta(data)["count"]))
        self.seed = seed
        self.device = device
        self.cache_dir = Path(cache_dir)
        self.inception = load_inception(inception_path, allow_unverified, device)
        self._reals: tuple[int, FeatureStats] | None = None

    def _cache_key(self, resolution: int) -> str:
        return json.dumps(
            {
                "dataset": str(Path(self.data).resolve()),
                "resolution": resolution,
                "num_images": self.num_reals,
                "seed": self.seed,
                "inception_sha256": self.inception.sha256,
            },
            sort_keys=True,
        )

    def _real_stats(self, resolution: int) -> FeatureStats:
        if self._reals is not None and self._reals[0] == resolution:
            return self._reals[1]
        path, key = self.cache_dir / f"fid-reals-{resolution}.npz", self._cache_key(resolution)
        stats = None
        if path.is_file():
            try:
                cached, saved_key = read_stats_file(path, key=True)  # every field checked, as pggan-fid does
                stats = cached if saved_key == key else None
            except (UserError, OSError):
                stats = None  # unreadable or foreign: recomputed and replaced
        if stats is None:
            side = open_image_set(self.data)
            stats = image_set_statistics(side, self.num_reals, resolution, self.seed, self.device, self.inception)
            save_stats(stats, path, key=key)
        self._reals = (resolution, stats)
        return stats

    @torch.inference_mode()
    def evaluate(self, generator: Generator, resolution: int, alpha: float) -> float:
        reals = self._real_stats(resolution)
        batch = self.batch_for(resolution)
        fakes = generate_seeded_uint8(generator, self.num_fakes, self.seed, resolution, alpha, self.device, None, batch)
        fake_stats = stats_of_batches(fakes, self.inception)
        return frechet_distance(reals.mu, reals.sigma, fake_stats.mu, fake_stats.sigma)
