"""Test-session set-up shared by all tests: the suite's device (tests/device.py), threads, the shared dataset."""

import os
from pathlib import Path

import pytest

# As the CLI does (pggan/cli.py): sleeping, not spinning, OpenMP threads keep tests fast on a busy machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Deterministic cuBLAS needs this before CUDA starts (PGGAN_TEST_DEVICE=cuda; harmless on the CPU).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def pytest_configure(config):
    """Check PGGAN_TEST_DEVICE once (a one-line usage error when CUDA is asked for and absent)."""
    from tests.device import ON_CUDA

    if ON_CUDA:
        import torch

        # Tests compare runs bit for bit (resume, DDP vs one process): ask CUDA for deterministic kernels, as
        # far as it has them (warn_only: an op without one warns instead of failing the test).
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)
        # float32 as pggan's default (TF32 off): tests that build networks without the trainer's policy compare
        # against float32 tolerances, and PyTorch's own default runs cuDNN convolutions in TF32.
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False


def pytest_report_header(config):
    from tests.device import TEST_DEVICE

    if TEST_DEVICE.type == "cuda":
        import torch

        return f"pggan test device: {TEST_DEVICE} ({torch.cuda.get_device_name(TEST_DEVICE)})"
    return f"pggan test device: {TEST_DEVICE} (PGGAN_TEST_DEVICE=cuda runs the suite on a GPU)"


@pytest.fixture(scope="session")
def faces16(tmp_path_factory):
    """The bundled sample faces prepared at 16x16 with pggan-prepare (once per test session)."""
    from tests.helpers import run_console

    out = tmp_path_factory.mktemp("data") / "faces16"
    sample = Path(__file__).resolve().parents[1] / "datasets" / "sample"
    result = run_console("pggan-prepare", sample, "--out", out, "--resolution", 16, "--workers", 1)
    assert result.returncode == 0, result.stderr
    return out
