"""Memory outside the training step stays below the step's: grids and metrics draw in training-size batches.

A 1024² snapshot grid of 64 faces in one generator call took a training process from 4.2 to 14.5 GB: beside
training on a 16 GB GPU, an out-of-memory crash at the first 1024² snapshot. Every generator call outside the
step (snapshot and tick grids, SWD/FID fakes) now draws at most the per-process training batch of that
resolution, and the memory model the README's table comes from is checked against a measured step.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from pggan.model.checkpoint import generation_batch, load_checkpoint
from pggan.pictures.generate import METRIC_BATCH_SIZE, generation_batch_size
from pggan.pictures.training_video import write_run_grid
from pggan.training.plan import dataset_batch_source, plan_run
from pggan.training.step import StepInputs, draw_step_noise, train_step
from pggan.training.trainer import Trainer
from tests.device import TEST_DEVICE, cpu_only
from tests.helpers import plan, random_pyramid, single_job, tensor_source, tiny_options

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import bench_train

#: Writing the top-resolution grid may take at most this share of the training step's peak (measured: 0.13 on
#: the CPU; one batch of 64 faces took 1.65× the step).
GRID_SHARE_OF_STEP = 0.5


def top_resolution_trainer(tmp_path: Path) -> Trainer:
    """A 64² run with the paper's shape of widths (16 channels at the top) and the official top batch of 4."""
    options = tiny_options(
        tmp_path, resolution=64, fmap_base=512, fmap_max=64, latent_size=64, grid_size=8,
        batch_schedule="4:8,8:8,16:8,32:8,64:4", total_kimg=0.2,
    )  # fmt: skip
    run_dir = Path(options.out) / options.run_name
    run_dir.mkdir(parents=True)
    trainer = Trainer(plan(options, tensor_source(random_pyramid(count=8, top=64))), single_job(), run_dir, 3)
    trainer.progress.images_shown = trainer.schedule.total_images  # where the run ends: stable at 64²
    return trainer


def test_grid_at_the_top_resolution_needs_less_memory_than_the_training_step(tmp_path):
    trainer = top_resolution_trainer(tmp_path)
    state = trainer.gan
    assert trainer.evaluation_point() == (64, 1.0) and trainer.generation_batch(64) == 4
    state.enter_phase(64, fading=False)
    reals = (torch.rand(4, 3, 64, 64) * 2 - 1).to(TEST_DEVICE)
    noise = torch.Generator().manual_seed(0)

    def step() -> None:
        train_step(state, StepInputs(reals, *draw_step_noise(noise, 4, 64, 0, 1)), 64, 1.0, 0.999)

    step()  # Adam's moments exist from here on, as in a run
    alive = [*bench_train.alive_tensors(state), reals, trainer.grid_latents]
    step_peak = bench_train.peak_above_start(step, TEST_DEVICE, alive)
    grid_peak = bench_train.peak_above_start(lambda: trainer.write_grid(tmp_path / "grid.png"), TEST_DEVICE, alive)
    assert (tmp_path / "grid.png").is_file()
    assert grid_peak <= GRID_SHARE_OF_STEP * step_peak, (grid_peak / 2**20, step_peak / 2**20)
    # The bound bites: the same 64 faces in one call (what the grid did before) need more than the step.
    one_call = bench_train.peak_above_start(
        lambda: write_run_grid(state.generator_ema, tmp_path / "g64.png", trainer.grid_latents, (8, 8), 64, 1.0, 0,
                               batch_size=METRIC_BATCH_SIZE),
        TEST_DEVICE, alive,
    )  # fmt: skip
    assert one_call > step_peak


def test_every_generator_call_outside_the_step_uses_the_training_batch(faces16, tmp_path):
    """A real run with SWD, snapshot and tick grids: every EMA-generator call (nothing else draws with it) has at
    most the training batch of its resolution, and the checkpoint records that batch for pggan-swd."""
    options = tiny_options(
        tmp_path, data=str(faces16), batch_schedule="4:8,8:8,16:4", grid_size=4, swd_kimg=0.048, swd_images=32,
        total_kimg=0.064,
    )  # fmt: skip
    run_dir = Path(options.out) / options.run_name
    run_dir.mkdir(parents=True)
    job = single_job()
    run_plan = plan_run(options, job.world_size, lambda resolved: dataset_batch_source(resolved, job))
    trainer = Trainer(run_plan, job, run_dir, 3, log=lambda m: None)
    calls = []
    ema = trainer.gan.generator_ema
    forward = ema.forward

    def recording(z, resolution, alpha=1.0):
        calls.append((resolution, z.shape[0]))
        return forward(z, resolution, alpha)

    ema.forward = recording
    assert trainer.run() == "done"
    batches = {4: 8, 8: 8, 16: 4}
    assert calls and all(batch <= batches[resolution] for resolution, batch in calls), calls
    assert (16, 4) in calls  # the 16-face grids and the 32 SWD fakes at 16² in fours
    assert generation_batch(load_checkpoint(run_dir / "latest.pt")) == 4


def test_generation_batch_is_the_training_batch_capped_at_the_metric_batch():
    assert [generation_batch_size(b) for b in (None, 0, 1, 4, 64, 128)] == [64, 64, 1, 4, 64, 64]


@cpu_only("the CPU's storage peak is what the fake-tensor model reproduces exactly; the GPU check compares on CUDA")
@pytest.mark.parametrize("amp", [False, True])
def test_memory_model_reproduces_the_measured_step_peak(amp):
    """The README's per-GPU-size table comes from steps traced on fake tensors: on real tensors the same step has
    the same peak, and the peak grows linearly with the batch."""
    kwargs = {"device_type": "cpu", "amp": amp, "channels_last": False, "latent_size": 32}
    (modelled,) = bench_train.traced_peaks(32, 32, (8,), **kwargs)
    args = bench_train.parse_args(["--res", "32", "--fmap-max", "32", "--batch", "8", "--latent-size", "32",
                                   "--warmup", "1", "--steps", "1", "--no-flops", "--device", "cpu"]
                                  + (["--amp"] if amp else []))  # fmt: skip
    measured = bench_train.bench_row(args, 32, torch.device("cpu")).peak_mem_mb * 2**20
    assert abs(modelled - measured) <= 0.01 * measured, (modelled / 2**20, measured / 2**20)
    model = bench_train.memory_model(32, 32, batches=(4, 8), **kwargs)
    (at_12,) = bench_train.traced_peaks(32, 32, (12,), **kwargs)
    assert model.per_image_mb > 0 and abs(model.peak_mb(12) - at_12 / 2**20) <= 0.02 * at_12 / 2**20


def test_largest_batch_per_gpu_respects_the_budget_and_the_stddev_group():
    model = bench_train.MemoryModel(1024, 512, "cuda", "fp32", True, fixed_mb=880, per_image_mb=2462, batches=(4, 8))
    assert model.largest_batch(16) == 4 and model.largest_batch(80) == 28
    assert bench_train.MemoryModel(1024, 512, "cuda", "fp32", True, 880, 5000, (4, 8)).largest_batch(16) == 2
    assert bench_train.MemoryModel(1024, 512, "cuda", "fp32", True, 20000, 100, (4, 8)).largest_batch(16) == 0
