"""pggan-explore's endpoints over HTTP, without a browser: the same bytes as pggan-sample, strict parameters, a
shared generator, dropped stale requests, a bounded cache, and a command that stops cleanly on Ctrl-C."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from pggan.cli import explore_command, sample_command
from pggan.model.checkpoint import load_checkpoint
from pggan.model.networks import Generator
from tests.explore_helpers import LATENT, get, serving, tiny_run

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return tiny_run(tmp_path_factory.mktemp("explore"))


@pytest.fixture(scope="module")
def site(run):
    directions = [f"smile={run.parent / 'smile.npy'}", f"age={run.parent / 'age.npy'}"]
    with serving(run, directions=directions) as (server, base):
        yield server, base


# ---------------------------------------------------------------- independent references
def latent_of(seed: int) -> np.ndarray:
    """The documented seed rule, written out: RandomState(seed).randn(n) scaled onto the √n sphere (float64)."""
    z = np.random.RandomState(seed).randn(LATENT)
    return z / np.linalg.norm(z) * np.sqrt(LATENT)


def ema_generator(path: Path) -> tuple[Generator, int, float]:
    state = load_checkpoint(path)
    generator = Generator(**state["generator_config"])
    generator.load_state_dict(state["generator_ema"])
    return generator.eval(), state["resolution"], state["alpha"]


def draw(generator: Generator, resolution: int, alpha: float, latent: np.ndarray) -> np.ndarray:
    """One face, HWC uint8: (x + 1)·127.5 rounded to nearest and clamped."""
    with torch.no_grad():
        x = generator(torch.from_numpy(latent.astype(np.float32))[None], resolution, alpha)[0]
    return ((x.permute(1, 2, 0).double() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()


def pixels(png: bytes) -> np.ndarray:
    array = np.asarray(Image.open(io.BytesIO(png)))
    return array if array.ndim == 3 else array[:, :, None]


def sample(*args) -> None:
    result = CliRunner().invoke(sample_command, [str(a) for a in args] + ["--device", "cpu"])
    assert result.exit_code == 0, result.output


def ok(base: str, target: str) -> bytes:
    status, _, body = get(base, target)
    assert status == 200, (target, status, body[:200])
    return body


# ---------------------------------------------------------------- what the endpoints answer
def test_info_describes_the_run_its_checkpoints_and_directions(site):
    _, base = site
    status, headers, body = get(base, "/api/info")
    assert status == 200 and headers["Content-Type"] == "application/json"
    info = json.loads(body)
    assert (info["resolution"], info["alpha"], info["channels"], info["latent_size"]) == (16, 1.0, 3, LATENT)
    assert info["checkpoint"] == "latest" and info["kimg"] == 2.5
    assert [(c["id"], c["file"]) for c in info["checkpoints"]] == [
        ("1", "checkpoint-000001.000.pt"),
        ("2", "checkpoint-000002.000.pt"),
        ("latest", "latest.pt"),
    ]
    assert [c["kimg"] for c in info["checkpoints"]] == [1.0, 2.0, 2.5]
    names = [d["name"] for d in info["directions"]]
    assert names == ["sefa:0", "sefa:1", "sefa:2", "sefa:3", "sefa:4", "smile", "age"]
    eigen = [d["eigenvalue"] for d in info["directions"][:5]]
    assert eigen == sorted(eigen, reverse=True)


def test_a_face_is_the_png_pggan_sample_writes_and_the_seed_rule_draws(site, run, tmp_path):
    _, base = site
    status, headers, body = get(base, "/image.png?seed=7")
    assert status == 200 and headers["Content-Type"] == "image/png"
    assert 'filename="seed00007.png"' in headers["Content-Disposition"]
    sample(run / "latest.pt", "--seeds", "7", "--outdir", tmp_path / "faces")
    assert body == (tmp_path / "faces" / "seed00007.png").read_bytes()
    generator, resolution, alpha = ema_generator(run / "latest.pt")
    assert np.array_equal(pixels(body), draw(generator, resolution, alpha, latent_of(7)))
    assert not np.array_equal(pixels(body), pixels(ok(base, "/image.png?seed=8")))


def test_edits_are_pggan_sample_direction_grids_and_add_up(site, run, tmp_path):
    _, base = site
    plain = ok(base, "/image.png?seed=7")
    assert ok(base, "/image.png?seed=7&direction=sefa:1&strength=0") == plain  # strength 0: the face itself
    sefa = ok(base, "/image.png?seed=7&direction=sefa:1&strength=1.5")
    sample(run, "--seeds", "7", "--direction", "sefa:1", "--strengths", "1.5", "--grid", tmp_path / "s.png")
    assert sefa == (tmp_path / "s.png").read_bytes() and sefa != plain
    smile = ok(base, "/image.png?seed=7&direction=smile&strength=-2")
    sample(run, "--seeds", "7", "--direction", run.parent / "smile.npy", "--strengths=-2", "--grid", tmp_path / "f.png")
    assert smile == (tmp_path / "f.png").read_bytes()
    # two directions: the latent moves by the sum of both steps (unit vectors from the files, written out here)
    both = ok(base, "/image.png?seed=7&direction=smile&strength=1&direction=age&strength=-2")
    unit = {n: (v := np.load(run.parent / f"{n}.npy").reshape(-1)) / np.linalg.norm(v) for n in ("smile", "age")}
    moved = latent_of(7) + 1.0 * unit["smile"] - 2.0 * unit["age"]
    generator, resolution, alpha = ema_generator(run / "latest.pt")
    expected = draw(generator, resolution, alpha, moved)
    assert np.abs(pixels(both).astype(int) - expected).max() <= 1  # float32 vs float64 sums: at most a rounding
    assert not np.array_equal(pixels(both), pixels(smile))


def test_checkpoint_and_size_choose_the_network_and_shrink_by_box_filter(site, run, tmp_path):
    _, base = site
    early = ok(base, "/image.png?seed=3&checkpoint=1")
    sample(run / "checkpoint-000001.000.pt", "--seeds", "3", "--outdir", tmp_path / "early")
    assert early == (tmp_path / "early" / "seed00003.png").read_bytes()
    assert pixels(early).shape == (8, 8, 3)  # that checkpoint was still at 8×8
    assert ok(base, "/image.png?seed=3&checkpoint=checkpoint-000001.000.pt") == early  # the file name works too
    full = pixels(ok(base, "/image.png?seed=3")).astype(np.float64)
    thumb = pixels(ok(base, "/image.png?seed=3&size=4"))
    expected = np.rint(full.reshape(4, 4, 4, 4, 3).mean(axis=(1, 3)))
    assert np.array_equal(thumb, expected.astype(np.uint8))
    assert ok(base, "/image.png?seed=3&size=64") == ok(base, "/image.png?seed=3")  # never enlarged


def test_morph_frames_travel_the_great_circle_between_the_faces(site, run):
    _, base = site
    generator, resolution, alpha = ema_generator(run / "latest.pt")
    a, b = latent_of(12), latent_of(873)
    first = pixels(ok(base, "/morph.png?seeds=12,873&frames=5&frame=0"))
    middle = pixels(ok(base, "/morph.png?seeds=12,873&frames=5&frame=2"))
    last = pixels(ok(base, "/morph.png?seeds=12,873&frames=5&frame=4"))
    omega = np.arccos(np.dot(a, b) / LATENT)
    halfway = (np.sin(omega / 2) * (a + b)) / np.sin(omega)  # slerp at t = 1/2, on the √n sphere
    for got, latent in ((first, a), (middle, halfway), (last, b)):
        assert np.abs(got.astype(int) - draw(generator, resolution, alpha, latent)).max() <= 1
    strip = pixels(ok(base, "/morph.png?seeds=12,873&frames=5"))
    frames = [pixels(ok(base, f"/morph.png?seeds=12,873&frames=5&frame={k}")) for k in range(5)]
    assert np.array_equal(strip, np.concatenate(frames, axis=1))


def test_morph_video_is_pggan_sample_keyframe_seeds(site, run, tmp_path):
    _, base = site
    status, headers, body = get(base, "/morph.mp4?seeds=12,873,44&seconds=1&fps=6&loop=0")
    assert status == 200 and headers["Content-Type"] == "video/mp4"
    assert 'filename="morph-12-873-44.mp4"' in headers["Content-Disposition"]
    out = tmp_path / "morph.mp4"
    sample(run, "--keyframe-seeds", "12,873,44", "--video", out, "--seconds", "1", "--fps", "6", "--no-loop")
    assert body == out.read_bytes()


BAD = [
    ("/image.png", 400, "seed is missing"),
    ("/image.png?seed=-1", 400, "seed must be a whole number"),
    ("/image.png?seed=4294967296", 400, "from 0 to 4294967295"),
    ("/image.png?seed=1e3", 400, "seed must be a whole number"),
    ("/image.png?seed=1&seed=2", 400, "given 2 times"),
    ("/image.png?seed=1&colour=red", 400, "unknown parameter 'colour'"),
    ("/image.png?seed=1&direction=sefa:0", 400, "in pairs"),
    ("/image.png?seed=1&direction=sefa:0&strength=11", 400, "strength must be a number from -10 to 10"),
    ("/image.png?seed=1&direction=sefa:0&strength=nan", 400, "plain number"),
    ("/image.png?seed=1&direction=sefa:8&strength=1", 400, "sefa:0 … sefa:7"),
    ("/image.png?seed=1&direction=frown&strength=1", 400, "unknown direction 'frown'"),
    ("/image.png?seed=1&direction=smile&strength=1&direction=smile&strength=2", 400, "given twice"),
    ("/image.png?seed=1&checkpoint=99", 404, "no checkpoint '99'"),
    ("/image.png?seed=1&size=6", 400, "power of two"),
    ("/image.png?seed=%FF", 400, "not valid UTF-8"),
    ("/image.png?" + "&".join(["direction=sefa:0&strength=1"] * 25), 400, "too many query parameters"),
    ("/image.png?seed=1&" + "&".join(f"direction=sefa:{k}&strength=1" for k in range(17)), 400, "at most 16"),
    ("/morph.png?seeds=1,2", 400, "frames is missing"),
    ("/morph.png?seeds=1&frames=4", 400, "2 to 16 faces"),
    ("/morph.png?seeds=" + ",".join(map(str, range(17))) + "&frames=4", 400, "at most 16 faces"),
    ("/morph.png?seeds=0-100000&frames=4", 400, "at most 16 faces"),
    ("/morph.png?seeds=1,x&frames=4", 400, "seeds must look like"),
    ("/morph.png?seeds=1,2&frames=65", 400, "frames must be from 2 to 64"),
    ("/morph.png?seeds=1,2&frames=4&frame=4", 400, "frame must be from 0 to 3"),
    ("/morph.mp4?seeds=1,2&seconds=21&fps=30", 400, "a video has 1 to 600"),
    ("/morph.mp4?seeds=1,2&fps=0", 400, "fps must be from 1 to 60"),
    ("/morph.mp4?seeds=1,2&seconds=-1", 400, "seconds must be positive"),
    ("/morph.mp4?seeds=1,2&loop=2", 400, "loop must be a whole number from 0 to 1"),
    ("/api/info?x=1", 400, "unknown parameter 'x'"),
    ("/nothing.html", 404, "no such page"),
    ("/image.png?seed=" + "1" * 5000, 414, "at most 4096"),
]


def test_bad_parameters_get_a_one_line_4xx_and_the_server_keeps_serving(site):
    _, base = site
    for target, status, message in BAD:
        got, headers, body = get(base, target)
        text = body.decode()
        assert (got, message in text) == (status, True), (target, got, text)
        assert text.count("\n") == 1 and "Traceback" not in text and headers["Content-Type"].startswith("text/plain")
    assert get(base, "/", method="POST")[0] == 405
    assert get(base, "/api/info", headers={"Host": "evil.example:8000"})[0] == 403  # DNS-rebinding guard
    assert get(base, "/api/info", headers={"Host": "localhost:9999"})[0] == 200  # an SSH tunnel's other port
    status, headers, body = get(base, "/image.png?seed=5", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0
    assert get(base, "/api/info")[0] == 200


def test_the_page_is_served_from_the_package_and_loads_nothing_from_elsewhere(site):
    _, base = site
    status, headers, page = get(base, "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    for name in ("app.js", "style.css"):
        assert f'"{name}"' in page.decode()
        assert get(base, f"/{name}")[0] == 200
    for name in ("index.html", "app.js", "style.css"):
        text = (REPO / "pggan" / "pictures" / "explore" / name).read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text.replace("http://127.0.0.1", "")), name
    setup = (REPO / "setup.py").read_text()
    assert '"pggan.pictures.explore": ["index.html", "app.js", "style.css"]' in setup


# ---------------------------------------------------------------- one generator, turns, drops, the cache
def test_concurrent_requests_share_one_generator_and_a_hung_up_request_is_dropped(site):
    server, base = site
    explorer = server.explorer
    before = dict(explorer.loaded)
    results = []
    threads = [threading.Thread(target=lambda s=s: results.append(get(base, f"/image.png?seed={s}")[0]))
               for s in range(100, 108)]  # fmt: skip
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 8
    latest = [lc for lc in explorer.loaded.values() if lc.entry.id == "latest"]
    assert len(latest) == 1 and all(lc.generator is before[key].generator for key, lc in explorer.loaded.items()
                                    if key in before)  # fmt: skip

    renders, misses = explorer.renders, explorer.cache.stats()["misses"]
    with explorer.render_lock:  # another face is being drawn: this request waits for its turn ...
        client = socket.create_connection(server.server_address)
        client.sendall(b"GET /image.png?seed=555 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        deadline = time.monotonic() + 10
        while explorer.cache.stats()["misses"] == misses and time.monotonic() < deadline:
            time.sleep(0.02)
        assert explorer.cache.stats()["misses"] > misses  # it has asked the cache and is waiting for its turn
        client.close()  # ... and its browser gives up (the page moved on)
        time.sleep(0.3)
    time.sleep(0.5)
    assert explorer.renders == renders  # dropped before its turn: never drawn
    ok(base, "/image.png?seed=555")
    assert explorer.renders == renders + 1


def test_the_cache_serves_repeats_and_stays_within_its_bytes(run):
    from pggan.pictures.explore.faces import ByteCache

    with serving(run, cache_mb=0.02) as (server, base):  # 20 KiB: a few faces of 16²
        explorer = server.explorer
        first = ok(base, "/image.png?seed=1")
        renders = explorer.renders
        assert ok(base, "/image.png?seed=1") == first and explorer.renders == renders  # from the cache
        for seed in range(2, 60):
            ok(base, f"/image.png?seed={seed}")
        stats = json.loads(ok(base, "/api/info"))["cache"]
        assert 0 < stats["bytes"] <= 0.02 * 2**20 and stats["hits"] >= 1
        ok(base, "/image.png?seed=1")  # long evicted: drawn again, the same bytes
        assert explorer.renders == renders + 59
    cache = ByteCache(10)
    for key in "abcd":
        cache.put(key, b"xxxx")
    assert list(cache.entries) == ["c", "d"] and cache.bytes == 8  # least recently used went first
    assert cache.get("c") == b"xxxx"
    cache.put("e", b"yyyy")
    assert list(cache.entries) == ["c", "e"]


# ---------------------------------------------------------------- the command
def default_sigint() -> None:
    """Ctrl-C as a terminal delivers it: a suite started in the background (``pytest &``) ignores SIGINT, and
    its children would inherit that and never see the signal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_the_command_warns_on_0_0_0_0_serves_and_stops_cleanly_on_ctrl_c(run):
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, "-m", "pggan", "explore", str(run), "--host", "0.0.0.0", "--port", "0"]
    command += ["--device", "cpu"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, preexec_fn=default_sigint
    )
    try:
        lines = []
        while not any("serving on" in line for line in lines):
            line = process.stdout.readline()
            assert line, f"no address printed: {lines} {process.stderr.read()}"
            lines.append(line)
        port = int(re.search(r":(\d+)/", lines[-1]).group(1))
        assert get(f"http://127.0.0.1:{port}", "/api/info")[0] == 200
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert "stopped" in out and "Traceback" not in err
    assert "warning: listening on 0.0.0.0: anyone" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{missing}"], "checkpoint not found"),
        (["{run}", "--direction", "smile={run}/nothing.npy"], "is not a file"),
        (["{run}", "--direction", "a b={smile}"], "a name is 1-64 letters"),
        (["{run}", "--direction", "x={smile}", "--direction", "x={smile}"], "given twice"),
        (["{run}", "--direction", "bad={bad}"], "not a .npy array"),
        (["{run}", "--direction", "short={short}"], "has shape (3,)"),
        (["{run}", "--port", "70000"], "--port must be from 0 to 65535"),
        (["{run}", "--device", "tpu"], "--device must be"),
    ],
)
def test_bad_command_lines_are_one_line_errors(run, tmp_path, args, message):
    (tmp_path / "bad.npy").write_text("not numbers")
    np.save(tmp_path / "short.npy", np.ones(3))
    values = {"missing": tmp_path / "none.pt", "run": run, "smile": run.parent / "smile.npy",
              "bad": tmp_path / "bad.npy", "short": tmp_path / "short.npy"}  # fmt: skip
    result = CliRunner().invoke(explore_command, [a.format(**values) for a in args])
    assert result.exit_code == 1 and message in result.output, result.output
    assert "Traceback" not in result.output and result.output.count("\n") == 1
