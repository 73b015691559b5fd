"""One training step of the paper's method: a critic update, a generator update, the EMA.

An update whose gradients are not all finite is skipped, as the official code does (``tfutil`` applies
gradients only when all are finite): the check stays on the device (fused Adam's ``found_inf``: no weight,
moment or step count changes, no host sync) and is reduced over DDP ranks, so every rank skips the same
updates and none diverges from the others.

The networks grow by using more of their blocks, so the modules handed to
DistributedDataParallel are *views* holding only the blocks active at the
current (resolution, fading) phase: DDP then never waits for gradients of
unused blocks, and the views are rebuilt whenever a phase starts. Each view's
``forward`` computes a whole loss — for the critic including the gradient
penalty's ``autograd.grad(create_graph=True)`` — so DDP sees exactly one
forward and one backward per update, and the penalty's double backward
reaches the parameters through a single gradient all-reduce.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from pggan.defaults import (
    ADAM_BETAS,
    ADAM_EPS,
    FMAP_BASE,
    FMAP_MAX,
    GP_SPACE,
    GP_SPACES,
    LATENT_SIZE,
    LEARNING_RATE,
    MBSTD_GROUP_SIZE,
)
from pggan.devices import DevicePolicy, device_policy
from pggan.model.layers import downsample2x, upsample2x
from pggan.model.losses import d_loss, g_loss
from pggan.model.networks import Discriminator, Generator
from pggan.resolutions import stage_of


def make_optimizer(module: nn.Module, lr: float, device: torch.device) -> torch.optim.Adam:
    """Adam with the paper's β (0, 0.99) and ε 1e-8, fused where the build supports it."""
    params = list(module.parameters())
    try:
        return torch.optim.Adam(params, lr=lr, betas=ADAM_BETAS, eps=ADAM_EPS, fused=True)
    except (RuntimeError, TypeError):  # pragma: no cover - older builds without fused CPU Adam
        return torch.optim.Adam(params, lr=lr, betas=ADAM_BETAS, eps=ADAM_EPS, foreach=device.type == "cuda")


def reset_optimizer(optimizer: torch.optim.Optimizer) -> None:
    """Forget Adam's moments and step count, as the official code does whenever a phase starts."""
    optimizer.state.clear()


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def blend_reals(reals: torch.Tensor, alpha: float) -> torch.Tensor:
    """Fade real images exactly like the generator's output: ``lerp(upsample(avgpool(x)), x, alpha)``."""
    if alpha >= 1.0:
        return reals
    return torch.lerp(upsample2x(downsample2x(reals)), reals, alpha)


def gp_image_scale(gp_space: str, resolution: int, max_resolution: int) -> float:
    """The factor f by which the gradient penalty divides the native gradient norm (see ``gradient_penalty``).

    ``"official"``: f = max_resolution / resolution, the official D's full-size image space, where the
    target norm 1 is reached at native norm f; ``"native"``: f = 1.
    """
    if gp_space not in GP_SPACES:
        raise ValueError(f"gp_space must be one of {', '.join(GP_SPACES)}, got {gp_space!r}")
    return max_resolution / resolution if gp_space == "official" else 1.0


