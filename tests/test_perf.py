"""The performance paths compute exactly what the plain formulation computes, and the benchmark runs."""

import copy
import json
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from pggan.model.layers import (
    EqualizedConv2d,
    EqualizedConv2dDown,
    EqualizedUpConv2d,
    conv_downsample_weight,
    downsample2x,
    upsample2x,
    upsample_conv_weight,
)
from pggan.model.losses import d_loss
from pggan.model.networks import FUSED_UPSAMPLE_MIN_RESOLUTION, Discriminator, Generator
from pggan.training.step import (
    CriticLoss,
    StepInputs,
    build_gan_state,
    draw_step_noise,
    ema_parameter_pairs,
    train_step,
    update_ema,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import bench_train

from tests.device import TEST_DEVICE


def _random_layer(cls, cin, cout, dtype):
    torch.manual_seed(0)
    layer = cls(cin, cout).to(dtype)
    with torch.no_grad():
        layer.bias.normal_()
    return layer


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", [(2, 5, 4, 4), (3, 7, 5, 8), (1, 3, 1, 1)])
def test_fused_upsample_conv_equals_upsample_then_conv(dtype, shape):
    layer = _random_layer(EqualizedUpConv2d, shape[1], 6, dtype)
    x = torch.randn(*shape, dtype=dtype)
    fused = layer(x)
    reference = F.conv2d(upsample2x(x), layer.weight * layer.scale, layer.bias, padding=1)
    assert fused.shape == (shape[0], 6, 2 * shape[2], 2 * shape[3])
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    torch.testing.assert_close(fused, reference, rtol=tol, atol=tol)
    layer.fused = False
    torch.testing.assert_close(layer(x), reference, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", [(2, 5, 8, 8), (3, 4, 6, 10), (1, 3, 2, 2)])
def test_fused_conv_downsample_equals_conv_then_avgpool(dtype, shape):
    layer = _random_layer(EqualizedConv2dDown, shape[1], 6, dtype)
    x = torch.randn(*shape, dtype=dtype)
    reference = downsample2x(F.conv2d(x, layer.weight * layer.scale, layer.bias, padding=1))
    tol = 1e-12 if dtype == torch.float64 else 2e-5
    torch.testing.assert_close(layer(x), reference, rtol=tol, atol=tol)


@pytest.mark.parametrize("cls", [EqualizedUpConv2d, EqualizedConv2dDown])
def test_fused_gradients_reach_the_same_3x3_weight(cls):
    layer = _random_layer(cls, 4, 3, torch.float64)
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64, requires_grad=True)
    grads = []
    for fused in (True, False):
        layer.fused = fused
        layer.zero_grad(set_to_none=True)
        x.grad = None
        layer(x).sin().sum().backward()
        grads.append((layer.weight.grad.clone(), layer.bias.grad.clone(), x.grad.clone()))
    for a, b in zip(*grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_fused_kernels_are_sums_of_shifted_taps():
    w = torch.arange(9.0).reshape(1, 1, 3, 3)
    down = conv_downsample_weight(w)[0, 0]
    assert down[0, 0] == w[0, 0, 0, 0] / 4 and down[3, 3] == w[0, 0, 2, 2] / 4
    assert down.sum() == 4 * w.sum() / 4  # each 3×3 tap lands in four 4×4 cells, then ×¼
    up = upsample_conv_weight(w)
    assert up.shape == (1, 1, 4, 4) and up.sum() == 4 * w.sum()


def test_fused_layers_keep_the_plain_conv_parameters():
    """Checkpoints stay compatible: same names and shapes as a plain EqualizedConv2d, whatever ``fused`` is."""
    plain = EqualizedConv2d(8, 16, 3)
    for cls in (EqualizedUpConv2d, EqualizedConv2dDown):
        layer = cls(8, 16)
        assert {k: v.shape for k, v in layer.state_dict().items()} == {
            k: v.shape for k, v in plain.state_dict().items()
        }
        assert layer.scale == plain.scale
    g = Generator(64, latent_size=16, fmap_base=64, fmap_max=8)
    assert g.state_dict()["blocks.1.conv0.weight"].shape == (8, 8, 3, 3)
    assert [b.conv0.fused for b in g.blocks[1:]] == [4 * 2**i >= FUSED_UPSAMPLE_MIN_RESOLUTION for i in range(1, 5)]


def test_generator_output_does_not_depend_on_fusion():
    torch.manual_seed(1)
    g = Generator(64, latent_size=16, fmap_base=64, fmap_max=8).double()
    z = torch.randn(4, 16, dtype=torch.float64)
    with torch.no_grad():
        fused = [g(z, r, a) for r in (16, 32, 64) for a in (0.3, 1.0)]
        for block in g.blocks[1:]:
            block.conv0.fused = False
        plain = [g(z, r, a) for r in (16, 32, 64) for a in (0.3, 1.0)]
    for a, b in zip(fused, plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def _critic(batch_group=4):
    torch.manual_seed(2)
    return Discriminator(16, fmap_base=64, fmap_max=8, mbstd_group_size=batch_group).double()


def test_joint_real_fake_pass_equals_two_passes():
    d = _critic()
    reals, fakes = torch.randn(8, 3, 16, 16, dtype=torch.float64), torch.randn(8, 3, 16, 16, dtype=torch.float64)
    mix = torch.rand(8, dtype=torch.float64)
    results = []
    for joint in (False, True):
        d.zero_grad(set_to_none=True)
        loss, stats = d_loss(lambda x: d(x, 16, 0.4), reals, fakes, mix, joint=joint)
        loss.backward()
        results.append((loss.detach(), stats, [p.grad.clone() for p in d.parameters() if p.grad is not None]))
    (l0, s0, g0), (l1, s1, g1) = results
    torch.testing.assert_close(l0, l1, rtol=1e-12, atol=1e-12)
    for key in s0:
        torch.testing.assert_close(s0[key], s1[key], rtol=1e-12, atol=1e-12)
    assert len(g0) == len(g1)
    for a, b in zip(g0, g1, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_critic_view_keeps_separate_passes_when_groups_would_mix_reals_and_fakes():
    d = _critic()
    reals, fakes = torch.randn(2, 3, 16, 16, dtype=torch.float64), torch.randn(2, 3, 16, 16, dtype=torch.float64)
    mix = torch.rand(2, dtype=torch.float64)
    view = CriticLoss(d, 16, fading=False)
    got, _ = view(reals, fakes, mix, 1.0)
    separate, _ = d_loss(lambda x: d(x, 16, 1.0), reals, fakes, mix, joint=False)
    joint, _ = d_loss(lambda x: d(x, 16, 1.0), reals, fakes, mix, joint=True)
    assert torch.equal(got, separate)
    assert not torch.allclose(joint, separate)  # one group of 4 would mix reals and fakes: a different loss


def _state(max_resolution=32, **policy):
    return build_gan_state(max_resolution, 3, TEST_DEVICE, latent_size=16, fmap_base=64, fmap_max=8, seed=3, **policy)


def test_ema_over_trained_blocks_equals_ema_over_all_parameters():
    state = _state()
    state.enter_phase(8, fading=True)
    reference = copy.deepcopy(state.generator_ema)
    noise = torch.Generator().manual_seed(0)
    reals = torch.rand(8, 3, 8, 8) * 2 - 1
    for _ in range(2):
        train_step(state, StepInputs(reals, *draw_step_noise(noise, 8, 16, 0, 1)), 8, 0.5, 0.9)
        update_ema(reference, state.generator, 0.9)
    for a, b in zip(reference.parameters(), state.generator_ema.parameters(), strict=True):
        assert torch.equal(a, b)
    ema_params, _ = ema_parameter_pairs(state.generator_ema, state.generator, 8)
    assert len(ema_params) < len(list(state.generator.parameters()))
    with torch.no_grad():  # an EMA that differs above the resolution (e.g. loaded from elsewhere) is kept
        state.generator_ema.blocks[3].conv1.bias.add_(1.0)
    ema_params, _ = ema_parameter_pairs(state.generator_ema, state.generator, 8)
    assert any(p is state.generator_ema.blocks[3].conv1.bias for p in ema_params)


def test_flop_counter_runs_over_a_whole_step():
    state = _state(16)
    state.enter_phase(16, fading=True)
    noise = torch.Generator().manual_seed(0)
    with FlopCounterMode(display=False) as counter:
        train_step(state, StepInputs(torch.rand(4, 3, 16, 16), *draw_step_noise(noise, 4, 16, 0, 1)), 16, 0.5, 0.9)
    counts = counter.get_flop_counts()["Global"]
    assert counter.get_total_flops() > 0
    assert torch.ops.aten.convolution_backward in counts  # the penalty's backward passes were counted


def test_bench_prints_json_rows_with_the_accelerator_flags_honoured_on_the_cpu(capsys):
    argv = ["--res", "8", "--fmap-max", "8", "--batch", "4", "--latent-size", "16"]
    bench_train.main([*argv, "--warmup", "0", "--steps", "1", "--device", "cpu", "--json", "--amp", "--channels-last"])
    row = json.loads(capsys.readouterr().out.strip())
    keys = "res fmap_max batch device sec_per_step img_per_s gflop_per_step gflops matmul_gflops peak_mem_mb"
    assert set(keys.split()) <= row.keys()
    assert row["res"] == 8 and row["batch"] == 4 and row["device"] == "cpu"
    # The device policy runs bf16 autocast and NHWC on the CPU when asked; TF32 does not exist there.
    assert row["amp"] is True and row["channels_last"] is True and row["precision"] == "bf16"
    bench_train.main([*argv, "--warmup", "0", "--steps", "1", "--device", "cpu", "--json", "--tf32"])
    row = json.loads(capsys.readouterr().out.strip())
    assert row["tf32"] is False and row["precision"] == "fp32"
    assert row["gflop_per_step"] > 0 and row["peak_mem_mb"] > 0 and row["matmul_gflops"] > 0
    assert row["gflop_reference"] >= row["gflop_per_step"]
    bench_train.main([*argv, "--steps", "1", "--fusion", "--json"])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["layer"] for r in rows} == {"upsample+conv3x3 vs convT4x4", "conv3x3+avgpool vs conv4x4/2"}


def test_bench_rejects_bad_resolution(capsys):
    with pytest.raises(SystemExit):
        bench_train.main(["--res", "12"])
    assert "powers of two" in capsys.readouterr().err


@pytest.mark.slow
def test_compiled_step_matches_eager_step():
    """The generator path CUDA compiles — bf16 autocast, channels-last, a 0-dim alpha through a fade — against the
    same step run eagerly; a new alpha must not compile a new graph."""
    from torch._dynamo.utils import counters

    results = []
    for compile in (False, True):
        state = _state(16, amp=True, channels_last=True, compile=compile)
        assert state.compile is compile and (state.fakes_forward is not state.generator) is compile
        state.enter_phase(16, fading=True)
        noise = torch.Generator().manual_seed(0)
        reals = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
        stats, graphs = [], []
        for alpha in (0.25, 0.5, 0.75):
            stats.append(train_step(state, StepInputs(reals, *draw_step_noise(noise, 4, 16, 0, 1)), 16, alpha, 0.9))
            graphs.append(counters["stats"]["unique_graphs"])
        if compile:
            assert graphs[0] > 0 and graphs[1] == graphs[2] == graphs[0], graphs  # alpha is a tensor input
        with torch.no_grad(), state.policy.autocast():
            z = torch.randn(4, 16, generator=torch.Generator().manual_seed(2)).to(state.device)
            images = state.fakes_forward(z, 16, torch.tensor(0.6, device=state.device)).float().cpu()
        results.append((stats, images))
    (eager_stats, eager_images), (compiled_stats, compiled_images) = results
    # bf16 rounds differently in fused kernels: the first step (same weights) agrees to bf16 precision.
    for key in ("d_loss", "g_loss", "gp", "wdist"):
        torch.testing.assert_close(compiled_stats[0][key].cpu(), eager_stats[0][key].cpu(), rtol=0.02, atol=0.02)
    assert all(torch.isfinite(s[key]).all() for s in compiled_stats for key in s)
    torch.testing.assert_close(compiled_images, eager_images, rtol=0.05, atol=0.05)
