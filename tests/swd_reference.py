"""A float64 reference SWD written straight from issue 5's description (numpy + scipy, no shortcuts).

It draws the same random numbers as the fast version (the same seeded streams, via ``swd.stream_seed``) so
the two can be compared tightly, but every constant of the method is a literal here — 128 patches of 7×7 per
image, 4 repeats × 128 directions, levels R … 16 — never read from the package under test, and it recomputes
everything else: pyramid by explicit 2-D convolution of the zero-inserted image with
mirror borders, normalisation of the descriptors themselves, projection, full sort, mean |difference|.
"""

import numpy as np
import scipy.ndimage
import torch

from pggan.metrics import swd

NHOOD, NHOODS, REPEATS, DIRS = 7, 128, 4, 128  # official metrics/sliced_wasserstein.py
KERNEL = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1]).astype(np.float64) / 256.0


def pyr_down(x):
    return scipy.ndimage.convolve(x, KERNEL[None, None], mode="mirror")[:, :, ::2, ::2]


def pyr_up(x):
    n, c, h, w = x.shape
    z = np.zeros((n, c, 2 * h, 2 * w))
    z[:, :, ::2, ::2] = x
    return scipy.ndimage.convolve(z, 4.0 * KERNEL[None, None], mode="mirror")


def laplacian(images, levels):
    pyramid = [images.astype(np.float64)]
    for _ in range(levels - 1):
        pyramid.append(pyr_down(pyramid[-1]))
        pyramid[-2] = pyramid[-2] - pyr_up(pyramid[-1])
    return pyramid


def descriptors(level, corners):
    out = []
    for i in range(level.shape[0]):
        for y, x in corners[i]:
            out.append(level[i, :, y : y + NHOOD, x : x + NHOOD])
    d = np.stack(out)  # (n, C, 7, 7)
    d = (d - d.mean(axis=(0, 2, 3), keepdims=True)) / d.std(axis=(0, 2, 3), keepdims=True)
    return d.reshape(d.shape[0], -1)


def corners_for(seed, stream, level, num_images, size):
    gen = torch.Generator().manual_seed(swd.stream_seed(seed, stream, level))
    return torch.randint(0, size - NHOOD + 1, (num_images, NHOODS, 2), generator=gen).numpy()


def directions_for(seed, level, dim):
    gen = torch.Generator().manual_seed(swd.stream_seed(seed, "directions", level))
    dirs = torch.randn(REPEATS * DIRS, dim, dtype=torch.float64, generator=gen).numpy()
    return dirs / np.linalg.norm(dirs, axis=1, keepdims=True)


def levels_for(resolution):
    return [resolution >> k for k in range(resolution.bit_length()) if resolution >> k >= 16]


def reference_swd(reals, fakes, seed=0, corners=None, directions=None):
    """``{resolution: swd×1e3, "avg": ...}`` in float64; corners/directions default to the fast version's."""
    reals, fakes = reals.numpy(), fakes.numpy()
    resolutions = levels_for(reals.shape[-1])
    pyr_r, pyr_f = laplacian(reals, len(resolutions)), laplacian(fakes, len(resolutions))
    result = {}
    for i, res in enumerate(resolutions):
        if corners is None:
            cr = corners_for(seed, "reals", i, len(reals), res)
            cf = corners_for(seed, "fakes", i, len(fakes), res)
        else:
            cr, cf = corners(i, res)
        a, b = descriptors(pyr_r[i], cr), descriptors(pyr_f[i], cf)
        if directions is None:
            dirs = directions_for(seed, i, a.shape[1])
        else:
            dirs = directions(i, a.shape[1])
        repeats = []
        for r in range(REPEATS):
            d = dirs[r * DIRS : (r + 1) * DIRS].T  # (dim, 128)
            pa, pb = np.sort(a @ d, axis=0), np.sort(b @ d, axis=0)
            repeats.append(np.mean(np.abs(pa - pb)))
        result[res] = float(np.mean(repeats)) * 1e3
    result["avg"] = float(np.mean([result[r] for r in resolutions]))
    return result
