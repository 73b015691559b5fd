"""A DDP job that loses a rank: the survivor stops at once with a clear message, a requeue continues exactly.

Two gloo processes are started the way torchrun starts them (RANK, WORLD_SIZE, MASTER_ADDR/PORT), without
torchrun's agent, so nothing but pggan itself decides how the surviving rank reacts to ``kill -9`` of its peer.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pggan.model.checkpoint import load_checkpoint, run_progress
from tests.device import DEVICE_ARG, ON_CUDA

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "--fmap-base", "32", "--fmap-max", "8", "--latent-size", "8", "--device", DEVICE_ARG, "--workers", "0",
    "--batch-schedule", "4:8,8:8,16:8", "--fade-kimg", "0.016", "--stable-kimg", "0.016",
    "--tick-kimg", "0.016", "--snapshot-kimg", "0.04", "--grid-size", "2", "--no-tensorboard",
]  # fmt: skip
TOTAL_KIMG = 0.8  # 100 steps: long enough to be killed in the middle
# Two ranks need two GPUs under NCCL (it refuses two ranks on one GPU); on the CPU they are two gloo processes.
pytestmark = pytest.mark.skipif(
    ON_CUDA and torch.cuda.device_count() < 2, reason="two NCCL ranks need two GPUs (this machine has one)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args: list, port: int) -> list[subprocess.Popen]:
    """Both ranks of a two-process job, as torchrun would start them."""
    procs = []
    for rank in range(2):
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "OMP_NUM_THREADS": "1",
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": "2",
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "pggan", "train", *map(str, args)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
        )
    return procs


def finish(procs: list[subprocess.Popen], timeout: float = 300) -> list[tuple[int, str]]:
    errors = [p.communicate(timeout=timeout)[1] for p in procs]
    return [(p.returncode, e[-3000:]) for p, e in zip(procs, errors, strict=True)]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "faces"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "pggan", "prepare", REPO / "datasets" / "sample", "--out", out, "--resolution", "16",
         "--workers", "1"], capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return out


@pytest.mark.slow
def test_killed_rank_stops_the_job_and_a_requeue_continues_bit_for_bit(dataset, tmp_path):
    common = ["--data", dataset, "--resolution", 16, "--out", tmp_path, *TINY, "--total-kimg", TOTAL_KIMG,
              "--resume", "auto", "--dist-timeout", 1]  # fmt: skip
    results = finish(launch([*common, "--run-name", "ref"], free_port()))
    assert all(code == 0 for code, _ in results), results

    job = [*common, "--run-name", "job"]
    procs = launch(job, free_port())
    stats = tmp_path / "job" / "stats.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (stats.exists() and stats.read_text().count("\n") >= 4):
        assert procs[0].poll() is None, procs[0].communicate()[1]
        time.sleep(0.01)
    procs[1].send_signal(signal.SIGKILL)  # a lost node: no clean-up, no message
    stderr = procs[0].communicate(timeout=120)[1]  # the survivor exits by itself (no timeout of minutes)
    procs[1].wait(timeout=30)
    assert procs[0].returncode == 1, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in stderr, stderr[-3000:]
    assert "rank 0: lost contact with another process of the job at kimg" in errors[0]
    assert "--resume auto" in errors[0]
    interrupted_at = run_progress(load_checkpoint(tmp_path / "job" / "latest.pt")).images_shown
    assert interrupted_at < TOTAL_KIMG * 1000

    # The scheduler requeues the job: the same command again.
    results = finish(launch(job, free_port()))
    assert all(code == 0 for code, _ in results), results
    got, expected = load_checkpoint(tmp_path / "job" / "latest.pt"), load_checkpoint(tmp_path / "ref" / "latest.pt")
    assert run_progress(got).images_shown == run_progress(expected).images_shown == TOTAL_KIMG * 1000
    for net in ("generator", "discriminator", "generator_ema"):
        for name, tensor in expected[net].items():
            assert torch.equal(got[net][name], tensor), f"{net}.{name} differs after the requeue"
