"""Faults below the command line, made for real: truncated datasets, refused writes, damaged checkpoints.

Every fault is produced with real files and real errors (a truncated ``data.mdb``, ``RLIMIT_FSIZE`` so that
writes fail with EFBIG, a path whose parent is a file, a tiny tmpfs when the container allows mounting), and
every check runs the command in a subprocess, as a user would: exit code, one-line message, files left behind.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pggan.model.checkpoint import dataset_fingerprint, load_checkpoint, run_progress
from tests.device import DEVICE_ARG

REPO = Path(__file__).resolve().parents[1]
TINY = [
    "--fmap-base", "32", "--fmap-max", "8", "--latent-size", "8", "--device", DEVICE_ARG, "--workers", "0",
    "--batch-schedule", "4:8,8:8,16:8", "--fade-kimg", "0.016", "--stable-kimg", "0.016",
    "--tick-kimg", "0.016", "--snapshot-kimg", "0.04", "--grid-size", "2", "--no-tensorboard",
    "--swd-kimg", "0.032", "--swd-images", "64",
]  # fmt: skip
NETS = ("generator", "discriminator", "generator_ema")


def pggan(*args, fsize: int | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    """``python -m pggan ARGS`` in a subprocess; ``fsize`` caps the size of any file it writes (real EFBIG)."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "pggan", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        preexec_fn=limit if fsize is not None else None,
    )


def one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> str:
    """Assert a clean failure: exit code 1 (not a signal), no traceback, one line naming ``fragments``."""
    assert result.returncode == 1, (result.returncode, result.stderr[-2000:])
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert "Traceback" not in result.stderr and len(errors) == 1, result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def stats_kimg(run_dir: Path) -> tuple[list[float], list[float]]:
    """The kimg of every stats.jsonl line, and of the lines that carry an SWD evaluation."""
    lines = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    return [t["kimg"] for t in lines], [t["kimg"] for t in lines if "swd" in t]


def assert_same_networks(path: Path, reference: Path) -> None:
    got, expected = load_checkpoint(path), load_checkpoint(reference)
    assert run_progress(got).images_shown == run_progress(expected).images_shown
    for net in NETS:
        for name, tensor in expected[net].items():
            assert torch.equal(got[net][name], tensor), f"{net}.{name} differs"


def _prepare(out: Path, *args) -> Path:
    result = pggan("prepare", *args, "--out", out, "--resolution", 16, "--workers", 1)
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    return {"faces": _prepare(tmp_path_factory.mktemp("data") / "faces", REPO / "datasets" / "sample")}


@pytest.fixture(scope="module")
def other_datasets(tmp_path_factory) -> dict[str, Path]:
    root, sample = tmp_path_factory.mktemp("other"), REPO / "datasets" / "sample"
    return {
        "gray": _prepare(root / "gray", sample, "--channels", 1),
        "solvay": _prepare(root / "solvay", sample / "solvay1927"),
    }


@pytest.fixture(scope="module")
def reference(datasets, tmp_path_factory) -> Path:
    """A run to 0.08 kimg in one go: checkpoints at 0.04 and 0.08, SWD at 0.032 and 0.064."""
    out = tmp_path_factory.mktemp("reference")
    result = pggan("train", "--data", datasets["faces"], "--resolution", 16, "--out", out, "--run-name", "r",
                   *TINY, "--total-kimg", 0.08)  # fmt: skip
    assert result.returncode == 0, result.stderr
    run_dir = out / "r"
    assert stats_kimg(run_dir) == ([0.016, 0.032, 0.048, 0.064, 0.08], [0.032, 0.064])
    return run_dir


def start(datasets, out: Path, total: float, **kwargs) -> subprocess.CompletedProcess:
    return pggan("train", "--data", datasets["faces"], "--resolution", 16, "--out", out, "--run-name", "r", *TINY,
                 "--total-kimg", total, **kwargs)  # fmt: skip


# ---------------------------------------------------------------- resume: the run-progress record
@pytest.mark.slow  # tests/test_train_loop.py checks the same cadence in-process, in the fast suite
def test_interrupted_and_resumed_run_logs_and_ends_as_one_done_in_one_go(datasets, reference, tmp_path):
    assert start(datasets, tmp_path, 0.04).returncode == 0
    run_dir = tmp_path / "r"
    resumed = pggan("train", "--resume", run_dir, "--total-kimg", 0.08)
    assert resumed.returncode == 0, resumed.stderr
    # Ticks and SWD keep their cadence (SWD at 0.064, not at the first tick after the resume); the stop at
    # 0.04 adds its own line.
    ticks, swd = stats_kimg(run_dir)
    assert (ticks, swd) == (sorted([*stats_kimg(reference)[0], 0.04]), stats_kimg(reference)[1])
    assert_same_networks(run_dir / "latest.pt", reference / "latest.pt")


