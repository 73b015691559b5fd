"""The official training configurations (``config.py`` of tkarras/progressive_growing_of_gans), per process count.

The official ``config.py`` has one preset per GPU count. Each gives a default
minibatch (``sched.minibatch_base``), per-resolution overrides
(``sched.minibatch_dict``), per-resolution learning rates
(``sched.G_lrate_dict`` = ``D_lrate_dict``), phase lengths and
``train.total_kimg``; the fp32 line caps the batch per GPU
(``sched.max_minibatch_per_gpu = {256: 16, 512: 8, 1024: 4}``) and
``TrainingSchedule`` resolves them as ``minibatch_dict.get(res, minibatch_base)``,
minus the remainder modulo ``num_gpus``, capped at ``max_minibatch_per_gpu · num_gpus``.
The tables below are those values, resolved; the batch is the global one,
divided evenly among the processes.

``official`` is the v2 preset (the released code's default), ``paper`` the v1
preset (the paper's CelebA-HQ run, one GPU). For process counts that have no
official preset (3, 6, 16, 32, ...) :func:`resolve_batches` derives the batch
from the table of the largest official count that fits; see its docstring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pggan import defaults
from pggan.errors import UserError
from pggan.resolutions import growth_resolutions

#: config.py sched.max_minibatch_per_gpu of the '-fp32' line: the largest batch one GPU runs at these sizes.
FP32_MAX_MINIBATCH_PER_GPU: dict[int, int] = {256: 16, 512: 8, 1024: 4}


@dataclass(frozen=True)
class GpuTable:
    """One official preset line: ``minibatch_base``, ``minibatch_dict`` and ``G_lrate_dict`` for ``num_gpus``."""

    num_gpus: int
    minibatch_base: int
    minibatch_dict: dict[int, int]
    lrate_dict: dict[int, float]

    def batch(self, resolution: int) -> int:
        """The global minibatch at ``resolution``, resolved exactly as the official TrainingSchedule does."""
        batch = self.minibatch_dict.get(resolution, self.minibatch_base)
        batch -= batch % self.num_gpus
        if resolution in FP32_MAX_MINIBATCH_PER_GPU:
            batch = min(batch, FP32_MAX_MINIBATCH_PER_GPU[resolution] * self.num_gpus)
        return batch


@dataclass(frozen=True)
class Preset:
    """A named configuration: the per-GPU-count tables and the run-wide values that go with them."""

    name: str
    tables: dict[int, GpuTable]
    fade_kimg: float
    stable_kimg: float
    total_kimg: float
    mbstd_group_size: int
    mirror: bool


# config.py, '-preset-v2-{1gpu,2gpus,4gpus,8gpus}': 600/600 kimg phases (TrainingSchedule defaults), 12,000 kimg.
OFFICIAL = Preset(
    name="official",
    tables={
        1: GpuTable(1, 4, {4: 128, 8: 128, 16: 128, 32: 64, 64: 32, 128: 16, 256: 8, 512: 4}, {1024: 0.0015}),
        2: GpuTable(2, 8, {4: 256, 8: 256, 16: 128, 32: 64, 64: 32, 128: 16, 256: 8}, {512: 0.0015, 1024: 0.002}),
        4: GpuTable(4, 16, {4: 512, 8: 256, 16: 128, 32: 64, 64: 32, 128: 16}, {256: 0.0015, 512: 0.002, 1024: 0.003}),
        8: GpuTable(
            8,
            32,
            {4: 512, 8: 256, 16: 128, 32: 64, 64: 32},
            {128: 0.0015, 256: 0.002, 512: 0.003, 1024: 0.003},
        ),
    },
    fade_kimg=defaults.FADE_KIMG,
    stable_kimg=defaults.STABLE_KIMG,
    total_kimg=defaults.TOTAL_KIMG,
    mbstd_group_size=defaults.MBSTD_GROUP_SIZE,  # networks.D_paper default
    mirror=True,  # config.py: train.mirror_augment = True for CelebA-HQ, CelebA and LSUN
)

# config.py, '-preset-v1-1gpu': D.mbstd_group_size = 16, minibatch 16 with {256: 14, 512: 6, 1024: 3},
# 800/800 kimg phases, 19,000 kimg; no learning-rate overrides.
PAPER = Preset(
    name="paper",
    tables={1: GpuTable(1, 16, {256: 14, 512: 6, 1024: 3}, {})},
    fade_kimg=800.0,
    stable_kimg=800.0,
    total_kimg=19000.0,
    mbstd_group_size=16,
    mirror=True,
)

PRESETS: dict[str, Preset] = {p.name: p for p in (OFFICIAL, PAPER)}


def get_preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}: choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def table_for(preset: Preset, processes: int) -> GpuTable:
    """The table of the largest official GPU count that does not exceed ``processes``."""
    if processes < 1:
        raise ValueError(f"the number of processes must be >= 1, got {processes}")
    return preset.tables[max(n for n in preset.tables if n <= processes)]


def per_process_batch(table: GpuTable, resolution: int, processes: int, group_size: int) -> int:
    """The batch each of ``processes`` processes trains on at ``resolution`` (the one rule for every count).

    - the official table's global batch B, shared: ``ceil(B / processes)``;
    - at least the minibatch-stddev group that one GPU of the official run formed, ``min(group, B / gpus)``,
      so that more processes never shrink the statistic to fewer samples;
    - rounded up to a multiple of the group it forms, ``min(group, batch)``, as the official layer requires.

    For an official GPU count this is exactly the table's ``B / gpus``; elsewhere the global batch grows by
    at most one group per process. The learning rate stays the table's.
    """
    official = table.batch(resolution)
    local = max(math.ceil(official / processes), min(group_size, official // table.num_gpus) if group_size > 1 else 1)
    group = min(group_size, local) if group_size > 1 else 1
    return math.ceil(local / group) * group


def resolve_batches(preset: Preset, target: int, processes: int, group_size: int) -> dict[int, int]:
    """Global batch per resolution 4..target for ``processes`` processes."""
    table = table_for(preset, processes)
    return {r: per_process_batch(table, r, processes, group_size) * processes for r in growth_resolutions(target)}


def resolve_learning_rates(preset: Preset, processes: int) -> dict[int, float]:
    """Per-resolution learning-rate overrides of the table used for ``processes`` processes."""
    return dict(table_for(preset, processes).lrate_dict)


def format_mapping(mapping: dict[int, float] | dict[int, int]) -> str:
    """``{4: 16, 8: 8}`` → ``"4:16,8:8"``, the syntax of --batch-schedule and --lr-schedule."""
    return ",".join(f"{r}:{v:g}" if isinstance(v, float) else f"{r}:{v}" for r, v in sorted(mapping.items()))
