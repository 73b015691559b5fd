"""The paper's generator and discriminator (Karras et al. 2018, Table 2).

Both networks hold one block per resolution from 4×4 up to ``max_resolution``
and grow by *using* more of their blocks: ``forward(x, resolution, alpha)``
runs the blocks up to ``resolution``, and while ``alpha < 1`` the newest block
is faded in against the previous resolution's output, exactly as in the paper
(Figure 2). Parameters of blocks above ``resolution`` exist from the start, so
a checkpoint's shape never changes while training grows.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pggan import defaults
from pggan.model.layers import (
    EqualizedConv2d,
    EqualizedConv2dDown,
    EqualizedLinear,
    EqualizedUpConv2d,
    MinibatchStdDev,
    downsample2x,
    lrelu,
    pixel_norm,
    upsample2x,
)
from pggan.resolutions import growth_resolutions, is_resolution, resolution_error, stage_of

#: Generator blocks at or above this resolution run nearest-upsample + 3×3 conv as one stride-2 4×4
#: transposed conv (the official release's ``fused_scale``): identical maths, 16/36 of the multiply-adds,
#: and no upsampled tensor. On the CPU it pays from 16×16 up and loses at 8×8, where the 4×4 input is too
#: small for the transposed conv's kernels (tools/bench_train.py --fusion).
FUSED_UPSAMPLE_MIN_RESOLUTION = 16


def check_max_resolution(max_resolution: int) -> int:
    if not is_resolution(max_resolution):
        raise ValueError(resolution_error(max_resolution, what="max_resolution"))
    return max_resolution


def check_resolution_alpha(resolution: int, alpha: float | torch.Tensor, max_resolution: int) -> None:
    """Raise ValueError unless ``resolution`` is a trained power of two and ``alpha`` lies in [0, 1]."""
    if not is_resolution(resolution, high=max_resolution):
        raise ValueError(resolution_error(resolution, max_resolution, "resolution (at most this network's max)"))
    if isinstance(alpha, torch.Tensor):
        return  # checked by the caller; a .item() here would force a device sync every step
    if not isinstance(alpha, (int, float)) or not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must be a number in [0, 1], got {alpha!r}")


def feature_maps(resolution: int, fmap_base: int, fmap_max: int) -> int:
    """Channel width at ``resolution``: ``min(fmap_base / 2**(log2(resolution) - 1), fmap_max)``.

    With the paper's 8192 and 512 this gives 512 up to 32×32, then 256, 128, 64, 32, 16 at 1024×1024.
    """
    return max(1, min(int(fmap_base / 2.0 ** (math.log2(resolution) - 1)), fmap_max))


class GeneratorInitialBlock(nn.Module):
    """Latent → 4×4: a dense layer (gain √2/4, per-channel bias), then one 3×3 conv."""

    def __init__(self, latent_size: int, out_channels: int) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.dense = EqualizedLinear(latent_size, out_channels * 16, gain=math.sqrt(2.0) / 4, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.conv = EqualizedConv2d(out_channels, out_channels, 3)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.dense(z).reshape(-1, self.out_channels, 4, 4)
        x = pixel_norm(lrelu(x + self.bias.reshape(1, -1, 1, 1), inplace=True))
        return pixel_norm(lrelu(self.conv(x), inplace=True))


class GeneratorBlock(nn.Module):
    """Doubles the resolution: nearest upsample, then two 3×3 convs, each with lrelu and pixel norm.

    ``conv0`` does the upsampling itself (fused into a transposed conv when
    ``fused``); its parameters are those of a plain 3×3 conv either way.
    """

    def __init__(self, in_channels: int, out_channels: int, fused: bool = True) -> None:
        super().__init__()
        self.conv0 = EqualizedUpConv2d(in_channels, out_channels, fused=fused)
        self.conv1 = EqualizedConv2d(out_channels, out_channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = pixel_norm(lrelu(self.conv0(x), inplace=True))
        return pixel_norm(lrelu(self.conv1(x), inplace=True))


class Generator(nn.Module):
    """Progressive generator: ``G(z, resolution, alpha) -> (N, channels, resolution, resolution)``.

    ``z`` is normalised onto the unit hypersphere (pixel norm over the latent)
    first, so any Gaussian draw works. Output is linear, roughly in [-1, 1].
    """

    def __init__(
        self,
        max_resolution: int,
        channels: int = 3,
        latent_size: int = defaults.LATENT_SIZE,
        fmap_base: int = defaults.FMAP_BASE,
        fmap_max: int = defaults.FMAP_MAX,
    ) -> None:
        super().__init__()
        check_max_resolution(max_resolution)
        if channels < 1 or latent_size < 1:
            raise ValueError(f"channels and latent_size must be positive, got {channels} and {latent_size}")
        self.max_resolution = max_resolution
        self.channels = channels
        self.latent_size = latent_size
        self.fmap_base = fmap_base
        self.fmap_max = fmap_max
        resolutions = growth_resolutions(max_resolution)
        widths = [feature_maps(r, fmap_base, fmap_max) for r in resolutions]
        blocks: list[nn.Module] = [GeneratorInitialBlock(latent_size, widths[0])]
        blocks += [
            GeneratorBlock(widths[i - 1], widths[i], fused=resolutions[i] >= FUSED_UPSAMPLE_MIN_RESOLUTION)
            for i in range(1, len(resolutions))
        ]
        self.blocks = nn.ModuleList(blocks)
        self.to_rgb = nn.ModuleList([EqualizedConv2d(w, channels, 1, gain=1.0) for w in widths])

    @property
    def config(self) -> dict[str, int]:
        """Constructor keyword arguments: enough to rebuild this network from a checkpoint."""
        return {
            "max_resolution": self.max_resolution,
            "channels": self.channels,
            "latent_size": self.latent_size,
            "fmap_base": self.fmap_base,
            "fmap_max": self.fmap_max,
        }

    def forward(self, z: torch.Tensor, resolution: int, alpha: float | torch.Tensor = 1.0) -> torch.Tensor:
        check_resolution_alpha(resolution, alpha, self.max_resolution)
        if z.ndim != 2 or z.shape[1] != self.latent_size:
            raise ValueError(f"latents must have shape (N, {self.latent_size}), got {tuple(z.shape)}")
        stage = stage_of(resolution)
        h = self.blocks[0](pixel_norm(z))
        for s in range(1, stage):
            h = self.blocks[s](h)
        if stage == 0:
            return self.to_rgb[0](h)
        new = self.to_rgb[stage](self.blocks[stage](h))
        if not isinstance(alpha, torch.Tensor) and alpha >= 1.0:
            return new
        old = upsample2x(self.to_rgb[stage - 1](h))
        return torch.lerp(old, new, alpha)

    def active_modules(self, resolution: int, alpha: float) -> list[nn.Module]:
        """The submodules whose parameters take part in ``forward(., resolution, alpha)``."""
        stage = stage_of(resolution)
        modules: list[nn.Module] = [self.blocks[s] for s in range(stage + 1)] + [self.to_rgb[stage]]
        if stage > 0 and alpha < 1.0:
            modules.append(self.to_rgb[stage - 1])
        return modules


class DiscriminatorBlock(nn.Module):
    """Halves the resolution: two 3×3 convs with lrelu, then 2×2 average pooling.

    lrelu before the pooling is the paper's order and the released CelebA-HQ network's (the default).
    ``fused_downsample=True`` pools *before* conv1's bias and lrelu instead, as the
    official TF code's default ``fused_scale=True`` does (one stride-2 4×4 conv,
    then bias and lrelu): another function, needed to run networks trained that
    way (pggan-import), and cheaper. The parameters are the same either way.
    """

    def __init__(self, in_channels: int, out_channels: int, fused_downsample: bool = False) -> None:
        super().__init__()
        self.fused_downsample = fused_downsample
        self.conv0 = EqualizedConv2d(in_channels, in_channels, 3)
        if fused_downsample:
            self.conv1: EqualizedConv2d = EqualizedConv2dDown(in_channels, out_channels, fused=True)
        else:
            self.conv1 = EqualizedConv2d(in_channels, out_channels, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = lrelu(self.conv0(x), inplace=True)
        if self.fused_downsample:
            return lrelu(self.conv1(x), inplace=True)
        # lrelu sits between conv1 and the pooling, so the conv + pool fusion would change the maths here.
        return downsample2x(lrelu(self.conv1(x), inplace=True))


class DiscriminatorFinalBlock(nn.Module):
    """4×4 → score: minibatch stddev, 3×3 conv, 4×4 dense, linear output (gain 1)."""

    def __init__(self, in_channels: int, hidden: int, mbstd_group_size: int, mbstd_strided: bool = False) -> None:
        super().__init__()
        # As official D_paper (``if mbstd_group_size > 1``): a group of 1 (or 0) means no layer at all, not a
        # constant channel.
        self.mbstd = MinibatchStdDev(mbstd_group_size, strided=mbstd_strided) if mbstd_group_size > 1 else None
        extra = 1 if self.mbstd is not None else 0
        self.conv = EqualizedConv2d(in_channels + extra, in_channels, 3)
        self.dense = EqualizedLinear(in_channels * 16, hidden)
        self.out = EqualizedLinear(hidden, 1, gain=1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mbstd is not None:
            x = self.mbstd(x)
        x = lrelu(self.conv(x), inplace=True)
        x = lrelu(self.dense(x.flatten(1)), inplace=True)
        return self.out(x).squeeze(1)


class Discriminator(nn.Module):
    """Progressive critic: ``D(images, resolution, alpha) -> scores (N,)``, the mirror of :class:`Generator`.

    ``fused_downsample`` (see :class:`DiscriminatorBlock`) and ``mbstd_strided``
    (see :class:`~pggan.model.layers.MinibatchStdDev`) reproduce the official TF
    code's variants, so that imported discriminators compute what they did there.
    """

    def __init__(
        self,
        max_resolution: int,
        channels: int = 3,
        fmap_base: int = defaults.FMAP_BASE,
        fmap_max: int = defaults.FMAP_MAX,
        mbstd_group_size: int = defaults.MBSTD_GROUP_SIZE,
        fused_downsample: bool = False,
        mbstd_strided: bool = False,
    ) -> None:
        super().__init__()
        check_max_resolution(max_resolution)
        if channels < 1 or mbstd_group_size < 0:
            raise ValueError(f"channels must be positive and mbstd_group_size >= 0, got {channels}, {mbstd_group_size}")
        self.max_resolution = max_resolution
        self.channels = channels
        self.fmap_base = fmap_base
        self.fmap_max = fmap_max
        self.mbstd_group_size = mbstd_group_size
        self.fused_downsample = bool(fused_downsample)
        self.mbstd_strided = bool(mbstd_strided)
        resolutions = growth_resolutions(max_resolution)
        widths = [feature_maps(r, fmap_base, fmap_max) for r in resolutions]
        hidden = max(1, min(fmap_base, fmap_max))  # nf(0) in the official code
        blocks: list[nn.Module] = [DiscriminatorFinalBlock(widths[0], hidden, mbstd_group_size, self.mbstd_strided)]
        blocks += [
            DiscriminatorBlock(widths[i], widths[i - 1], self.fused_downsample) for i in range(1, len(resolutions))
        ]
        self.blocks = nn.ModuleList(blocks)
        self.from_rgb = nn.ModuleList([EqualizedConv2d(channels, w, 1) for w in widths])

    @property
    def config(self) -> dict[str, int | bool]:
        """Constructor keyword arguments: enough to rebuild this network from a checkpoint."""
        return {
            "max_resolution": self.max_resolution,
            "channels": self.channels,
            "fmap_base": self.fmap_base,
            "fmap_max": self.fmap_max,
            "mbstd_group_size": self.mbstd_group_size,
            "fused_downsample": self.fused_downsample,
            "mbstd_strided": self.mbstd_strided,
        }

    def forward(self, images: torch.Tensor, resolution: int, alpha: float | torch.Tensor = 1.0) -> torch.Tensor:
        check_resolution_alpha(resolution, alpha, self.max_resolution)
        expected = (self.channels, resolution, resolution)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise ValueError(f"images must have shape (N, {', '.join(map(str, expected))}), got {tuple(images.shape)}")
        stage = stage_of(resolution)
        h = self.blocks[stage](lrelu(self.from_rgb[stage](images), inplace=True))
        if stage > 0 and (isinstance(alpha, torch.Tensor) or alpha < 1.0):
            old = lrelu(self.from_rgb[stage - 1](downsample2x(images)), inplace=True)
            h = torch.lerp(old, h, alpha)
        for s in range(stage - 1, -1, -1):
            h = self.blocks[s](h)
        return h

    def active_modules(self, resolution: int, alpha: float) -> list[nn.Module]:
        """The submodules whose parameters take part in ``forward(., resolution, alpha)``."""
        stage = stage_of(resolution)
        modules: list[nn.Module] = [self.blocks[s] for s in range(stage + 1)] + [self.from_rgb[stage]]
        if stage > 0 and alpha < 1.0:
            modules.append(self.from_rgb[stage - 1])
        return modules
