"""Test-session set-up shared by all tests."""

import os

# As the CLI does (pggan/cli.py): sleeping, not spinning, OpenMP threads keep tests fast on a busy machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