# ---------------------------------------------------------------- full disk and refused writes
def test_refused_checkpoint_write_stops_cleanly_and_resume_continues_exactly(datasets, reference, tmp_path):
    assert start(datasets, tmp_path, 0.032).returncode == 0
    run_dir = tmp_path / "r"
    good = (run_dir / "latest.pt").read_bytes()
    # Files may grow to 40 kB: stats lines and grids fit, the next checkpoint (~100 kB) does not.
    assert len(good) > 40_000
    failed = pggan("train", "--resume", run_dir, "--total-kimg", 0.08, fsize=40_000)
    snapshot = run_dir / "checkpoint-000000.040.pt"
    line = one_line_error(failed, f"cannot write {snapshot}: File too large (EFBIG)", "training stopped at kimg 0.040")
    assert f"the last good checkpoint is {run_dir / 'latest.pt'} (kimg 0.032)" in line and "--resume" in line
    assert (run_dir / "latest.pt").read_bytes() == good
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".")], "temp files left behind"
    # "Space freed": the same command without the limit continues exactly, and the log reads as one run.
    resumed = pggan("train", "--resume", run_dir, "--total-kimg", 0.08)
    assert resumed.returncode == 0, resumed.stderr
    assert stats_kimg(run_dir) == stats_kimg(reference)
    assert_same_networks(run_dir / "latest.pt", reference / "latest.pt")


