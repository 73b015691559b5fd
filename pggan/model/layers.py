"""Building blocks of the paper's networks (Karras et al. 2018, section 4).

Equalized learning rate keeps every weight drawn from N(0, 1) and applies the
He constant ``gain / sqrt(fan_in)`` at run time, so that Adam's per-parameter
step size means the same thing for every layer. Pixel norm and minibatch
standard deviation are the paper's two other stabilisers. Everything here is
a plain ``nn.Module`` or function so it composes with DDP, autocast and
``torch.compile``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

HE_GAIN = math.sqrt(2.0)
LRELU_SLOPE = 0.2
PIXEL_NORM_EPS = 1e-8
MBSTD_EPS = 1e-8


class EqualizedConv2d(nn.Module):
    """Conv2d with weights ~ N(0, 1) scaled by ``gain / sqrt(fan_in)`` at run time.

    ``fan_in = in_channels * kernel_size**2``. The bias is neither scaled nor
    randomly initialised (zeros), as in the official release.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        gain: float = HE_GAIN,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.padding = kernel_size // 2
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.scale = gain / math.sqrt(in_channels * kernel_size * kernel_size)

    def scaled_weight(self) -> torch.Tensor:
        return self.weight * self.scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.scaled_weight(), self.bias, padding=self.padding)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, scale={self.scale:.4g}"


def upsample_conv_weight(weight: torch.Tensor) -> torch.Tensor:
    """The 4×4 ``conv_transpose2d`` kernel (stride 2, padding 1) equal to nearest 2× upsampling + this 3×3 conv.

    Each output phase of ``conv(upsample(x))`` sees a 2×2 neighbourhood of ``x``
    whose taps are sums of the 3×3 kernel's taps: padding the kernel by one and
    adding its four 1-pixel shifts gives those sums, and the flip turns the
    correlation into PyTorch's transposed-convolution convention. ``weight`` is
    (out, in, 3, 3); the result is (in, out, 4, 4). Costs 16 instead of 36
    multiply-adds per input pixel and never materialises the upsampled tensor.
    """
    w = F.pad(weight, (1, 1, 1, 1))
    w = w[:, :, 1:, 1:] + w[:, :, :-1, 1:] + w[:, :, 1:, :-1] + w[:, :, :-1, :-1]
    return w.flip(2, 3).transpose(0, 1)


def conv_downsample_weight(weight: torch.Tensor) -> torch.Tensor:
    """The 4×4 stride-2 ``conv2d`` kernel (padding 1) equal to this 3×3 conv followed by 2×2 average pooling.

    Only exact when nothing non-linear sits between the conv and the pooling.
    This project's discriminator applies lrelu *before* pooling, the paper's
    order and that of the released CelebA-HQ network (the TF code with
    ``fused_scale=False``), so its blocks cannot use it; the TF release's
    default ``fused_scale=True`` applies lrelu *after* the pooling instead.
    """
    w = F.pad(weight, (1, 1, 1, 1))
    return (w[:, :, 1:, 1:] + w[:, :, :-1, 1:] + w[:, :, 1:, :-1] + w[:, :, :-1, :-1]) * 0.25


class EqualizedUpConv2d(EqualizedConv2d):
    """Nearest 2× upsampling followed by an equalized 3×3 conv, optionally fused into one transposed conv.

    Parameters (names, shapes, meaning) are exactly those of
    :class:`EqualizedConv2d`, so checkpoints do not depend on ``fused``; the
    fused kernel is computed from the weight at every call, and gradients flow
    to the same 3×3 weight.
    """

    def __init__(self, in_channels: int, out_channels: int, gain: float = HE_GAIN, fused: bool = True) -> None:
        super().__init__(in_channels, out_channels, 3, gain=gain)
        self.fused = fused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fused:
            return F.conv2d(upsample2x(x), self.scaled_weight(), self.bias, padding=1)
        weight = upsample_conv_weight(self.scaled_weight()).to(memory_format=_format_of(x))
        return F.conv_transpose2d(x, weight, self.bias, stride=2, padding=1)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", upsample=2, fused={self.fused}"


class EqualizedConv2dDown(EqualizedConv2d):
    """An equalized 3×3 conv followed by 2×2 average pooling, optionally fused into one stride-2 4×4 conv."""

    def __init__(self, in_channels: int, out_channels: int, gain: float = HE_GAIN, fused: bool = True) -> None:
        super().__init__(in_channels, out_channels, 3, gain=gain)
        self.fused = fused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fused:
            return downsample2x(F.conv2d(x, self.scaled_weight(), self.bias, padding=1))
        weight = conv_downsample_weight(self.scaled_weight()).to(memory_format=_format_of(x))
        return F.conv2d(x, weight, self.bias, stride=2, padding=1)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", downsample=2, fused={self.fused}"


