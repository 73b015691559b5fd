"""pggan-train --init (fine-tuning imported networks) and training the fused-downsample critic."""

import json
import sys
from pathlib import Path

import pytest
import torch

from pggan.errors import UserError
from pggan.model.checkpoint import load_checkpoint, run_progress
from pggan.official.importer import import_official
from pggan.training.init import entry_images
from pggan.training.schedule import Schedule
from pggan.training.trainer import Trainer
from tests.device import DEVICE_ARG
from tests.helpers import plan, random_pyramid, run_console, single_job, tensor_source, tiny_options
from tests.official_pickles import official_states, write_official_pickle

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TINY = [
    "--device", DEVICE_ARG, "--workers", "0", "--batch-schedule", "4:8,8:8,16:8", "--fade-kimg", "0.016",
    "--stable-kimg", "0.016", "--tick-kimg", "0.016", "--snapshot-kimg", "0.04", "--grid-size", "2",
    "--no-tensorboard",
]  # fmt: skip


run = run_console


@pytest.fixture
def imported(tmp_path):
    """An official-format TF-fused network pickle (16x16, fading in at lod 0.5), imported."""
    states = official_states(seed=7, resolution=16, latent_size=8, fmap_base=32, fmap_max=8, fused=True, lod=0.5)
    out = tmp_path / "official.pt"
    import_official(write_official_pickle(tmp_path / "official.pkl", states), out)
    return out


def test_entry_point_follows_resolution_and_alpha():
    schedule = Schedule(16, fade_kimg=0.016, stable_kimg=0.016, batch_sizes={4: 8, 8: 8, 16: 8})
    assert entry_images(schedule, 4, 1.0) == 0
    assert entry_images(schedule, 8, 0.0) == 16  # start of the fade-in to 8x8
    assert entry_images(schedule, 8, 1.0) == 32  # start of the stable 8x8 phase
    assert entry_images(schedule, 16, 0.5) == 56  # half way through the fade-in to 16x16


def test_train_init_fine_tunes_imported_networks(faces16, imported, tmp_path):
    out = tmp_path / "runs"
    result = run(
        "pggan-train",
        "--data",
        faces16,
        "--init",
        imported,
        "--out",
        out,
        "--run-name",
        "ft",
        "--total-kimg",
        0.08,
        *TINY,
    )
    assert result.returncode == 0, result.stderr
    assert "initialising run" in result.stdout
    state = load_checkpoint(out / "ft" / "latest.pt")
    init = load_checkpoint(imported)
    # Architecture from the checkpoint, including the official D variants; the schedule entered at (16, 0.5).
    assert state["options"]["resolution"] == 16 and state["options"]["latent_size"] == 8
    assert state["discriminator_config"]["fused_downsample"] and state["discriminator_config"]["mbstd_strided"]
    ticks = [json.loads(line) for line in (out / "ft" / "stats.jsonl").read_text().splitlines()]
    assert "fade-in to 16x16" in result.stdout and "kimg 0.056" in result.stdout
    assert [(t["kimg"], t["resolution"]) for t in ticks] == [(0.072, 16), (0.08, 16)]
    progress = run_progress(state)
    assert progress.images_shown == 80  # 56 (entry) + 3 steps of 8
    assert progress.step == 3  # fresh counters; fresh optimizers, reset again when the stable phase began at 64
    assert {int(s["step"]) for s in state["g_optimizer"]["state"].values()} == {2}
    # Trained from the imported weights: three Adam steps of lr 0.001 move each weight by at most ~0.003.
    for key in ("generator", "discriminator"):
        drift = max((state[key][k] - init[key][k]).abs().max().item() for k in init[key])
        assert 0 < drift < 0.01, (key, drift)
    # The run resumes like any other.
    again = run("pggan-train", "--resume", out / "ft", "--total-kimg", 0.096)
    assert again.returncode == 0, again.stderr
    assert run_progress(load_checkpoint(out / "ft" / "latest.pt")).images_shown == 96


def test_train_init_refuses_conflicts(faces16, imported, tmp_path):
    from click.testing import CliRunner

    from pggan.__main__ import main

    def train(*args):
        result = CliRunner().invoke(main, ["train", *map(str, args), *TINY])
        assert result.exit_code != 0
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
        return lines[0]

    assert "--fmap-max 16 conflicts with --init" in train("--data", faces16, "--init", imported, "--fmap-max", 16)
    assert "only one of them" in train("--init", imported, "--resume", tmp_path)
    assert "not found" in train("--data", faces16, "--init", tmp_path / "absent.pt")
    assert "--total-kimg must be larger" in train(
        "--data", faces16, "--init", imported, "--total-kimg", 0.05, "--out", tmp_path / "runs"
    )
    assert not (tmp_path / "runs").exists()


def test_fused_downsample_critic_trains_and_is_part_of_the_architecture(tmp_path):
    options = tiny_options(tmp_path, fused_downsample=True, mbstd_strided=True, total_kimg=0.064)
    run_dir = Path(options.out) / options.run_name
    run_dir.mkdir(parents=True)
    trainer = Trainer(plan(options, tensor_source(random_pyramid())), single_job(), run_dir, 3)
    assert trainer.run() == "done"
    state = load_checkpoint(run_dir / "latest.pt")
    assert state["discriminator_config"]["fused_downsample"] is True
    assert state["discriminator_config"]["mbstd_strided"] is True
    ticks = [json.loads(line) for line in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert [t["resolution"] for t in ticks] == [4, 8, 8, 16] and all(abs(t["d_loss"]) < 1e3 for t in ticks)
    d = trainer.gan.discriminator
    assert d.blocks[2].conv1.__class__.__name__ == "EqualizedConv2dDown"
    # Resuming it with the plain critic would load its weights into another function: refused.
    from pggan.training.options import TrainOptions, check_resumable

    with pytest.raises(UserError, match="--fused-downsample"):
        saved = TrainOptions.from_dict(state["options"])
        check_resumable(saved, tiny_options(tmp_path, mbstd_group_size=saved.mbstd_group_size))
    assert torch.isfinite(torch.stack([p.norm() for p in d.parameters()])).all()


def test_strided_critic_scores_reals_and_fakes_in_separate_groups():
    from pggan.model.losses import d_loss
    from pggan.model.networks import Discriminator
    from pggan.training.step import CriticLoss

    torch.manual_seed(0)
    d = Discriminator(8, 3, fmap_base=32, fmap_max=8, mbstd_group_size=4, mbstd_strided=True)
    reals, fakes, mix = torch.randn(8, 3, 8, 8), torch.randn(8, 3, 8, 8), torch.rand(8, 1, 1, 1)
    loss, _ = CriticLoss(d, 8, fading=False)(reals, fakes, mix, 1.0)
    separate, _ = d_loss(lambda x: d(x, 8, 1.0), reals, fakes, mix, joint=False)
    joint, _ = d_loss(lambda x: d(x, 8, 1.0), reals, fakes, mix, joint=True)
    assert torch.allclose(loss, separate, rtol=1e-5) and not torch.allclose(loss, joint, rtol=1e-5)
