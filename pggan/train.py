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
from pggan.checkpoint import (
    RunProgress,
    load_networks,
    load_optimizers,
    network_state,
    restore_rng,
    run_progress,
    save_checkpoint,
    training_state,
)
from pggan.defaults import MAX_NONFINITE_STEPS, TICK_KIMG
from pggan.distributed import DistContext, all_reduce_sum
from pggan.errors import UserError
from pggan.pixels import images_to_uint8, to_float_images
from pggan.run_log import RunLog
from pggan.run_schedule import build_schedule, check_batch_sizes
from pggan.schedule import Phase
from pggan.train_options import TrainOptions
from pggan.train_step import (
    StepInputs,
    build_gan_state,
    configure_torch,
    draw_step_noise,
    ema_beta_for,
    reset_optimizer,
    set_learning_rate,
    train_step,
)

#: (resolution, global batch size, first image index) -> iterator over this rank's uint8 batches.
BatchSource = Callable[[int, int, int], Iterator[torch.Tensor]]

STAT_KEYS = ("d_loss", "g_loss", "wdist", "gp", "drift", "real_score", "fake_score")


class TrainingDiverged(UserError):
    """Steps stayed non-finite (MAX_NONFINITE_STEPS in a row): the run stops and keeps its last good checkpoint."""


class OutputFailed(UserError):
    """A file of the run could not be written (full disk, quota, read-only, I/O error): the run stops cleanly."""


def kimg_label(images: int) -> str:
    """File-name label of a position in the run: kimg with three decimals, zero-padded so names sort."""
    return f"{images / 1000:010.3f}"


