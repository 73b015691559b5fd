"""Metrics of a generator against a dataset level, the real side computed once per resolution and cached.

SWD, FID and MS-SSIM compare the EMA generator, at a resolution and alpha, with the dataset's level of that
resolution. The real side (SWD descriptors, FID statistics, the real pairs' MS-SSIM) is cached in the run
directory, so each evaluation only generates and measures the fakes; reals and fakes are drawn exactly as the
standalone commands (``pggan-swd`` / ``pggan-fid`` / ``pggan-msssim DATASET CHECKPOINT --seed S --num-images N``)
draw them, so those commands reproduce a logged number for the checkpoint written at the same tick. Training
evaluates them on its timeline (:mod:`pggan.training.metrics`) and ``pggan-eval`` over a finished run
(:mod:`pggan.metrics.evaluate`), sharing the caches.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

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
from pggan.metrics.ms_ssim import MIN_SIZE, check_num_images, ms_ssim_of_batches
from pggan.metrics.sources import image_batches, open_image_set
from pggan.metrics.swd import SWDEvaluator
from pggan.model.networks import Generator
from pggan.pictures.generate import generate_seeded_uint8, generation_batch_size

#: resolution -> images per generator call there (training passes its batch at that resolution).
BatchFor = Callable[[int], int]

MIN_SWD_RESOLUTION = 16


class AgainstDataset:
    """What every metric of a generator against a dataset level holds: the dataset and its size, the seed of
    both sides' draws, the device, the run directory its real-side cache lives in, and the generation batch."""

    def __init__(self, data: str, seed: int, device: torch.device, cache_dir: Path, batch_for: BatchFor) -> None:
        self.data = data
        self.dataset_count = int(read_meta(data)["count"])
        self.seed = seed
        self.device = device
        self.cache_dir = Path(cache_dir)
        self.batch_for = batch_for


class DatasetSWD(AgainstDataset):
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
        super().__init__(data, seed, device, cache_dir, batch_for)
        self.num_images = min(num_images, self.dataset_count)
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


class DatasetFID(AgainstDataset):
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
        super().__init__(data, seed, device, cache_dir, batch_for)
        self.num_fakes = num_images
        self.num_reals = min(num_images, self.dataset_count)
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


class DatasetMSSSIM(AgainstDataset):
    """Evaluates ``{"fake": MS-SSIM(G_ema at R), "real": MS-SSIM(dataset level R)}``; {} below 16×16."""

    def __init__(
        self,
        data: str,
        num_images: int,
        seed: int,
        device: torch.device,
        cache_dir: Path,
        batch_for: BatchFor = lambda resolution: generation_batch_size(),
    ) -> None:
        check_num_images(num_images, "--msssim-images")
        super().__init__(data, seed, device, cache_dir, batch_for)
        count = self.dataset_count
        if count < 2:
            raise UserError(f"MS-SSIM needs at least 2 images (one pair); the dataset {data} holds {count}")
        self.num_fakes = num_images
        self.num_reals = min(num_images, count) // 2 * 2
        self._reals: tuple[int, float] | None = None

    def _cache_key(self, resolution: int) -> dict[str, object]:
        return {
            "dataset": str(Path(self.data).resolve()),
            "resolution": resolution,
            "num_images": self.num_reals,
            "seed": self.seed,
        }

    def real_score(self, resolution: int, channels: int) -> float:
        """MS-SSIM of the dataset's pairs at ``resolution``: from memory, the run directory's cache, or computed."""
        if self._reals is not None and self._reals[0] == resolution:
            return self._reals[1]
        path, key = self.cache_dir / f"msssim-reals-{resolution}.json", self._cache_key(resolution)
        score = None
        try:
            cached = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(cached, dict) and cached.get("key") == key:
                score = float(cached["msssim"])
        except (OSError, ValueError, KeyError, TypeError):
            score = None  # missing, unreadable or foreign: recomputed and replaced
        if score is None:
            batches = image_batches(open_image_set(self.data), self.num_reals, resolution, channels, self.seed)
            result = ms_ssim_of_batches(batches, self.device)
            score = result.score
            from pggan.atomic import atomic_write_bytes

            text = json.dumps({"key": key, "msssim": score, "num_pairs": result.num_pairs}, indent=2) + "\n"
            atomic_write_bytes(path, lambda handle: handle.write(text.encode()))
        self._reals = (resolution, score)
        return score

    @torch.inference_mode()
    def evaluate(self, generator: Generator, resolution: int, alpha: float) -> dict[str, float]:
        """MS-SSIM of ``num_images // 2`` generated pairs and of as many real pairs, keyed "fake" and "real"."""
        if resolution < MIN_SIZE:
            return {}
        real = self.real_score(resolution, generator.channels)
        fakes = generate_seeded_uint8(
            generator, self.num_fakes, self.seed, resolution, alpha, self.device, batch_size=self.batch_for(resolution)
        )
        return {"fake": ms_ssim_of_batches(fakes, self.device).score, "real": real}
