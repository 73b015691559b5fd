"""The run resolved once: options for the process count, the checked schedule, and where batches come from.

``pggan-train`` (and the benchmarks, the soak tool and the tests) call :func:`plan_run` once and hand the
:class:`RunPlan` to the trainer, which never resolves or checks them again. ``pggan.training.schedule`` is the
pure growth arithmetic and ``pggan.training.presets`` the official tables; this module joins them to a run's
:class:`~pggan.training.options.TrainOptions`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from pggan.devices import device_policy
from pggan.errors import UserError
from pggan.training.distributed import DistContext
from pggan.training.options import TrainOptions
from pggan.training.presets import PRESETS
from pggan.training.schedule import Schedule, parse_batch_schedule, parse_learning_rates

#: (resolution, global batch size, first image index) -> iterator over this rank's uint8 batches.
BatchSource = Callable[[int, int, int], Iterator[torch.Tensor]]


@dataclass(frozen=True)
class RunPlan:
    """What a trainer runs: options resolved for the process count, their checked schedule, the batch source."""

    options: TrainOptions
    schedule: Schedule
    batch_source: BatchSource


def plan_run(options: TrainOptions, world_size: int, make_source: Callable[[TrainOptions], BatchSource]) -> RunPlan:
    """Resolve the preset's tables for ``world_size`` processes, build the schedule, check its batches, and make
    the batch source from the resolved options (mirroring, for one, is a preset's choice)."""
    options = options.resolved(world_size)
    schedule = build_schedule(options)
    check_batch_sizes(schedule, world_size, options.mbstd_group_size, options.preset)
    return RunPlan(options, schedule, make_source(options))


def dataset_batch_source(options: TrainOptions, job: DistContext) -> BatchSource:
    """Batches of the run's LMDB dataset for this rank: the exact, resumable stream (``pggan.data.loader``)."""
    from pggan.data.loader import make_batch_loader

    def source(resolution: int, batch_size: int, start: int) -> Iterator[torch.Tensor]:
        return make_batch_loader(
            options.data,
            resolution,
            batch_size,
            start,
            options.seed,
            rank=job.rank,
            world_size=job.world_size,
            num_workers=options.workers,
            mirror=options.mirror,
            pin_memory=device_policy(job.device).pin_memory,
        )

    return source


def build_schedule(options: TrainOptions) -> Schedule:
    """The run's schedule; options still naming a preset are resolved for ``options.processes`` (or one)."""
    if options.batch_schedule is None or options.batch_schedule.strip() in PRESETS or options.lr_schedule is None:
        options = options.resolved(options.processes or 1)
    return Schedule(
        options.resolution,
        fade_kimg=options.fade_kimg,
        stable_kimg=options.stable_kimg,
        batch_sizes=parse_batch_schedule(options.batch_schedule),
        learning_rates=parse_learning_rates(options.lr_schedule),
        base_learning_rate=options.lr,
        total_kimg=options.total_kimg,
    )


def check_batch_sizes(schedule: Schedule, world_size: int, mbstd_group_size: int, preset: str = "official") -> None:
    """Every batch of the run must split evenly over the ranks and into minibatch-stddev groups."""
    for resolution, batch in schedule.batch_sizes().items():
        if batch % world_size:
            raise UserError(
                f"batch size {batch} at {resolution}x{resolution} is not divisible by the {world_size} processes: "
                f"pass --batch-schedule {preset} (the preset's batches for {world_size} processes) or "
                "--batch-schedule RES:BATCH,... with batches divisible by the process count"
            )
        local = batch // world_size
        group = min(mbstd_group_size, local)
        if group > 1 and local % group:
            raise UserError(
                f"batch size {local} per process at {resolution}x{resolution} is not divisible by the "
                f"minibatch-stddev group size {group}: change --batch-schedule or --mbstd-group-size"
            )


def describe_schedule(options: TrainOptions, schedule: Schedule, world_size: int = 1) -> str:
    """The resolved schedule of a run, as printed when it starts (resolved options only)."""
    resolved_for = options.processes or 1
    running = "" if resolved_for == world_size else f", running on {world_size}"
    lrs = {p.resolution: p.learning_rate for p in schedule.phases}
    batches = "  ".join(f"{r}:{b}" for r, b in schedule.batch_sizes().items())
    rates = "  ".join(f"{r}:{lr:g}" for r, lr in lrs.items())
    return (
        f"schedule (preset {options.preset}, resolved for {resolved_for} process"
        f"{'es' if resolved_for > 1 else ''}{running}): {options.fade_kimg:g}+{options.stable_kimg:g} kimg "
        f"fade+stable per resolution, total {schedule.total_images / 1000:g} kimg\n"
        f"  global batch  {batches}\n"
        f"  learning rate {rates}\n"
        f"  minibatch-stddev group {options.mbstd_group_size}, mirror {'on' if options.mirror else 'off'}, "
        f"gradient penalty in {options.gp_space} image space, TF32 {'on' if options.tf32 else 'off'}"
    )
