"""pggan-sample: grids and single images from real checkpoints, and the CLI's refusals."""

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from pggan.cli import sample_command
from pggan.model.checkpoint import save_checkpoint
from pggan.pictures.grids import make_grid, parse_grid_size, save_image_grid
from pggan.pixels import images_to_uint8
from tests.helpers import tiny_checkpoint

LATENT = 8


def seed_latents(count, seed):
    """The documented seed rule, written out: seed s → RandomState(s).randn(latent), on the √latent sphere."""
    rows = []
    for s in range(seed, seed + count):
        z = np.random.RandomState(s).randn(LATENT)
        rows.append(z / np.linalg.norm(z) * np.sqrt(LATENT))
    return torch.from_numpy(np.stack(rows).astype(np.float32))


def expected_uint8(generator, count, seed, resolution=16, alpha=0.5):
    """Faces are drawn one latent per generator call, so each is a function of its seed alone."""
    with torch.no_grad():
        latents = seed_latents(count, seed)
        return torch.cat([images_to_uint8(generator(latents[k : k + 1], resolution, alpha)) for k in range(count)])


def tiles(grid, rows, cols, size):
    """(rows·size, cols·size, C) → list of (C, size, size) in row-major order."""
    return [
        np.ascontiguousarray(grid[r * size : (r + 1) * size, c * size : (c + 1) * size].transpose(2, 0, 1))
        for r in range(rows)
        for c in range(cols)
    ]


def invoke(*args):
    return CliRunner().invoke(sample_command, [str(a) for a in args])


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "run" / "latest.pt"
    nets = tiny_checkpoint(path, alpha=0.5, ema_offset=0.05)[:2]  # the EMA differs: --raw is observable
    return path, nets


def test_grid_has_the_right_size_and_tile_k_is_latent_k_of_the_seed(tmp_path, checkpoint):
    path, (_, ema) = checkpoint
    out = tmp_path / "grid.png"
    result = invoke(path, "--grid", out, "--rows", 2, "--cols", 3, "--seed", 7, "--batch-size", 6, "--device", "cpu")
    assert result.exit_code == 0, result.output
    image = Image.open(out)
    assert image.mode == "RGB" and image.size == (3 * 16, 2 * 16)
    expected = expected_uint8(ema, 6, seed=7)
    got = tiles(np.asarray(image), 2, 3, 16)
    for k in range(6):
        assert np.array_equal(got[k], expected[k].numpy()), f"tile {k}"
    # sampled where training stands: alpha 0.5, not the finished 16×16 block
    at_alpha_one = expected_uint8(ema, 6, seed=7, alpha=1.0)
    assert not np.array_equal(got[0], at_alpha_one[0].numpy())
    # the seed matters
    assert not np.array_equal(got[0], expected_uint8(ema, 1, seed=8)[0].numpy())


def test_raw_uses_the_trained_generator_instead_of_the_ema(tmp_path, checkpoint):
    path, (raw, ema) = checkpoint
    out = tmp_path / "raw.png"
    result = invoke(path, "--grid", out, "--rows", 1, "--cols", 2, "--raw", "--batch-size", 2, "--device", "cpu")
    assert result.exit_code == 0, result.output
    got = tiles(np.asarray(Image.open(out)), 1, 2, 16)
    assert np.array_equal(got[1], expected_uint8(raw, 2, seed=0)[1].numpy())
    assert not np.array_equal(got[1], expected_uint8(ema, 2, seed=0)[1].numpy())


def test_outdir_images_match_the_grid_tiles(tmp_path, checkpoint):
    path, _ = checkpoint
    grid, outdir = tmp_path / "grid.png", tmp_path / "images"
    result = invoke(path, "--grid", grid, "--rows", 2, "--cols", 2, "--outdir", outdir, "--count", 5, "--batch-size", 5)
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in outdir.iterdir())
    assert names == [f"seed{k:05d}.png" for k in range(5)]  # --seed 0 --count 5: the seeds 0 … 4
    grid_tiles = tiles(np.asarray(Image.open(grid)), 2, 2, 16)
    for k in range(4):
        single = np.asarray(Image.open(outdir / names[k]))
        assert single.shape == (16, 16, 3)
        assert np.array_equal(single.transpose(2, 0, 1), grid_tiles[k])


def test_grayscale_checkpoint_writes_L_mode_pngs(tmp_path):
    path = tmp_path / "gray.pt"
    _, ema, _ = tiny_checkpoint(path, channels=1, resolution=8, ema_offset=0.05)
    out, outdir = tmp_path / "g.png", tmp_path / "imgs"
    result = invoke(path, "--grid", out, "--rows", 2, "--cols", 2, "--outdir", outdir, "--count", 1, "--batch-size", 4)
    assert result.exit_code == 0, result.output
    image = Image.open(out)
    assert image.mode == "L" and image.size == (16, 16)
    expected = expected_uint8(ema, 4, seed=0, resolution=8, alpha=1.0)
    assert np.array_equal(np.asarray(image)[8:, :8], expected[2, 0].numpy())
    assert Image.open(outdir / "seed00000.png").mode == "L"


