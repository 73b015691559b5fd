"""The default (official) schedule trains on 1, 2, 4 and 8 processes (gloo on the CPU), each with its own table.

Tiny widths and a short custom schedule (phase lengths only); the batches are the default preset's, divided
per process, exactly as config.py's per-GPU-count presets give them (see test_presets.py).
"""

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from pggan.training.distributed import DistContext, shutdown
from pggan.training.trainer import Trainer
from tests.device import DEVICE_ARG, ON_CUDA, init_test_group
from tests.helpers import plan, random_pyramid, single_job, tensor_source

# config.py v2 presets at 4×4 and 8×8: 1 GPU 128/128, 2 GPUs 256/256, 4 and 8 GPUs 512/256 (global batches).
EXPECTED = {1: {4: 128, 8: 128}, 2: {4: 256, 8: 256}, 4: {4: 512, 8: 256}, 8: {4: 512, 8: 256}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_schedule_options(root: Path):
    from pggan.training.options import TrainOptions

    # Only the phase lengths are shortened: batch schedule, learning rates, stddev group and mirror are defaults.
    return TrainOptions(
        data=str(root / "data"), resolution=8, out=str(root / "runs"), run_name="run", device=DEVICE_ARG,
        fade_kimg=0.512, stable_kimg=0.512, total_kimg=1.536, fmap_base=16, fmap_max=4, latent_size=4,
        tick_kimg=0.512, snapshot_kimg=100, workers=0, grid_size=2, tensorboard=False,
    )  # fmt: skip


def _worker(rank: int, world_size: int, port: int, root: str) -> None:
    device = init_test_group(rank, world_size, port)
    try:
        options = default_schedule_options(Path(root))
        run_dir = Path(options.out) / options.run_name
        run_dir.mkdir(parents=True, exist_ok=True)
        job = DistContext(rank=rank, local_rank=rank, world_size=world_size, device=device)
        inner = tensor_source(random_pyramid(count=64, top=8), rank=rank, world_size=world_size)
        seen = []

        def source(resolution, batch_size, start):
            for batch in inner(resolution, batch_size, start):
                seen.append((resolution, batch_size, batch.shape[0]))
                yield batch

        trainer = Trainer(plan(options, source, job.world_size), job, run_dir, 3, log=lambda m: None)
        assert trainer.run() == "done"
        s = trainer.gan
        params = torch.cat([p.detach().flatten().cpu() for n in (s.generator, s.discriminator) for p in n.parameters()])
        torch.save({"seen": seen, "params": params, "options": trainer.options.to_dict()}, Path(root) / f"r{rank}.pt")
    finally:
        shutdown()  # drops DDP reducers (gc) before the group, as pggan-train does


@pytest.mark.parametrize(
    "processes", [1, 2, pytest.param(4, marks=pytest.mark.slow), pytest.param(8, marks=pytest.mark.slow)]
)
def test_default_schedule_trains_on_n_processes(tmp_path, processes):
    if ON_CUDA and processes > torch.cuda.device_count():
        pytest.skip(f"{processes} NCCL processes need {processes} GPUs (one process per GPU)")
    mp.spawn(_worker, args=(processes, free_port(), str(tmp_path)), nprocs=processes, join=True)
    results = [torch.load(tmp_path / f"r{rank}.pt") for rank in range(processes)]
    for result in results:
        global_batches = {res: batch for res, batch, _ in result["seen"]}
        assert global_batches == EXPECTED[processes]
        assert all(local == batch // processes for _, batch, local in result["seen"])
        assert torch.isfinite(result["params"]).all()
        torch.testing.assert_close(result["params"], results[0]["params"], rtol=0, atol=0)  # ranks stay in sync
    options = results[0]["options"]
    assert options["processes"] == processes and options["mirror"] is True and options["mbstd_group_size"] == 4
    steps = len(results[0]["seen"])
    assert steps >= 3  # at least one step in each of the three phases (4, fade to 8, 8)
    assert {res for res, _, _ in results[0]["seen"]} == {4, 8}
    assert (tmp_path / "runs" / "run" / "latest.pt").is_file()


@pytest.mark.slow  # nine resolutions up to 1024² on the CPU
def test_paper_preset_trains_with_batches_14_6_3(tmp_path):
    """config.py -preset-v1-1gpu: group 16 over per-process batches 14, 6 and 3 (group = min(16, batch))."""
    from pggan.training.options import TrainOptions

    options = TrainOptions(
        data=str(tmp_path / "data"), resolution=1024, out=str(tmp_path / "runs"), run_name="run", device=DEVICE_ARG,
        preset="paper", fade_kimg=0, stable_kimg=0.016, total_kimg=0.136, fmap_base=16, fmap_max=4, latent_size=4,
        tick_kimg=1, snapshot_kimg=100, workers=0, grid_size=1, tensorboard=False,
    )  # fmt: skip
    run_dir = Path(options.out) / options.run_name
    run_dir.mkdir(parents=True)
    inner = tensor_source(random_pyramid(count=16, top=1024))
    seen = []

    def source(resolution, batch_size, start):
        for batch in inner(resolution, batch_size, start):
            seen.append((resolution, batch.shape[0]))
            yield batch

    trainer = Trainer(plan(options, source), single_job(), run_dir, 3, log=lambda m: None)
    assert trainer.options.mbstd_group_size == 16 and trainer.gan.discriminator.mbstd_group_size == 16
    assert trainer.run() == "done"
    batches = {}
    for res, local in seen:
        batches.setdefault(res, set()).add(local)
    assert batches == {4: {16}, 8: {16}, 16: {16}, 32: {16}, 64: {16}, 128: {16}, 256: {14}, 512: {6}, 1024: {3}}
    params = torch.cat([p.detach().flatten() for p in trainer.gan.discriminator.parameters()])
    assert torch.isfinite(params).all()


@pytest.mark.slow  # eight Python processes importing torch
def test_readme_torchrun_command_with_eight_processes(tmp_path):
    """``torchrun --nproc_per_node=8 -m pggan train --data D --resolution R``: default tables, 64 images each."""
    if ON_CUDA and torch.cuda.device_count() < 8:
        pytest.skip("eight NCCL processes need eight GPUs (one process per GPU)")
    import json
    import subprocess
    import sys

    from pggan.data.prepare import prepare_dataset

    repo = Path(__file__).resolve().parents[1]
    data = tmp_path / "faces"
    prepare_dataset([str(repo / "datasets" / "sample" / "lfw_subset")], data, resolution=16, workers=1, progress=False)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=8", "--master_port", str(free_port()),
        "-m", "pggan", "train", "--data", str(data), "--resolution", "16", "--out", str(tmp_path / "runs"),
        "--device", DEVICE_ARG, "--workers", "0", "--fmap-base", "16", "--fmap-max", "4", "--latent-size", "4",
        "--total-kimg", "1.024", "--no-tensorboard", "--grid-size", "1",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "global batch  4:512  8:256  16:128" in done.stdout
    run_dir = tmp_path / "runs" / "faces-16"
    options = json.loads((run_dir / "options.json").read_text())
    assert options["processes"] == 8 and options["batch_schedule"] == "4:512,8:256,16:128"
    ticks = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert ticks[-1]["kimg"] == 1.024 and ticks[-1]["batch"] == 512
