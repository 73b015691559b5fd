"""The training video: tick grids written by a short real run, read back one frame per grid at the final size."""

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pggan.cli import sample_command
from pggan.errors import UserError
from pggan.pictures.latents import seed_latents
from pggan.pictures.training_video import (
    GRID_TEXT_KEY,
    find_run_grids,
    tick_grid_layout,
    training_video_frames,
)
from pggan.training.trainer import Trainer
from tests.helpers import plan, random_pyramid, single_job, tensor_source, tiny_options


def train(tmp_path, **overrides):
    options = tiny_options(tmp_path, **overrides)
    run_dir = Path(options.out) / options.run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "options.json").write_text(options.to_json())
    trainer = Trainer(plan(options, tensor_source(random_pyramid())), single_job(), run_dir, 3)
    assert trainer.run() == "done"
    return run_dir, trainer


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train(tmp_path_factory.mktemp("train"))


def decode(path):
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def invoke(*args):
    return CliRunner().invoke(sample_command, [str(a) for a in args])


def test_a_run_writes_a_tick_grid_at_kimg_0_and_every_tick(run):
    run_dir, trainer = run
    ticks = sorted(p.name for p in (run_dir / "ticks").iterdir())
    assert ticks == [f"grid-000000.{k:03d}.png" for k in (0, 16, 32, 48, 64, 80)]  # 5 ticks of 16 images, + kimg 0
    descriptions = [json.loads(Image.open(run_dir / "ticks" / name).info[GRID_TEXT_KEY]) for name in ticks]
    assert [d["resolution"] for d in descriptions] == [4, 4, 8, 8, 16, 16]
    assert [d["alpha"] for d in descriptions] == [1.0] * 6  # ticks land on phase ends here: fades just completed
    assert {(d["cols"], d["rows"], d["seeds"]) for d in descriptions} == {(2, 2, "0-3")}
    assert all(Image.open(run_dir / "ticks" / name).size == (2 * d["resolution"],) * 2
               for name, d in zip(ticks, descriptions, strict=True))  # fmt: skip
    # the grids' faces are the seeds 0, 1, …: the same latents pggan-sample --seeds 0-3 draws
    assert (trainer.tick_latents == seed_latents(range(4), 8)).all()


def test_training_video_has_one_frame_per_grid_at_the_final_resolution(run, tmp_path):
    run_dir, _ = run
    out = tmp_path / "grow.mp4"
    result = invoke(run_dir, "--training-video", out, "--no-caption")
    assert result.exit_code == 0, result.output
    frames = decode(out)
    assert len(frames) == len(list((run_dir / "ticks").glob("grid-*.png"))) == 6
    assert {frame.shape for frame in frames} == {(32, 32, 3)}  # 2×2 faces, each at the final 16²
    # the exact frames before encoding: each grid nearest-upscaled to 16² faces
    grids = find_run_grids(run_dir)
    exact = list(training_video_frames(grids, 16, caption=False))
    first = np.asarray(Image.open(grids[0].path))  # 8×8: four 4×4 faces
    assert np.array_equal(exact[0], first.repeat(4, axis=0).repeat(4, axis=1))
    assert np.array_equal(exact[-1], np.asarray(Image.open(grids[-1].path)))
    captioned = list(training_video_frames(grids, 16, caption=True))
    assert captioned[0].shape[0] > 32 and np.array_equal(captioned[0][:32], exact[0])
    assert captioned[0][32:].max() > 200  # (antialiased) white text in the strip below


def test_older_runs_use_their_snapshot_grids_and_a_run_without_grids_is_refused(run, tmp_path):
    run_dir, _ = run
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(run_dir / "options.json", old)
    for grid in run_dir.glob("grid-*.png"):  # snapshot grids, rewritten without their description
        Image.fromarray(np.asarray(Image.open(grid))).save(old / grid.name)
    grids = find_run_grids(old)
    assert [g.kimg for g in grids] == [0.032, 0.064, 0.08] and {g.resolution for g in grids} == {8, 16}
    out = tmp_path / "old.mp4"
    assert invoke(old, "--training-video", out).exit_code == 0
    assert len(decode(out)) == 3

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="holds no grids"):
        find_run_grids(empty)
    result = invoke(empty, "--training-video", tmp_path / "none.mp4", "--grid", tmp_path / "g.png")
    assert result.exit_code != 0 and "holds no grids" in result.output and result.output.count("\n") == 1
    assert not (tmp_path / "none.mp4").exists() and not (tmp_path / "g.png").exists()


def test_grid_ticks_zero_writes_none_and_the_layout_follows_the_official_rule(tmp_path):
    run_dir, _ = train(tmp_path, grid_ticks=0, total_kimg=0.032)
    assert not (run_dir / "ticks").exists()
    assert tick_grid_layout(1024, 8) == (3, 2) and tick_grid_layout(256, 8) == (7, 4)
    assert tick_grid_layout(128, 8) == (8, 8) and tick_grid_layout(32, 6) == (6, 6)
