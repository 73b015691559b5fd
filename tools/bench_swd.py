"""Benchmark pggan's SWD: seconds and peak memory per case, spread over seeds, and the official numpy algorithm.

    python tools/bench_swd.py                          # 2,048 at 128² (+ numpy baseline) and 16,384 at 256²
    python tools/bench_swd.py --num-images 256 --big-num-images 0 --seeds 3   # a quick run
    python tools/bench_swd.py --device cuda --big-resolution 1024 --json out.json

Images are face-like: random crops, flips and brightness shifts of the bundled sample faces, generated batch by
batch (so 16k large images never sit in memory); generation time is measured apart and not counted. The
baseline is a plain numpy/scipy transcription of the official release (scipy.ndimage mirror convolutions,
np.sort along axis 0), run on the same images in the same process, so the ratio is fair on a noisy machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import scipy.ndimage
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pggan.metrics import swd

SAMPLE = Path(__file__).resolve().parent.parent / "datasets" / "sample"


# ---------------------------------------------------------------- face-like image sets
def face_pool(resolution: int) -> torch.Tensor:
    """The bundled faces, RGB, resized to ``resolution``: a pool to draw varied images from."""
    from PIL import Image

    images = []
    for file in sorted(SAMPLE.rglob("*.png")):
        image = Image.open(file).convert("RGB").resize((resolution, resolution), Image.Resampling.BICUBIC)
        images.append(np.asarray(image).transpose(2, 0, 1))
    return torch.from_numpy(np.stack(images))


def face_batches(pool: torch.Tensor, num: int, seed: int, batch: int = 256, blur: bool = False):
    """``num`` images drawn from ``pool``: random member, flip, shift and brightness; optionally blurred."""
    gen = torch.Generator().manual_seed(seed)
    for start in range(0, num, batch):
        b = min(batch, num - start)
        idx = torch.randint(0, len(pool), (b,), generator=gen)
        x = pool[idx].to(torch.int16)
        flip = torch.rand(b, generator=gen) < 0.5
        x[flip] = x[flip].flip(-1)
        shift = int(torch.randint(-4, 5, (), generator=gen))
        x = torch.roll(x, shift, dims=-1)
        x += torch.randint(-20, 21, (b, 1, 1, 1), generator=gen, dtype=torch.int16)
        if blur:
            x = (x[..., :-1, :] + x[..., 1:, :]).div(2, rounding_mode="floor")
            x = torch.cat([x, x[..., -1:, :]], dim=-2)
        yield x.clamp(0, 255).to(torch.uint8)


def face_set(pool: torch.Tensor, num: int, seed: int, blur: bool = False) -> torch.Tensor:
    return torch.cat(list(face_batches(pool, num, seed, blur=blur)))


# ---------------------------------------------------------------- memory
class PeakMemory:
    """Peak resident memory above the starting point (CPU, sampled) or peak CUDA allocation."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def _rss(self) -> int:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
        else:
            self.start = self.peak = self._rss()
            self.running = True
            self.thread = threading.Thread(target=self._sample, daemon=True)
            self.thread.start()
        return self

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, self._rss())
            time.sleep(0.02)

    def __exit__(self, *exc: object) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.gib = (torch.cuda.max_memory_allocated(self.device) - self.start) / 2**30
        else:
            self.running = False
            self.thread.join()
            self.gib = (max(self.peak, self._rss()) - self.start) / 2**30


# ---------------------------------------------------------------- the official algorithm in numpy
GAUSS = np.float32([[1, 4, 6, 4, 1], [4, 16, 24, 16, 4], [6, 24, 36, 24, 6], [4, 16, 24, 16, 4], [1, 4, 6, 4, 1]]) / 256


def np_pyr_down(x: np.ndarray) -> np.ndarray:
    return scipy.ndimage.convolve(x, GAUSS[None, None], mode="mirror")[:, :, ::2, ::2]


