"""The options of a training run: defaults (the paper's), JSON round trip, and merging on resume."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, fields
from typing import Any

from pggan.errors import UserError

#: Options that fix the networks' shapes: a checkpoint cannot be resumed with other values.
ARCHITECTURE_OPTIONS = ("resolution", "fmap_base", "fmap_max", "latent_size", "mbstd_group_size")


@dataclass
class TrainOptions:
    """Everything that defines a run; saved as ``options.json`` and inside every checkpoint."""

    data: str = ""
    resolution: int = 0
    out: str = "checkpoints"
    run_name: str | None = None
    fade_kimg: float = 600.0
    stable_kimg: float = 600.0
    total_kimg: float | None = None
    batch_schedule: str = "official"
    lr: float = 0.001
    lr_schedule: str = "1024:0.0015"
    fmap_base: int = 8192
    fmap_max: int = 512
    latent_size: int = 512
    mbstd_group_size: int = 4
    seed: int = 0
    device: str = "auto"
    tick_kimg: float | None = None
    snapshot_kimg: float = 300.0
    swd_kimg: float | None = None
    swd_images: int = 16384
    fid_kimg: float | None = None
    fid_images: int = 50000
    inception: str | None = None
    allow_unverified_inception: bool = False
    mirror: bool = False
    ema_beta: float = 0.999
    ema_kimg: float | None = None
    amp: bool = False
    compile: bool = False
    workers: int = 2
    grid_size: int = 8
    tensorboard: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainOptions:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def merged(self, overrides: dict[str, Any]) -> TrainOptions:
        """A copy with ``overrides`` (options the user gave explicitly) applied."""
        values = self.to_dict()
        values.update({k: v for k, v in overrides.items() if k in values})
        return TrainOptions.from_dict(values)


def check_resumable(saved: TrainOptions, requested: TrainOptions) -> None:
    """Refuse to continue a run with options that change the networks' shapes."""
    for name in ARCHITECTURE_OPTIONS:
        if getattr(saved, name) != getattr(requested, name):
            raise UserError(
                f"the checkpoint was trained with --{name.replace('_', '-')} {getattr(saved, name)}, "
                f"not {getattr(requested, name)}: it comes from another architecture"
            )
