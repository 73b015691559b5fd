"""Faces by seed: the seed rule, seed lists, per-face determinism, morphs through chosen faces.

References are written out here (numpy's RandomState, plain generator calls), never read from the package.
"""

import json
import math

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from pggan.cli import sample_command
from pggan.errors import UserError
from pggan.pictures.generate import generate_faces_uint8
from pggan.pictures.latents import (
    MAX_SEED,
    parse_seeds,
    seed_latents,
    seed_path,
    slerp_path,
    to_sphere,
)
from pggan.pixels import images_to_uint8
from tests.helpers import tiny_checkpoint

LATENT = 8


def reference_latent(seed, size=LATENT):
    """NVIDIA's z for a seed, scaled onto the √size sphere in float64."""
    z = np.random.RandomState(seed).randn(size)
    return torch.from_numpy(z / np.linalg.norm(z) * math.sqrt(size)).float()


def reference_face(generator, seed, resolution=16, alpha=1.0):
    with torch.no_grad():
        return images_to_uint8(generator(reference_latent(seed)[None], resolution, alpha))[0]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("run") / "latest.pt"
    return path, tiny_checkpoint(path, latent_size=LATENT, seed=1)[0]


def invoke(*args):
    return CliRunner().invoke(sample_command, [str(a) for a in args])


def tiles(path, size=16):
    grid = np.asarray(Image.open(path))
    rows, cols = grid.shape[0] // size, grid.shape[1] // size
    return [grid[r * size : (r + 1) * size, c * size : (c + 1) * size].transpose(2, 0, 1) for r in range(rows)
            for c in range(cols)]  # fmt: skip


# ---------------------------------------------------------------- the seed rule
def test_a_seeds_latent_is_numpys_draw_on_the_sphere_whatever_is_drawn_beside_it():
    for seeds in ([12], [873, 12, 40], [12, 12], list(range(10, 15))):
        got = seed_latents(seeds, LATENT)
        assert got.dtype == torch.float32 and got.shape == (len(seeds), LATENT)
        for row, seed in zip(got, seeds, strict=True):
            assert torch.equal(row, reference_latent(seed))
    odd = seed_latents([3, 4], 7)  # odd sizes: the reseeded generator keeps no cached normal between seeds
    assert torch.equal(odd[1], reference_latent(4, 7))
    assert torch.equal(seed_latents([MAX_SEED], 512)[0], reference_latent(MAX_SEED, 512))
    assert torch.allclose(seed_latents(range(5), 512).norm(dim=1), torch.full((5,), math.sqrt(512)))


def test_to_sphere_leaves_latents_on_the_sphere_untouched_bit_for_bit():
    latents = seed_latents(range(20), 512)
    assert torch.equal(to_sphere(latents), latents)
    assert torch.equal(to_sphere(to_sphere(latents * 3)), to_sphere(latents * 3))
    assert torch.allclose(to_sphere(torch.tensor([[3.0, 4.0]])), torch.tensor([[0.6, 0.8]]) * math.sqrt(2))


@pytest.mark.parametrize(
    ("text", "expected"),
    [("12,873,40-47", [12, 873, *range(40, 48)]), (" 5 ", [5]), ("3-3, 1", [3, 1]), ("7,7", [7, 7]),
     (f"{MAX_SEED}", [MAX_SEED])],
)  # fmt: skip
def test_parse_seeds(text, expected):
    assert parse_seeds(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [("", "at least one seed"), ("1,,2", "must look like"), ("1,a", "must look like"), ("-5", "from 0 to"),
     ("3--4", "must look like"), ("1.5", "must look like"), ("9-2", "runs backwards"),
     (f"{MAX_SEED + 1}", "above the largest"), ("0-100000", "more than 100,000"),
     ("0-4000000000", "more than 100,000"), ("0-60000,0-60000", "more than 100,000")],
)  # fmt: skip
def test_bad_seed_lists_are_refused(text, message):
    with pytest.raises(UserError, match=message):
        parse_seeds(text)


# ---------------------------------------------------------------- a face depends on its seed alone
def test_a_seeds_face_is_bitwise_the_same_alone_in_a_list_and_for_any_batch_size(tmp_path, checkpoint):
    path, g = checkpoint
    expected = reference_face(g, 40)
    alone = generate_faces_uint8(g, seed_latents([40], LATENT), 16, 1.0)[0]
    listed = generate_faces_uint8(g, seed_latents([12, 40, 873], LATENT), 16, 1.0)[1]
    assert torch.equal(alone, expected) and torch.equal(listed, expected)
    runs = {
        "alone": ("--seeds", "40", "--batch-size", 1),
        "listed": ("--seeds", "12,873,40-41", "--batch-size", 8),
        "range": ("--seed", 38, "--rows", 1, "--cols", 4, "--batch-size", 3),
    }
    for name, args in runs.items():
        out = tmp_path / f"{name}.png"
        result = invoke(path, "--grid", out, *args, "--device", "cpu")
        assert result.exit_code == 0, result.output
        seeds = json.loads((tmp_path / f"{name}.json").read_text())["seeds"]
        assert np.array_equal(tiles(out)[seeds.index(40)], expected.numpy()), name
    outdir = tmp_path / "faces"
    assert invoke(path, "--outdir", outdir, "--seeds", "873,40", "--device", "cpu").exit_code == 0
    assert sorted(p.name for p in outdir.iterdir()) == ["seed00040.png", "seed00873.png"]
    assert np.array_equal(np.asarray(Image.open(outdir / "seed00040.png")).transpose(2, 0, 1), expected.numpy())


