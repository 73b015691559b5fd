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
    """An iterator of batches that adds up the time spent making them, so that it can be left out.

    Every ``report_every`` seconds it prints how far the metric has got (a long CPU case can be judged, or
    stopped, before it ends).
    """

    def __init__(self, batches, label: str, report_every: float = 300.0) -> None:
        self.batches = iter(batches)
        self.label = label
        self.report_every = report_every
        self.seconds = 0.0
        self.images = 0

    def __iter__(self):
        begin = last = time.perf_counter()
        while True:
            start = time.perf_counter()
            if start - last >= self.report_every:
                metric = start - begin - self.seconds
                print(f"    {self.label}: {self.images // 2} pairs in {metric:.0f} s of metric "
                      f"({1000 * metric / max(1, self.images // 2):.1f} ms/pair)", flush=True)  # fmt: skip
                last = start
            try:
                batch = next(self.batches)
            except StopIteration:
                return
            finally:
                self.seconds += time.perf_counter() - start
            self.images += batch.shape[0]
            yield batch


def baseline(pool: torch.Tensor, pairs: int, seed: int, device: torch.device, total_pairs: int,
             pggan_seconds: float) -> dict:  # fmt: skip
    """The official arithmetic and pggan's on the first ``pairs`` pairs of the stream, timed back to back.

    Each is timed twice, alternating, and the faster time kept: on a shared machine a spike of load during one
    short timing would otherwise decide the ratio. The official time is then extrapolated to ``total_pairs``.
    """
    subset = next(stream(pool, 2 * pairs, seed))[: 2 * pairs]
    numpy_times, pggan_times = [], []
    for _ in range(2):
        start = time.perf_counter()
        official = msssim_reference.api_score([subset.numpy()], dtype=np.float32)
        numpy_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        ours = ms_ssim.ms_ssim_of_batches([subset], device).score
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        pggan_times.append(time.perf_counter() - start)
    numpy_pair, pggan_pair = min(numpy_times) / pairs, min(pggan_times) / pairs
    return {
        "what": "official numpy/scipy arithmetic (tests/msssim_reference.py, float32 as there) and pggan, each timed "
        f"twice on the first {pairs} pairs (the faster kept); the official time extrapolated linearly to "
        f"{total_pairs} pairs",
        "pairs_timed": pairs,
        "official_ms_per_pair": round(1000 * numpy_pair, 3),
        "pggan_ms_per_pair_same_subset": round(1000 * pggan_pair, 3),
        "speedup_same_subset": round(numpy_pair / pggan_pair, 2),
        "official_seconds_extrapolated": round(numpy_pair * total_pairs, 1),
        "pggan_seconds_measured": round(pggan_seconds, 1),
        "msssim_official_on_subset": round(float(official), 8),
        "msssim_pggan_on_subset": round(ours, 8),
    }


def run_case(resolution: int, pairs: int, baseline_pairs: int, device: torch.device, seed: int = 0) -> dict:
    pool = face_pool(resolution)
    ms_ssim.ms_ssim_of_batches([pool[:2]], device)  # warm-up: first-call costs are not the metric's
    images = TimedStream(stream(pool, 2 * pairs, seed), f"{resolution}²")
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
        case["baseline"] = baseline(pool, baseline_pairs, seed, device, result.num_pairs, seconds)
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
            line += (
                f"\n    first {b['pairs_timed']} pairs: official numpy {b['official_ms_per_pair']:.1f} ms/pair, pggan "
                f"{b['pggan_ms_per_pair_same_subset']:.1f} ms/pair ({b['speedup_same_subset']:.1f}× faster); official "
                f"extrapolated to {case['pairs']} pairs: {b['official_seconds_extrapolated']:.0f} s; MS-SSIM official "
                f"{b['msssim_official_on_subset']:.6f}, pggan {b['msssim_pggan_on_subset']:.6f}"
            )
        print(line, flush=True)
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
