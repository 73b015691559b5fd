"""An independent float64 numpy transcription of the official G_paper / D_paper forward passes.

Written line by line from the release's ``networks.py`` (recursive structure,
as its networks run outside the template graph), working on the variables as
stored in its pickles — HWIO kernels, [in, out] dense weights, transposed-conv
kernels as ``tf.nn.conv2d_transpose`` uses them, TF's ``SAME`` padding — so
that it shares nothing with pggan's layers. Outputs are full resolution, as
the official networks produce and consume them: G upsamples its images by
2^⌊lod⌋, D average-pools its full-size input.
"""

from __future__ import annotations

import math

import numpy as np

SQRT2 = np.sqrt(2.0)


def _wscale(w: np.ndarray, gain: float, fan_in: int | None = None) -> np.ndarray:
    fan_in = int(np.prod(w.shape[:-1])) if fan_in is None else fan_in
    return w.astype(np.float64) * (gain / np.sqrt(fan_in))


def lrelu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x * 0.2, x)


def pixel_norm(x: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=1, keepdims=True) + eps)


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF's SAME padding (before, after) for one spatial dimension."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def conv2d(x: np.ndarray, w: np.ndarray, stride: int = 1) -> np.ndarray:
    """tf.nn.conv2d, NCHW input, HWIO kernel, SAME padding (a correlation)."""
    n, c, h, wd = x.shape
    kh, kw, ci, co = w.shape
    assert ci == c
    (pt, pb), (pl, pr) = _same_pads(h, kh, stride), _same_pads(wd, kw, stride)
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    oh, ow = -(-h // stride), -(-wd // stride)
    out = np.zeros((n, co, oh, ow))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride]
            out += np.einsum("nchw,cd->ndhw", patch, w[i, j])
    return out