class CriticLoss(nn.Module):
    """The active part of D, whose forward returns the WGAN-GP + drift loss (the unit DDP wraps)."""

    def __init__(self, discriminator: Discriminator, resolution: int, fading: bool, gp_space: str = GP_SPACE) -> None:
        super().__init__()
        self.active = nn.ModuleList(discriminator.active_modules(resolution, 0.0 if fading else 1.0))
        object.__setattr__(self, "discriminator", discriminator)  # not a submodule: DDP must see only `active`
        self.resolution = resolution
        self.gp_image_scale = gp_image_scale(gp_space, resolution, discriminator.max_resolution)

    def forward(
        self, reals: torch.Tensor, fakes: torch.Tensor, mix: torch.Tensor, alpha: float | torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        # Reals and fakes go through D as one batch when the minibatch-stddev groups of the joint batch are
        # exactly those of the two halves (same scores, one pass); otherwise in two calls, as the paper does.
        # Strided groups (mbstd_strided) would mix reals with fakes in the joint batch.
        group = self.discriminator.mbstd_group_size
        consecutive = not getattr(self.discriminator, "mbstd_strided", False)
        joint = group <= 1 or (consecutive and reals.shape[0] >= group and reals.shape[0] % group == 0)
        return d_loss(
            lambda x: self.discriminator(x, self.resolution, alpha),
            reals,
            fakes,
            mix,
            joint=joint,
            image_scale=self.gp_image_scale,
        )


class GeneratorLoss(nn.Module):
    """The active part of G, whose forward returns ``−E[D(G(z))]``; D is used but not owned."""

    def __init__(self, generator: Generator, discriminator: Discriminator, resolution: int, fading: bool) -> None:
        super().__init__()
        self.active = nn.ModuleList(generator.active_modules(resolution, 0.0 if fading else 1.0))
        object.__setattr__(self, "generator", generator)
        object.__setattr__(self, "discriminator", discriminator)
        self.resolution = resolution

    def forward(
        self, latents: torch.Tensor, alpha: float | torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        fakes = self.generator(latents, self.resolution, alpha)
        return g_loss(lambda x: self.discriminator(x, self.resolution, alpha), fakes)


@dataclass
class GanState:
    """The networks and optimizers of one run, and the per-phase views used to train them."""

    generator: Generator
    discriminator: Discriminator
    generator_ema: Generator
    g_optimizer: torch.optim.Adam
    d_optimizer: torch.optim.Adam
    policy: DevicePolicy  # autocast, memory format and compile of this state (pggan.devices)
    ddp: bool = False
    critic_loss: nn.Module | None = field(default=None, repr=False)
    generator_loss: nn.Module | None = field(default=None, repr=False)
    g_params: list[torch.Tensor] = field(default_factory=list, repr=False)
    gp_space: str = GP_SPACE
    ema_pairs: tuple[list[torch.Tensor], list[torch.Tensor]] | None = field(default=None, repr=False)
    fakes_forward: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.fakes_forward = torch.compile(self.generator, dynamic=False) if self.compile else self.generator

    @property
    def device(self) -> torch.device:
        return self.policy.device

    @property
    def compile(self) -> bool:
        return self.policy.compile

    @property
    def memory_format(self) -> torch.memory_format:
        """Of the networks' weights and of the images fed to them."""
        return self.policy.memory_format

    def enter_phase(self, resolution: int, fading: bool) -> None:
        """Build the loss views (wrapped in DDP when distributed) for a phase.

        With ``compile`` the generator view (G forward + D forward, a single
        backward) is compiled; the critic view is not, because its gradient
        penalty needs a double backward, which torch.compile does not support.
        """
        critic = CriticLoss(self.discriminator, resolution, fading, self.gp_space)
        gen = GeneratorLoss(self.generator, self.discriminator, resolution, fading)
        self.g_params = [p for p in gen.parameters()]
        self.ema_pairs = ema_parameter_pairs(self.generator_ema, self.generator, resolution)
        if self.ddp:
            ids = [self.device.index] if self.device.type == "cuda" else None
            critic = DistributedDataParallel(critic, device_ids=ids)  # the views hold no buffers
            gen = DistributedDataParallel(gen, device_ids=ids)
        if self.compile:
            gen = torch.compile(gen, dynamic=False)
        self.critic_loss, self.generator_loss = critic, gen

    def release_views(self) -> None:
        """Drop the (DDP) loss views: they must be gone before the process group is destroyed."""
        self.critic_loss = self.generator_loss = None
        self.g_params = []


def build_gan_state(
    resolution: int,
    channels: int,
    device: torch.device,
    *,
    latent_size: int = LATENT_SIZE,
    fmap_base: int = FMAP_BASE,
    fmap_max: int = FMAP_MAX,
    mbstd_group_size: int = MBSTD_GROUP_SIZE,
    fused_downsample: bool = False,
    mbstd_strided: bool = False,
    learning_rate: float = LEARNING_RATE,
    seed: int = 0,
    channels_last: bool | None = None,
    ddp: bool = False,
    compile: bool = False,
    amp: bool = False,
    gp_space: str = GP_SPACE,
    policy: DevicePolicy | None = None,
) -> GanState:
    """The networks, the EMA generator and both optimizers of a run: the one place they are built.

    ``pggan-train``, the benchmarks and the tests all build their state here, so a benchmark measures what
    training runs. The seed makes every DDP rank start from identical weights; the EMA starts as an exact
    copy of G. The accelerator settings come from ``policy``, or from :func:`pggan.devices.device_policy` of
    ``device`` with ``channels_last`` (None: on for CUDA, off on the CPU), ``compile`` and ``amp``.
    """
    if policy is None:
        policy = device_policy(device, amp=amp, channels_last=channels_last, compile=compile)
    elif policy.device != torch.device(device):
        raise ValueError(f"the policy is for {policy.device}, the state for {device}")
    torch.manual_seed(seed)
    generator = Generator(resolution, channels, latent_size, fmap_base, fmap_max)
    discriminator = Discriminator(
        resolution,
        channels,
        fmap_base,
        fmap_max,
        mbstd_group_size,
        fused_downsample=fused_downsample,
        mbstd_strided=mbstd_strided,
    )
    generator_ema = copy.deepcopy(generator).eval().requires_grad_(False)
    for net in (generator, discriminator, generator_ema):
        net.to(device=policy.device, memory_format=policy.memory_format)
    return GanState(
        generator=generator,
        discriminator=discriminator,
        generator_ema=generator_ema,
        g_optimizer=make_optimizer(generator, learning_rate, policy.device),
        d_optimizer=make_optimizer(discriminator, learning_rate, policy.device),
        policy=policy,
        ddp=ddp,
        gp_space=gp_space,
    )


def ema_parameter_pairs(
    ema: Generator, source: Generator, resolution: int
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The (EMA, source) parameters that the EMA update can change while training at ``resolution``.

    Blocks above ``resolution`` are never trained before it, so their EMA
    equals their source and ``lerp(a, a, w) == a`` exactly: skipping them is
    exact and saves a pass over up to 23 M parameters per step at low
    resolutions. Any parameter whose EMA differs from its source (e.g. a
    network loaded from elsewhere) is kept, so the result never changes.
    """
    stage = stage_of(resolution)
    ema_params, source_params = [], []
    for (name, e), (_, p) in zip(ema.named_parameters(), source.named_parameters(), strict=True):
        index = int(name.split(".")[1])  # blocks.<i>. / to_rgb.<i>.
        if index <= stage or not torch.equal(e, p):
            ema_params.append(e)
            source_params.append(p)
    return ema_params, source_params


@dataclass
class StepInputs:
    """Everything random that one step consumes, already sliced to this rank's shard."""

    reals: torch.Tensor  # float images in [-1, 1], not yet faded
    d_latents: torch.Tensor
    mix: torch.Tensor
    g_latents: torch.Tensor


def draw_step_noise(
    generator: torch.Generator, global_batch: int, latent_size: int, rank: int, world_size: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Latents for D and G and the GP mixing weights for the *global* batch, sliced to this rank.

    Drawing the global batch on every rank from one seeded CPU generator makes
    the run identical whatever the number of processes or the device.
    """
    local = global_batch // world_size
    shard = slice(rank * local, (rank + 1) * local)
    d_latents = torch.randn(global_batch, latent_size, generator=generator)[shard]
    mix = torch.rand(global_batch, generator=generator)[shard]
    g_latents = torch.randn(global_batch, latent_size, generator=generator)[shard]
    return d_latents, mix, g_latents


def nonfinite_gradients(params: list[torch.Tensor], ddp: bool = False) -> torch.Tensor:
    """``1.0`` when any gradient of ``params`` is NaN or infinite (on any rank under DDP), else ``0.0`` (0-dim).

    A device tensor: nothing waits for it. Under DDP the gradients are already averaged, but the flag is
    still reduced (max) so that all ranks agree whatever their arithmetic did.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if grads:
        largest = torch.stack(torch._foreach_norm(grads, float("inf")))  # NaN propagates through the max
        found = (~torch.isfinite(largest)).any().float()
    else:
        found = torch.zeros((), device=params[0].device if params else "cpu")
    if ddp and dist.is_available() and dist.is_initialized():
        dist.all_reduce(found, op=dist.ReduceOp.MAX)
    return found


def step_unless(optimizer: torch.optim.Optimizer, found: torch.Tensor) -> None:
    """``optimizer.step()`` unless ``found`` is 1: skipped on the device by fused Adam, else after a sync."""
    if optimizer.defaults.get("fused"):
        optimizer.found_inf = found  # read by fused Adam: no parameter, moment or step count changes
        try:
            optimizer.step()
        finally:
            del optimizer.found_inf
    elif not bool(found.item()):  # pragma: no cover - builds without fused Adam
        optimizer.step()


def train_step(
    state: GanState,
    inputs: StepInputs,
    resolution: int,
    alpha: float,
    ema_beta: float,
) -> dict[str, torch.Tensor]:
    """One D update (WGAN-GP + drift), one G update and the EMA update. Returns detached stats (no sync).

    The forwards run under the state's policy (:meth:`pggan.devices.DevicePolicy.autocast`: bf16 autocast with
    ``--amp``, on the CPU as on CUDA); the reals are brought to its device and memory format (a no-op when the
    caller already made them so, as the trainer does while converting them to float). An update with non-finite
    gradients is skipped (see the module's docstring); ``stats["d_skipped"]`` and ``stats["g_skipped"]`` (device
    tensors, 1.0 when skipped) say which.
    """
    device, policy = state.device, state.policy
    reals = inputs.reals.to(device, memory_format=policy.memory_format, non_blocking=True)
    reals = blend_reals(reals, alpha) if resolution > 4 else reals
    # Compiled forwards take a fade's alpha as a 0-dim tensor, so a new alpha every step never recompiles.
    g_alpha: float | torch.Tensor = alpha
    if state.compile and resolution > 4 and alpha < 1.0:
        g_alpha = torch.tensor(alpha, dtype=torch.float32).to(device, non_blocking=True)
    with torch.no_grad(), policy.autocast():
        fakes = state.fakes_forward(inputs.d_latents.to(device, non_blocking=True), resolution, g_alpha)

    state.d_optimizer.zero_grad(set_to_none=True)
    with policy.autocast():
        loss_d, stats = state.critic_loss(reals, fakes, inputs.mix.to(device, non_blocking=True), alpha)
    loss_d.backward()
    d_skipped = nonfinite_gradients(list(state.discriminator.parameters()), state.ddp)
    step_unless(state.d_optimizer, d_skipped)

    state.g_optimizer.zero_grad(set_to_none=True)
    with policy.autocast():
        loss_g, g_stats = state.generator_loss(inputs.g_latents.to(device, non_blocking=True), g_alpha)
    loss_g.backward(inputs=state.g_params)  # D's parameters get no gradient in the G update
    g_skipped = nonfinite_gradients(state.g_params, state.ddp)
    step_unless(state.g_optimizer, g_skipped)

    if state.ema_pairs is None:
        update_ema(state.generator_ema, state.generator, ema_beta)
    else:
        with torch.no_grad():
            torch._foreach_lerp_(state.ema_pairs[0], state.ema_pairs[1], 1.0 - ema_beta)
    return {**stats, **g_stats, "d_skipped": d_skipped, "g_skipped": g_skipped}


@torch.no_grad()
def update_ema(ema: nn.Module, source: nn.Module, beta: float) -> None:
    """``ema ← beta·ema + (1 − beta)·source`` for every parameter, in one fused foreach call."""
    ema_params = list(ema.parameters())
    torch._foreach_lerp_(ema_params, list(source.parameters()), 1.0 - beta)


def ema_beta_for(batch_size: int, ema_beta: float, ema_kimg: float | None) -> float:
    """Per-step EMA decay: fixed β (official), or from a half-life of ``ema_kimg`` thousand images."""
    if ema_kimg is None or ema_kimg <= 0:
        return ema_beta
    return 0.5 ** (batch_size / (ema_kimg * 1000.0))
