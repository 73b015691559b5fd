"""The default gradient penalty is the official release's, measured on the full-size images its D receives.

Official train.py ``process_reals`` nearest-upsamples the reals by ``2 ** floor(lod)`` (G's output is upsampled
the same way inside G), and D_paper average-pools by the same factor (``downscale2d(images_in, 2**lod)``), so
loss.py's ``tf.gradients(mixed_loss, [mixed_images_out])`` is taken with respect to the full-size tensor. The
references below do exactly that, literally; pggan computes the same number at native resolution.
"""

import pytest
import torch
import torch.nn.functional as F

from pggan.model.losses import gradient_penalty
from pggan.model.networks import Discriminator
from pggan.training.step import CriticLoss, gp_image_scale

MAX_RES = 32


def _critic(seed: int = 0) -> Discriminator:
    torch.manual_seed(seed)
    return Discriminator(MAX_RES, channels=3, fmap_base=64, fmap_max=16, mbstd_group_size=4).double()


def _batch(resolution: int, n: int = 8):
    g = torch.Generator().manual_seed(resolution)
    reals = torch.rand(n, 3, resolution, resolution, generator=g, dtype=torch.float64) * 2 - 1
    fakes = torch.rand(n, 3, resolution, resolution, generator=g, dtype=torch.float64) * 2 - 1
    mix = torch.rand(n, generator=g, dtype=torch.float64)
    return reals, fakes, mix


def _faded_reals(reals, alpha):
    """official train.py's real-image fade, from its definition: lerp(upsample(2×2 mean of x), x, alpha)."""
    n, c, h, w = reals.shape
    coarse = reals.reshape(n, c, h // 2, 2, w // 2, 2).mean(dim=(3, 5))
    coarse = coarse.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    return coarse + alpha * (reals - coarse)


def _full_size_reference(d, resolution, alpha, reals, fakes, mix):
    """Official loss.D_wgangp_acgan on full-size images: upsample, D pools them back, gradient at full size."""
    factor = MAX_RES // resolution

    def official_d(full):  # the official D at this lod: avg-pool by 2**lod, then the native network
        return d(F.avg_pool2d(full, factor) if factor > 1 else full, resolution, alpha).reshape(-1)

    def up(x):
        return F.interpolate(x, scale_factor=factor, mode="nearest") if factor > 1 else x

    reals_full, fakes_full = up(reals), up(fakes)
    mixed_full = torch.lerp(reals_full, fakes_full, mix.reshape(-1, 1, 1, 1)).requires_grad_(True)
    (grad,) = torch.autograd.grad(official_d(mixed_full).sum(), mixed_full, create_graph=True)
    # λ = 10 of the official loss.py, a literal: never the package's constant, which could move with the code.
    penalty = (grad.flatten(1).norm(dim=1) - 1.0).square() * 10.0
    real_scores, fake_scores = official_d(reals_full), official_d(fakes_full)
    loss = (fake_scores - real_scores + penalty + 0.001 * real_scores.square()).mean()
    return penalty, loss


@pytest.mark.parametrize(
    ("resolution", "alpha"), [(4, 1.0), (8, 0.5), (8, 1.0), (16, 0.25), (16, 1.0), (32, 0.75), (32, 1.0)]
)
def test_official_penalty_equals_the_full_size_reference(resolution, alpha):
    d = _critic()
    reals, fakes, mix = _batch(resolution)
    reals = _faded_reals(reals, alpha) if resolution > 4 else reals
    expected_penalty, expected_loss = _full_size_reference(d, resolution, alpha, reals, fakes, mix)
    expected_grads = torch.autograd.grad(expected_loss, list(d.parameters()), allow_unused=True)

    scale = gp_image_scale("official", resolution, MAX_RES)
    assert scale == MAX_RES / resolution
    critic = lambda x: d(x, resolution, alpha)  # noqa: E731
    penalty = gradient_penalty(critic, reals, fakes, mix, image_scale=scale)
    torch.testing.assert_close(penalty, expected_penalty, rtol=1e-6, atol=1e-9)

    view = CriticLoss(d, resolution, fading=alpha < 1.0)  # the default is the official space
    loss, stats = view(reals, fakes, mix, alpha)
    torch.testing.assert_close(loss, expected_loss, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(stats["gp"], expected_penalty.mean(), rtol=1e-6, atol=1e-9)
    grads = torch.autograd.grad(loss, list(d.parameters()), allow_unused=True)
    for got, want in zip(grads, expected_grads, strict=True):
        assert (got is None) == (want is None)
        if got is not None:
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-7)  # mbstd works in float32


def test_native_space_is_the_penalty_on_native_pixels_and_differs_below_the_top():
    d = _critic()
    reals, fakes, mix = _batch(8)
    native = CriticLoss(d, 8, fading=False, gp_space="native")(reals, fakes, mix, 1.0)[1]["gp"]
    official = CriticLoss(d, 8, fading=False, gp_space="official")(reals, fakes, mix, 1.0)[1]["gp"]
    critic = lambda x: d(x, 8, 1.0)  # noqa: E731
    torch.testing.assert_close(native, gradient_penalty(critic, reals, fakes, mix).mean())
    assert not torch.allclose(native, official)
    # At the top resolution both spaces are the same image space.
    top = _batch(MAX_RES)
    a = CriticLoss(d, MAX_RES, fading=False, gp_space="native")(*top, 1.0)[1]["gp"]
    b = CriticLoss(d, MAX_RES, fading=False)(*top, 1.0)[1]["gp"]
    assert torch.equal(a, b)


def test_unknown_gp_space_is_refused():
    with pytest.raises(ValueError, match="gp_space"):
        gp_image_scale("full", 8, 32)
