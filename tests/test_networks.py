import pytest
import torch

from pggan.model.layers import downsample2x, upsample2x
from pggan.model.networks import Discriminator, Generator, feature_maps

RESOLUTIONS = [4, 8, 16, 32, 64, 128, 256, 512, 1024]


def tiny_pair(max_resolution=1024, channels=3):
    g = Generator(max_resolution, channels=channels, latent_size=8, fmap_base=32, fmap_max=4)
    d = Discriminator(max_resolution, channels=channels, fmap_base=32, fmap_max=4)
    return g, d


@pytest.fixture(scope="module")
def tiny_nets():
    torch.manual_seed(0)
    return {c: tiny_pair(channels=c) for c in (1, 3)}


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("resolution", RESOLUTIONS)
def test_shapes_at_every_resolution(tiny_nets, channels, resolution):
    g, d = tiny_nets[channels]
    z = torch.randn(2, 8)
    with torch.no_grad():
        for alpha in (0.0, 0.5, 1.0):
            images = g(z, resolution, alpha)
            assert images.shape == (2, channels, resolution, resolution)
            assert torch.isfinite(images).all()
            scores = d(images, resolution, alpha)
            assert scores.shape == (2,)


def test_paper_widths_and_parameter_counts():
    widths = [feature_maps(r, 8192, 512) for r in RESOLUTIONS]
    assert widths == [512, 512, 512, 512, 256, 128, 64, 32, 16]
    g, d = Generator(1024), Discriminator(1024)
    g_params = sum(p.numel() for p in g.parameters())
    d_params = sum(p.numel() for p in d.parameters())
    print(f"\nGenerator: {g_params:,} parameters; Discriminator: {d_params:,} parameters (paper: 23.1M each)")
    assert g_params == pytest.approx(23.1e6, rel=0.01)
    assert d_params == pytest.approx(23.1e6, rel=0.01)


@pytest.mark.parametrize("resolution", [4, 8, 16, 32])
def test_generator_fade_in_is_continuous(resolution):
    torch.manual_seed(2)
    g, _ = tiny_pair(64)
    z = torch.randn(4, 8)
    with torch.no_grad():
        faded = g(z, 2 * resolution, 0.0)
        previous = g(z, resolution, 1.0)
    assert torch.equal(faded, upsample2x(previous))


@pytest.mark.parametrize("resolution", [4, 8, 16, 32])
def test_discriminator_fade_in_is_continuous(resolution):
    torch.manual_seed(3)
    _, d = tiny_pair(64)
    x = torch.randn(4, 3, 2 * resolution, 2 * resolution)
    with torch.no_grad():
        assert torch.equal(d(x, 2 * resolution, 0.0), d(downsample2x(x), resolution, 1.0))


def test_fade_blends_linearly():
    torch.manual_seed(4)
    g, _ = tiny_pair(16)
    z = torch.randn(2, 8)
    with torch.no_grad():
        old = g(z, 16, 0.0)
        new = g(z, 16, 1.0)
        torch.testing.assert_close(g(z, 16, 0.25), 0.75 * old + 0.25 * new)


def test_generator_normalises_latents():
    torch.manual_seed(5)
    g, _ = tiny_pair(8)
    z = torch.randn(3, 8)
    with torch.no_grad():
        torch.testing.assert_close(g(z, 8, 1.0), g(z * 7.5, 8, 1.0))


def test_blocks_above_current_resolution_get_no_gradient():
    g, d = tiny_pair(32)
    images = g(torch.randn(4, 8), 8, 1.0)
    d(images, 8, 1.0).sum().backward()
    assert g.blocks[1].conv0.weight.grad is not None
    assert g.blocks[2].conv0.weight.grad is None
    assert g.to_rgb[0].weight.grad is None  # alpha = 1: the old toRGB is not used
    assert d.from_rgb[1].weight.grad is not None
    assert d.blocks[2].conv0.weight.grad is None


def test_active_modules_cover_exactly_the_used_parameters():
    g, d = tiny_pair(32)
    for alpha in (0.5, 1.0):
        for net in (g, d):
            net.zero_grad(set_to_none=True)
        d(g(torch.randn(4, 8), 16, alpha), 16, alpha).sum().backward()
        for net in (g, d):
            active = {id(p) for m in net.active_modules(16, alpha) for p in m.parameters()}
            used = {id(p) for p in net.parameters() if p.grad is not None}
            assert active == used


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda g, d: g(torch.randn(2, 8), 12, 1.0), "power of two"),
        (lambda g, d: g(torch.randn(2, 8), 64, 1.0), "power of two from 4 to 32"),
        (lambda g, d: g(torch.randn(2, 8), 2, 1.0), "power of two"),
        (lambda g, d: g(torch.randn(2, 8), 8, 1.5), "alpha"),
        (lambda g, d: g(torch.randn(2, 8), 8, -0.1), "alpha"),
        (lambda g, d: g(torch.randn(2, 5), 8, 1.0), "latents"),
        (lambda g, d: d(torch.randn(2, 1, 8, 8), 8, 1.0), r"\(N, 3, 8, 8\)"),
        (lambda g, d: d(torch.randn(2, 3, 16, 16), 8, 1.0), r"\(N, 3, 8, 8\)"),
        (lambda g, d: d(torch.randn(2, 3, 8, 8), 8, float("nan")), "alpha"),
    ],
)
def test_bad_input_raises_value_error(call, message):
    g, d = tiny_pair(32)
    with pytest.raises(ValueError, match=message):
        call(g, d)


@pytest.mark.parametrize("max_resolution", [0, 3, 2, 2048, 48])
def test_bad_max_resolution(max_resolution):
    with pytest.raises(ValueError, match="max_resolution"):
        Generator(max_resolution)
    with pytest.raises(ValueError, match="max_resolution"):
        Discriminator(max_resolution)


def test_config_rebuilds_the_same_architecture():
    g, d = tiny_pair(64, channels=1)
    g2, d2 = Generator(**g.config), Discriminator(**d.config)
    g2.load_state_dict(g.state_dict())
    d2.load_state_dict(d.state_dict())
    z = torch.randn(4, 8)
    with torch.no_grad():
        assert torch.equal(g(z, 32, 0.3), g2(z, 32, 0.3))


def test_mbstd_group_size_one_or_zero_switches_the_layer_off():
    """Official D_paper: ``if mbstd_group_size > 1: x = minibatch_stddev_layer(x, mbstd_group_size)``."""
    for group in (0, 1):
        torch.manual_seed(0)
        d = Discriminator(8, channels=3, fmap_base=32, fmap_max=8, mbstd_group_size=group)
        final = d.blocks[0]
        assert final.mbstd is None and final.conv.weight.shape[1] == 8  # no extra input channel
        x = torch.randn(5, 3, 8, 8)
        single = torch.cat([d(x[i : i + 1], 8) for i in range(5)])
        torch.testing.assert_close(d(x, 8), single)  # no sample's score depends on the others
    with_layer = Discriminator(8, channels=3, fmap_base=32, fmap_max=8, mbstd_group_size=2).blocks[0]
    assert with_layer.mbstd is not None and with_layer.conv.weight.shape[1] == 9