def test_prepare_and_sample_report_refused_writes(datasets, reference, tmp_path):
    sources = REPO / "datasets" / "sample" / "lfw_subset"
    failed = pggan("prepare", sources, "--out", tmp_path / "ds", "--resolution", 32, "--workers", 1, fsize=20_000)
    one_line_error(failed, f"cannot write {tmp_path / 'ds'}", "nothing was written")
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "a partial dataset was left behind"

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    failed = pggan("sample", reference, "--grid", blocker / "grid.png", "--rows", 2, "--cols", 2)
    one_line_error(failed, f"cannot write {blocker / 'grid.png'}", "(ENOTDIR)")
    failed = pggan("sample", reference, "--grid", tmp_path / "grid.png", "--rows", 8, "--cols", 8, fsize=1000)
    one_line_error(failed, f"cannot write {tmp_path / 'grid.png'}", "(EFBIG)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return result.returncode == 0


@pytest.mark.slow
def test_full_disk_on_a_real_small_filesystem(datasets, reference, tmp_path):
    disk = tmp_path / "disk"
    if shutil.which("mount") is None or not _mount_tmpfs(disk, "400k"):
        pytest.skip("mounting a tmpfs is not permitted here (RLIMIT_FSIZE tests cover refused writes)")
    try:
        failed = start(datasets, disk, 0.08)
        line = one_line_error(failed, "No space left on device (ENOSPC)", "training stopped at kimg")
        run_dir = disk / "r"
        assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".")], "temp files left behind"
        assert "the last good checkpoint is" in line
        subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)  # space freed
        resumed = pggan("train", "--resume", run_dir, "--total-kimg", 0.08)
        assert resumed.returncode == 0, resumed.stderr
        assert stats_kimg(run_dir) == stats_kimg(reference)
        assert_same_networks(run_dir / "latest.pt", reference / "latest.pt")
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)  # a read-only file system
        failed = pggan("sample", run_dir, "--grid", disk / "grid.png")
        one_line_error(failed, f"cannot write {disk / 'grid.png'}", "(EROFS)")
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# ---------------------------------------------------------------- damaged checkpoints
def test_unreadable_latest_falls_back_to_newest_readable_checkpoint(reference, tmp_path):
    run_dir = tmp_path / "r"
    shutil.copytree(reference, run_dir)
    latest = run_dir / "latest.pt"
    data = bytearray(latest.read_bytes())
    data[len(data) // 2] ^= 0xFF  # bit rot: still a zip torch.load would read
    latest.write_bytes(bytes(data))
    newest = run_dir / "checkpoint-000000.080.pt"
    newest.write_bytes(newest.read_bytes()[:5000])  # a truncated copy
    sampled = pggan("sample", run_dir, "--grid", tmp_path / "grid.png", "--rows", 2, "--cols", 2)
    assert sampled.returncode == 0, sampled.stderr
    assert "checkpoint-000000.040.pt" in sampled.stderr and (tmp_path / "grid.png").is_file()

    resumed = pggan("train", "--resume", run_dir, "--total-kimg", 0.08)
    assert resumed.returncode == 0, resumed.stderr
    warning = resumed.stderr.splitlines()[0]
    assert "latest.pt: " in warning and "SHA-256 does not match" in warning, warning
    assert "using checkpoint-000000.040.pt (kimg 0.040)" in warning and "the 40 images trained after it" in warning
    assert stats_kimg(run_dir) == stats_kimg(reference)  # the redone ticks replace the lost ones
    assert_same_networks(run_dir / "latest.pt", reference / "latest.pt")


# ---------------------------------------------------------------- another dataset on resume
@pytest.mark.slow
def test_resume_on_another_dataset_says_what_differs(datasets, other_datasets, reference, tmp_path):
    run_dir = tmp_path / "r"
    shutil.copytree(reference, run_dir)
    before = (run_dir / "latest.pt").read_bytes()
    gray = pggan("train", "--resume", run_dir, "--data", other_datasets["gray"], "--total-kimg", 0.096)
    one_line_error(gray, "3-channel images", "1-channel images")
    other = pggan("train", "--resume", run_dir, "--data", other_datasets["solvay"], "--total-kimg", 0.096)
    one_line_error(other, "is not the dataset this run was trained on", "images 131 → 29", "--allow-new-data")
    assert (run_dir / "latest.pt").read_bytes() == before
    moved = tmp_path / "moved-faces"  # the same dataset copied elsewhere is the same dataset
    shutil.copytree(datasets["faces"], moved)
    same = pggan("train", "--resume", run_dir, "--data", moved, "--total-kimg", 0.088)
    assert same.returncode == 0, same.stderr
    fine_tune = pggan("train", "--resume", run_dir, "--data", other_datasets["solvay"], "--allow-new-data",
                      "--total-kimg", 0.096)  # fmt: skip
    assert fine_tune.returncode == 0, fine_tune.stderr
    state = load_checkpoint(run_dir / "latest.pt")
    assert run_progress(state).images_shown == 96 and dataset_fingerprint(state)["count"] == 29


# ---------------------------------------------------------------- damaged datasets
def test_truncated_dataset_is_an_error_not_a_sigbus(datasets, tmp_path):
    damaged = tmp_path / "faces"
    shutil.copytree(datasets["faces"], damaged)
    data_file = damaged / "data.mdb"
    size = data_file.stat().st_size
    with open(data_file, "r+b") as handle:  # a partial copy: the first half of the file
        handle.truncate(size // 2)
    verify = pggan("prepare", "--verify", damaged)
    assert verify.returncode == 1, (verify.returncode, verify.stderr)
    assert "data.mdb holds" in verify.stderr and "pggan-prepare" in verify.stderr and "Traceback" not in verify.stderr
    train = pggan("train", "--data", damaged, "--resolution", 16, "--out", tmp_path / "runs", *TINY)
    one_line_error(train, f"{damaged} is damaged", "partial copy", "--overwrite")
    swd = pggan("swd", damaged, datasets["faces"], "--num-images", 8, "--quiet")
    one_line_error(swd, f"{damaged} is damaged")


def test_damaged_record_read_by_a_loader_worker_is_one_line(datasets, tmp_path):
    import lmdb

    from pggan.data.loader import make_batch_loader
    from pggan.errors import UserError

    damaged = tmp_path / "faces"
    shutil.copytree(datasets["faces"], damaged)
    env = lmdb.open(str(damaged), map_size=1 << 30)
    with env.begin(write=True) as txn:  # a record cut short, as a bad sector or a bad copy leaves it
        txn.put(b"0016-00000003", b"short")
    env.close()
    (damaged / "lock.mdb").unlink(missing_ok=True)
    loader = make_batch_loader(damaged, 16, 128, 0, 0, num_workers=1)
    try:
        with pytest.raises(UserError) as caught:
            for _ in range(2):
                next(loader)
    finally:
        loader.close()
    assert str(caught.value) == f"{damaged} is damaged: record 0016-00000003: raw record holds 5 bytes, expected 768"
