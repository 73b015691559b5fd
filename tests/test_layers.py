import math

import pytest
import torch

from pggan.model.layers import (
    EqualizedConv2d,
    EqualizedLinear,
    MinibatchStdDev,
    PixelNorm,
    downsample2x,
    lrelu,
    upsample2x,
)


def test_equalized_conv_weights_are_unit_normal_and_scaled_at_run_time():
    torch.manual_seed(0)
    conv = EqualizedConv2d(64, 128, 3)
    assert conv.weight.std().item() == pytest.approx(1.0, abs=0.02)
    assert conv.weight.mean().item() == pytest.approx(0.0, abs=0.02)
    assert torch.count_nonzero(conv.bias) == 0
    assert conv.scale == pytest.approx(math.sqrt(2) / math.sqrt(64 * 9))
    # The effective kernel is weight * gain / sqrt(fan_in): compare to a plain conv with that kernel.
    x = torch.randn(2, 64, 8, 8)
    expected = torch.nn.functional.conv2d(x, conv.weight * conv.scale, conv.bias, padding=1)
    torch.testing.assert_close(conv(x), expected)


def test_equalized_linear_scale_and_gain():
    lin = EqualizedLinear(512, 256, gain=1.0)
    assert lin.scale == pytest.approx(1 / math.sqrt(512))
    x = torch.randn(4, 512)
    torch.testing.assert_close(lin(x), x @ (lin.weight * lin.scale).T)


def test_bias_is_not_scaled():
    conv = EqualizedConv2d(4, 2, 1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.fill_(3.0)
    out = conv(torch.randn(1, 4, 5, 5))
    assert torch.all(out == 3.0)


def test_output_variance_of_a_deep_stack_stays_order_one():
    torch.manual_seed(1)
    layers = [EqualizedConv2d(32 if i else 16, 32, 3) for i in range(12)]
    x = torch.randn(8, 16, 16, 16)
    for layer in layers:
        x = lrelu(layer(x))
    # He init with lrelu keeps the second moment within a small factor of its start.
    assert 0.2 < x.square().mean().item() < 5.0


def test_pixel_norm_gives_unit_mean_square_over_channels():
    x = torch.randn(3, 7, 5, 5) * 10 + 2
    y = PixelNorm()(x)
    torch.testing.assert_close(y.square().mean(dim=1), torch.ones(3, 5, 5), rtol=1e-5, atol=1e-5)
    # Direction is preserved.
    torch.testing.assert_close(y / y.norm(dim=1, keepdim=True), x / x.norm(dim=1, keepdim=True))


def test_minibatch_stddev_matches_hand_computation():
    x = torch.arange(8 * 2 * 2 * 2, dtype=torch.float32).reshape(8, 2, 2, 2) ** 1.5 / 10
    out = MinibatchStdDev(group_size=4)(x)
    assert out.shape == (8, 3, 2, 2)
    torch.testing.assert_close(out[:, :2], x)
    for g in range(2):
        members = x[4 * g : 4 * g + 4].double()
        var = ((members - members.mean(dim=0)) ** 2).mean(dim=0)  # population variance over the group
        expected = torch.sqrt(var + 1e-8).mean().item()
        assert torch.allclose(out[4 * g : 4 * g + 4, 2], torch.full((4, 2, 2), expected, dtype=torch.float32))
    # Two groups of different samples give two different statistics.
    assert out[0, 2, 0, 0] != out[4, 2, 0, 0]


def test_minibatch_stddev_uses_whole_batch_when_smaller_than_group():
    x = torch.randn(2, 3, 4, 4)
    out = MinibatchStdDev(group_size=4)(x)
    expected = torch.sqrt(x.var(dim=0, unbiased=False) + 1e-8).mean()
    torch.testing.assert_close(out[:, 3], expected.expand(2, 4, 4))


def test_minibatch_stddev_rejects_indivisible_batch():
    with pytest.raises(ValueError, match="divisible"):
        MinibatchStdDev(group_size=4)(torch.randn(6, 3, 4, 4))


def test_resampling_is_nearest_and_box():
    x = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    up = upsample2x(x)
    assert up.shape == (1, 1, 4, 4)
    assert up[0, 0].tolist() == [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]
    assert downsample2x(up).tolist() == x.tolist()
    assert downsample2x(x).item() == 2.5