class Trainer:
    """One training run on this process (one rank of a DDP job, or the only process)."""

    def __init__(
        self,
        options: TrainOptions,
        job: DistContext,
        run_dir: Path,
        channels: int,
        batch_source: BatchSource,
        resume_checkpoint: dict[str, Any] | None = None,
        log: Callable[[str], None] = print,
        init_checkpoint: dict[str, Any] | None = None,
        dataset: dict[str, Any] | None = None,
    ) -> None:
        options = options.resolved(job.world_size)
        self.options = options
        self.job = job
        self.run_dir = Path(run_dir)
        self.batch_source = batch_source
        self.log = log if job.is_main else (lambda message: None)
        self.schedule = build_schedule(options)
        check_batch_sizes(self.schedule, job.world_size, options.mbstd_group_size, options.preset)
        configure_torch(job.device, tf32=options.tf32, compile=options.compile)
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
            compile=options.compile,
            gp_space=options.gp_space,
        )
        self.memory_format = self.gan.memory_format
        self.noise = torch.Generator().manual_seed(options.seed)
        self.grid_latents = torch.randn(
            options.grid_size**2, options.latent_size, generator=torch.Generator().manual_seed(options.seed + 1)
        )
        self.dataset = dataset  # the fingerprint of the data, saved so a resume can tell if it changed
        self.progress = RunProgress()
        self.progress.next_snapshot = self._snapshot_images()
        self.progress.next_swd = self._swd_images()
        self.progress.next_fid = self._fid_images()
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
        self.swd: Any = None
        self.fid: Any = None
        if resume_checkpoint is not None:
            self._restore(resume_checkpoint)
        elif init_checkpoint is not None:
            from pggan.init_run import apply_init

            apply_init(self, init_checkpoint, channels)
        p = self.progress
        p.next_tick = max(p.next_tick, p.images_shown + 1) if p.images_shown else self._tick_images()

    @property
    def images_shown(self) -> int:
        return self.progress.images_shown

    @property
    def step(self) -> int:
        return self.progress.step

    # ------------------------------------------------------------------ schedule positions
    def _tick_images(self) -> int:
        resolution = self.schedule.phase_at(self.images_shown).resolution
        kimg = self.options.tick_kimg or TICK_KIMG.get(resolution, 10)
        return self.images_shown + max(1, round(kimg * 1000))

    def _next_event(self, kimg: float | None, images_shown: int | None = None) -> int | None:
        """Images shown at which an event repeated every ``kimg`` comes next; None when it is switched off."""
        if not kimg:
            return None
        return (self.images_shown if images_shown is None else images_shown) + max(1, round(kimg * 1000))

    def _swd_images(self) -> int | None:
        return self._next_event(self.options.swd_kimg)

    def _fid_images(self) -> int | None:
        return self._next_event(self.options.fid_kimg)

    def _snapshot_images(self) -> int:
        return self._next_event(self.options.snapshot_kimg)

    # ------------------------------------------------------------------ checkpoint state
    def checkpoint_dict(self) -> dict[str, Any]:
        """Everything a resume needs, as the checkpoint dict that ``pggan.checkpoint`` defines and saves."""
        phase = self.schedule.phase_at(self.images_shown)
        s = self.gan
        networks = network_state(
            s.generator, s.discriminator, s.generator_ema, phase.resolution, phase.alpha(self.images_shown)
        )
        return training_state(
            networks,
            s.g_optimizer,
            s.d_optimizer,
            copy.copy(self.progress),
            self.noise.get_state(),
            self.options.to_dict(),
            self.dataset,
        )

    def _restore(self, state: dict[str, Any]) -> None:
        s = self.gan
        load_networks(state, s.generator, s.discriminator, s.generator_ema)
        load_optimizers(state, s.g_optimizer, s.d_optimizer)
        progress = run_progress(state)
        for name, kimg in (("next_swd", self.options.swd_kimg), ("next_fid", self.options.fid_kimg)):
            if kimg is None:
                setattr(progress, name, None)
            elif getattr(progress, name) is None:  # an older checkpoint, or the metric switched on at this resume
                setattr(progress, name, self._next_event(kimg, progress.images_shown))
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
                if self.images_shown >= self.progress.next_tick or finished or self.stop_requested:
                    self._tick()
                if self.images_shown >= self.progress.next_snapshot or finished:
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
        stats = train_step(
            self.gan, StepInputs(reals, d_latents, mix, g_latents), phase.resolution, alpha, beta, options.amp
        )
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
        if self.images_shown >= p.next_tick:  # a tick forced by a stop or the end keeps the cadence
            p.next_tick = self._tick_images()
        self.tick_start = (time.perf_counter(), self.images_shown)
        self._check_finite_parameters()
        if p.next_swd is not None and self.images_shown >= p.next_swd:
            p.next_swd = self._swd_images()
            if self.job.is_main:
                record["swd"] = self._evaluate_swd()
        if p.next_fid is not None and self.images_shown >= p.next_fid:
            p.next_fid = self._fid_images()
            if self.job.is_main:
                record["fid"] = self._evaluate_fid()
        if self.run_log is None:
            return
        # The line first, then the checkpoint: a resume trims lines past its checkpoint, so the log stays whole.
        self.run_log.append(record)
        self._save(self.latest_path)
        self.run_log.show(record, self.images_shown)

    def _snapshot(self) -> None:
        self.progress.next_snapshot = self._snapshot_images()
        if not self.job.is_main:
            return
        label = kimg_label(self.images_shown)
        self.write_grid(self.run_dir / f"grid-{label}.png")
        self._save(self.run_dir / f"checkpoint-{label}.pt")

    def evaluation_point(self) -> tuple[int, float]:
        """(resolution, alpha) of the network as it stands after the last step: what grids and metrics show.

        Inside a phase this is what the checkpoint written at the same tick records, so ``pggan-swd`` on that
        checkpoint reproduces the logged SWD.
        """
        phase = self.schedule.phase_at(max(0, self.images_shown - 1))
        return phase.resolution, phase.alpha(self.images_shown) if phase.fading else 1.0

    def write_grid(self, path: Path) -> None:
        """The EMA generator's images for the run's fixed latents, at the current resolution and alpha."""
        from pggan.sample import save_image_grid

        resolution, alpha = self.evaluation_point()
        with torch.inference_mode():
            images = self.gan.generator_ema(self.grid_latents.to(self.job.device), resolution, alpha)
        n = self.options.grid_size
        save_image_grid(images.float().cpu(), path, rows=n, cols=n)
        if self.run_log is not None and self.run_log.tensorboard:
            from pggan.sample import make_grid

            self.run_log.add_grid(make_grid(images_to_uint8(images.cpu()), n, n), self.images_shown)

    def _evaluate_swd(self) -> dict[str, float]:
        from pggan.train_swd import TrainingSWD

        if self.swd is None:
            self.swd = TrainingSWD(
                self.options.data, self.options.swd_images, self.options.seed, self.job.device, self.run_dir
            )
        return self.swd.evaluate(self.gan.generator_ema, *self.evaluation_point())

    def _evaluate_fid(self) -> float:
        from pggan.train_fid import TrainingFID

        if self.fid is None:
            options = self.options
            self.fid = TrainingFID(options.data, options.fid_images, options.seed, self.job.device, self.run_dir,
                                   options.inception, options.allow_unverified_inception)  # fmt: skip
        return self.fid.evaluate(self.gan.generator_ema, *self.evaluation_point())

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
