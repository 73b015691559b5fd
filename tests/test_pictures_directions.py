"""Semantic directions: SeFa against an independent eigen-decomposition, direction files, applying them.

The SeFa reference is computed here with numpy from the checkpoint's raw weight; it never reads the package's
result. The sign rule checked is the documented one: each direction's entry of largest magnitude is positive.
"""

import json
import pickle
import re
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from pggan.cli import sample_command
from pggan.errors import UserError
from pggan.pictures.directions import (
    apply_direction,
    load_direction_file,
    parse_strengths,
    sefa_directions,
    sefa_factorize,
)
from pggan.pictures.latents import seed_latents
from tests.helpers import tiny_checkpoint

LATENT = 8


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("run") / "latest.pt"
    return path, tiny_checkpoint(path, latent_size=LATENT, seed=2)[0]


def reference_sefa(weight):
    """SeFa written out: rows of A to unit length, eigh(AᵀA), largest first, biggest entry made positive."""
    a = weight.astype(np.float64)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    values, vectors = np.linalg.eigh(a.T @ a)
    values, vectors = values[::-1], vectors[:, ::-1].T
    for row in vectors:
        row *= np.sign(row[np.argmax(np.abs(row))])
    return values, vectors


def invoke(*args):
    return CliRunner().invoke(sample_command, [str(a) for a in args])


def cells(path, size=16):
    grid = np.asarray(Image.open(path))
    rows, cols = grid.shape[0] // size, grid.shape[1] // size
    return np.stack([np.stack([grid[r * size : (r + 1) * size, c * size : (c + 1) * size] for c in range(cols)])
                     for r in range(rows)])  # fmt: skip


# ---------------------------------------------------------------- SeFa
def test_sefa_equals_an_independent_eigendecomposition_and_is_orthonormal(checkpoint):
    path, g = checkpoint
    state = torch.load(path, weights_only=False)
    weight = state["generator_ema"]["blocks.0.dense.weight"].numpy()  # (features·16, latent), as saved
    values, vectors = reference_sefa(weight)
    got = sefa_directions(g)
    assert got.directions.shape == (LATENT, LATENT) and got.directions.dtype == torch.float32
    assert np.allclose(got.eigenvalues.numpy(), values, rtol=1e-10)
    assert np.all(np.diff(got.eigenvalues.numpy()) <= 0)  # largest first
    assert np.allclose(got.directions.numpy(), vectors, atol=1e-6)
    gram = got.directions.double() @ got.directions.double().T
    assert torch.allclose(gram, torch.eye(LATENT, dtype=torch.float64), atol=1e-6)


def test_sefa_ignores_row_scales_and_fixes_signs():
    torch.manual_seed(3)
    weight = torch.randn(64 * 16, 128)  # the paper's 8192 × 512 is timed by tools/bench_directions.py
    _, vectors = reference_sefa(weight.numpy())
    got = sefa_factorize(weight)
    assert np.allclose(got.directions.numpy(), vectors, atol=1e-5)
    # the equalized-LR constant and any per-row scale vanish; a flipped sign is flipped back
    rescaled = sefa_factorize(-weight * torch.rand(weight.shape[0], 1).add(0.1) * 0.0625)
    assert torch.allclose(rescaled.directions, got.directions, atol=1e-5)
    biggest = got.directions.abs().argmax(dim=1)
    assert (got.directions[torch.arange(128), biggest] > 0).all()


