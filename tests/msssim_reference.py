"""A transcription of the official release's ``metrics/ms_ssim.py`` (``msssim`` and ``API.feed``), for the tests.

Written with literal constants, never the package's, so that a wrong constant in pggan cannot hide here. The
arithmetic type is a parameter: float64 (what pggan computes) or float32 (the official ``astype(np.float32)``).
FFT convolutions, as the official code; images are (N, H, W, C) here, as there.
"""

from __future__ import annotations

import numpy as np
from scipy import signal


def fspecial_gauss(size: int, sigma: float) -> np.ndarray:
    radius = size // 2
    offset = 0.0
    start, stop = -radius, radius + 1
    if size % 2 == 0:
        offset = 0.5
        stop -= 1
    x, y = np.mgrid[offset + start : stop, offset + start : stop]
    assert len(x) == size
    g = np.exp(-((x**2 + y**2) / (2.0 * sigma**2)))
    return g / g.sum()


def ssim_for_multiscale(img1, img2, dtype, max_val=255, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03):
    img1 = img1.astype(dtype)
    img2 = img2.astype(dtype)
    _, height, width, _ = img1.shape
    size = min(filter_size, height, width)
    sigma = size * filter_sigma / filter_size if filter_size else 0
    window = np.reshape(fspecial_gauss(size, sigma), (1, size, size, 1))
    mu1 = signal.fftconvolve(img1, window, mode="valid")
    mu2 = signal.fftconvolve(img2, window, mode="valid")
    sigma11 = signal.fftconvolve(img1 * img1, window, mode="valid")
    sigma22 = signal.fftconvolve(img2 * img2, window, mode="valid")
    sigma12 = signal.fftconvolve(img1 * img2, window, mode="valid")
    mu11 = mu1 * mu1
    mu22 = mu2 * mu2
    mu12 = mu1 * mu2
    sigma11 -= mu11
    sigma22 -= mu22
    sigma12 -= mu12
    c1 = (k1 * max_val) ** 2
    c2 = (k2 * max_val) ** 2
    v1 = 2.0 * sigma12 + c2
    v2 = sigma11 + sigma22 + c2
    ssim = np.mean((((2.0 * mu12 + c1) * v1) / ((mu11 + mu22 + c1) * v2)), axis=(1, 2, 3))
    cs = np.mean(v1 / v2, axis=(1, 2, 3))
    return ssim, cs


def hox_downsample(img):
    return (img[:, 0::2, 0::2, :] + img[:, 1::2, 0::2, :] + img[:, 0::2, 1::2, :] + img[:, 1::2, 1::2, :]) * 0.25


def msssim(img1, img2, dtype=np.float64):
    """The official ``msssim`` of two (N, H, W, C) uint8 batches: the mean over the N pairs."""
    weights = np.array([0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
    levels = weights.size
    im1, im2 = [x.astype(dtype) for x in [img1, img2]]
    mssim = []
    mcs = []
    with np.errstate(invalid="ignore", divide="ignore"):  # the official's last, unused halving may be empty
        for _ in range(levels):
            ssim, cs = ssim_for_multiscale(im1, im2, dtype)
            mssim.append(ssim)
            mcs.append(cs)
            im1, im2 = [hox_downsample(x) for x in [im1, im2]]
    mssim = np.clip(np.asarray(mssim), 0.0, np.inf)
    mcs = np.clip(np.asarray(mcs), 0.0, np.inf)
    return np.mean(np.prod(mcs[:-1, :] ** weights[:-1, np.newaxis], axis=0) * (mssim[-1, :] ** weights[-1]))


def api_score(minibatches, dtype=np.float64):
    """``API.begin/feed/end`` over (N, C, H, W) uint8 minibatches of even size: the figure the table prints."""
    total = 0.0
    num_pairs = 0
    for minibatch in minibatches:
        images = minibatch.transpose(0, 2, 3, 1)
        score = msssim(images[0::2], images[1::2], dtype)
        total += score * (images.shape[0] // 2)
        num_pairs += images.shape[0] // 2
    return total / num_pairs
