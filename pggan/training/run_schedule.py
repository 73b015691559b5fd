"""A run's schedule from its options: built, checked against the process count, and described at start.

``pggan.training.schedule`` is the pure growth arithmetic and ``pggan.training.presets`` the official tables;
this module joins them to a run's :class:`~pggan.training.options.TrainOptions`.
"""

from __future__ import annotations

from pggan.errors import UserError
from pggan.training.options import TrainOptions
from pggan.training.presets import PRESETS
from pggan.training.schedule import Schedule, parse_batch_schedule, parse_learning_rates


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
