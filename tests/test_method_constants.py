"""The method's constants, written here as literals from the paper and the official release.

Every expected value below is typed out, never read from pggan: a test that compares a constant with itself
moves with it and cannot fail. Sources: the paper (Karras et al., ICLR 2018, appendix A), the official
``config.py``, ``train.py``, ``networks.py``, ``loss.py`` and ``metrics/sliced_wasserstein.py``.
"""

import math

import pytest
import torch

from pggan import defaults
from pggan.metrics import fid, swd
from pggan.model import layers
from pggan.training.options import TrainOptions
from pggan.training.step import blend_reals, build_gan_state, ema_beta_for, make_optimizer


def test_defaults_module_holds_the_official_values():
    assert defaults.LATENT_SIZE == 512
    assert (defaults.FMAP_BASE, defaults.FMAP_MAX) == (8192, 512)
    assert defaults.MBSTD_GROUP_SIZE == 4
    assert defaults.LEARNING_RATE == 0.001
    assert defaults.ADAM_BETAS == (0.0, 0.99)
    assert defaults.ADAM_EPS == 1e-8
    assert defaults.EMA_BETA == 0.999  # train.G_smoothing
    assert (defaults.GP_LAMBDA, defaults.GP_TARGET, defaults.DRIFT_EPSILON) == (10.0, 1.0, 0.001)
    assert defaults.GP_SPACE == "official"
    assert defaults.TICK_KIMG == {4: 160, 8: 140, 16: 120, 32: 100, 64: 80, 128: 60, 256: 40, 512: 20, 1024: 10}
    assert defaults.SWD_IMAGES == 16384
    assert defaults.FID_IMAGES == 50000


def test_layer_constants():
    assert layers.HE_GAIN == pytest.approx(math.sqrt(2.0), rel=1e-15)
    assert layers.LRELU_SLOPE == 0.2
    assert layers.PIXEL_NORM_EPS == 1e-8
    assert layers.MBSTD_EPS == 1e-8
    x = torch.tensor([-1.0, 2.0])
    assert torch.equal(torch.nn.functional.leaky_relu(x, layers.LRELU_SLOPE), torch.tensor([-0.2, 2.0]))


def test_swd_constants():
    """Official sliced_wasserstein.py: 128 7×7 neighbourhoods per image, 4 repeats × 128 directions."""
    assert (swd.NHOOD_SIZE, swd.NHOODS_PER_IMAGE) == (7, 128)
    assert (swd.DIR_REPEATS, swd.DIRS_PER_REPEAT) == (4, 128)
    assert swd.random_directions(147, seed=0, level=0).shape == (512, 147)
    corners = swd.patch_corners(3, 32, torch.Generator().manual_seed(0))
    assert corners.shape == (3, 128, 2) and int(corners.min()) >= 0 and int(corners.max()) <= 32 - 7
    assert swd.swd_resolutions(128) == [128, 64, 32, 16]


def test_the_library_and_cli_defaults_are_the_official_run():
    options = TrainOptions()
    assert options.ema_beta == 0.999 and options.ema_kimg is None
    assert options.lr == 0.001
    assert (options.fmap_base, options.fmap_max, options.latent_size) == (8192, 512, 512)
    assert options.swd_images == 16384
    assert options.gp_space == "official"
    from pggan.cli import train_command

    cli = {p.name: p.default for p in train_command.params}
    assert cli["ema_beta"] == 0.999 and cli["lr"] == 0.001 and cli["gp_space"] == "official"
    assert cli["swd_images"] == 16384


def test_ema_beta_per_step_is_the_fixed_beta_by_default():
    assert ema_beta_for(16, 0.999, None) == 0.999
    # The optional half-life form: 10 kimg at batch 16 is 0.5 ** (16 / 10,000).
    assert ema_beta_for(16, 0.999, 10.0) == pytest.approx(0.5 ** (16 / 10_000), rel=1e-15)


def test_adam_is_built_with_the_official_hyperparameters():
    optimizer = make_optimizer(torch.nn.Linear(2, 2), 0.001, torch.device("cpu"))
    group = optimizer.param_groups[0]
    assert (group["lr"], group["betas"], group["eps"]) == (0.001, (0.0, 0.99), 1e-8)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
def test_real_images_fade_as_lerp_of_upsampled_avgpool(alpha):
    """official train.py: ``x = lerp(upscale2d(downscale2d(x)), x, alpha)`` (2×2 mean, nearest upsampling)."""
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(5)) * 2 - 1
    pooled = x.reshape(2, 3, 4, 2, 4, 2).mean(dim=(3, 5))
    coarse = pooled.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    expected = coarse + alpha * (x - coarse)
    got = blend_reals(x, alpha)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    if alpha < 1.0:
        assert (got - x).abs().max() > 0.05  # a blend that does nothing fails here


def test_fid_covariance_is_the_unbiased_estimate_on_spread_features():
    """Σ of pggan-fid is numpy's ``np.cov`` (÷ N−1), fed in batches, on features with a real spread."""
    rng = torch.Generator().manual_seed(3)
    mixing = torch.randn(16, 16, generator=rng, dtype=torch.float64)
    features = torch.randn(50, 16, generator=rng, dtype=torch.float64) @ mixing * 2.0 + 5.0
    acc = fid.StatsAccumulator()
    for part in features.split(7):
        acc.add(part)
    stats = acc.result()
    x = features.numpy()
    centred = x - x.mean(axis=0)
    unbiased = centred.T @ centred / (50 - 1)
    assert stats.num_images == 50
    assert abs(stats.sigma - unbiased).max() <= 1e-10 * abs(unbiased).max()
    assert abs(stats.mu - x.mean(axis=0)).max() <= 1e-12 * abs(x).max()


def test_gan_state_uses_the_official_optimizer_settings():
    state = build_gan_state(8, 3, torch.device("cpu"), fmap_base=64, fmap_max=16)
    for optimizer in (state.g_optimizer, state.d_optimizer):
        group = optimizer.param_groups[0]
        assert (group["lr"], group["betas"], group["eps"]) == (0.001, (0.0, 0.99), 1e-8)
    assert state.discriminator.mbstd_group_size == 4
