"""Shared test set-up: a tiny checkpoint, tiny training options, an in-memory batch source, console runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from pggan.model.checkpoint import network_state, save_checkpoint
from pggan.model.networks import Discriminator, Generator
from pggan.training.distributed import DistContext
from pggan.training.options import TrainOptions
from pggan.training.plan import RunPlan, plan_run
from tests.device import DEVICE_ARG, TEST_DEVICE


def tiny_checkpoint(
    path: str | os.PathLike[str] | None,
    *,
    max_resolution: int = 16,
    resolution: int | None = None,
    alpha: float = 1.0,
    channels: int = 3,
    latent_size: int = 8,
    seed: int = 0,
    ema_offset: float = 0.0,
) -> tuple[Generator, Generator, dict]:
    """A small real networks-only checkpoint (fmap_base 32, fmap_max 8), saved with ``save_checkpoint`` when
    ``path`` is given: returns (G, G_ema, the state). ``ema_offset`` > 0 makes the EMA differ from G (so --raw
    is observable); otherwise the EMA is G itself."""
    torch.manual_seed(seed)
    g = Generator(max_resolution, channels=channels, latent_size=latent_size, fmap_base=32, fmap_max=8)
    d = Discriminator(max_resolution, channels=channels, fmap_base=32, fmap_max=8)
    ema = g
    if ema_offset:
        ema = Generator(**g.config)
        ema.load_state_dict({k: v + ema_offset * torch.randn_like(v) for k, v in g.state_dict().items()})
    state = network_state(g, d, ema, resolution=resolution or max_resolution, alpha=alpha)
    if path is not None:
        save_checkpoint(state, path)
    return g.eval(), ema.eval(), state


def tiny_options(tmp_path, **overrides) -> TrainOptions:
    values = dict(
        data=str(tmp_path / "data"),
        resolution=16,
        out=str(tmp_path / "runs"),
        run_name="run",
        fade_kimg=0.016,
        stable_kimg=0.016,
        total_kimg=0.08,  # the end of the last stable phase (4: 16 + 2 × (16 + 16) images)
        batch_schedule="4:8,8:8,16:8",
        fmap_base=32,
        fmap_max=8,
        latent_size=8,
        device=DEVICE_ARG,
        tick_kimg=0.016,
        snapshot_kimg=0.032,
        workers=0,
        grid_size=2,
        tensorboard=False,
    )
    values.update(overrides)
    return TrainOptions(**values)


def single_job() -> DistContext:
    """The one-process job of a training test, on the suite's device (tests/device.py)."""
    return DistContext(device=TEST_DEVICE)


def plan(options: TrainOptions, source, world_size: int = 1) -> RunPlan:
    """The run resolved as pggan-train resolves it, with an in-memory batch source."""
    return plan_run(options, world_size, lambda resolved: source)


def tensor_source(images_by_res: dict[int, torch.Tensor], rank: int = 0, world_size: int = 1):
    """Batches covering stream positions [start + k·B, start + (k+1)·B), sliced to the rank."""

    def source(resolution: int, batch_size: int, start: int):
        data = images_by_res[resolution]
        local = batch_size // world_size
        position = start
        while True:
            index = torch.arange(position, position + batch_size) % data.shape[0]
            yield data[index[rank * local : (rank + 1) * local]]
            position += batch_size

    return source


def random_pyramid(count: int = 24, top: int = 16, channels: int = 3, seed: int = 0) -> dict[int, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    levels = {top: torch.randint(0, 256, (count, channels, top, top), generator=generator, dtype=torch.uint8)}
    res = top
    while res > 4:
        levels[res // 2] = torch.nn.functional.avg_pool2d(levels[res].float(), 2).round().to(torch.uint8)
        res //= 2
    return levels


def run_console(command: str, *args, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """Run an installed console script (pggan-train, pggan-prepare, ...) as a user would, output captured."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [str(Path(sys.executable).parent / command), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        **kwargs,
    )