def _format_of(x: torch.Tensor) -> torch.memory_format:
    """channels_last when ``x`` is NHWC (so a computed kernel matches the layout cuDNN picks), else contiguous."""
    if x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


class EqualizedLinear(nn.Module):
    """Linear layer with weights ~ N(0, 1) scaled by ``gain / sqrt(in_features)`` at run time."""

    def __init__(self, in_features: int, out_features: int, gain: float = HE_GAIN, bias: bool = True) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = nn.Parameter(torch.randn(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.scale = gain / math.sqrt(in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.scale, self.bias)

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, scale={self.scale:.4g}"


def pixel_norm(x: torch.Tensor, eps: float = PIXEL_NORM_EPS) -> torch.Tensor:
    """Normalise each pixel's feature vector to unit mean square over channels (dim 1)."""
    return x * torch.rsqrt(x.square().mean(dim=1, keepdim=True) + eps)


class PixelNorm(nn.Module):
    """Module form of :func:`pixel_norm` (paper section 4.2, ε = 1e-8)."""

    def __init__(self, eps: float = PIXEL_NORM_EPS) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return pixel_norm(x, self.eps)


class MinibatchStdDev(nn.Module):
    """Append one feature map: the average standard deviation within groups of samples.

    The batch is split into groups of ``group_size`` (or one group of the whole
    batch when it is smaller). Within each group, the per-feature, per-pixel
    standard deviation over the group is averaged to a single number, which is
    broadcast to a constant (1, H, W) map for every member of the group.

    By default groups are *consecutive* samples (``x.reshape(-1, G, ...)``),
    whereas the official release strides them (``x.reshape(G, -1, ...)``:
    samples i, i + N/G, i + 2N/G, ... form a group). Both are random groupings
    of an i.i.d. minibatch; consecutive groups make a DDP rank's contiguous
    shard form exactly the groups a single process would, so multi-GPU training
    computes the same statistic as single-GPU training. ``strided=True`` groups
    as the official layer does, so that a discriminator imported from the
    release (pggan-import) scores any batch exactly as it did there.
    """

    def __init__(self, group_size: int = 4, eps: float = MBSTD_EPS, strided: bool = False) -> None:
        super().__init__()
        self.group_size = group_size
        self.eps = eps
        self.strided = strided

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        group = min(self.group_size, n)
        if n % group != 0:
            raise ValueError(
                f"minibatch stddev: batch size {n} is not divisible by the group size {group}; "
                f"use a per-GPU batch that is a multiple of {group}"
            )
        member_dim = 0 if self.strided else 1
        shape = (group, n // group, c, h, w) if self.strided else (n // group, group, c, h, w)
        y = x.reshape(shape).float()
        y = y - y.mean(dim=member_dim, keepdim=True)
        std = torch.sqrt(y.square().mean(dim=member_dim) + self.eps)  # (n/G, c, h, w)
        std = std.mean(dim=(1, 2, 3)).to(x.dtype)  # (n/G,): one statistic per group
        # Sample k belongs to group k % (n/G) when strided, to group k // G otherwise.
        std = std.repeat(group) if self.strided else std.repeat_interleave(group)
        stat = std.reshape(n, 1, 1, 1).expand(n, 1, h, w)
        return torch.cat([x, stat], dim=1)

    def extra_repr(self) -> str:
        return f"group_size={self.group_size}" + (", strided" if self.strided else "")


def upsample2x(x: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour 2× upsampling (each pixel becomes a 2×2 block)."""
    return F.interpolate(x, scale_factor=2, mode="nearest")


def downsample2x(x: torch.Tensor) -> torch.Tensor:
    """2×2 average pooling: the box filter used for D's downsampling and the image pyramid."""
    return F.avg_pool2d(x, kernel_size=2)


def lrelu(x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """Leaky ReLU with the paper's slope 0.2.

    ``inplace=True`` overwrites ``x`` (a fresh conv output nobody else needs):
    one full-size allocation less per layer, which on the CPU also saves the
    page faults of a new buffer. Its backward (and double backward) only needs
    the result, so it is safe under the gradient penalty.
    """
    return F.leaky_relu(x, LRELU_SLOPE, inplace=inplace)
