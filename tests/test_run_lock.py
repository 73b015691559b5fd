"""One process per run directory and per dataset being built: a second one stops at once, naming the first.

The first process is real and holds the real lock (``pggan.run_lock``, as ``pggan-train`` and
``pggan-prepare`` take it); the second is the real command. A lock left by a killed process never blocks.
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

from pggan.run_lock import RUN_LOCK_NAME, RunLocked, dataset_output_lock, run_directory_lock
from tests import hostile_files as H

_HOLDER = """
import sys, time
from pggan.run_lock import dataset_output_lock, run_directory_lock
lock = (run_directory_lock if sys.argv[1] == "run" else dataset_output_lock)(sys.argv[2]).acquire()
print("held", flush=True)
time.sleep(120)
"""


def _holder(kind: str, path: Path) -> subprocess.Popen:
    """A process that takes the lock of ``path`` and keeps it until it is killed."""
    process = subprocess.Popen([sys.executable, "-c", _HOLDER, kind, str(path)], stdout=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(H.REPO)})  # fmt: skip
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_training_on_the_same_run_stops_at_once_naming_the_first(faces16, tmp_path):
    run_dir = tmp_path / "runs" / "faces"
    holder = _holder("run", run_dir)
    try:
        start = time.monotonic()
        outcome = H.run_capped(H.pggan_args("train", "--data", faces16, "--resolution", 16, "--out", tmp_path / "runs",
                                            "--run-name", "faces", "--resume", "auto", "--fmap-base", 32, "--fmap-max",
                                            8, "--latent-size", 8, *H.TINY_TRAIN),
                               env={"PYTHONPATH": str(H.REPO)}, timeout=120)  # fmt: skip
        assert outcome.returncode == 1, outcome.summary()
        assert outcome.errors == [outcome.stderr.strip().splitlines()[-1]] and "Traceback" not in outcome.stderr
        line = outcome.errors[0]
        assert f"the run directory {run_dir} is in use by another pggan-train" in line
        assert f"host {socket.gethostname()}, PID {holder.pid}, started " in line
        assert sorted(p.name for p in run_dir.iterdir()) == [RUN_LOCK_NAME]  # it wrote nothing
        assert time.monotonic() - start < 60
    finally:
        holder.kill()
        holder.wait()
    # The holder died without releasing anything: its lock file is still there and blocks no one.
    assert (run_dir / RUN_LOCK_NAME).is_file()
    with run_directory_lock(run_dir) as lock:
        assert lock.held and f"PID {os.getpid()}," in (run_dir / RUN_LOCK_NAME).read_text()
    assert not (run_dir / RUN_LOCK_NAME).exists()  # released and removed by its holder


def test_a_second_prepare_on_the_same_out_stops_at_once(tmp_path):
    out = tmp_path / "faces"
    holder = _holder("dataset", out)
    try:
        outcome = H.run_capped(H.pggan_args("prepare", H.good_images(tmp_path / "src"), "--out", out,
                                            "--resolution", 16, "--workers", 1), env={"PYTHONPATH": str(H.REPO)})
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert outcome.returncode == 1 and "Traceback" not in outcome.stderr, outcome.summary()
    assert outcome.errors == [outcome.stderr.strip()]
    assert f"the dataset {out} is in use by another pggan-prepare (host {socket.gethostname()}, PID {holder.pid}" in (
        outcome.errors[0]
    )
    assert not out.exists() and not (tmp_path / "faces.skipped.txt").exists()
    with dataset_output_lock(out):  # the killed holder's lock blocks no one
        with pytest.raises(RunLocked, match=f"PID {os.getpid()},"):  # a second lock, even in one process, is refused
            dataset_output_lock(out).acquire()
