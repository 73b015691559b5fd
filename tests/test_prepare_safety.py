"""pggan-prepare never loses or half-makes a dataset: refusal, overwrite, kill -9 mid-build, --verify, the CLI."""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from pggan.cli import prepare_command
from pggan.data.loader import PyramidDataset, read_meta
from pggan.data.prepare import prepare_dataset
from pggan.data.verify import verify_dataset
from pggan.errors import UserError

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "datasets" / "sample"
SOLVAY = SAMPLE / "solvay1927"


def digest(folder: Path) -> str:
    return hashlib.sha256((folder / "data.mdb").read_bytes()).hexdigest()


def run_python(code: str) -> subprocess.CompletedProcess:
    """Run a snippet in a fresh interpreter (its own LMDB handles, so it may write where this process reads)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture
def dataset(tmp_path):
    out = tmp_path / "faces"
    prepare_dataset([str(SOLVAY)], out, resolution=32, workers=1, progress=False)
    return out


def test_existing_dataset_is_refused_without_overwrite(dataset):
    before = digest(dataset)
    with pytest.raises(UserError, match="already exists; pass --overwrite"):
        prepare_dataset([str(SAMPLE / "color")], dataset, resolution=32, workers=1, progress=False)
    assert digest(dataset) == before and read_meta(dataset)["count"] == 29


def test_overwrite_replaces_only_once_the_new_dataset_is_complete(dataset, tmp_path):
    before = digest(dataset)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.png").write_bytes(b"")
    with pytest.raises(UserError, match="none of the 1 image files could be used"):
        prepare_dataset([str(broken)], dataset, resolution=32, workers=1, overwrite=True, progress=False)
    assert digest(dataset) == before and read_meta(dataset)["count"] == 29  # failed run: old dataset untouched
    prepare_dataset([str(SAMPLE / "color")], dataset, resolution=32, workers=1, overwrite=True, progress=False)
    assert read_meta(dataset)["count"] == 2 and len(PyramidDataset(dataset, 32)) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken", "faces", "faces.skipped.txt"]  # no leftovers


def test_overwrite_refuses_to_replace_something_that_is_not_a_dataset(tmp_path):
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "thesis.tex").write_text("years of work")
    (tmp_path / "file").write_text("x")
    for target in ("precious", "file"):
        with pytest.raises(UserError, match="refusing to replace"):
            prepare_dataset([str(SOLVAY)], tmp_path / target, 16, workers=1, overwrite=True, progress=False)
    assert (tmp_path / "precious" / "thesis.tex").read_text() == "years of work"


def test_killed_build_leaves_the_earlier_dataset_intact(dataset, tmp_path):
    before = digest(dataset)
    images_before = PyramidDataset(dataset, 32).get_batch(range(29))
    listing = tmp_path / "many.txt"  # long enough to be caught mid-way: one real photo listed many times
    listing.write_text("\n".join([str(SAMPLE / "color" / "grace_hopper_128.png")] * 20000))
    code = (
        "from pggan.data.prepare import prepare_dataset; "
        f"prepare_dataset([{str(listing)!r}], {str(dataset)!r}, resolution=128, workers=2, overwrite=True)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    builder = subprocess.Popen(
        [sys.executable, "-c", code], env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    partial = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and builder.poll() is None:
        partial = next((p for p in tmp_path.iterdir() if p.name.startswith(".faces.partial-")), None)
        if partial is not None and (partial / "data.mdb").exists():
            break
        time.sleep(0.05)
    time.sleep(1.0)  # let it write for a while
    assert builder.poll() is None, "the builder finished before it could be killed: " + builder.stderr.read().decode()
    os.killpg(builder.pid, signal.SIGKILL)  # the builder and its decoding workers
    builder.wait(timeout=30)
    gone = time.monotonic() + 30  # forked workers share the dataset lock until the kernel has ended them too
    while time.monotonic() < gone:
        try:
            os.killpg(builder.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    assert partial is not None and partial.exists()  # it was caught mid-way
    assert digest(dataset) == before
    assert read_meta(dataset)["count"] == 29
    assert torch.equal(PyramidDataset(dataset, 32).get_batch(range(29)), images_before)
    assert verify_dataset(dataset, progress=False).ok
    # the next run clears the dead run's temporary directory
    prepare_dataset([str(SAMPLE / "color")], tmp_path / "other", 16, workers=1, progress=False)
    prepare_dataset([str(SAMPLE / "color")], dataset, 16, workers=1, overwrite=True, progress=False)
    assert not partial.exists()


def test_verify_passes_a_good_dataset_and_finds_damage(dataset):
    result = verify_dataset(dataset, progress=False)
    assert result.ok and result.count == 29 and result.resolutions == [4, 8, 16, 32]
    assert result.summary().startswith("OK: ")
    damage = (
        "import lmdb, numpy as np\n"
        f"env = lmdb.open({str(dataset)!r})\n"
        "with env.begin(write=True) as txn:\n"
        "    meta = __import__('json').loads(txn.get(b'meta'))\n"
        "    enc = meta['encoding']['8']\n"
        "    assert enc == 'raw', enc\n"
        "    txn.put(b'0008-00000003', np.full(3 * 8 * 8, 255, np.uint8).tobytes())\n"  # wrong pixels
        "    txn.delete(b'0016-00000005')\n"  # a missing record
        "    txn.put(b'0004-00000007', b'short')\n"  # a record of the wrong size
        "env.close()\n"
    )
    done = run_python(damage)
    assert done.returncode == 0, done.stderr
    result = verify_dataset(dataset, progress=False)
    assert not result.ok
    text = "\n".join(result.problems)
    assert "record 0008-00000003 is not the 2×2 box filter of level 16" in text
    assert "record 0016-00000005 is missing" in text
    assert "record 0004-00000007 does not decode" in text
    assert "holds 116 records, expected 117" in text
    runner = CliRunner()
    outcome = runner.invoke(prepare_command, ["--verify", str(dataset)])
    assert outcome.exit_code != 0 and "problems found" in outcome.output


def test_readers_refuse_an_unfinished_dataset(dataset, tmp_path):
    strip = run_python(
        f"import lmdb\nenv = lmdb.open({str(dataset)!r})\nwith env.begin(write=True) as t: t.delete(b'meta')\n"
    )
    assert strip.returncode == 0, strip.stderr
    with pytest.raises(UserError, match="incomplete: it has no meta record"):
        read_meta(dataset)
    with pytest.raises(UserError, match="incomplete"):
        PyramidDataset(dataset, 32)
    with pytest.raises(UserError, match="dataset not found"):
        read_meta(tmp_path / "nothing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(UserError, match="not a pggan-prepare dataset"):
        read_meta(tmp_path / "plain")


def test_cli_prepares_verifies_and_reports_errors(tmp_path):
    runner = CliRunner()
    out = tmp_path / "ds"
    result = runner.invoke(
        prepare_command, [str(SOLVAY), str(SAMPLE / "color"), "--out", str(out), "--resolution", "16", "--workers", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 31 images" in result.output and "images/s" in result.output and "16: " in result.output
    assert read_meta(out)["count"] == 31
    result = runner.invoke(prepare_command, ["--verify", str(out)])
    assert result.exit_code == 0 and "OK: " in result.output
    refused = runner.invoke(prepare_command, [str(SOLVAY), "--out", str(out), "--resolution", "16"])
    assert refused.exit_code != 0 and "already exists; pass --overwrite" in refused.output
    missing = runner.invoke(
        prepare_command, [str(tmp_path / "nope"), "--out", str(tmp_path / "x"), "--resolution", "16"]
    )
    assert missing.exit_code != 0 and "Error: source not found" in missing.output
    assert runner.invoke(prepare_command, [str(SOLVAY), "--out", str(tmp_path / "y")]).exit_code != 0
    assert runner.invoke(prepare_command, ["--verify", str(tmp_path / "nope")]).exit_code != 0


def test_cli_exit_code_and_one_line_error_in_a_real_process(tmp_path):
    code = "from pggan.cli import prepare_command; prepare_command()"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [sys.executable, "-c", code, str(tmp_path / "missing"), "--out", str(tmp_path / "o"), "--resolution", "8"]
    done = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode != 0
    assert done.stderr.strip() == f"Error: source not found: {tmp_path / 'missing'}"
