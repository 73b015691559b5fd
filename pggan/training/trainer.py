"""The training loop: progressive growing by the schedule, snapshots, stats, exact resume, clean stops.

``Trainer`` owns one run. Every random draw comes from one seeded CPU
generator (latents, mixing weights) or from the data order, which is a pure
function of (seed, images shown); a checkpoint stores both, the networks, the
EMA, both optimizers and the schedule position, so a resumed run continues
bit for bit where it stopped. Rank 0 alone writes files.
"""

from __future__ import annotations

import copy
import math
import resource
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from pggan.atomic import WriteFailed, atomic_write_bytes
from pggan.defaults import MAX_NONFINITE_STEPS, TICK_KIMG
from pggan.devices import device_policy
from pggan.errors import UserError
from pggan.model.checkpoint import (
    RunProgress,
    image_channels,
    load_networks,
    load_optimizers,
    network_state,
    position,
    restore_rng,
    run_progress,
    save_checkpoint,
    training_state,
)
from pggan.pictures.generate import generation_batch_size
from pggan.pictures.latents import seed_latents
from pggan.pictures.training_video import TICK_GRID_DIR, tick_grid_layout, write_run_grid
from pggan.pixels import to_float_images
from pggan.training.distributed import DistContext, all_reduce_sum
from pggan.training.init import entry_images
from pggan.training.metrics import TrainingMetric, training_metrics
from pggan.training.options import TrainOptions
from pggan.training.plan import RunPlan
from pggan.training.run_log import RunLog
from pggan.training.schedule import Phase
from pggan.training.step import (
    StepInputs,
    build_gan_state,
    draw_step_noise,
    ema_beta_for,
    reset_optimizer,
    set_learning_rate,
    train_step,
)
from pggan.training.timeline import Interval, Timeline

STAT_KEYS = ("d_loss", "g_loss", "wdist", "gp", "drift", "real_score", "fake_score")


class TrainingDiverged(UserError):
    """Steps stayed non-finite (MAX_NONFINITE_STEPS in a row): the run stops and keeps its last good checkpoint."""


class OutputFailed(UserError):
    """A file of the run could not be written (full disk, quota, read-only, I/O error): the run stops cleanly."""


class OutOfMemory(UserError):
    """A training step did not fit in the device's memory: one line naming ``--batch-schedule``, no traceback."""


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure: CUDA's OutOfMemoryError, or the CPU allocator's RuntimeError."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc)


def kimg_label(images: int) -> str:
    """File-name label of a position in the run: kimg with three decimals, zero-padded so names sort."""
    return f"{images / 1000:010.3f}"


