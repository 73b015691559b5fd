"""The GPU's accelerator paths, run here: bf16 autocast and channels-last through real steps, decided in one place.

Each path is the code a GPU runs (``pggan.devices.DevicePolicy``: ``torch.autocast(device_type, bf16)``, NHWC
weights and batches); on the CPU the same branches run with ``"cpu"`` as the device type. Every test also shows
that the path *acted* (bf16 convolution outputs, NHWC activations), so a policy that quietly stopped applying
it fails here, not on the first user's GPU.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pggan.devices import DevicePolicy, device_policy
from pggan.errors import UserError
from pggan.model.checkpoint import load_checkpoint, run_progress
from pggan.model.layers import EqualizedConv2d, EqualizedLinear
from pggan.model.losses import d_loss, gradient_penalty
from pggan.model.networks import Discriminator, Generator
from pggan.training.step import GanState, StepInputs, build_gan_state, draw_step_noise, train_step
from pggan.training.trainer import Trainer
from tests.device import TEST_DEVICE
from tests.helpers import plan, random_pyramid, single_job, tensor_source, tiny_options

#: bf16 against float32 on the same batch and weights: each logged term within 2 % of (|float32 value| + 1).
#: bf16 keeps 8 bits of mantissa (0.4 % per rounding); measured on these 16-channel nets: at most 0.7 %.
BF16_TOLERANCE = 0.02


def record_layer_outputs(*nets: torch.nn.Module) -> tuple[list[torch.Tensor], list]:
    """Forward hooks on every equalized conv and dense layer; returns (the outputs seen, the hook handles)."""
    seen: list[torch.Tensor] = []
    handles = [
        m.register_forward_hook(lambda module, args, out: seen.append(out.detach()))
        for net in nets
        for m in net.modules()
        if isinstance(m, (EqualizedConv2d, EqualizedLinear))
    ]
    return seen, handles


def is_nhwc(x: torch.Tensor) -> bool:
    """True for a 4-D tensor in channels-last layout that could not be mistaken for a contiguous one."""
    return x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def one_step(state: GanState, resolution: int, alpha: float, seed: int = 0) -> dict[str, float]:
    reals = torch.rand(8, 3, resolution, resolution, generator=torch.Generator().manual_seed(seed + 10)) * 2 - 1
    noise = torch.Generator().manual_seed(seed)
    stats = train_step(state, StepInputs(reals, *draw_step_noise(noise, 8, 16, 0, 1)), resolution, alpha, 0.9)
    return {key: value.item() for key, value in stats.items()}


def small_state(seed: int = 0, **policy) -> GanState:
    return build_gan_state(16, 3, TEST_DEVICE, latent_size=16, fmap_base=64, fmap_max=16, seed=seed, **policy)


# ---------------------------------------------------------------- the one place
def test_device_policy_decides_every_flag_in_one_place():
    cpu = device_policy("cpu", amp=True, tf32=True)
    assert (cpu.amp, cpu.amp_dtype, cpu.channels_last, cpu.tf32) == (True, torch.bfloat16, False, False)
    assert (cpu.cudnn_benchmark, cpu.pin_memory, cpu.ddp_backend, cpu.compile) == (False, False, "gloo", False)
    assert device_policy("cpu", channels_last=True).memory_format == torch.channels_last
    cuda = device_policy("cuda", tf32=True, compile=True)  # a policy is a decision: no GPU is needed to make it
    assert (cuda.channels_last, cuda.tf32, cuda.cudnn_benchmark, cuda.pin_memory) == (True, True, True, True)
    assert (cuda.ddp_backend, cuda.compile, cuda.amp_dtype) == ("nccl", True, None)
    assert device_policy("cuda").tf32 is False  # the official runs are float32
    context = cpu.autocast()
    assert isinstance(context, torch.autocast) and context.device == "cpu" and context.fast_dtype == torch.bfloat16
    assert not isinstance(device_policy("cpu").autocast(), torch.autocast)
    assert "bfloat16 autocast" in cpu.describe() and "DDP nccl" in cuda.describe()
    # The state, the trainer's options and the bench all take the same answer.
    state = small_state(amp=True, channels_last=True)
    assert isinstance(state.policy, DevicePolicy) and state.policy.amp and state.memory_format == torch.channels_last


# ---------------------------------------------------------------- bf16 autocast
@pytest.mark.parametrize(("resolution", "alpha"), [(4, 1.0), (8, 0.3), (16, 0.7), (16, 1.0)])
def test_bf16_step_runs_under_autocast_and_stays_near_float32(resolution, alpha):
    """A whole step (critic with penalty, generator, EMA) under bf16 autocast, through fades: the convolutions
    really run in bf16, every loss term is finite and within BF16_TOLERANCE of float32 on the same batch."""
    results = {}
    for amp in (False, True):
        state = small_state(amp=amp)
        state.enter_phase(resolution, fading=alpha < 1.0)
        seen, handles = record_layer_outputs(state.generator, state.discriminator)
        results[amp] = one_step(state, resolution, alpha)
        for handle in handles:
            handle.remove()
        assert seen and {x.dtype for x in seen} == ({torch.bfloat16} if amp else {torch.float32})
        assert all(torch.isfinite(p).all() for p in state.generator.parameters())
    full, half = results[False], results[True]
    for key, value in full.items():
        assert abs(half[key] - value) <= BF16_TOLERANCE * (abs(value) + 1), (key, value, half[key])
    assert half != full  # bf16 did round somewhere


def test_gradient_penalty_norm_is_float32_for_bf16_images():
    """The penalty's norm is taken in float32 even when the gradient is bf16, as on the GPU: for a linear critic
    the gradient is its weight (rounded to bf16 here), and the penalty is λ·(‖w‖ − 1)² with ‖w‖ in float32."""
    w = (torch.linspace(-1.0, 1.0, 3 * 16 * 16) * 0.09 + 0.003).to(torch.bfloat16)

    def critic(x: torch.Tensor) -> torch.Tensor:
        return (x.flatten(1) * w).sum(dim=1)

    reals = torch.rand(4, 3, 16, 16).to(torch.bfloat16)
    fakes = torch.rand(4, 3, 16, 16).to(torch.bfloat16)
    penalty = gradient_penalty(critic, reals, fakes)
    norm = w.float().norm()
    assert 1.3 < norm < 2.0  # far enough from 1 that a bf16 norm (8-bit mantissa) would move the penalty
    assert penalty.dtype == torch.float32
    torch.testing.assert_close(penalty, (10.0 * (norm - 1.0) ** 2).expand(4), rtol=1e-6, atol=0)


def test_bf16_fakes_meet_float32_reals_in_the_penalty():
    """Under autocast G's images are bf16 and the reals float32; x̂ = lerp(reals, fakes, u) must still form
    (torch.lerp does not promote dtypes: this was a crash on the first --amp step)."""
    torch.manual_seed(0)
    d = Discriminator(8, fmap_base=32, fmap_max=8).to(TEST_DEVICE)
    reals = torch.rand(4, 3, 8, 8, device=TEST_DEVICE)
    fakes = torch.rand(4, 3, 8, 8, device=TEST_DEVICE).to(torch.bfloat16)
    with device_policy(TEST_DEVICE, amp=True).autocast():
        loss, stats = d_loss(lambda x: d(x, 8, 1.0), reals, fakes, torch.rand(4, device=TEST_DEVICE))
    assert loss.dtype == torch.float32 and torch.isfinite(loss) and stats["gp"] > 0


def run_trainer(root: Path, resume_checkpoint=None, **overrides) -> Trainer:
    options = tiny_options(root, **overrides)
    run_dir = Path(options.out) / options.run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    source = tensor_source(random_pyramid())
    trainer = Trainer(plan(options, source), single_job(), run_dir, 3, resume_checkpoint, log=lambda m: None)
    assert trainer.run() == "done"
    return trainer


def flat_parameters(trainer: Trainer) -> torch.Tensor:
    s = trainer.gan
    return torch.cat([p.detach().flatten().cpu() for n in (s.generator, s.discriminator, s.generator_ema)
                      for p in n.parameters()])  # fmt: skip


def test_checkpoint_written_under_autocast_resumes_exactly(tmp_path):
    """bf16 autocast with channels-last (the GPU's settings): a run stopped mid-fade and resumed from its
    checkpoint ends bit for bit where the run done in one go ends."""
    flags = {"amp": True, "channels_last": True}
    one_go = run_trainer(tmp_path / "a", **flags)
    assert one_go.policy.amp and one_go.gan.memory_format == torch.channels_last
    first = run_trainer(tmp_path / "b", total_kimg=0.056, **flags)  # mid-fade to 16×16
    state = load_checkpoint(tmp_path / "b" / "runs" / "run" / "latest.pt")
    assert run_progress(state).images_shown == 56 and state["options"]["amp"] is True
    resumed = run_trainer(tmp_path / "b", resume_checkpoint=state, **flags)
    assert resumed.images_shown == one_go.images_shown == 80
    assert torch.equal(flat_parameters(resumed), flat_parameters(one_go))
    assert not torch.equal(flat_parameters(first), flat_parameters(one_go))


# ---------------------------------------------------------------- channels-last
def test_channels_last_networks_equal_contiguous_ones():
    """G through its fused upsampling convs (16², 32²), D through fused downsampling and minibatch stddev, and the
    penalty's double backward: NHWC activations throughout, outputs and gradients equal to the NCHW ones."""
    torch.manual_seed(0)
    g = Generator(32, latent_size=16, fmap_base=128, fmap_max=16).to(TEST_DEVICE)
    d = Discriminator(32, fmap_base=128, fmap_max=16, fused_downsample=True).to(TEST_DEVICE)
    assert g.blocks[3].conv0.fused and d.blocks[3].conv1.fused and d.blocks[0].mbstd is not None
    z = torch.randn(8, 16, device=TEST_DEVICE)
    reals = torch.rand(8, 3, 32, 32, device=TEST_DEVICE) * 2 - 1
    mix = torch.rand(8, device=TEST_DEVICE)
    outputs = {}
    for layout in (torch.contiguous_format, torch.channels_last):
        g.to(memory_format=layout)
        d.to(memory_format=layout)
        g.zero_grad(set_to_none=True)
        d.zero_grad(set_to_none=True)
        seen, handles = record_layer_outputs(g, d)
        fakes = g(z, 32, 0.4)
        loss, _ = d_loss(lambda x: d(x, 32, 0.4), reals.contiguous(memory_format=layout), fakes, mix)
        loss.backward()
        for handle in handles:
            handle.remove()
        maps = [x for x in seen if x.ndim == 4 and x.shape[1] > 1 and x.shape[2] * x.shape[3] > 1]
        assert maps and all(is_nhwc(x) for x in maps) == (layout == torch.channels_last)
        grads = [p.grad.detach().clone() for p in (*g.parameters(), *d.parameters()) if p.grad is not None]
        outputs[layout] = (fakes.detach().contiguous(), loss.detach(), grads)
    (f0, l0, g0), (f1, l1, g1) = outputs.values()
    torch.testing.assert_close(f1, f0, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(l1, l0, rtol=1e-4, atol=1e-5)
    assert len(g0) == len(g1)
    for a, b in zip(g0, g1, strict=True):
        torch.testing.assert_close(b.contiguous(), a.contiguous(), rtol=1e-3, atol=1e-4)


def test_channels_last_state_trains_like_a_contiguous_one():
    """build_gan_state(channels_last=True) as CUDA builds it: NHWC weights and batches, the same step results."""
    results = {}
    for channels_last in (False, True):
        state = small_state(channels_last=channels_last)
        weights = [p for p in state.discriminator.parameters() if p.ndim == 4 and p.shape[1] > 1 and p.shape[2] > 1]
        assert weights and all(is_nhwc(p) for p in weights) == channels_last
        state.enter_phase(16, fading=True)
        critic, seen = state.critic_loss, []

        def recording(reals, *rest, critic=critic, seen=seen):
            seen.append(is_nhwc(reals))
            return critic(reals, *rest)

        state.critic_loss = recording
        results[channels_last] = one_step(state, 16, 0.5)
        assert seen == [channels_last]
    for key, value in results[False].items():
        assert results[True][key] == pytest.approx(value, rel=1e-4, abs=1e-5), key


# ---------------------------------------------------------------- a batch that does not fit
def test_out_of_memory_in_a_step_is_one_line_naming_the_batch_schedule(tmp_path, monkeypatch):
    import pggan.training.trainer as trainer_module

    def no_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.77 GiB total)")

    monkeypatch.setattr(trainer_module, "train_step", no_memory)
    with pytest.raises(UserError) as raised:
        run_trainer(tmp_path)
    message = str(raised.value)
    assert "\n" not in message and "--batch-schedule" in message and "4x4" in message and "batch 8" in message