def np_pyr_up(x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    res = np.zeros((n, c, h * 2, w * 2), x.dtype)
    res[:, :, ::2, ::2] = x
    return scipy.ndimage.convolve(res, GAUSS[None, None] * 4.0, mode="mirror")


def numpy_swd(reals: np.ndarray, fakes: np.ndarray, seed: int = 0, minibatch: int = 64) -> dict[int | str, float]:
    """The official release's algorithm, transcribed: float32 numpy, minibatches of 64, np.sort(axis=0)."""
    rng = np.random.RandomState(seed)
    resolutions = swd.swd_resolutions(reals.shape[-1])
    sets = []
    for images in (reals, fakes):
        per_level: list[list[np.ndarray]] = [[] for _ in resolutions]
        for start in range(0, len(images), minibatch):
            pyramid = [np.float32(images[start : start + minibatch])]
            for _ in range(1, len(resolutions)):
                pyramid.append(np_pyr_down(pyramid[-1]))
                pyramid[-2] -= np_pyr_up(pyramid[-1])
            for lod, level in enumerate(pyramid):
                s = level.shape
                count = swd.NHOODS_PER_IMAGE * s[0]
                h = swd.NHOOD_SIZE // 2
                nhood, chan, x, y = np.ogrid[0:count, 0 : s[1], -h : h + 1, -h : h + 1]
                img = nhood // swd.NHOODS_PER_IMAGE
                x = x + rng.randint(h, s[3] - h, size=(count, 1, 1, 1))
                y = y + rng.randint(h, s[2] - h, size=(count, 1, 1, 1))
                per_level[lod].append(level.flat[((img * s[1] + chan) * s[2] + y) * s[3] + x])
        finals = []
        for chunks in per_level:
            desc = np.concatenate(chunks, axis=0)
            desc -= np.mean(desc, axis=(0, 2, 3), keepdims=True)
            desc /= np.std(desc, axis=(0, 2, 3), keepdims=True)
            finals.append(desc.reshape(desc.shape[0], -1))
        sets.append(finals)
    result: dict[int | str, float] = {}
    for lod, res in enumerate(resolutions):
        a, b = sets[0][lod], sets[1][lod]
        repeats = []
        for _ in range(swd.DIR_REPEATS):
            dirs = rng.randn(a.shape[1], swd.DIRS_PER_REPEAT)
            dirs = (dirs / np.sqrt(np.sum(np.square(dirs), axis=0, keepdims=True))).astype(np.float32)
            pa, pb = np.sort(np.matmul(a, dirs), axis=0), np.sort(np.matmul(b, dirs), axis=0)
            repeats.append(np.mean(np.abs(pa - pb)))
        result[res] = float(np.mean(repeats)) * 1e3
    result["avg"] = float(np.mean([result[r] for r in resolutions]))
    return result


# ---------------------------------------------------------------- cases
def run_case(num: int, resolution: int, device: torch.device, seed: int = 0) -> dict:
    """Time pggan's SWD on ``num`` face-like images vs a slightly blurred set, both streamed in batches."""
    pool = face_pool(resolution)
    start = time.perf_counter()
    for _ in face_batches(pool, num, 1):
        pass
    for _ in face_batches(pool, num, 2, blur=True):
        pass
    generation = time.perf_counter() - start
    with PeakMemory(device) as memory:
        start = time.perf_counter()
        scores = swd.sliced_wasserstein_pyramid(
            face_batches(pool, num, 1),
            face_batches(pool, num, 2, blur=True),
            seed=seed,
            device=device,
            num_images=num,
        )
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        total = time.perf_counter() - start
    return {
        "num_images": num,
        "resolution": resolution,
        "seconds": round(total - generation, 2),
        "seconds_incl_image_generation": round(total, 2),
        "peak_memory_gib": round(memory.gib, 2),
        "swd": {str(k): round(v, 4) for k, v in scores.items()},
    }


def seed_spread(num: int, resolution: int, device: torch.device, seeds: int) -> dict:
    """Run-to-run spread of the estimator: same two sets, different seeds (patches and directions)."""
    pool = face_pool(resolution)
    reals, fakes = face_set(pool, num, 1), face_set(pool, num, 2, blur=True)
    runs = [swd.sliced_wasserstein_pyramid(reals, fakes, seed=s, device=device) for s in range(seeds)]
    spread = {}
    for key in runs[0]:
        values = np.array([r[key] for r in runs])
        spread[str(key)] = {
            "mean": round(float(values.mean()), 4),
            "std": round(float(values.std(ddof=1)), 4),
            "rel_std_percent": round(float(100 * values.std(ddof=1) / values.mean()), 2),
        }
    return {"num_images": num, "resolution": resolution, "seeds": seeds, "levels": spread}


def baseline_case(num: int, resolution: int, device: torch.device) -> dict:
    """The numpy transcription against pggan's, on the same in-memory images, timed back to back."""
    pool = face_pool(resolution)
    reals, fakes = face_set(pool, num, 1), face_set(pool, num, 2, blur=True)
    start = time.perf_counter()
    ours = swd.sliced_wasserstein_pyramid(reals, fakes, seed=0, device=device)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    theirs = numpy_swd(reals.numpy(), fakes.numpy(), seed=0)
    theirs_s = time.perf_counter() - start
    return {
        "num_images": num,
        "resolution": resolution,
        "pggan_seconds": round(ours_s, 2),
        "numpy_seconds": round(theirs_s, 2),
        "speedup": round(theirs_s / ours_s, 2),
        "pggan_swd": {str(k): round(v, 4) for k, v in ours.items()},
        "numpy_swd": {str(k): round(v, 4) for k, v in theirs.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-images", type=int, default=2048)
    parser.add_argument("--resolution", type=int, default=128)
    parser.add_argument("--big-num-images", type=int, default=16384, help="0 skips the big case")
    parser.add_argument("--big-resolution", type=int, default=256)
    parser.add_argument("--seeds", type=int, default=5, help="seeds for the spread (0 skips it)")
    parser.add_argument("--spread-num-images", type=int, default=None, help="[default: --num-images]")
    parser.add_argument("--no-baseline", action="store_true", help="skip the numpy baseline")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    device = torch.device(args.device)
    report: dict = {"device": str(device), "threads": torch.get_num_threads(), "cases": []}
    if device.type == "cuda":
        report["device_name"] = torch.cuda.get_device_name(device)
    print(f"device {device}, {torch.get_num_threads()} threads", flush=True)
    cases = [(args.num_images, args.resolution)]
    if args.big_num_images:
        cases.append((args.big_num_images, args.big_resolution))
    for num, res in cases:
        case = run_case(num, res, device)
        report["cases"].append(case)
        print(
            f"{num:6d} images at {res:4d}²: {case['seconds']:8.2f} s  peak +{case['peak_memory_gib']:.2f} GiB  "
            f"swd {case['swd']}",
            flush=True,
        )
    if not args.no_baseline:
        base = baseline_case(args.num_images, args.resolution, device)
        report["baseline"] = base
        print(
            f"baseline {args.num_images} at {args.resolution}²: numpy {base['numpy_seconds']:.1f} s, "
            f"pggan {base['pggan_seconds']:.1f} s → {base['speedup']:.1f}× faster\n"
            f"  numpy swd {base['numpy_swd']}\n  pggan swd {base['pggan_swd']}",
            flush=True,
        )
    if args.seeds > 1:
        spread = seed_spread(args.spread_num_images or args.num_images, args.resolution, device, args.seeds)
        report["spread"] = spread
        print(f"spread over {args.seeds} seeds, {spread['num_images']} images at {args.resolution}²:")
        for key, s in spread["levels"].items():
            print(f"  {key:>5}: {s['mean']:9.3f} ± {s['std']:.3f}  ({s['rel_std_percent']:.1f}%)")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
