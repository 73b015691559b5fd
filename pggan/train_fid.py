"""FID during training: the EMA generator against the dataset, at the resolution being trained.

The real side's statistics are computed once per resolution and cached in the run directory (``fid-reals-R.npz``,
keyed by dataset, resolution, image count, seed and weights digest), so each evaluation only generates and embeds
the fakes. Images are drawn exactly as ``pggan-fid DATASET CHECKPOINT --seed S --num-images N`` draws them, so
that command reproduces the logged number for the checkpoint of that tick.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pggan.data import read_meta
from pggan.errors import UserError
from pggan.generate import generate_seeded_uint8
from pggan.metrics.fid import (
    FeatureStats,
    frechet_distance,
    image_set_statistics,
    read_stats_file,
    save_stats,
    stats_of_batches,
)
from pggan.metrics.image_sets import open_image_set
from pggan.metrics.inception import load_inception
from pggan.networks import Generator


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
    ) -> None:
        self.data = data
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
        fakes = generate_seeded_uint8(generator, self.num_fakes, self.seed, resolution, alpha, self.device)
        fake_stats = stats_of_batches(fakes, self.inception)
        return frechet_distance(reals.mu, reals.sigma, fake_stats.mu, fake_stats.sigma)
