import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch

from pggan.errors import UserError
from pggan.model.checkpoint import (
    build_generator,
    find_readable_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from tests.helpers import tiny_checkpoint


def test_round_trip_rebuilds_the_generator(tmp_path):
    g, _, state = tiny_checkpoint(None, alpha=0.5)
    path = tmp_path / "run" / "latest.pt"
    save_checkpoint({**state, "images_shown": 1234}, path)
    loaded = load_checkpoint(path)
    assert loaded["images_shown"] == 1234 and loaded["resolution"] == 16 and loaded["alpha"] == 0.5
    g2 = build_generator(loaded)
    z = torch.randn(3, 8)
    with torch.no_grad():
        assert torch.equal(g(z, 16, 0.5), g2(z, 16, 0.5))
    assert [p.name for p in path.parent.iterdir()] == ["latest.pt"]  # no temp file left behind


def test_failed_save_keeps_previous_file(tmp_path):
    *_, state = tiny_checkpoint(None, alpha=0.5)
    path = tmp_path / "latest.pt"
    save_checkpoint(state, path)
    before = path.read_bytes()

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("boom")

    with pytest.raises(Exception, match="boom"):
        save_checkpoint({**state, "bad": Unpicklable()}, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.pt"]


def test_rejects_missing_truncated_foreign_and_code_carrying_files(tmp_path):
    *_, state = tiny_checkpoint(None, alpha=0.5)
    good = tmp_path / "good.pt"
    save_checkpoint(state, good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:1000])
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    evil = tmp_path / "evil.pt"

    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    evil.write_bytes(pickle.dumps(Evil()))
    for path, message in [
        (tmp_path / "missing.pt", "not found"),
        (truncated, "not a readable pggan checkpoint"),
        (foreign, "not a pggan checkpoint"),
        (evil, "not a readable pggan checkpoint"),
        (tmp_path, "directory"),
    ]:
        with pytest.raises(UserError, match=message):
            load_checkpoint(path)


def test_kill_9_during_saves_leaves_a_loadable_checkpoint(tmp_path):
    path = tmp_path / "latest.pt"
    script = (
        "import sys, torch\n"
        "from pggan.model.checkpoint import save_checkpoint\n"
        "state = {'weights': torch.randn(4_000_000), 'images_shown': 0}\n"
        "i = 0\n"
        "while True:\n"
        "    i += 1\n"
        "    state['images_shown'] = i\n"
        "    save_checkpoint(state, sys.argv[1])\n"
        "    print(i, flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "1"  # one complete save exists
    time.sleep(0.3)  # now most likely in the middle of another save
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    state = load_checkpoint(path)
    assert state["images_shown"] >= 1 and state["weights"].shape == (4_000_000,)


def test_checksum_catches_bit_rot_that_torch_load_would_not(tmp_path):
    *_, state = tiny_checkpoint(None, alpha=0.5)
    marker = torch.arange(1000, dtype=torch.float32) + 0.5  # bytes easy to find in the file
    path = tmp_path / "latest.pt"
    save_checkpoint({**state, "marker": marker}, path)
    assert torch.load(path, weights_only=True)["marker"].equal(marker)  # the trailer keeps it a plain torch file
    data = bytearray(path.read_bytes())
    where = bytes(data).find(marker.numpy().tobytes())
    assert where > 0
    data[where + 400] ^= 0x01  # one flipped bit inside a tensor
    path.write_bytes(bytes(data))
    silently_wrong = torch.load(path, weights_only=True)["marker"]
    assert not silently_wrong.equal(marker)  # torch alone would hand back damaged weights
    with pytest.raises(UserError, match="SHA-256 does not match"):
        load_checkpoint(path)


def test_newest_readable_checkpoint_is_found_when_latest_is_damaged(tmp_path):
    *_, state = tiny_checkpoint(None, alpha=0.5)
    for kimg in (40, 80, 120):
        save_checkpoint({**state, "images_shown": kimg}, tmp_path / f"checkpoint-{kimg / 1000:010.3f}.pt")
    save_checkpoint({**state, "images_shown": 120}, tmp_path / "latest.pt")
    assert find_readable_checkpoint(tmp_path).path.name == "latest.pt"
    (tmp_path / "latest.pt").write_bytes((tmp_path / "latest.pt").read_bytes()[:-100])
    (tmp_path / "checkpoint-000000.120.pt").write_bytes(b"")
    found = find_readable_checkpoint(tmp_path)
    assert found.path.name == "checkpoint-000000.080.pt" and found.state["images_shown"] == 80
    assert [p.name for p, _ in found.unreadable] == ["latest.pt", "checkpoint-000000.120.pt"]
    assert "using checkpoint-000000.080.pt" in found.fallback_note()


def test_refused_write_is_one_error_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "latest.pt"
    script = (
        "import resource, signal, sys, torch\n"
        "from pggan.model.checkpoint import save_checkpoint\n"
        "from pggan.atomic import WriteFailed\n"
        "save_checkpoint({'w': torch.zeros(10)}, sys.argv[1])\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))\n"
        "try:\n"
        "    save_checkpoint({'w': torch.zeros(100_000)}, sys.argv[1])\n"
        "except WriteFailed as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"cannot write {path}: File too large (EFBIG)"
    assert load_checkpoint(path)["w"].shape == (10,)
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"]
