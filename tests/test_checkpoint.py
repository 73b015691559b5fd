import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch

from pggan.checkpoint import build_generator, load_checkpoint, network_state, save_checkpoint
from pggan.errors import UserError
from pggan.networks import Discriminator, Generator


def small_state():
    torch.manual_seed(0)
    g = Generator(16, latent_size=8, fmap_base=32, fmap_max=8)
    d = Discriminator(16, fmap_base=32, fmap_max=8)
    ema = Generator(**g.config)
    ema.load_state_dict(g.state_dict())
    return g, network_state(g, d, ema, resolution=16, alpha=0.5)


def test_round_trip_rebuilds_the_generator(tmp_path):
    g, state = small_state()
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
    _, state = small_state()
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
    _, state = small_state()
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
        "from pggan.checkpoint import save_checkpoint\n"
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
