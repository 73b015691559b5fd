"""MS-SSIM during training (and in ``pggan-eval``): the EMA generator's pairs, beside the dataset's, at resolution R.

Shaped as ``pggan.train_swd.TrainingSWD`` and ``pggan.train_fid.TrainingFID``: built once from the dataset, the
image count, the seed, the device and the run directory; ``evaluate(generator, resolution, alpha)`` per call.
The fake figure needs no real images; the real-pair figure it should approach is computed once per resolution and
cached in the run directory (``msssim-reals-R.json``, keyed by dataset, resolution, image count and seed).
Images are drawn exactly as ``pggan-msssim CHECKPOINT --seed S --num-images N`` (fakes) and ``pggan-msssim DATASET
--seed S --num-images N --resolution R`` (reals) draw them, so those commands reproduce the logged values.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pggan.data import read_meta
from pggan.errors import UserError
from pggan.generate import generate_seeded_uint8
from pggan.metrics.image_sets import image_batches, open_image_set
from pggan.metrics.ms_ssim import MIN_SIZE, check_num_images, ms_ssim_of_batches
from pggan.networks import Generator


class TrainingMSSSIM:
    """Evaluates ``{"fake": MS-SSIM(G_ema at R), "real": MS-SSIM(dataset level R)}``; {} below 16×16."""

    def __init__(self, data: str, num_images: int, seed: int, device: torch.device, cache_dir: Path) -> None:
        check_num_images(num_images, "--msssim-images")
        count = int(read_meta(data)["count"])
        if count < 2:
            raise UserError(f"MS-SSIM needs at least 2 images (one pair); the dataset {data} holds {count}")
        self.data = data
        self.num_fakes = num_images
        self.num_reals = min(num_images, count) // 2 * 2
        self.seed = seed
        self.device = device
        self.cache_dir = Path(cache_dir)
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
        fakes = generate_seeded_uint8(generator, self.num_fakes, self.seed, resolution, alpha, self.device)
        return {"fake": ms_ssim_of_batches(fakes, self.device).score, "real": real}
