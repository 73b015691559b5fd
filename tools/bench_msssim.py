"""Benchmark pggan's MS-SSIM: seconds and peak memory for N pairs per size, against the official numpy code.

    python tools/bench_msssim.py                                # 10,000 pairs at 256² and at 1024² (long on a CPU)
    python tools/bench_msssim.py --pairs 500 --resolutions 256  # a quicker look
    python tools/bench_msssim.py --smoke                        # tiny, for the test suite
    python tools/bench_msssim.py --device cuda --json out.json

Images are face-like (random crops, flips and brightness shifts of the bundled sample faces, from
``tools/bench_swd.py``), streamed in batches so that 20,000 megapixel images never sit in memory; pairs are
consecutive images, as the metric pairs them. The time spent making the images is measured and left out. The baseline
is the official ``metrics/ms_ssim.py`` arithmetic as transcribed in ``tests/msssim_reference.py`` (float32 images,
scipy FFT convolutions), timed on the first ``--baseline-pairs`` pairs of the same stream in the same run and
extrapolated linearly to all pairs (its cost per pair does not depend on the pair); the report says so.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# As pggan's commands do (pggan/cli.py): idle OpenMP threads sleep. On a shared machine spinning threads made the
# small strips of this metric 20-100× slower. Must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from bench_swd import PeakMemory, face_batches, face_pool  # noqa: E402
from machine import cpu_model  # noqa: E402

from pggan.metrics import ms_ssim  # noqa: E402
from tests import msssim_reference  # noqa: E402

IMAGE_BYTES_PER_BATCH = 1 << 26  # uint8 image bytes per generated batch (64 MiB)


def stream(pool: torch.Tensor, num_images: int, seed: int):
    """``num_images`` face-like uint8 images in even batches of about :data:`IMAGE_BYTES_PER_BATCH` bytes."""
    per_image = pool[0].numel()
    batch = max(2, IMAGE_BYTES_PER_BATCH // per_image // 2 * 2)
    return face_batches(pool, num_images, seed, batch=batch)


class TimedStream:
    """An iterator of batches that adds up the time spent making them, so that it can be left out."""

    def __init__(self, batches) -> None:
        self.batches = iter(batches)
        self.seconds = 0.0

    def __iter__(self):
        while True:
            start = time.perf_counter()
            try:
                batch = next(self.batches)
            except StopIteration:
                return
            finally:
                self.seconds += time.perf_counter() - start
            yield batch


def run_case(resolution: int, pairs: int, baseline_pairs: int, device: torch.device, seed: int = 0) -> dict:
    pool = face_pool(resolution)
    ms_ssim.ms_ssim_of_batches([pool[:2]], device)  # warm-up: first-call costs are not the metric's
    images = TimedStream(stream(pool, 2 * pairs, seed))
    with PeakMemory(device) as memory:
        start = time.perf_counter()
        result = ms_ssim.ms_ssim_of_batches(images, device)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        total = time.perf_counter() - start
    seconds = total - images.seconds
    case = {
        "resolution": resolution,
        "pairs": result.num_pairs,
        "seconds": round(seconds, 2),
        "seconds_incl_image_generation": round(total, 2),
        "ms_per_pair": round(1000 * seconds / result.num_pairs, 3),
        "peak_memory_gib": round(memory.gib, 3),
        "msssim": round(result.score, 6),
    }
    if baseline_pairs:
        subset = next(stream(pool, 2 * baseline_pairs, seed))[: 2 * baseline_pairs]
        start = time.perf_counter()
        official = msssim_reference.api_score([subset.numpy()], dtype=np.float32)
        numpy_seconds = time.perf_counter() - start
        ours = ms_ssim.ms_ssim_of_batches([subset], device).score
        extrapolated = numpy_seconds * result.num_pairs / baseline_pairs
        case["baseline"] = {
            "what": "official numpy/scipy arithmetic (tests/msssim_reference.py, float32 as there), timed on the "
            f"first {baseline_pairs} pairs, extrapolated linearly to {result.num_pairs}",
            "pairs_timed": baseline_pairs,
            "seconds_timed": round(numpy_seconds, 2),
            "ms_per_pair": round(1000 * numpy_seconds / baseline_pairs, 3),
            "seconds_extrapolated": round(extrapolated, 1),
            "speedup": round(extrapolated / max(seconds, 1e-9), 2),
            "msssim_official_on_subset": round(float(official), 8),
            "msssim_pggan_on_subset": round(ours, 8),
        }
    return case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=10_000, help="pairs per size (images: twice as many)")
    parser.add_argument("--resolutions", type=int, nargs="+", default=[256, 1024])
    parser.add_argument("--baseline-pairs", type=int, nargs="+", default=[40, 4],
                        help="pairs the official code is timed on, per size (0: skip)")  # fmt: skip
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", default=None, help="also write the report here")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes and counts: checks the script runs")
    args = parser.parse_args()
    if args.smoke:
        args.pairs, args.resolutions, args.baseline_pairs = 6, [32, 64], [2, 2]
    baseline = list(args.baseline_pairs) + [args.baseline_pairs[-1]] * len(args.resolutions)
    device = torch.device(args.device)
    report = {
        "machine": {
            "cpu": cpu_model(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
            "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
            "torch": torch.__version__,
        },
        "cases": [],
    }
    machine = report["machine"]
    print(f"CPU {machine['cpu']} ({machine['cpu_count']} cores, {machine['torch_threads']} torch threads), "
          f"device {machine['device']}, load {machine['load_average_at_start']}", flush=True)  # fmt: skip
    for resolution, base in zip(args.resolutions, baseline, strict=False):
        case = run_case(resolution, args.pairs, min(base, args.pairs), device)
        report["cases"].append(case)
        line = (f"{case['pairs']:6d} pairs at {resolution:4d}²: {case['seconds']:9.1f} s ({case['ms_per_pair']:.1f} "
                f"ms/pair), peak +{case['peak_memory_gib']:.2f} GiB, MS-SSIM {case['msssim']:.4f}")  # fmt: skip
        if "baseline" in case:
            b = case["baseline"]
            line += (f"\n    official numpy: {b['ms_per_pair']:.1f} ms/pair on {b['pairs_timed']} pairs → "
                     f"{b['seconds_extrapolated']:.0f} s extrapolated (pggan {b['speedup']:.1f}× faster); "
                     f"same subset: official {b['msssim_official_on_subset']:.6f}, "
                     f"pggan {b['msssim_pggan_on_subset']:.6f}")  # fmt: skip
        print(line, flush=True)
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
