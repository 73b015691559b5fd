import json
from pathlib import Path

import pytest
import torch

from pggan.model.checkpoint import load_checkpoint, run_progress
from pggan.training.trainer import Trainer
from tests.helpers import plan, random_pyramid, single_job, tensor_source, tiny_options


def make_trainer(tmp_path, resume_checkpoint=None, **overrides):
    options = tiny_options(tmp_path, **overrides)
    run_dir = Path(options.out) / options.run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    return Trainer(
        plan(options, tensor_source(random_pyramid())), single_job(), run_dir, 3, resume_checkpoint=resume_checkpoint
    )


def params(trainer):
    s = trainer.gan
    return [p.detach().clone() for net in (s.generator, s.discriminator, s.generator_ema) for p in net.parameters()]


def test_whole_schedule_4_to_16_with_fractional_kimg(tmp_path):
    trainer = make_trainer(tmp_path)
    assert trainer.run() == "done"
    assert trainer.images_shown == trainer.schedule.total_images == 80
    run_dir = tmp_path / "runs" / "run"
    lines = [json.loads(x) for x in (run_dir / "stats.jsonl").read_text().splitlines()]
    assert [r["resolution"] for r in lines] == [4, 8, 8, 16, 16]
    assert all(torch.isfinite(torch.tensor(r["d_loss"])) for r in lines)
    assert [r["alpha"] for r in lines] == [1.0, 0.5, 1.0, 0.5, 1.0]
    assert (run_dir / "latest.pt").is_file()
    grids = sorted(p.name for p in run_dir.glob("grid-*.png"))
    assert grids[-1] == "grid-000000.080.png"


def test_resume_is_bitwise_exact_from_any_point(tmp_path):
    one_go = make_trainer(tmp_path / "a")
    one_go.run()
    expected = params(one_go)
    for stop_at in (24, 32, 56):  # mid-fade to 8, a phase boundary, mid-fade to 16
        root = tmp_path / f"b{stop_at}"
        first = make_trainer(root, total_kimg=stop_at / 1000)
        assert first.run() == "done" and first.images_shown == stop_at
        state = load_checkpoint(root / "runs" / "run" / "latest.pt")
        assert run_progress(state).images_shown == stop_at
        second = make_trainer(root, resume_checkpoint=state)
        assert second.run() == "done"
        got = params(second)
        assert all(torch.equal(a, b) for a, b in zip(expected, got, strict=True)), f"resume from {stop_at} diverged"
        for key in ("g_optimizer", "d_optimizer"):
            a = getattr(one_go.gan, key).state_dict()["state"]
            b = getattr(second.gan, key).state_dict()["state"]
            assert a.keys() == b.keys()
            assert all(torch.equal(a[k]["exp_avg"], b[k]["exp_avg"]) for k in a)


def test_stop_request_checkpoints_and_resumes(tmp_path):
    trainer = make_trainer(tmp_path)
    original = trainer.batch_source
    calls = {"n": 0}

    def source(resolution, batch_size, start):
        for batch in original(resolution, batch_size, start):
            calls["n"] += 1
            if calls["n"] == 5:
                trainer.request_stop()  # as the SIGTERM handler does
            yield batch

    trainer.batch_source = source
    assert trainer.run() == "interrupted"
    assert trainer.images_shown == 40
    state = load_checkpoint(tmp_path / "runs" / "run" / "latest.pt")
    assert run_progress(state).images_shown == 40
    resumed = make_trainer(tmp_path, resume_checkpoint=state)
    assert resumed.run() == "done"
    reference = make_trainer(tmp_path / "ref")
    reference.run()
    assert all(torch.equal(a, b) for a, b in zip(params(reference), params(resumed), strict=True))


@pytest.mark.parametrize("total_kimg", [0.024, 0.040])
def test_optimizer_moments_reset_at_every_phase_start(tmp_path, total_kimg):
    """Official train.py resets both Adams whenever a phase starts: when a fade starts and when it ends."""
    trainer = make_trainer(tmp_path, total_kimg=total_kimg)
    trainer.run()
    # 24 images: two steps at 4×4, one into the fade to 8; 40: the fade (2 steps), one into the stable 8×8.
    # Either way each Adam has taken exactly one step since its reset (without resets: 3 or 5).
    for optimizer in (trainer.gan.g_optimizer, trainer.gan.d_optimizer):
        steps = {int(v["step"]) for v in optimizer.state_dict()["state"].values()}
        assert steps == {1}


class _CountingSWD(Trainer):
    """SWD itself is tested elsewhere; here only *when* it runs matters, so it reports the position."""

    def evaluate_metric(self, name):
        return {"avg": float(self.images_shown)}


def test_stopped_and_resumed_run_keeps_tick_and_swd_cadence(tmp_path):
    def trainer(root, state=None):
        options = tiny_options(root, swd_kimg=0.032)
        run_dir = Path(options.out) / options.run_name
        run_dir.mkdir(parents=True, exist_ok=True)
        source = tensor_source(random_pyramid())
        return _CountingSWD(
            plan(options, source), single_job(), run_dir, 3, resume_checkpoint=state, log=lambda m: None
        )

    def lines(root):
        records = [json.loads(x) for x in (root / "runs" / "run" / "stats.jsonl").read_text().splitlines()]
        return [r["kimg"] for r in records], [r["kimg"] for r in records if "swd" in r]

    trainer(tmp_path / "ref").run()
    first = trainer(tmp_path / "b")
    original = first.batch_source

    def source(resolution, batch_size, start):
        for batch in original(resolution, batch_size, start):
            if start + batch_size >= 40:
                first.request_stop()  # a SIGTERM during the step that reaches kimg 0.040
            yield batch

    first.batch_source = source
    assert first.run() == "interrupted" and first.images_shown == 40
    state = load_checkpoint(tmp_path / "b" / "runs" / "run" / "latest.pt")
    assert run_progress(state).timeline["swd"] == 64  # saved with the other cadences
    assert trainer(tmp_path / "b", state).run() == "done"
    ticks, swd = lines(tmp_path / "ref")
    assert (ticks, swd) == ([0.016, 0.032, 0.048, 0.064, 0.08], [0.032, 0.064])
    assert lines(tmp_path / "b") == (sorted([*ticks, 0.04]), swd)  # the stop adds its own line, nothing moves
