"""The device the test suite runs on: ``PGGAN_TEST_DEVICE=cuda make test`` moves every test that can run on a GPU there.

Tests take their device from here (never a literal ``"cpu"``), so the same suite checks a CPU build and a GPU
one. Tests that can only mean something on the CPU are marked :func:`cpu_only` with the reason, and skip on
CUDA. Multi-process tests use :func:`ddp_world_size` processes with :func:`ddp_backend`: two gloo processes on
the CPU, one NCCL process per GPU (at most two) on CUDA.
"""

from __future__ import annotations

import os

import pytest
import torch

from pggan.devices import device_policy

#: The environment variable that picks the suite's device: ``cpu`` (default) or ``cuda``.
ENV = "PGGAN_TEST_DEVICE"


def _test_device() -> torch.device:
    name = os.environ.get(ENV, "cpu").strip().lower() or "cpu"
    if name not in ("cpu", "cuda"):
        raise pytest.UsageError(f"{ENV} must be cpu or cuda, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise pytest.UsageError(f"{ENV}=cuda but torch sees no CUDA device here")
    return torch.device("cuda", 0) if name == "cuda" else torch.device("cpu")


#: The device every test that can run on a GPU runs on.
TEST_DEVICE = _test_device()
#: The ``--device`` argument of commands run by the tests.
DEVICE_ARG = TEST_DEVICE.type
ON_CUDA = TEST_DEVICE.type == "cuda"


def cpu_only(reason: str) -> pytest.MarkDecorator:
    """Skip on CUDA, saying why the test only means something on the CPU."""
    return pytest.mark.skipif(ON_CUDA, reason=f"CPU only: {reason}")


def ddp_world_size() -> int:
    """Processes of a multi-process test: two gloo processes on the CPU; one per GPU, at most two, on CUDA."""
    return min(2, torch.cuda.device_count()) if ON_CUDA else 2


def ddp_backend() -> str:
    """gloo on the CPU, NCCL on GPUs: the backend ``pggan-train`` picks (``pggan.devices.device_policy``)."""
    return device_policy(TEST_DEVICE).ddp_backend


def rank_device(rank: int) -> torch.device:
    """The device of one process of a multi-process test: its own GPU on CUDA, the CPU otherwise."""
    return torch.device("cuda", rank) if ON_CUDA else torch.device("cpu")


def init_test_group(rank: int, world_size: int, port: int) -> torch.device:
    """Join a test's process group on 127.0.0.1:``port`` with the suite's backend; return this rank's device.

    One CPU thread per process (two processes share the test machine's cores); on CUDA each rank takes its GPU.
    """
    import torch.distributed as dist

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    device = rank_device(rank)
    kwargs = {}
    if device.type == "cuda":
        torch.cuda.set_device(device)
        kwargs["device_id"] = device
    dist.init_process_group(ddp_backend(), rank=rank, world_size=world_size, **kwargs)
    return device
