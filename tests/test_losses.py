import pytest
import torch

from pggan.model.losses import DRIFT_EPSILON, GP_LAMBDA, d_loss, g_loss, gradient_penalty
from pggan.model.networks import Discriminator, Generator

# The expected values below use the paper's literals, never the package's constants (which could move with them).
LAMBDA, DRIFT = 10.0, 0.001


def test_paper_constants():
    assert GP_LAMBDA == LAMBDA
    assert DRIFT_EPSILON == DRIFT


def test_gradient_penalty_of_linear_critic_is_analytic():
    torch.manual_seed(0)
    w = torch.randn(3 * 4 * 4, dtype=torch.float64) * 0.3

    def critic(x):
        return x.flatten(1) @ w

    reals = torch.randn(5, 3, 4, 4, dtype=torch.float64)
    fakes = torch.randn(5, 3, 4, 4, dtype=torch.float64)
    penalty = gradient_penalty(critic, reals, fakes)
    expected = LAMBDA * (w.norm() - 1) ** 2
    torch.testing.assert_close(penalty, expected.expand(5))


def test_d_loss_terms_for_linear_critic():
    torch.manual_seed(1)
    w = torch.randn(12, dtype=torch.float64)

    def critic(x):
        return x.flatten(1) @ w

    reals = torch.randn(8, 3, 2, 2, dtype=torch.float64)
    fakes = torch.randn(8, 3, 2, 2, dtype=torch.float64)
    loss, stats = d_loss(critic, reals, fakes)
    real_scores, fake_scores = critic(reals), critic(fakes)
    expected = fake_scores.mean() - real_scores.mean() + LAMBDA * (w.norm() - 1) ** 2 + DRIFT * (real_scores**2).mean()
    torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(stats["wdist"].double(), real_scores.mean() - fake_scores.mean(), rtol=1e-5, atol=1e-5)


def test_penalty_gradient_reaches_critic_parameters_by_double_backward():
    torch.manual_seed(2)
    w = torch.randn(12, dtype=torch.float64, requires_grad=True)

    def critic(x):
        return x.flatten(1) @ w

    reals = torch.randn(4, 3, 2, 2, dtype=torch.float64)
    fakes = torch.randn(4, 3, 2, 2, dtype=torch.float64)
    gradient_penalty(critic, reals, fakes).mean().backward()
    # d/dw λ(‖w‖−1)² = 2λ(‖w‖−1) w/‖w‖
    norm = w.detach().norm()
    torch.testing.assert_close(w.grad, 2 * LAMBDA * (norm - 1) * w.detach() / norm)


def test_losses_backpropagate_through_real_networks():
    torch.manual_seed(3)
    g = Generator(16, latent_size=8, fmap_base=32, fmap_max=8)
    d = Discriminator(16, fmap_base=32, fmap_max=8)
    reals = torch.rand(8, 3, 16, 16) * 2 - 1
    fakes = g(torch.randn(8, 8), 16, 0.5)
    loss, stats = d_loss(lambda x: d(x, 16, 0.5), reals, fakes)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in d.parameters() if p.grad is not None)
    assert d.blocks[2].conv0.weight.grad.abs().sum() > 0
    assert g.blocks[1].conv0.weight.grad is None  # fakes are detached in the critic loss
    assert stats["gp"] >= 0
    loss_g, _ = g_loss(lambda x: d(x, 16, 0.5), g(torch.randn(8, 8), 16, 0.5))
    loss_g.backward()
    assert g.blocks[2].conv1.weight.grad.abs().sum() > 0


def test_mix_is_per_sample():
    # With u = 0 the penalty is evaluated at the reals; with u = 1 at the fakes.
    def critic(x):
        return (x.flatten(1) ** 2).sum(1) / 2  # gradient = x

    reals = torch.full((2, 1, 1, 2), 3.0, dtype=torch.float64)
    fakes = torch.zeros_like(reals)
    penalty = gradient_penalty(critic, reals, fakes, mix=torch.tensor([0.0, 1.0]))
    grad_norm_real = torch.tensor(3.0 * 2**0.5, dtype=torch.float64)
    assert penalty[0].item() == pytest.approx(LAMBDA * (grad_norm_real.item() - 1) ** 2)
    assert penalty[1].item() == pytest.approx(LAMBDA * 1.0)
