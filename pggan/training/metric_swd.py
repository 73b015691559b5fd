"""SWD during training: the EMA generator against the dataset, at the resolution being trained.

The real side's descriptors are computed once per resolution and cached in the
run directory, so each evaluation only generates and describes the fakes.
Resolutions below 16×16 have no Laplacian level to compare and are skipped.
Reals and fakes are drawn exactly as ``pggan-swd DATASET CHECKPOINT --seed S --num-images N`` draws them (same
subset rule, same latent-seed rule), so that command reproduces the logged number for the checkpoint of that tick.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pggan.data.loader import read_meta
from pggan.metrics.sources import image_batches, open_image_set
from pggan.metrics.swd import SWDEvaluator
from pggan.model.networks import Generator
from pggan.pictures.generate import generate_seeded_uint8

MIN_SWD_RESOLUTION = 16


class TrainingSWD:
    """Evaluates ``SWD(dataset level R, G_ema at R)`` for the current R; keeps one evaluator at a time."""

    def __init__(self, data: str, num_images: int, seed: int, device: torch.device, cache_dir: Path) -> None:
        self.data = data
        self.num_images = min(num_images, int(read_meta(data)["count"]))
        self.seed = seed
        self.device = device
        self.cache_dir = Path(cache_dir)
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
        fakes = generate_seeded_uint8(generator, self.num_images, self.seed, resolution, alpha, self.device)
        return {str(k): float(v) for k, v in evaluator.evaluate(fakes).items()}
