"""From command-line options to a running Trainer: resume lookup, validation, run directory, processes.

Everything that can be wrong with the user's input is checked here, before
any file is written, and reported as one line (``UserError``). The run
directory is locked before the first write (:mod:`pggan.run_lock`): a second
``pggan-train`` on the same run stops at once, naming the first.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pggan.errors import UserError
from pggan.input_files import read_regular
from pggan.model.checkpoint import (
    Found,
    find_readable_checkpoint,
    generator_config,
    is_resumable,
    load_checkpoint,
    require_training_state,
    run_checkpoints,
    run_progress,
    saved_options,
)
from pggan.pictures.latents import check_seed
from pggan.resolutions import check_resolution, growth_resolutions
from pggan.run_lock import RunLock, RunLocked, run_directory_lock
from pggan.training.distributed import (
    DEFAULT_TIMEOUT_MINUTES,
    DistContext,
    all_reduce_sum,
    barrier,
    init_distributed,
    peer_lost,
    shutdown,
)
from pggan.training.options import TrainOptions, check_resumable, upgrade_saved_options
from pggan.training.plan import dataset_batch_source, describe_schedule, plan_run
from pggan.training.run_log import STATS_LIMIT
from pggan.training.trainer import Trainer, install_stop_handlers, write_options


def _on_rank_zero() -> bool:
    return os.environ.get("RANK", "0") == "0"


def _last_logged_images(run_dir: Path) -> int | None:
    """The furthest position stats.jsonl reached (images), to tell how much a fallback redoes."""
    try:
        lines = read_regular(run_dir / "stats.jsonl", STATS_LIMIT).decode("utf-8", "replace").splitlines()
    except (OSError, UserError):
        return None
    for line in reversed(lines):
        try:
            return round(float(json.loads(line)["kimg"]) * 1000)
        except (ValueError, KeyError, TypeError):
            continue
    return None


def _report_fallback(found: Found) -> None:
    note = found.fallback_note()
    if note is None or not _on_rank_zero():
        return
    images = run_progress(found.state).images_shown
    reached = _last_logged_images(found.path.parent)
    redo = (
        f"; the {reached - images} images trained after it (up to kimg {reached / 1000:.3f}) are trained again"
        if reached is not None and reached > images
        else ""
    )
    print(f"warning: {note} (kimg {images / 1000:.3f}){redo}", file=sys.stderr, flush=True)


def find_resume_checkpoint(resume: str, options: TrainOptions) -> tuple[Path, dict[str, Any]] | None:
    """The checkpoint to resume and its state: ``RUN_DIR`` or ``auto`` → the run's newest readable one.

    When ``latest.pt`` cannot be read (a truncated copy, bit rot), the newest readable ``checkpoint-*.pt``
    is used instead, and the user is told which one and how many images are trained again. ``auto`` with
    no checkpoint yet → None (start the run).
    """
    if resume == "auto":
        if not options.run_name:
            return None
        run_dir = Path(options.out) / options.run_name
        if not run_checkpoints(run_dir):
            return None
    else:
        run_dir = Path(resume)
        if not run_dir.exists():
            raise UserError(f"cannot resume: {resume} does not exist")
        if not run_dir.is_dir():
            return run_dir, load_checkpoint(run_dir)
        if not run_checkpoints(run_dir):
            raise UserError(f"no latest.pt or checkpoint-*.pt in {resume}: nothing to resume")
    found = find_readable_checkpoint(run_dir, accept=is_resumable)
    _report_fallback(found)
    return found.path, found.state


def default_run_name(options: TrainOptions) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(options.data.rstrip("/")).name) or "run"
    return f"{stem}-{options.resolution}"


@dataclass
class ResolvedRun:
    """What ``pggan-train`` starts from: the options, the run directory, and any checkpoint it begins with."""

    options: TrainOptions
    run_dir: Path
    resumed: tuple[Path, dict[str, Any]] | None = None  # --resume: the checkpoint continued, (path, state)
    init_checkpoint: dict[str, Any] | None = None  # --init: the networks a new run starts from (loaded once)


def resolve_options(cli_values: dict[str, Any], explicit: set[str]) -> ResolvedRun:
    """Merge saved options (when resuming) with the explicitly given ones; find the checkpoint to begin with."""
    given = {k: v for k, v in cli_values.items() if k in explicit}
    defaults = TrainOptions.from_dict({k: v for k, v in cli_values.items() if k != "resume"})
    resume = cli_values.get("resume")
    init_checkpoint = None
    if defaults.init:
        if resume and resume != "auto":
            raise UserError("--init starts a new run and --resume continues one: give only one of them")
        from pggan.training.init import load_init_checkpoint, options_for_init

        init_checkpoint = load_init_checkpoint(defaults.init)
        defaults = options_for_init(defaults, explicit, init_checkpoint)
    if defaults.run_name is None and defaults.data:
        defaults.run_name = default_run_name(defaults)
    found = find_resume_checkpoint(resume, defaults) if resume else None
    if found is None:
        options = defaults
        if not options.data:
            raise UserError("--data DATASET is required (or --resume RUN_DIR to continue a run)")
        if not options.resolution:
            raise UserError("--resolution is required (or --resume RUN_DIR to continue a run)")
        run_dir = Path(options.out) / options.run_name
        if run_checkpoints(run_dir):
            raise UserError(
                f"run directory {run_dir} already holds a run: pass --resume {run_dir} (or --resume auto) "
                "to continue it, or --run-name NAME to start another"
            )
        return ResolvedRun(options, run_dir, init_checkpoint=init_checkpoint)
    checkpoint, state = found
    if not is_resumable(state):
        raise UserError(f"{checkpoint} holds networks only, not a training state that can be resumed")
    require_training_state(state, checkpoint)
    try:
        saved = TrainOptions.from_dict(upgrade_saved_options(saved_options(state)))
    except (UserError, ValueError, TypeError, KeyError) as exc:  # options written by someone else
        raise UserError(f"{checkpoint}: its saved options cannot be used ({str(exc).splitlines()[0][:200]})") from None
    options = saved.merged({k: v for k, v in given.items() if k not in ("out", "run_name")})
    check_resumable(saved, options)
    return ResolvedRun(options, checkpoint.parent, resumed=found)


def validate(
    options: TrainOptions, job: DistContext, state: dict[str, Any] | None = None, allow_new_data: bool = False
) -> tuple[int, dict[str, Any]]:
    """Check the dataset (against the one a resumed run used) and the metrics; return channels and fingerprint."""
    from pggan.data.identity import check_same_dataset, dataset_fingerprint
    from pggan.data.loader import read_meta
    from pggan.model.checkpoint import dataset_fingerprint as saved_fingerprint

    check_resolution(options.resolution, "--resolution")
    meta = read_meta(options.data)
    levels = sorted(int(r) for r in meta["resolutions"])
    if options.resolution > max(levels):
        raise UserError(
            f"--resolution {options.resolution} is above the dataset's top level ({max(levels)}): "
            f"prepare {options.data} again with --resolution {options.resolution}"
        )
    missing = [r for r in growth_resolutions(options.resolution) if r not in levels]
    if missing:
        raise UserError(f"the dataset {options.data} lacks the pyramid level(s) {missing}")
    if options.latent_size < 1 or options.fmap_base < 1 or options.fmap_max < 1:
        raise UserError("--latent-size, --fmap-base and --fmap-max must be positive")
    if options.grid_size < 1 or options.grid_ticks < 0:
        raise UserError(f"--grid-size must be at least 1 and --grid-ticks at least 0, got {options.grid_size} and "
                        f"{options.grid_ticks}")  # fmt: skip
    if options.swd_kimg or options.fid_kimg:  # their fakes are the faces of seeds --seed, --seed+1, ...
        check_seed(options.seed, "--seed")
    fingerprint = dataset_fingerprint(meta, options.data)
    if state is not None:
        model_channels = int(generator_config(state).get("channels", 3))
        check_same_dataset(saved_fingerprint(state), fingerprint, model_channels, allow_new_data)
    if options.msssim_kimg:
        from pggan.metrics.ms_ssim import check_num_images

        check_num_images(options.msssim_images, "--msssim-images")
        if int(meta["count"]) < 2:
            raise UserError(f"--msssim-kimg needs at least 2 images (one pair); {options.data} holds {meta['count']}")
    if options.fid_kimg:
        if not options.inception:
            raise UserError("--fid-kimg needs --inception PATH (the Inception-v3 weights file)")
        if options.fid_images < 2:
            raise UserError("--fid-images must be at least 2")
        from pggan.metrics.inception import load_inception

        load_inception(options.inception, options.allow_unverified_inception)  # a bad file stops the run now
    return int(meta["channels"]), fingerprint


def run_training(cli_values: dict[str, Any], explicit: set[str]) -> str:
    """The whole of ``pggan-train``: returns "done" or "interrupted"."""
    run = resolve_options(cli_values, explicit)
    options, run_dir = run.options, run.run_dir
    resume_path, state = run.resumed if run.resumed is not None else (None, None)
    timeout = cli_values.get("dist_timeout") or DEFAULT_TIMEOUT_MINUTES
    job = init_distributed(options.device, timeout_minutes=timeout)
    trainer = None
    lock: RunLock | None = None
    try:
        channels, fingerprint = validate(options, job, state, bool(cli_values.get("allow_new_data")))
        # Resolved once: the preset's tables for this many processes, the checked schedule, the batch source.
        plan = plan_run(options, job.world_size, lambda resolved: dataset_batch_source(resolved, job))
        init_checkpoint = run.init_checkpoint if state is None else None
        trainer = Trainer(plan, job, run_dir, channels, resume_checkpoint=state, dataset=fingerprint)
        if init_checkpoint is not None:
            trainer.start_from(init_checkpoint)
        if resume_path is not None:
            trainer.last_checkpoint = (resume_path, trainer.images_shown)
        lock = _lock_run_directory(run_dir, job)  # before anything is written: one process per run directory
        if job.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            write_options(run_dir, trainer.options)
            print(describe_schedule(trainer.options, trainer.schedule, job.world_size))
            action = "resuming" if state is not None else "starting" if init_checkpoint is None else "initialising"
            print(
                f"{action} run {run_dir} at kimg {trainer.images_shown / 1000:.3f} on {trainer.policy.describe()}"
                f"{f' x{job.world_size}' if job.distributed else ''}"
            )
        barrier(job)
        restore = install_stop_handlers(trainer)
        try:
            outcome = trainer.run()
        finally:
            restore()
        barrier(job)
        if job.is_main and outcome == "done":
            print(f"done: {run_dir} (latest checkpoint {trainer.latest_path})")
        return outcome
    except Exception as exc:
        if job.distributed and peer_lost(exc):
            raise UserError(_lost_peer_message(exc, job, trainer, run_dir)) from None
        raise
    finally:
        if lock is not None:
            lock.release()
        shutdown()


def _lock_run_directory(run_dir: Path, job: DistContext) -> RunLock | None:
    """Rank 0 locks the run directory; every rank stops at once if another process holds it.

    Under torchrun the other ranks learn rank 0's outcome through one all-reduce, so that a refused job
    stops as a whole instead of leaving its other ranks waiting in a collective.
    """
    import torch

    lock, refusal = None, None
    if job.is_main:
        try:
            lock = run_directory_lock(run_dir).acquire()
        except RunLocked as exc:
            refusal = exc
    if job.distributed:
        flag = torch.tensor([0.0 if refusal is None else 1.0], device=job.device)
        if all_reduce_sum(flag, job).item() > 0 and refusal is None:
            if lock is not None:
                lock.release()
            raise UserError(f"rank {job.rank}: stopping: rank 0 found {run_dir} in use by another pggan-train")
    if refusal is not None:
        raise refusal
    return lock


def _lost_peer_message(exc: BaseException, job: DistContext, trainer: Any, run_dir: Path) -> str:
    reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
    position = f"at kimg {trainer.images_shown / 1000:.3f}" if trainer is not None else "while starting"
    return (
        f"rank {job.rank}: lost contact with another process of the job {position} ({reason}); stopping. "
        f"Rerun the same command with --resume auto (or --resume {run_dir}) to continue from the last checkpoint"
    )