def test_seeds_grid_is_in_the_given_order_with_its_seeds_beside_it(tmp_path, checkpoint):
    path, g = checkpoint
    out = tmp_path / "pick.png"
    result = invoke(path, "--grid", out, "--seeds", "12,873,40-44", "--cols", 4, "--device", "cpu")
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "pick.json").read_text())
    assert record["seeds"] == [12, 873, 40, 41, 42, 43, 44] and (record["cols"], record["rows"]) == (4, 2)
    assert Image.open(out).size == (4 * 16, 2 * 16)
    got = tiles(out)
    for k, seed in enumerate(record["seeds"]):
        assert np.array_equal(got[k], reference_face(g, seed).numpy()), seed
    assert (got[7] == 0).all()  # the eighth cell stays black


@pytest.mark.parametrize(
    ("args", "message"),
    [(("--grid", "{tmp}/g.png", "--seeds", "1,-2"), "from 0 to"),
     (("--grid", "{tmp}/g.png", "--seeds", "0-200000"), "100,000"),
     (("--grid", "{tmp}/g.png", "--seeds", "4,x"), "--seeds must look like"),
     (("--grid", "{tmp}/g.png", "--seed", "-1"), "--seed must be"),
     (("--video", "{tmp}/v.mp4", "--keyframe-seeds", "3"), "at least 2"),
     (("--grid", "{tmp}/g.png", "--keyframe-seeds", "3,4"), "give --video"),
     (("--video", "{tmp}/v.mp4", "--keyframe-seeds", "3,4", "--keyframes", "3"), "goes alone"),
     (("--video", "{tmp}/v.mp4", "--seeds", "3,4"), "needs --direction"),
     (("--grid", "{tmp}/g.png", "--no-loop"), "--no-loop")],
)  # fmt: skip
def test_bad_seed_options_are_one_line_errors_and_write_nothing(tmp_path, checkpoint, args, message):
    path, _ = checkpoint
    result = invoke(path, *[a.format(tmp=tmp_path) for a in args])
    assert result.exit_code != 0 and result.output.startswith("Error: ") and message in result.output, result.output
    assert result.output.strip().count("\n") == 0 and list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- morphs
def angles(path):
    return torch.acos(torch.nn.functional.cosine_similarity(path[1:], path[:-1], dim=-1).clamp(-1, 1))


def test_slerp_path_visits_the_keys_at_constant_speed_per_segment():
    keys = seed_latents([12, 873, 44], 512).double()
    looped = slerp_path(keys, 30, loop=True)
    for k in range(3):
        assert torch.allclose(looped[10 * k].double(), keys[k], atol=1e-5)
    steps = angles(torch.cat([looped, looped[:1]]).double())
    for k in range(3):  # ten equal steps per segment, the last one back to key 0
        segment = steps[10 * k : 10 * k + 10]
        assert torch.allclose(segment, segment.mean().expand(10), rtol=1e-3)
    once = slerp_path(keys, 21, loop=False)
    for frame, key in ((0, 0), (10, 1), (20, 2)):  # first frame, middle, and exactly the last face
        assert torch.allclose(once[frame].double(), keys[key], atol=1e-5)
    assert torch.allclose(once.norm(dim=-1), torch.full((21,), math.sqrt(512)), atol=1e-3)
    assert torch.equal(seed_path([12, 873, 44], 512, 21, loop=False), once)


def test_keyframe_seeds_video_starts_at_the_first_face_and_no_loop_ends_at_the_last(tmp_path, checkpoint):
    path, g = checkpoint
    out = tmp_path / "morph.mp4"
    result = invoke(path, "--video", out, "--keyframe-seeds", "12,873,44", "--no-loop", "--seconds", 1, "--fps", 9,
                    "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 9 and frames[0].shape == (16, 16, 3)
    faces = {seed: reference_face(g, seed).numpy().transpose(1, 2, 0).astype(float) for seed in (12, 873, 44)}
    for frame, seed in ((frames[0], 12), (frames[-1], 44)):  # H.264 is lossy: the nearest face, not an equal one
        errors = {s: np.abs(frame - face).mean() for s, face in faces.items()}
        assert min(errors, key=errors.get) == seed, errors
