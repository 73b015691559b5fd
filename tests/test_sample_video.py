"""Latent walks and mp4s: real encodes, decoded back with PyAV."""

import math

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from pggan.cli import sample_command
from pggan.pictures.latents import slerp
from pggan.pictures.video import gaussian_walk, keyframe_walk, write_mp4
from pggan.pixels import images_to_uint8
from tests.helpers import tiny_checkpoint

LATENT = 8


def decode(path):
    """All frames of an mp4 as (N, H, W, 3) uint8, plus the codec name."""
    with av.open(str(path)) as container:
        codec = container.streams.video[0].codec_context.name
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return np.stack(frames), codec


def invoke(*args):
    return CliRunner().invoke(sample_command, [str(a) for a in args])


def cosine(a, b):
    return torch.nn.functional.cosine_similarity(a, b, dim=-1)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("run") / "latest.pt"
    return path, tiny_checkpoint(path)[0]


# ---------------------------------------------------------------- walks
def test_gaussian_walk_is_smooth_looping_on_the_sphere_and_seeded():
    walk = gaussian_walk(120, 2, 16, seed=3, sigma=12.0)
    assert walk.shape == (120, 2, 16) and walk.dtype == torch.float32
    assert torch.allclose(walk.norm(dim=-1), torch.full((120, 2), 4.0), atol=1e-4)
    step = cosine(walk[1:], walk[:-1])
    assert step.min() > 0.9  # neighbours nearly parallel
    assert cosine(walk[0], walk[-1]).min() > 0.9  # wrap: the loop closes smoothly
    assert cosine(walk[0], walk[60]).mean() < 0.5  # half a loop away: somewhere else
    assert torch.equal(walk, gaussian_walk(120, 2, 16, seed=3, sigma=12.0))
    assert not torch.equal(walk, gaussian_walk(120, 2, 16, seed=4, sigma=12.0))
    raw = gaussian_walk(120, 2, 16, seed=3, sigma=0.0)  # no smoothing: independent draws
    assert cosine(raw[1:], raw[:-1]).abs().mean() < 0.5


def test_keyframe_walk_passes_through_the_seeded_keyframes_and_loops():
    frames, keys = 40, 4
    walk = keyframe_walk(frames, 3, LATENT, seed=5, keyframes=keys)
    # keyframe k of cell c is the face of seed 5 + 3k + c: RandomState(seed).randn on the √latent sphere
    draws = np.stack([np.random.RandomState(5 + i).randn(LATENT) for i in range(keys * 3)]).reshape(keys, 3, LATENT)
    expected = torch.from_numpy(draws / np.linalg.norm(draws, axis=-1, keepdims=True) * math.sqrt(LATENT)).float()
    for k in range(keys):
        assert torch.allclose(walk[k * frames // keys], expected[k], atol=1e-5)
    assert torch.allclose(walk.norm(dim=-1), torch.full((frames, 3), math.sqrt(LATENT)), atol=1e-4)
    steps = torch.acos(cosine(walk[1:], walk[:-1]).clamp(-1, 1))
    last = torch.acos(cosine(walk[-1], walk[0]).clamp(-1, 1))  # back to keyframe 0
    assert last.max() < steps.max() * 1.01


def test_slerp_keeps_the_norm_and_splits_the_angle():
    a, b = torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 5.0]])
    mid = slerp(a, b, 0.5)
    assert torch.allclose(mid, torch.tensor([[1.0, 1.0]]), atol=1e-6)  # on the √2 sphere, 45°
    assert torch.allclose(slerp(a, b, 0.0), torch.tensor([[math.sqrt(2), 0.0]]), atol=1e-6)
    assert torch.allclose(slerp(a, a, 0.3), torch.tensor([[math.sqrt(2), 0.0]]), atol=1e-6)  # parallel


# ---------------------------------------------------------------- mp4 files
def test_video_decodes_to_seconds_times_fps_frames_and_walks_smoothly(tmp_path, checkpoint):
    path, generator = checkpoint
    out = tmp_path / "walk.mp4"
    args = (path, "--video", out, "--seconds", 2, "--fps", 12, "--grid-size", "2x1", "--device", "cpu")
    result = invoke(*args, "--smoothing", 0.5, "--seed", 1)
    assert result.exit_code == 0, result.output
    frames, codec = decode(out)
    assert codec == "h264"
    assert frames.shape == (24, 16, 32, 3)  # 2 × 12 frames, cells side by side
    frames = frames.astype(np.float64)
    consecutive = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))
    far = np.abs(frames[0] - frames[12]).mean()
    assert consecutive.max() < far / 2, (consecutive.max(), far)
    assert far > 5
    # frame 0 shows the generator's image for the walk's first latents (up to compression)
    walk = gaussian_walk(24, 2, LATENT, seed=1, sigma=0.5 * 12)
    with torch.no_grad():
        first = images_to_uint8(generator(walk[0], 16, 1.0)).numpy().astype(np.float64)
    expected = np.concatenate([first[0], first[1]], axis=2).transpose(1, 2, 0)
    luma = np.array([0.299, 0.587, 0.114])  # yuv420p keeps luma at full resolution; chroma is quartered
    assert np.abs(frames[0] @ luma - expected @ luma).mean() < 0.25 * np.abs(frames[12] @ luma - expected @ luma).mean()


def test_same_seed_gives_the_same_frames(tmp_path, checkpoint):
    path, _ = checkpoint
    decoded = []
    for name, seed in [("a.mp4", 9), ("b.mp4", 9), ("c.mp4", 10)]:
        result = invoke(path, "--video", tmp_path / name, "--seconds", 1, "--fps", 8, "--seed", seed, "--batch-size", 3)
        assert result.exit_code == 0, result.output
        decoded.append(decode(tmp_path / name)[0])
    assert decoded[0].shape == (8, 16, 16, 3)
    assert decoded[0].tobytes() == decoded[1].tobytes()
    assert decoded[0].tobytes() != decoded[2].tobytes()


def test_keyframe_video_and_grayscale_video(tmp_path):
    gray = tmp_path / "gray.pt"
    tiny_checkpoint(gray, channels=1)
    out = tmp_path / "gray.mp4"
    result = invoke(gray, "--video", out, "--seconds", 1.5, "--fps", 6, "--keyframes", 3, "--grid-size", "1x2")
    assert result.exit_code == 0, result.output
    frames, _ = decode(out)
    assert frames.shape == (9, 32, 16, 3)
    spread = frames.astype(int).max(axis=3) - frames.astype(int).min(axis=3)
    assert spread.max() <= 2  # gray: R = G = B
    assert frames.std() > 5  # and not blank


def test_write_mp4_pads_odd_sizes_and_falls_back_to_mpeg4(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    frames = [np.clip(base.astype(int) + 3 * k, 0, 255).astype(np.uint8) for k in range(6)]
    out = tmp_path / "odd.mp4"
    assert write_mp4(iter(frames), out, fps=6, codecs=("no-such-codec", "mpeg4")) == "mpeg4"
    decoded, codec = decode(out)
    assert codec == "mpeg4" and decoded.shape == (6, 8, 6, 3)


def test_failed_encode_leaves_the_previous_file(tmp_path):
    out = tmp_path / "walk.mp4"
    out.write_bytes(b"previous")

    def frames():
        yield np.zeros((8, 8, 3), np.uint8)
        raise RuntimeError("generator crashed")

    with pytest.raises(RuntimeError, match="crashed"):
        write_mp4(frames(), out, fps=4)
    assert out.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["walk.mp4"]
