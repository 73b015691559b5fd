"""The options of a training run: defaults (pggan.defaults, pggan.training.presets), JSON round trip, merging on resume.

Options left unset (``None``) take their value from the preset (``official`` or
``paper``) when :meth:`TrainOptions.resolved` is called with the number of
processes; the resolved options, with the concrete batch and learning-rate
tables, are what ``options.json`` and every checkpoint hold, so a resumed run
keeps its schedule.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, fields
from typing import Any

from pggan import defaults
from pggan.errors import UserError
from pggan.resolutions import growth_resolutions
from pggan.training.presets import PRESETS, format_mapping, get_preset, resolve_batches, resolve_learning_rates

#: Options that fix the networks' shapes: a checkpoint cannot be resumed with other values.
ARCHITECTURE_OPTIONS = (
    "resolution",
    "fmap_base",
    "fmap_max",
    "latent_size",
    "mbstd_group_size",
    "fused_downsample",
    "mbstd_strided",
)


@dataclass
class TrainOptions:
    """Everything that defines a run; saved as ``options.json`` and inside every checkpoint.

    ``None`` means "from the preset" for fade_kimg, stable_kimg, total_kimg, batch_schedule,
    lr_schedule, mbstd_group_size and mirror.
    """

    data: str = ""
    resolution: int = 0
    out: str = "checkpoints"
    run_name: str | None = None
    preset: str = defaults.PRESET
    fade_kimg: float | None = None
    stable_kimg: float | None = None
    total_kimg: float | None = None
    batch_schedule: str | None = None
    lr: float = defaults.LEARNING_RATE
    lr_schedule: str | None = None
    fmap_base: int = defaults.FMAP_BASE
    fmap_max: int = defaults.FMAP_MAX
    latent_size: int = defaults.LATENT_SIZE
    mbstd_group_size: int | None = None
    fused_downsample: bool = False  # D pools before conv1's lrelu (the official TF code's fused_scale)
    mbstd_strided: bool = False  # minibatch-stddev groups of strided samples, as the official layer
    init: str | None = None  # start from this checkpoint's networks (pggan.training.init)
    seed: int = defaults.SEED
    device: str = "auto"
    tick_kimg: float | None = None
    snapshot_kimg: float = defaults.SNAPSHOT_KIMG
    swd_kimg: float | None = None
    swd_images: int = defaults.SWD_IMAGES
    fid_kimg: float | None = None
    fid_images: int = defaults.FID_IMAGES
    msssim_kimg: float | None = None
    msssim_images: int = defaults.MSSSIM_IMAGES
    inception: str | None = None
    allow_unverified_inception: bool = False
    mirror: bool | None = None
    ema_beta: float = defaults.EMA_BETA
    ema_kimg: float | None = None
    gp_space: str = defaults.GP_SPACE
    amp: bool = False
    channels_last: bool | None = None  # None: on for CUDA, off on the CPU (pggan.devices.device_policy)
    tf32: bool = defaults.TF32
    compile: bool = False
    workers: int = defaults.WORKERS
    grid_size: int = defaults.GRID_SIZE
    grid_ticks: int = defaults.GRID_TICKS
    tensorboard: bool = True
    #: The number of processes the schedule was resolved for (set by ``resolved``).
    processes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainOptions:
        """The known options of ``values``; a UserError for a value of the wrong type (options.json or a
        checkpoint from elsewhere must not fail later, deep in the run)."""
        known = {f.name: str(f.type) for f in fields(cls)}
        chosen = {k: v for k, v in values.items() if k in known}
        for name, value in chosen.items():
            if not _has_type(value, known[name]):
                shown = repr(value)[:40] if isinstance(value, (str, int, float, bool)) else f"a {type(value).__name__}"
                raise UserError(f"option {name} is {shown}, not {known[name].replace(' | None', ' or None')}")
        return cls(**chosen)

    def merged(self, overrides: dict[str, Any]) -> TrainOptions:
        """A copy with ``overrides`` (options the user gave explicitly) applied."""
        values = self.to_dict()
        values.update({k: v for k, v in overrides.items() if k in values})
        return TrainOptions.from_dict(values)

    def resolved(self, processes: int) -> TrainOptions:
        """A copy with every preset-dependent option made concrete for ``processes`` processes.

        Explicit values win. ``batch_schedule`` may name a preset (``official``, ``paper``): its table for
        this process count. Already-concrete options (a resumed run's) are kept as they are.
        """
        preset = get_preset(self.preset)
        if self.gp_space not in defaults.GP_SPACES:
            raise UserError(f"--gp-space must be one of {', '.join(defaults.GP_SPACES)}, got {self.gp_space!r}")
        values = self.to_dict()
        group = preset.mbstd_group_size if self.mbstd_group_size is None else self.mbstd_group_size
        values.update(
            fade_kimg=preset.fade_kimg if self.fade_kimg is None else self.fade_kimg,
            stable_kimg=preset.stable_kimg if self.stable_kimg is None else self.stable_kimg,
            total_kimg=preset.total_kimg if self.total_kimg is None else self.total_kimg,
            mbstd_group_size=group,
            mirror=preset.mirror if self.mirror is None else self.mirror,
        )
        schedule = self.batch_schedule
        if schedule is None or schedule.strip() in PRESETS:
            named = preset if schedule is None else PRESETS[schedule.strip()]
            if self.resolution:
                schedule = format_mapping(resolve_batches(named, self.resolution, processes, group))
        values["batch_schedule"] = schedule
        if self.lr_schedule is None:
            values["lr_schedule"] = format_mapping(resolve_learning_rates(preset, processes))
        if self.processes is None or schedule != self.batch_schedule:
            values["processes"] = processes
        return TrainOptions.from_dict(values)


def _has_type(value: Any, annotation: str) -> bool:
    """Whether ``value`` fits a field annotation such as ``"int"``, ``"float | None"`` or ``"str | None"``."""
    if value is None:
        return "None" in annotation
    base = annotation.split(" | ")[0]
    if base == "bool":
        return isinstance(value, bool)
    if base == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if base == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, str)


def upgrade_saved_options(values: dict[str, Any]) -> dict[str, Any]:
    """Options saved by a pggan from before presets, read as that version meant them.

    Those runs have no ``preset`` key; their ``total_kimg`` None meant "the end of the last fade-in plus one
    stable phase", and every other value was already concrete.
    """
    if "preset" in values:
        return values
    values = dict(values)
    if values.get("total_kimg") is None and values.get("resolution"):
        phases = len(growth_resolutions(values["resolution"])) - 1  # fade-ins after 4x4
        values["total_kimg"] = (
            float(values.get("stable_kimg", defaults.STABLE_KIMG)) * (phases + 1)
            + float(values.get("fade_kimg", defaults.FADE_KIMG)) * phases
        )
    return values


def check_resumable(saved: TrainOptions, requested: TrainOptions) -> None:
    """Refuse to continue a run with options that change the networks' shapes."""
    for name in ARCHITECTURE_OPTIONS:
        if getattr(saved, name) != getattr(requested, name):
            raise UserError(
                f"the checkpoint was trained with --{name.replace('_', '-')} {getattr(saved, name)}, "
                f"not {getattr(requested, name)}: it comes from another architecture"
            )