def test_images_to_uint8_rounds_and_clamps():
    x = torch.tensor([-2.0, -1.0, -0.996, 0.0, 0.5, 0.997, 1.0, 3.0, float("nan")]).reshape(1, 1, 3, 3)
    got = images_to_uint8(x).flatten().tolist()
    # -0.996 → 0.51 → 1 (rounded, not truncated); 0.5 → 191.25 → 191; 0.997 → 254.6 → 255; NaN → mid-gray
    assert got == [0, 0, 1, 128, 191, 255, 255, 255, 128]
    assert images_to_uint8(x).dtype == torch.uint8


def test_make_grid_places_image_k_row_major_and_leaves_missing_cells_black():
    images = torch.stack([torch.full((3, 2, 4), 10 * (k + 1), dtype=torch.uint8) for k in range(5)])
    grid = make_grid(images, rows=2, cols=3)
    assert grid.shape == (4, 12, 3) and grid.dtype == np.uint8
    assert grid[0, 0, 0] == 10 and grid[0, 4, 0] == 20 and grid[0, 8, 0] == 30
    assert grid[2, 0, 0] == 40 and grid[3, 7, 2] == 50 and (grid[2:, 8:] == 0).all()
    with pytest.raises(ValueError, match="do not fit"):
        make_grid(images, rows=2, cols=2)


def test_save_image_grid_replaces_atomically(tmp_path):
    path = tmp_path / "snap" / "grid-000000.png"
    save_image_grid(torch.zeros(4, 3, 4, 4), path, rows=2, cols=2)
    save_image_grid(torch.ones(4, 3, 4, 4), path, rows=2, cols=2)
    assert (np.asarray(Image.open(path)) == 255).all()
    assert [p.name for p in path.parent.iterdir()] == ["grid-000000.png"]


def test_parse_grid_size():
    assert parse_grid_size("1x1") == (1, 1) and parse_grid_size("3X2") == (3, 2)


# ---------------------------------------------------------------- refusals: one line, exit ≠ 0, nothing touched
def assert_refused(result, message):
    assert result.exit_code != 0
    assert result.output.startswith("Error: ") and message in result.output, result.output
    assert result.output.strip().count("\n") == 0, result.output
    assert "Traceback" not in result.output


def test_missing_truncated_and_foreign_checkpoints_are_one_line_errors(tmp_path, checkpoint):
    path, _ = checkpoint
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:2000])
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    incomplete = tmp_path / "incomplete.pt"
    save_checkpoint({"images_shown": 0}, incomplete)
    out = tmp_path / "grid.png"
    for bad, message in [
        (tmp_path / "missing.pt", "not found"),
        (truncated, "not a readable pggan checkpoint"),
        (foreign, "not a pggan checkpoint"),
        (incomplete, "incomplete pggan checkpoint"),
    ]:
        assert_refused(invoke(bad, "--grid", out), message)
    assert not out.exists()


def test_existing_outputs_survive_without_overwrite(tmp_path, checkpoint):
    path, _ = checkpoint
    grid, video, outdir = tmp_path / "grid.png", tmp_path / "walk.mp4", tmp_path / "imgs"
    grid.write_bytes(b"precious")
    assert_refused(invoke(path, "--grid", grid), "already exists")
    assert grid.read_bytes() == b"precious"
    outdir.mkdir()
    (outdir / "seed00002.png").write_bytes(b"precious too")
    assert_refused(invoke(path, "--video", video, "--outdir", outdir, "--count", 3), "already exists")
    assert not video.exists() and sorted(p.name for p in outdir.iterdir()) == ["seed00002.png"]
    result = invoke(path, "--grid", grid, "--rows", 1, "--cols", 1, "--overwrite")
    assert result.exit_code == 0, result.output
    assert Image.open(grid).size == (16, 16)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "nothing to do"),
        (("--video", "{tmp}/v.mp4", "--grid-size", "2by2"), "--grid-size"),
        (("--video", "{tmp}/v.mp4", "--grid-size", "0x1"), "--grid-size"),
        (("--video", "{tmp}/v.mp4", "--keyframes", "1"), "--keyframes"),
        (("--video", "{tmp}/v.mp4", "--fps", "0"), "--fps"),
        (("--video", "{tmp}/v.mp4", "--smoothing", "-1"), "--smoothing"),
        (("--grid", "{tmp}/g.png", "--rows", "0"), "--rows"),
        (("--outdir", "{tmp}/imgs", "--count", "0"), "--count"),
        (("--grid", "{tmp}/g.png", "--batch-size", "0"), "--batch-size"),
        (("--grid", "{tmp}/g.png", "--device", "tpu"), "--device"),
        (("--grid", "{tmp}"), "is a directory"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, checkpoint, args, message):
    path, _ = checkpoint
    result = invoke(path, *[a.format(tmp=tmp_path) for a in args])
    assert_refused(result, message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing written


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_one_line_error(tmp_path, checkpoint):
    path, _ = checkpoint
    assert_refused(invoke(path, "--grid", tmp_path / "g.png", "--device", "cuda"), "no CUDA device")