class Trainer:
    """One training run on this process (one rank of a DDP job, or the only process)."""

    def __init__(
        self,
        plan: RunPlan,
        job: DistContext,
        run_dir: Path,
        channels: int,
        resume_checkpoint: dict[str, Any] | None = None,
        log: Callable[[str], None] = print,
        dataset: dict[str, Any] | None = None,
    ) -> None:
        options = plan.options
        self.options = options
        self.job = job
        self.run_dir = Path(run_dir)
        self.batch_source = plan.batch_source
        self.log = log if job.is_main else (lambda message: None)
        self.schedule = plan.schedule
        self.channels = channels
        # Every accelerator setting of the run (autocast, memory format, TF32, compile) from the one policy.
        self.policy = device_policy(
            job.device, amp=options.amp, channels_last=options.channels_last, tf32=options.tf32,
            compile=options.compile,
        )  # fmt: skip
        self.policy.configure()
        self.gan = build_gan_state(
            options.resolution,
            channels,
            job.device,
            latent_size=options.latent_size,
            fmap_base=options.fmap_base,
            fmap_max=options.fmap_max,
            mbstd_group_size=options.mbstd_group_size,
            fused_downsample=options.fused_downsample,
            mbstd_strided=options.mbstd_strided,
            learning_rate=options.lr,
            seed=options.seed,  # identical initial weights on every rank
            ddp=job.distributed,
            gp_space=options.gp_space,
            policy=self.policy,
        )
        self.memory_format = self.gan.memory_format
        self.noise = torch.Generator().manual_seed(options.seed)
        # The grids show the faces of seeds 0, 1, 2, …: `pggan-sample RUN --seeds 0-63` draws the same faces.
        self.grid_latents = seed_latents(range(options.grid_size**2), options.latent_size)
        self.tick_layout = tick_grid_layout(options.resolution, options.grid_size)
        self.tick_latents = self.grid_latents[: self.tick_layout[0] * self.tick_layout[1]]
        self.dataset = dataset  # the fingerprint of the data, saved so a resume can tell if it changed
        specs = training_metrics(options, job.device, self.run_dir, self.generation_batch)
        self.metric_specs = {spec.name: spec for spec in specs}
        self.metrics: dict[str, TrainingMetric] = {}  # each built when it is first due
        self.timeline = Timeline(self._intervals())
        self.progress = RunProgress()
        self.timeline.start_at(0)
        self.resumed = resume_checkpoint is not None
        self.last_checkpoint: tuple[Path, int] | None = None  # the newest checkpoint known to be whole
        self.phase: Phase | None = None
        self.loader: Iterator[torch.Tensor] | None = None
        self.stop_requested = False
        self.last_alpha = 1.0
        self.stats_sum: dict[str, torch.Tensor] = {}
        self.stats_steps = 0  # finite steps in stats_sum
        self.nonfinite_in_tick = 0  # steps of this tick whose update was skipped (non-finite)
        self.nonfinite_in_row = 0  # consecutive non-finite steps; MAX_NONFINITE_STEPS of them stop the run
        self.tick_start = (time.perf_counter(), 0)
        self.run_log = RunLog(self.run_dir, options.tensorboard, self.log) if job.is_main else None
        if resume_checkpoint is not None:
            self._restore(resume_checkpoint)

    @property
    def images_shown(self) -> int:
        return self.progress.images_shown

    @property
    def step(self) -> int:
        return self.progress.step

    # ------------------------------------------------------------------ the timeline's cadences
    def _intervals(self) -> dict[str, Interval]:
        """Images between two of each recurring event: ticks per resolution (official tick_kimg_dict), snapshots
        and their grids every --snapshot-kimg, each training metric every --NAME-kimg (None: off)."""
        options = self.options

        def every(kimg: float | None) -> Interval:
            return lambda images_shown: round(kimg * 1000) if kimg else None

        def tick(images_shown: int) -> int:
            resolution = self.schedule.phase_at(images_shown).resolution
            return round((options.tick_kimg or TICK_KIMG.get(resolution, 10)) * 1000)

        return {
            "tick": tick,
            "snapshot": every(options.snapshot_kimg),
            "grid": every(options.snapshot_kimg),
            **{name: every(spec.every_kimg) for name, spec in self.metric_specs.items()},
        }

    # ------------------------------------------------------------------ --init
    def start_from(self, state: dict[str, Any]) -> None:
        """``--init``: take a checkpoint's networks and enter the schedule where it stood (resolution, alpha).

        Everything else stays fresh (optimizers, random streams); the timeline counts from the entry point,
        as the official code's ``resume_kimg`` does.
        """
        if image_channels(state) != self.channels:
            raise UserError(
                f"--init networks make {image_channels(state)}-channel images, the dataset has {self.channels} channels"
            )
        if "generator_ema" not in state:  # e.g. an import without Gs: the average starts as G
            state = {**state, "generator_ema": state["generator"]}
        s = self.gan
        load_networks(state, s.generator, s.discriminator, s.generator_ema)
        resolution, alpha = position(state)
        entry = entry_images(self.schedule, resolution, alpha)
        if entry >= self.schedule.total_images:
            raise UserError(
                f"--init enters the schedule at kimg {entry / 1000:g} ({resolution}x{resolution}, "
                f"alpha {alpha:g}); --total-kimg must be larger"
            )
        self.progress.images_shown = entry
        self.timeline.start_at(entry)

    # ------------------------------------------------------------------ checkpoint state
    def checkpoint_dict(self) -> dict[str, Any]:
        """Everything a resume needs, as the checkpoint dict that ``pggan.model.checkpoint`` defines and saves."""
        phase = self.schedule.phase_at(self.images_shown)
        s = self.gan
        networks = network_state(
            s.generator, s.discriminator, s.generator_ema, phase.resolution, phase.alpha(self.images_shown)
        )
        # The batch grids and metrics are drawn with here: pggan-swd/pggan-fid on this checkpoint draw with it too.
        networks["generation_batch"] = self.generation_batch(self.evaluation_point()[0])
        progress = copy.copy(self.progress)
        progress.timeline = self.timeline.to_dict()
        return training_state(
            networks,
            s.g_optimizer,
            s.d_optimizer,
            progress,
            self.noise.get_state(),
            self.options.to_dict(),
            self.dataset,
        )

    def _restore(self, state: dict[str, Any]) -> None:
        s = self.gan
        load_networks(state, s.generator, s.discriminator, s.generator_ema)
        load_optimizers(state, s.g_optimizer, s.d_optimizer)
        progress = run_progress(state)
        self.timeline.restore(progress.timeline, progress.images_shown)
        self.progress = progress
        restore_rng(state, self.noise)

    # ------------------------------------------------------------------ the loop
    def request_stop(self) -> None:
        """Ask the loop to checkpoint and return after the current step (signal-safe)."""
        self.stop_requested = True

    def _enter_phase(self, phase: Phase) -> None:
        if phase.index != self.progress.optimizer_phase:
            reset_optimizer(self.gan.g_optimizer)
            reset_optimizer(self.gan.d_optimizer)
            self.progress.optimizer_phase = phase.index
        set_learning_rate(self.gan.g_optimizer, phase.learning_rate)
        set_learning_rate(self.gan.d_optimizer, phase.learning_rate)
        self.gan.enter_phase(phase.resolution, phase.fading)
        self._close_loader()  # stop the previous loader's worker processes before starting new ones
        self.loader = self.batch_source(phase.resolution, phase.batch_size, self.images_shown)
        self.phase = phase
        kind = "fade-in to" if phase.fading else "stable at"
        self.log(f"phase {phase.index}: {kind} {phase.resolution}x{phase.resolution}, batch {phase.batch_size}")

    def run(self) -> str:
        """Train until ``total_kimg`` or a stop request. Returns "done" or "interrupted"."""
        total = self.schedule.total_images
        bar = self._progress_bar(total)
        self.tick_start = (time.perf_counter(), self.images_shown)
        try:
            if self.resumed and self.run_log is not None:
                self.run_log.resume_at(self.images_shown)
            if self.images_shown == 0 and self.options.grid_ticks:
                self._tick_grid()  # the untrained faces: the training video's first frame
            while self.images_shown < total:
                phase = self.schedule.phase_at(self.images_shown)
                if self.phase is None or phase.index != self.phase.index:
                    self._enter_phase(phase)
                step_start = time.perf_counter()
                self._one_step(phase)
                self.progress.elapsed_seconds += time.perf_counter() - step_start
                if bar is not None:
                    bar.update(phase.batch_size)
                finished = self.images_shown >= total
                if self.timeline.due("tick", self.images_shown) or finished or self.stop_requested:
                    self._tick()
                if self.timeline.due("grid", self.images_shown) or finished:
                    self._grid()
                if self.timeline.due("snapshot", self.images_shown) or finished:
                    self._snapshot()
                if self.stop_requested:
                    self.log(f"stopped at kimg {self.images_shown / 1000:.3f}; resume with --resume {self.run_dir}")
                    return "interrupted"
            return "done"
        except WriteFailed as exc:
            raise OutputFailed(
                f"{exc}; training stopped at kimg {self.images_shown / 1000:.3f}; {self._recovery()}"
            ) from None
        finally:
            if bar is not None:
                bar.close()
            if self.run_log is not None:
                self.run_log.close()
            self._close_loader()
            self.gan.release_views()
            self.phase = None

    def _close_loader(self) -> None:
        close = getattr(self.loader, "close", None)
        if close is not None:
            close()
        self.loader = None

    def _one_step(self, phase: Phase) -> None:
        job, options = self.job, self.options
        alpha = phase.alpha(self.images_shown)
        self.last_alpha = alpha
        reals = to_float_images(next(self.loader), job.device, self.memory_format)
        d_latents, mix, g_latents = draw_step_noise(
            self.noise, phase.batch_size, options.latent_size, job.rank, job.world_size
        )
        beta = ema_beta_for(phase.batch_size, options.ema_beta, options.ema_kimg)
        try:
            stats = train_step(self.gan, StepInputs(reals, d_latents, mix, g_latents), phase.resolution, alpha, beta)
        except (RuntimeError, MemoryError) as exc:
            if not is_out_of_memory(exc):
                raise
            raise OutOfMemory(self._out_of_memory_message(phase, exc)) from None
        self.progress.images_shown += phase.batch_size  # a skipped step consumes its batch, as officially
        self.progress.step += 1
        finite = torch.isfinite(stats["d_loss"]) & torch.isfinite(stats["g_loss"])
        nonfinite = ~finite | (stats["d_skipped"] > 0) | (stats["g_skipped"] > 0)
        for key in STAT_KEYS:  # a skipped step's losses stay out of the tick's means
            value = torch.where(nonfinite, torch.zeros_like(stats[key], dtype=torch.float32), stats[key].float())
            self.stats_sum[key] = self.stats_sum.get(key, 0.0) + value
        flags = torch.stack([nonfinite.float().reshape(()).cpu(), torch.tensor(float(self.stop_requested))])
        flags = all_reduce_sum(flags.to(job.device), job).tolist()  # the step's one sync; every rank agrees
        if flags[0] > 0:
            self._nonfinite_step(phase)
        else:
            self.nonfinite_in_row = 0
            self.stats_steps += 1
        if flags[1] > 0:
            self.stop_requested = True

    def _out_of_memory_message(self, phase: Phase, exc: BaseException) -> str:
        """What did not fit, and the --batch-schedule that halves the batch there (README: Memory)."""
        resolution, local = phase.resolution, phase.batch_size // self.job.world_size
        where = "GPU" if self.job.device.type == "cuda" else "host"
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        smaller = dict(self.schedule.batch_sizes())
        smaller[resolution] = max(
            self.job.world_size, phase.batch_size // 2 // self.job.world_size * self.job.world_size
        )
        schedule = ",".join(f"{r}:{b}" for r, b in sorted(smaller.items()))
        return (
            f"out of {where} memory in a training step at {resolution}x{resolution} with batch {local} per "
            f"process ({reason}); pass a smaller batch there, e.g. --batch-schedule {schedule} (README, Memory: "
            f"what fits per GPU size), or train on more GPUs; {self._recovery()}"
        )

    def _nonfinite_step(self, phase: Phase) -> None:
        """Count a skipped step; stop the run once MAX_NONFINITE_STEPS came in a row."""
        self.nonfinite_in_tick += 1
        self.nonfinite_in_row += 1
        where = f"step {self.step} (kimg {self.images_shown / 1000:.3f}, {phase.resolution}x{phase.resolution})"
        if self.nonfinite_in_row >= MAX_NONFINITE_STEPS:
            raise TrainingDiverged(
                f"non-finite gradients or loss in {self.nonfinite_in_row} consecutive steps up to {where}; "
                f"stopped. {self._recovery(resume=False)}"
            )
        self.log(f"warning: {where}: non-finite gradients or loss; the update was skipped "
                 f"({self.nonfinite_in_row} in a row, the run stops at {MAX_NONFINITE_STEPS})")  # fmt: skip

    def _check_finite_parameters(self) -> None:
        """Never checkpoint a network that has blown up, even when the last loss was still finite."""
        params = [p for net in (self.gan.generator, self.gan.discriminator) for p in net.parameters()]
        if not bool(torch.isfinite(torch.stack(torch._foreach_norm(params))).all()):
            raise TrainingDiverged(
                f"non-finite parameters after step {self.step} (kimg {self.images_shown / 1000:.3f}); "
                f"stopped. {self._recovery(resume=False)}"
            )

    # ------------------------------------------------------------------ outputs (rank 0)
    @property
    def latest_path(self) -> Path:
        return self.run_dir / "latest.pt"

    def _recovery(self, resume: bool = True) -> str:
        """What is left and what to do: the last checkpoint known to be whole, and how to continue."""
        if self.last_checkpoint is None:
            where = "no checkpoint of this run was written yet"
        else:
            path, images = self.last_checkpoint
            where = f"the last good checkpoint is {path} (kimg {images / 1000:.3f})"
        advice = f"; free space or fix the file system, then rerun with --resume {self.run_dir}" if resume else ""
        return where + advice

    def _save(self, path: Path) -> None:
        save_checkpoint(self.checkpoint_dict(), path)
        self.last_checkpoint = (path, self.images_shown)

    def _progress_bar(self, total: int) -> Any:
        if not self.job.is_main:
            return None
        from tqdm import tqdm

        interactive = sys.stderr.isatty()
        return tqdm(
            total=total,
            mininterval=0.5 if interactive else 60.0,  # a redirected log gets a line a minute, not a flood
            initial=self.images_shown,
            unit="img",
            unit_scale=True,
            dynamic_ncols=True,
            desc="train",
            leave=False,
        )

    def _tick(self) -> None:
        now = time.perf_counter()
        start_time, start_images = self.tick_start
        images = max(1, self.images_shown - start_images)
        seconds = now - start_time
        phase = self.phase
        stats = {k: (v / self.stats_steps).item() for k, v in self.stats_sum.items()} if self.stats_steps else {}
        if self.job.distributed and stats:
            values = all_reduce_sum(torch.tensor(list(stats.values()), device=self.job.device), self.job)
            stats = dict(zip(stats, (values / self.job.world_size).tolist(), strict=True))
        p = self.progress
        record = {
            "tick": p.tick_index,
            "kimg": self.images_shown / 1000,
            "step": self.step,
            "resolution": phase.resolution,
            "alpha": self.last_alpha,
            "batch": phase.batch_size,
            **stats,
            "sec_per_kimg": seconds / images * 1000,
            "img_per_s": images / seconds if seconds > 0 else math.inf,
            "total_seconds": p.elapsed_seconds,
            "memory_mb": self._memory_mb(),
            "nonfinite_steps": self.nonfinite_in_tick,
        }
        p.tick_index += 1
        self.stats_sum, self.stats_steps, self.nonfinite_in_tick = {}, 0, 0
        if self.timeline.due("tick", self.images_shown):  # a tick forced by a stop or the end keeps the cadence
            self.timeline.advance("tick", self.images_shown)
        self.tick_start = (time.perf_counter(), self.images_shown)
        self._check_finite_parameters()
        for name in self.metric_specs:
            if self.timeline.due(name, self.images_shown):
                self.timeline.advance(name, self.images_shown)
                if self.job.is_main:
                    record[name] = self.evaluate_metric(name)
        if self.run_log is None:
            return
        # The line first, then the checkpoint: a resume trims lines past its checkpoint, so the log stays whole.
        self.run_log.append(record)
        if self.options.grid_ticks and (p.tick_index % self.options.grid_ticks == 0 or self._finished):
            self._tick_grid()
        self._save(self.latest_path)
        self.run_log.show(record, self.images_shown)

    def _grid(self) -> None:
        self.timeline.advance("grid", self.images_shown)
        if self.job.is_main:
            self.write_grid(self.run_dir / f"grid-{kimg_label(self.images_shown)}.png")

    def _snapshot(self) -> None:
        self.timeline.advance("snapshot", self.images_shown)
        if self.job.is_main:
            self._save(self.run_dir / f"checkpoint-{kimg_label(self.images_shown)}.pt")

    def evaluation_point(self) -> tuple[int, float]:
        """(resolution, alpha) of the network as it stands after the last step: what grids and metrics show.

        Inside a phase this is what the checkpoint written at the same tick records, so ``pggan-swd`` on that
        checkpoint reproduces the logged SWD.
        """
        phase = self.schedule.phase_at(max(0, self.images_shown - 1))
        return phase.resolution, phase.alpha(self.images_shown) if phase.fading else 1.0

    def generation_batch(self, resolution: int) -> int:
        """Images per generator call for grids and metrics at ``resolution``: this process's training batch there,
        at most METRIC_BATCH_SIZE, so no generator call outside the step needs more memory than the step."""
        return generation_batch_size(self.schedule.batch_sizes()[resolution] // self.job.world_size)

    @property
    def _finished(self) -> bool:
        return self.images_shown >= self.schedule.total_images

    def write_grid(self, path: Path) -> None:
        """The EMA generator's faces of seeds 0 … ``--grid-size``²−1 at the current resolution and alpha."""
        resolution, alpha = self.evaluation_point()
        n = self.options.grid_size
        grid = write_run_grid(
            self.gan.generator_ema, path, self.grid_latents, (n, n), resolution, alpha, self.images_shown,
            device=self.job.device, batch_size=self.generation_batch(resolution),
        )  # fmt: skip
        if self.run_log is not None and self.run_log.tensorboard:
            self.run_log.add_grid(grid, self.images_shown)

    def _tick_grid(self) -> None:
        """The small per-tick grid the training video is made of (``ticks/grid-<kimg>.png``); rank 0 only."""
        if not self.job.is_main:
            return
        resolution, alpha = self.evaluation_point()
        path = self.run_dir / TICK_GRID_DIR / f"grid-{kimg_label(self.images_shown)}.png"
        write_run_grid(
            self.gan.generator_ema, path, self.tick_latents, self.tick_layout, resolution, alpha, self.images_shown,
            device=self.job.device, batch_size=self.generation_batch(resolution),
        )  # fmt: skip

    def evaluate_metric(self, name: str) -> Any:
        """The training metric ``name`` (swd, fid, …) of the EMA generator where the run stands now."""
        if name not in self.metrics:
            self.metrics[name] = self.metric_specs[name].build()
        return self.metrics[name].evaluate(self.gan.generator_ema, *self.evaluation_point())

    def _memory_mb(self) -> float:
        if self.job.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.job.device) / 2**20
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_options(run_dir: Path, options: TrainOptions) -> None:
    atomic_write_bytes(run_dir / "options.json", lambda handle: handle.write(options.to_json().encode()))


def install_stop_handlers(trainer: Trainer) -> Callable[[], None]:
    """SIGINT/SIGTERM → checkpoint and exit cleanly (how clusters pre-empt jobs); a second SIGINT aborts."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, frame: Any) -> None:
        if trainer.stop_requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        trainer.request_stop()

    for sig in previous:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