def conv2d_transpose_stride2(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """tf.nn.conv2d_transpose(x, w [kh, kw, out, in], output 2H×2W, strides 2, SAME): the adjoint of conv2d."""
    n, c, h, wd = x.shape
    kh, kw, co, ci = w.shape
    assert ci == c
    oh, ow = 2 * h, 2 * wd
    (pt, _), (pl, _) = _same_pads(oh, kh, 2), _same_pads(ow, kw, 2)
    big = np.zeros((n, co, oh + kh + 2, ow + kw + 2))
    for i in range(kh):
        for j in range(kw):
            contribution = np.einsum("nchw,dc->ndhw", x, w[i, j])
            big[:, :, i : i + 2 * h : 2, j : j + 2 * wd : 2] += contribution
    return big[:, :, pt : pt + oh, pl : pl + ow]


def upscale2d(x: np.ndarray, factor: int = 2) -> np.ndarray:
    return x.repeat(factor, axis=2).repeat(factor, axis=3) if factor > 1 else x


def downscale2d(x: np.ndarray, factor: int = 2) -> np.ndarray:
    if factor == 1:
        return x
    n, c, h, w = x.shape
    return x.reshape(n, c, h // factor, factor, w // factor, factor).mean(axis=(3, 5))


def minibatch_stddev_layer(x: np.ndarray, group_size: int) -> np.ndarray:
    group = min(group_size, x.shape[0])
    s = x.shape
    y = x.reshape(group, -1, s[1], s[2], s[3])
    y = y - y.mean(axis=0, keepdims=True)
    y = np.sqrt(np.mean(y * y, axis=0) + 1e-8)
    y = y.mean(axis=(1, 2, 3), keepdims=True)  # [M111]
    y = np.tile(y, (group, 1, s[2], s[3]))
    return np.concatenate([x, y], axis=1)


def lerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return a + (b - a) * t


def g_paper(v: dict[str, np.ndarray], latents: np.ndarray, resolution: int, lod_in: float) -> np.ndarray:
    """G_paper(latents) at ``lod_in``: images [N, C, resolution, resolution]."""
    log2 = int(math.log2(resolution))
    fused = any(k.endswith("Conv0_up/weight") for k in v)

    def bias(x, name):
        b = v[name + "/bias"].astype(np.float64)
        return x + (b if x.ndim == 2 else b.reshape(1, -1, 1, 1))

    def conv(x, name, gain=SQRT2):
        return bias(conv2d(x, _wscale(v[name + "/weight"], gain)), name)

    def block(x, res):
        scope = f"{2**res}x{2**res}"
        if res == 2:
            x = pixel_norm(x)
            w = v["4x4/Dense/weight"]
            x = x @ _wscale(w, SQRT2 / 4)
            x = x.reshape(x.shape[0], -1, 4, 4)
            x = pixel_norm(lrelu(bias(x, "4x4/Dense")))
            return pixel_norm(lrelu(conv(x, "4x4/Conv")))
        if fused:
            w = v[f"{scope}/Conv0_up/weight"]
            w = _wscale(w, SQRT2, fan_in=9 * x.shape[1])
            w = np.pad(w, ((1, 1), (1, 1), (0, 0), (0, 0)))
            w = w[1:, 1:] + w[:-1, 1:] + w[1:, :-1] + w[:-1, :-1]
            x = pixel_norm(lrelu(bias(conv2d_transpose_stride2(x, w), f"{scope}/Conv0_up")))
        else:
            x = upscale2d(x)
            x = pixel_norm(lrelu(conv(x, f"{scope}/Conv0")))
        return pixel_norm(lrelu(conv(x, f"{scope}/Conv1")))

    def torgb(x, res):
        return conv(x, f"ToRGB_lod{log2 - res}", gain=1.0)

    def grow(x, res, lod):
        y = block(x, res)
        if lod > 0 and lod_in < lod:
            return grow(y, res + 1, lod - 1)
        if res > 2 and lod_in > lod:
            return upscale2d(lerp(torgb(y, res), upscale2d(torgb(x, res - 1)), lod_in - lod), 2**lod)
        return upscale2d(torgb(y, res), 2**lod)

    return grow(latents.astype(np.float64), 2, log2 - 2)


def d_paper(
    v: dict[str, np.ndarray], images: np.ndarray, resolution: int, lod_in: float, mbstd_group_size: int
) -> np.ndarray:
    """D_paper(images [N, C, resolution, resolution]) at ``lod_in``: scores [N]."""
    log2 = int(math.log2(resolution))
    fused = any(k.endswith("Conv1_down/weight") for k in v)
    images = images.astype(np.float64)

    def bias(x, name):
        b = v[name + "/bias"].astype(np.float64)
        return x + (b if x.ndim == 2 else b.reshape(1, -1, 1, 1))

    def conv(x, name, gain=SQRT2):
        return bias(conv2d(x, _wscale(v[name + "/weight"], gain)), name)

    def dense(x, name, gain=SQRT2):
        x = x.reshape(x.shape[0], -1)
        return bias(x @ _wscale(v[name + "/weight"], gain), name)

    def fromrgb(x, res):
        return lrelu(conv(x, f"FromRGB_lod{log2 - res}"))

    def block(x, res):
        scope = f"{2**res}x{2**res}"
        if res >= 3:
            x = lrelu(conv(x, f"{scope}/Conv0"))
            if fused:
                w = _wscale(v[f"{scope}/Conv1_down/weight"], SQRT2)
                w = np.pad(w, ((1, 1), (1, 1), (0, 0), (0, 0)))
                w = (w[1:, 1:] + w[:-1, 1:] + w[1:, :-1] + w[:-1, :-1]) * 0.25
                return lrelu(bias(conv2d(x, w, stride=2), f"{scope}/Conv1_down"))
            x = lrelu(conv(x, f"{scope}/Conv1"))
            return downscale2d(x)
        if mbstd_group_size > 1:
            x = minibatch_stddev_layer(x, mbstd_group_size)
        x = lrelu(conv(x, "4x4/Conv"))
        x = lrelu(dense(x, "4x4/Dense0"))
        return dense(x, "4x4/Dense1", gain=1.0)

    def grow(res, lod):
        if lod > 0 and lod_in < lod:
            x = grow(res + 1, lod - 1)
        else:
            x = fromrgb(downscale2d(images, 2**lod), res)
        x = block(x, res)
        if res > 2 and lod_in > lod:
            return lerp(x, fromrgb(downscale2d(images, 2 ** (lod + 1)), res - 1), lod_in - lod)
        return x

    return grow(2, log2 - 2)[:, 0]
