"""A float64 reference SWD written straight from issue 5's description (numpy + scipy, no shortcuts).

It takes the fast version's random choices (patch corners, directions) so the two can be compared tightly,
but recomputes everything else: pyramid by explicit 2-D convolution of the zero-inserted image with
mirror borders, normalisation of the descriptors themselves, projection, full sort, mean |difference|.
"""

import numpy as np
import scipy.ndimage
import torch

from pggan.metrics import swd

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
            out.append(level[i, :, y : y + 7, x : x + 7])
    d = np.stack(out)  # (n, C, 7, 7)
    d = (d - d.mean(axis=(0, 2, 3), keepdims=True)) / d.std(axis=(0, 2, 3), keepdims=True)
    return d.reshape(d.shape[0], -1)


def corners_for(seed, stream, level, num_images, size):
    gen = torch.Generator().manual_seed(swd.stream_seed(seed, stream, level))
    return swd.patch_corners(num_images, size, gen).numpy()


def reference_swd(reals, fakes, seed=0, corners=None, directions=None):
    """``{resolution: swd×1e3, "avg": ...}`` in float64; corners/directions default to the fast version's."""
    reals, fakes = reals.numpy(), fakes.numpy()
    resolutions = swd.swd_resolutions(reals.shape[-1])
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
            dirs = swd.random_directions(a.shape[1], seed, i).numpy()
        else:
            dirs = directions(i, a.shape[1])
        repeats = []
        for r in range(swd.DIR_REPEATS):
            d = dirs[r * swd.DIRS_PER_REPEAT : (r + 1) * swd.DIRS_PER_REPEAT].T  # (dim, 128)
            pa, pb = np.sort(a @ d, axis=0), np.sort(b @ d, axis=0)
            repeats.append(np.mean(np.abs(pa - pb)))
        result[res] = float(np.mean(repeats)) * 1e3
    result["avg"] = float(np.mean([result[r] for r in resolutions]))
    return result
