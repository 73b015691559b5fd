"""From command-line options to a running Trainer: resume lookup, validation, run directory, processes.

Everything that can be wrong with the user's input is checked here, before
any file is written, and reported as one line (``UserError``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pggan.checkpoint import load_checkpoint
from pggan.distributed import DistContext, barrier, init_distributed, shutdown
from pggan.errors import UserError
from pggan.networks import is_power_of_two
from pggan.train import Trainer, build_schedule, check_batch_sizes, install_stop_handlers, write_options
from pggan.train_options import TrainOptions, check_resumable


def find_resume_checkpoint(resume: str, options: TrainOptions) -> Path | None:
    """``RUN_DIR`` → its latest.pt; a file → itself; ``auto`` → the run's latest.pt if there is one."""
    if resume == "auto":
        candidate = Path(options.out) / (options.run_name or "") / "latest.pt"
        return candidate if options.run_name and candidate.is_file() else None
    path = Path(resume)
    if path.is_dir():
        path = path / "latest.pt"
        if not path.is_file():
            raise UserError(f"no latest.pt in {resume}: nothing to resume")
    elif not path.exists():
        raise UserError(f"cannot resume: {resume} does not exist")
    return path


def default_run_name(options: TrainOptions) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(options.data.rstrip("/")).name) or "run"
    return f"{stem}-{options.resolution}"


def resolve_options(cli_values: dict[str, Any], explicit: set[str]) -> tuple[TrainOptions, dict[str, Any] | None, Path]:
    """Merge saved options (when resuming) with the explicitly given ones; return options, state, run dir."""
    given = {k: v for k, v in cli_values.items() if k in explicit}
    defaults = TrainOptions.from_dict({k: v for k, v in cli_values.items() if k != "resume"})
    if defaults.run_name is None and defaults.data:
        defaults.run_name = default_run_name(defaults)
    resume = cli_values.get("resume")
    checkpoint = find_resume_checkpoint(resume, defaults) if resume else None
    if checkpoint is None:
        options = defaults
        if not options.data:
            raise UserError("--data DATASET is required (or --resume RUN_DIR to continue a run)")
        if not options.resolution:
            raise UserError("--resolution is required (or --resume RUN_DIR to continue a run)")
        run_dir = Path(options.out) / options.run_name
        if (run_dir / "latest.pt").exists():
            raise UserError(
                f"run directory {run_dir} already holds a run: pass --resume {run_dir} (or --resume auto) "
                "to continue it, or --run-name NAME to start another"
            )
        return options, None, run_dir
    state = load_checkpoint(checkpoint)
    if "options" not in state or "g_optimizer" not in state:
        raise UserError(f"{checkpoint} holds networks only, not a training state that can be resumed")
    saved = TrainOptions.from_dict(state["options"])
    options = saved.merged({k: v for k, v in given.items() if k not in ("out", "run_name")})
    check_resumable(saved, options)
    return options, state, checkpoint.parent


def validate(options: TrainOptions, ctx: DistContext) -> int:
    """Check the dataset and the schedule; return the dataset's channel count."""
    from pggan.data import read_meta

    if not is_power_of_two(options.resolution) or not 4 <= options.resolution <= 1024:
        raise UserError(f"--resolution must be a power of two from 4 to 1024, got {options.resolution}")
    meta = read_meta(options.data)
    levels = sorted(int(r) for r in meta["resolutions"])
    if options.resolution > max(levels):
        raise UserError(
            f"--resolution {options.resolution} is above the dataset's top level ({max(levels)}): "
            f"prepare {options.data} again with --resolution {options.resolution}"
        )
    missing = [r for r in (2**k for k in range(2, options.resolution.bit_length())) if r not in levels]
    if missing:
        raise UserError(f"the dataset {options.data} lacks the pyramid level(s) {missing}")
    if options.latent_size < 1 or options.fmap_base < 1 or options.fmap_max < 1:
        raise UserError("--latent-size, --fmap-base and --fmap-max must be positive")
    check_batch_sizes(build_schedule(options), ctx.world_size, options.mbstd_group_size)
    if options.fid_kimg:
        if not options.inception:
            raise UserError("--fid-kimg needs --inception PATH (the Inception-v3 weights file)")
        if options.fid_images < 2:
            raise UserError("--fid-images must be at least 2")
        from pggan.metrics.inception import load_inception

        load_inception(options.inception, options.allow_unverified_inception)  # a bad file stops the run now
    return int(meta["channels"])


def run_training(cli_values: dict[str, Any], explicit: set[str]) -> str:
    """The whole of ``pggan-train``: returns "done" or "interrupted"."""
    options, state, run_dir = resolve_options(cli_values, explicit)
    ctx = init_distributed(options.device)
    try:
        channels = validate(options, ctx)
        from pggan.data import make_batch_loader

        def batch_source(resolution: int, batch_size: int, start: int):
            return make_batch_loader(
                options.data,
                resolution,
                batch_size,
                start,
                options.seed,
                rank=ctx.rank,
                world_size=ctx.world_size,
                num_workers=options.workers,
                mirror=options.mirror,
                pin_memory=ctx.device.type == "cuda",
            )

        trainer = Trainer(options, ctx, run_dir, channels, batch_source, resume_state=state)
        if ctx.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_options(run_dir, options)
            action = "resuming" if state is not None else "starting"
            print(
                f"{action} run {run_dir} at kimg {trainer.images_shown / 1000:.3f} on {ctx.device}"
                f"{f' x{ctx.world_size}' if ctx.distributed else ''}"
            )
        barrier(ctx)
        restore = install_stop_handlers(trainer)
        try:
            outcome = trainer.run()
        finally:
            restore()
        barrier(ctx)
        if ctx.is_main and outcome == "done":
            print(f"done: {run_dir} (latest checkpoint {trainer.latest_path})")
        return outcome
    finally:
        shutdown()
