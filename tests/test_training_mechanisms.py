"""The paper's training mechanisms shown to act inside a real step, against definitions written here.

Each expected value is computed in the test from the definition (the official ``train.py``), never with the
function under test, so a mechanism that silently stops acting (a fade that does nothing, another EMA decay)
fails here.
"""

import torch

from pggan.training.step import StepInputs, build_gan_state, train_step
from tests.device import TEST_DEVICE
from tests.test_train_loop import make_trainer


def faded_by_definition(x: torch.Tensor, alpha: float) -> torch.Tensor:
    n, c, h, w = x.shape
    coarse = x.reshape(n, c, h // 2, 2, w // 2, 2).mean(dim=(3, 5))
    coarse = coarse.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    return coarse + alpha * (x - coarse)


def critic_inputs_of_one_step(alpha: float, fading: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Run one real training step at 8×8 and return (the raw reals, the reals the critic received)."""
    state = build_gan_state(8, 3, TEST_DEVICE, latent_size=8, fmap_base=32, fmap_max=8)
    state.enter_phase(8, fading)
    seen = []
    critic = state.critic_loss

    def recording_critic(reals, fakes, mix, a):
        seen.append(reals.detach().clone().cpu())
        return critic(reals, fakes, mix, a)

    state.critic_loss = recording_critic
    gen = torch.Generator().manual_seed(0)
    reals = torch.rand(8, 3, 8, 8, generator=gen) * 2 - 1
    inputs = StepInputs(reals, torch.randn(8, 8, generator=gen), torch.rand(8, generator=gen), torch.randn(8, 8))
    stats = train_step(state, inputs, 8, alpha, 0.999)
    assert torch.isfinite(stats["d_loss"]) and len(seen) == 1
    return reals, seen[0]


def test_the_critic_sees_faded_reals_during_a_transition():
    reals, seen = critic_inputs_of_one_step(0.3, fading=True)
    torch.testing.assert_close(seen, faded_by_definition(reals, 0.3), rtol=0, atol=1e-6)
    assert (seen - reals).abs().max() > 0.05


def test_the_critic_sees_plain_reals_once_the_fade_is_over():
    reals, seen = critic_inputs_of_one_step(1.0, fading=False)
    assert torch.equal(seen, reals)


def test_the_ema_generator_moves_by_one_thousandth_per_step_by_default(tmp_path):
    """One step of the default options: G_ema = G0 + (1 − 0.999)·(G1 − G0), as train.G_smoothing = 0.999."""
    before = make_trainer(tmp_path / "a", total_kimg=0.008)  # built, not run: the weights at step 0
    g0 = [p.detach().cpu() for p in before.gan.generator.parameters()]
    trainer = make_trainer(tmp_path / "b", total_kimg=0.008)
    assert trainer.run() == "done" and trainer.images_shown == 8
    g1 = [p.detach().cpu() for p in trainer.gan.generator.parameters()]
    ema = [p.detach().cpu() for p in trainer.gan.generator_ema.parameters()]
    moved = 0
    for p0, p1, e in zip(g0, g1, ema, strict=True):
        step = p1.detach() - p0
        if step.abs().max() == 0:
            assert torch.equal(e, p0)
            continue
        moved += 1
        expected = p0 + 0.001 * step
        tolerance = 0.1 * 0.001 * step.abs().max() + 2e-7  # β 0.99 would be off by 0.009·step
        assert (e - expected).abs().max() <= tolerance
    assert moved > 0
