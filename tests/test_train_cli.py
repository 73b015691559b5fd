"""pggan-train as a user runs it: on a real prepared dataset, in a subprocess."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from pggan.model.checkpoint import load_checkpoint, run_progress
from tests.device import DEVICE_ARG
from tests.helpers import run_console

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TINY = [
    "--fmap-base", "32", "--fmap-max", "8", "--latent-size", "8", "--device", DEVICE_ARG, "--workers", "0",
    "--batch-schedule", "4:8,8:8,16:8", "--fade-kimg", "0.016", "--stable-kimg", "0.016",
    "--tick-kimg", "0.016", "--snapshot-kimg", "0.04", "--grid-size", "2", "--no-tensorboard",
]  # fmt: skip


run = run_console


def test_train_then_resume_with_larger_total(faces16, tmp_path):
    out = tmp_path / "runs"
    first = run("pggan-train", "--data", faces16, "--resolution", 16, "--out", out, "--run-name", "r",
                "--total-kimg", 0.04, *TINY)  # fmt: skip
    assert first.returncode == 0, first.stderr
    run_dir = out / "r"
    options = json.loads((run_dir / "options.json").read_text())
    assert options["resolution"] == 16 and options["total_kimg"] == 0.04
    # the resolved schedule: printed at the start, saved for resume
    assert options["preset"] == "official" and options["processes"] == 1 and options["mirror"] is True
    assert options["batch_schedule"] == "4:8,8:8,16:8" and options["mbstd_group_size"] == 4
    assert options["gp_space"] == "official" and options["tf32"] is False
    assert "global batch  4:8  8:8  16:8" in first.stdout
    assert run_progress(load_checkpoint(run_dir / "latest.pt")).images_shown == 40
    assert (run_dir / "grid-000000.040.png").is_file() and (run_dir / "checkpoint-000000.040.pt").is_file()
    # Resume with only the run directory and a larger total: saved options, new total.
    second = run("pggan-train", "--resume", run_dir, "--total-kimg", 0.08)
    assert second.returncode == 0, second.stderr
    state = load_checkpoint(run_dir / "latest.pt")
    assert run_progress(state).images_shown == 80 and state["resolution"] == 16
    assert state["options"]["fmap_max"] == 8  # saved options were used
    ticks = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert [t["kimg"] for t in ticks] == [0.016, 0.032, 0.04, 0.048, 0.064, 0.08]
    # Starting again under the same name is refused rather than overwriting the run.
    again = run("pggan-train", "--data", faces16, "--resolution", 16, "--out", out, "--run-name", "r", *TINY)
    assert again.returncode != 0 and "already holds a run" in again.stderr
    assert run_progress(load_checkpoint(run_dir / "latest.pt")).images_shown == 80


def test_sigterm_writes_checkpoint_and_exits_cleanly(faces16, tmp_path):
    out = tmp_path / "runs"
    args = ["--data", faces16, "--resolution", 16, "--out", out, "--run-name", "r", *TINY, "--total-kimg", 1000]
    proc = subprocess.Popen(
        [str(BIN / "pggan-train"), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    stats = out / "r" / "stats.jsonl"
    deadline = time.time() + 60
    while time.time() < deadline and not (stats.exists() and stats.read_text().count("\n") >= 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "resume with --resume" in stdout
    state = load_checkpoint(out / "r" / "latest.pt")
    assert run_progress(state).images_shown >= 48
    resumed = run("pggan-train", "--resume", out / "r", "--total-kimg", run_progress(state).images_shown / 1000 + 0.016)
    assert resumed.returncode == 0, resumed.stderr
    assert run_progress(load_checkpoint(out / "r" / "latest.pt")).images_shown == run_progress(state).images_shown + 16


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "/nonexistent/ds", "--resolution", 16], "nonexistent"),
        (["--resolution", 16], "--data"),
        (["--resolution", 32], "above the dataset's top level"),
        (["--resolution", 12], "power of two"),
        (["--resolution", 16, "--batch-schedule", "4:8,8:x"], "unreadable batch schedule"),
        (["--resolution", 16, "--batch-schedule", "4:6,8:8,16:8"], "minibatch-stddev group"),
        (["--resolution", 16, "--batch-schedule", "4:8,8:8"], "no batch size for resolution"),
        (["--resume", "/nonexistent/run"], "does not exist"),
    ],
)
def test_bad_input_is_one_line_error(faces16, tmp_path, args, message):
    args = [a if a != "DATA" else faces16 for a in args]
    if "--data" not in args and "--resume" not in args and args != ["--resolution", 16]:
        args = ["--data", faces16, *args]
    result = run("pggan-train", *args, "--out", tmp_path, "--device", DEVICE_ARG, "--no-tensorboard")
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())  # nothing written


def test_resume_from_another_architecture_is_refused(faces16, tmp_path):
    out = tmp_path / "runs"
    assert run("pggan-train", "--data", faces16, "--resolution", 16, "--out", out, "--run-name", "r",
               "--total-kimg", 0.016, *TINY).returncode == 0  # fmt: skip
    before = (out / "r" / "latest.pt").read_bytes()
    result = run("pggan-train", "--resume", out / "r", "--fmap-max", "16")
    assert result.returncode != 0 and "another architecture" in result.stderr
    assert (out / "r" / "latest.pt").read_bytes() == before


def test_nonfinite_loss_stops_with_step_and_keeps_checkpoint(faces16, tmp_path):
    out = tmp_path / "runs"
    assert run("pggan-train", "--data", faces16, "--resolution", 16, "--out", out, "--run-name", "r",
               "--total-kimg", 0.016, *TINY).returncode == 0  # fmt: skip
    good = (out / "r" / "latest.pt").read_bytes()
    result = run("pggan-train", "--resume", out / "r", "--total-kimg", 0.08, "--lr", "1e30")
    assert result.returncode != 0
    assert "non-finite" in result.stderr and "step" in result.stderr
    state = load_checkpoint(out / "r" / "latest.pt")
    assert (out / "r" / "latest.pt").read_bytes() == good
    assert all(torch.isfinite(v).all() for v in state["generator"].values())


def test_torchrun_two_processes_train_like_one(faces16, tmp_path):
    out = tmp_path / "runs"
    common = ["--data", faces16, "--resolution", 16, "--out", out, *TINY, "--total-kimg", 0.048]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [str(BIN / "torchrun"), "--standalone", "--nproc_per_node=2", "-m", "pggan", "train", "--run-name", "ddp",
         *map(str, common)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("starting run") == 1  # rank 0 alone reports and writes
    single = run("pggan-train", "--run-name", "one", *common)
    assert single.returncode == 0, single.stderr
    ddp = load_checkpoint(out / "ddp" / "latest.pt")
    one = load_checkpoint(out / "one" / "latest.pt")
    assert run_progress(ddp).images_shown == run_progress(one).images_shown == 48
    for key in ("generator", "discriminator", "generator_ema"):
        for name, tensor in one[key].items():
            torch.testing.assert_close(ddp[key][name], tensor, rtol=1e-4, atol=1e-5, msg=f"{key}.{name}")


def test_swd_is_evaluated_during_training(faces16, tmp_path):
    out = tmp_path / "runs"
    result = run("pggan-train", "--data", faces16, "--resolution", 16, "--out", out, "--run-name", "r", *TINY,
                 "--total-kimg", 0.08, "--swd-kimg", 0.032, "--swd-images", 64)  # fmt: skip
    assert result.returncode == 0, result.stderr
    ticks = [json.loads(line) for line in (out / "r" / "stats.jsonl").read_text().splitlines()]
    with_swd = [t for t in ticks if "swd" in t]
    assert [t["kimg"] for t in with_swd] == [0.032, 0.064]
    assert with_swd[0]["swd"] == {}  # 8×8: below the 16×16 the Laplacian pyramid needs
    assert set(with_swd[1]["swd"]) == {"16", "avg"} and with_swd[1]["swd"]["avg"] > 0
    assert (out / "r" / "swd-reals-16.pt").is_file()  # the real descriptors are cached for the next evaluation


def test_resume_auto_starts_then_continues(faces16, tmp_path):
    out = tmp_path / "runs"
    args = ["--data", faces16, "--resolution", 16, "--out", out, "--run-name", "job", *TINY, "--resume", "auto"]
    first = run("pggan-train", *args, "--total-kimg", 0.016)
    assert first.returncode == 0, first.stderr
    assert "starting run" in first.stdout
    second = run("pggan-train", *args, "--total-kimg", 0.032)  # the same job script, re-submitted
    assert second.returncode == 0, second.stderr
    assert "resuming run" in second.stdout
    assert run_progress(load_checkpoint(out / "job" / "latest.pt")).images_shown == 32


@pytest.mark.parametrize(
    "device, message",
    [("cuda:0", "no CUDA device is available"), ("tpu", "must be auto, cpu, cuda or cuda:N")],
)
def test_device_accepts_the_same_names_as_the_other_commands(faces16, tmp_path, device, message):
    if device.startswith("cuda") and torch.cuda.is_available():
        pytest.skip("a GPU is present: cuda:0 is valid here")
    from click.testing import CliRunner

    from pggan.cli import train_command

    result = CliRunner().invoke(
        train_command, ["--data", str(faces16), "--resolution", "16", "--out", str(tmp_path), "--device", device]
    )
    assert result.exit_code == 1 and message in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())
