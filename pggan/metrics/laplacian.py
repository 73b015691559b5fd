"""The Laplacian pyramid of the paper's SWD, as OpenCV's pyrDown/pyrUp compute it, in torch.

``pyr_down`` blurs with the 5×5 binomial kernel ([1,4,6,4,1] outer itself, /256) with mirror borders and keeps
every second pixel; ``pyr_up`` inserts zeros and convolves with 4× that kernel. Both are written as separable
strided slices, so only the outputs that are kept are computed.
"""

from __future__ import annotations

import torch


def _take(x: torch.Tensor, dim: int, start: int, length: int, step: int = 1) -> torch.Tensor:
    index: list[slice] = [slice(None)] * x.ndim
    index[dim] = slice(start, start + (length - 1) * step + 1, step)
    return x[tuple(index)]


def _blur_decimate(x: torch.Tensor, dim: int) -> torch.Tensor:
    """[1,4,6,4,1]/16 along ``dim`` (already padded by 2 on both sides), keeping every second output."""
    n = (x.shape[dim] - 4) // 2

    def tap(k: int) -> torch.Tensor:
        return _take(x, dim, k, n, 2)

    out = tap(0) + tap(4)
    out.add_(tap(1) + tap(3), alpha=4.0).add_(tap(2), alpha=6.0)
    return out.mul_(1.0 / 16.0)


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    """Blur with the 5×5 binomial kernel (mirror borders) and keep every second pixel, as cv2.pyrDown."""
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2), mode="reflect")
    return _blur_decimate(_blur_decimate(padded, -1), -2)


def _upsample(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Zero-insert then convolve with [1,4,6,4,1]/8 along ``dim``, computed polyphase (no zeros multiplied).

    Mirroring the zero-inserted signal amounts to x[-1] = x[1] on the left and x[n] = x[n-1] on the right.
    """
    n = x.shape[dim]
    ext = torch.cat([_take(x, dim, 1, 1), x, _take(x, dim, n - 1, 1)], dim=dim)
    left, mid, right = _take(ext, dim, 0, n), _take(ext, dim, 1, n), _take(ext, dim, 2, n)
    even = (left + right).mul_(0.125).add_(mid, alpha=0.75)
    odd = (mid + right).mul_(0.5)
    dim = dim % x.ndim
    return torch.stack([even, odd], dim=dim + 1).flatten(dim, dim + 1)


def pyr_up(x: torch.Tensor) -> torch.Tensor:
    """Double the size: insert zeros, convolve with 4× the binomial kernel (mirror borders), as cv2.pyrUp."""
    return _upsample(_upsample(x, -1), -2)


def laplacian_pyramid(images: torch.Tensor, num_levels: int) -> list[torch.Tensor]:
    """float32 Laplacian pyramid, finest first; the last level is the Gaussian level itself."""
    current = images.to(torch.float32, copy=True)
    levels = []
    for _ in range(num_levels - 1):
        down = pyr_down(current)
        levels.append(current.sub_(pyr_up(down)))
        current = down
    levels.append(current)
    return levels
