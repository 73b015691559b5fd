"""Test-session set-up shared by all tests."""

import os
from pathlib import Path

import pytest

# As the CLI does (pggan/cli.py): sleeping, not spinning, OpenMP threads keep tests fast on a busy machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(scope="session")
def faces16(tmp_path_factory):
    """The bundled sample faces prepared at 16x16 with pggan-prepare (once per test session)."""
    from tests.helpers import run_console

    out = tmp_path_factory.mktemp("data") / "faces16"
    sample = Path(__file__).resolve().parents[1] / "datasets" / "sample"
    result = run_console("pggan-prepare", sample, "--out", out, "--resolution", 16, "--workers", 1)
    assert result.returncode == 0, result.stderr
    return out