# ---------------------------------------------------------------- applying
def test_strength_zero_is_the_plain_face_bit_for_bit(tmp_path, checkpoint):
    path, _ = checkpoint
    plain, edit = tmp_path / "plain.png", tmp_path / "edit.png"
    assert invoke(path, "--grid", plain, "--seeds", "12,873", "--cols", 1, "--device", "cpu").exit_code == 0
    result = invoke(path, "--grid", edit, "--seeds", "12,873", "--direction", "sefa:0", "--strengths", "-3:3:7",
                    "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    got, faces = cells(edit), cells(plain)
    assert got.shape[:2] == (2, 7)  # one row per seed, one column per strength
    assert np.array_equal(got[:, 3], faces[:, 0])  # the middle column (strength 0) is the face itself
    assert not np.array_equal(got[:, 0], got[:, 3]) and not np.array_equal(got[:, 6], got[:, 3])
    record = json.loads((tmp_path / "edit.json").read_text())
    assert record["seeds"] == [12, 873] and record["direction"] == "sefa:0"
    assert record["strengths"] == [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]
    latents = seed_latents([12], LATENT)
    assert torch.equal(apply_direction(latents, sefa_directions(checkpoint[1]).directions[0], 0.0), latents)


def test_a_direction_file_and_its_negation_give_mirrored_edits(tmp_path, checkpoint):
    path, _ = checkpoint
    direction = np.random.RandomState(0).randn(1, LATENT)  # InterFaceGAN's boundary shape, not unit length
    np.save(tmp_path / "smile.npy", direction)
    np.save(tmp_path / "frown.npy", -direction[0])
    for name in ("smile", "frown"):
        result = invoke(path, "--grid", tmp_path / f"{name}.png", "--seeds", "5,6", "--direction",
                        tmp_path / f"{name}.npy", "--strengths", "-2:2:5", "--device", "cpu")  # fmt: skip
        assert result.exit_code == 0, result.output
    smile, frown = cells(tmp_path / "smile.png"), cells(tmp_path / "frown.png")
    assert np.array_equal(smile, frown[:, ::-1])  # columns mirrored: -d at -s is d at s
    assert not np.array_equal(smile, smile[:, ::-1])
    assert json.loads((tmp_path / "smile.json").read_text())["direction"] == "smile"
    unit = load_direction_file(tmp_path / "smile.npy", LATENT)
    assert torch.allclose(unit, torch.from_numpy(direction[0] / np.linalg.norm(direction)).float())


def test_direction_video_sweeps_back_and_forth(tmp_path, checkpoint):
    path, _ = checkpoint
    out = tmp_path / "edit.mp4"
    result = invoke(path, "--video", out, "--seeds", "5,6,7", "--cols", 3, "--direction", "sefa:1",
                    "--seconds", 1, "--fps", 8, "--device", "cpu")  # fmt: skip
    assert result.exit_code == 0, result.output
    with av.open(str(out)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24").astype(float) for f in container.decode(video=0)])
    assert frames.shape == (8, 16, 48, 3)
    # sin sweep: frames 1 and 3 share a strength, as do 5 and 7; the two halves differ
    assert np.abs(frames[1] - frames[3]).mean() < np.abs(frames[2] - frames[6]).mean() / 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [("-3:3:7", [-3, -2, -1, 0, 1, 2, 3]), ("-1:1:3", [-1, 0, 1]), ("0.5", [0.5]), ("-2, 0,2", [-2, 0, 2])],
)
def test_parse_strengths(text, expected):
    assert parse_strengths(text) == expected
    values = parse_strengths("-0.3:0.3:7")
    assert values[3] == 0.0 and values[0] == -0.3 and values[6] == 0.3 and values[1] == -values[5]


# ---------------------------------------------------------------- refusals
def write_bad_files(tmp_path):
    files = {}
    np.save(tmp_path / "short.npy", np.ones(LATENT - 1))
    files["short"] = (tmp_path / "short.npy", "shape (7,)")
    np.save(tmp_path / "matrix.npy", np.ones((2, LATENT)))
    files["matrix"] = (tmp_path / "matrix.npy", "shape (2, 8)")
    nan = np.ones(LATENT)
    nan[3] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    files["nan"] = (tmp_path / "nan.npy", "NaN")
    np.save(tmp_path / "zero.npy", np.zeros(LATENT))
    files["zero"] = (tmp_path / "zero.npy", "all zeros")
    np.save(tmp_path / "object.npy", np.array([object()] * LATENT, dtype=object), allow_pickle=True)
    files["object"] = (tmp_path / "object.npy", "not a .npy array of numbers")
    (tmp_path / "evil.npy").write_bytes(pickle.dumps(list(range(LATENT))))
    files["pickle"] = (tmp_path / "evil.npy", "not a .npy array of numbers")
    np.save(tmp_path / "text.npy", np.array(["a"] * LATENT))
    files["text"] = (tmp_path / "text.npy", "not real numbers")
    np.savez(tmp_path / "two.npz", a=np.ones(LATENT))
    files["npz"] = (tmp_path / "two.npz", ".npz archive")
    return files


def test_bad_direction_files_are_refused_in_one_line_and_nothing_is_written(tmp_path, checkpoint):
    path, _ = checkpoint
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name, (bad, message) in write_bad_files(inputs).items():
        with pytest.raises(UserError, match=re.escape(message)):
            load_direction_file(bad, LATENT)
        result = invoke(path, "--grid", tmp_path / "g.png", "--seeds", "1", "--direction", bad, "--device", "cpu")
        assert result.exit_code != 0 and result.output.startswith("Error: ") and message in result.output, name
        assert result.output.strip().count("\n") == 0 and "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs"]


@pytest.mark.parametrize(
    ("args", "message"),
    [(("--direction", "sefa:8"), "sefa:0 … sefa:7"), (("--direction", "sefa:x"), "whole number"),
     (("--direction", "sefa:-1"), "whole number"), (("--direction", "nothere.npy"), "neither sefa:K"),
     (("--strengths", "-1:1:5"), "goes with --direction"), (("--direction", "sefa:0", "--strengths", "1:2"), "LO:HI:N"),
     (("--direction", "sefa:0", "--strengths", "-1:1:1"), "N ≥ 2"),
     (("--direction", "sefa:0", "--strengths", "nan:1:3"), "finite"),
     (("--direction", "sefa:0", "--outdir", "{tmp}/faces"), "--outdir is for plain faces")],
)  # fmt: skip
def test_bad_direction_options_are_one_line_errors(tmp_path, checkpoint, args, message):
    path, _ = checkpoint
    args = [a.format(tmp=tmp_path) for a in args]
    result = invoke(path, "--grid", tmp_path / "g.png", "--seeds", "1", *args, "--device", "cpu")
    assert result.exit_code != 0 and result.output.startswith("Error: ") and message in result.output, result.output
    assert result.output.strip().count("\n") == 0 and list(tmp_path.iterdir()) == []


def test_the_readme_python_example_runs(tmp_path, checkpoint, monkeypatch):
    path, _ = checkpoint
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```python\n")[1:]]
    example = next(b for b in blocks if "sefa_directions(G)" in b)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(example.replace("checkpoints/demo/latest.pt", str(path)), namespace)
    assert Image.open(tmp_path / "older.png").size == (32, 16)
    assert namespace["path"].shape == (90, LATENT)
