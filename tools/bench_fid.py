"""Benchmark pggan-fid: seconds to embed N images, the Fréchet distance itself, and peak memory.

    python tools/bench_fid.py                                   # 1,000 and 10,000 images at 256² on the CPU
    python tools/bench_fid.py --counts 1000,2000 --json out.json   # a busy machine: fewer images
    python tools/bench_fid.py --device cuda --counts 10000,50000

The Inception network runs with random weights in the standard layout (the speed does not depend on the values;
the real file cannot be had here). Images are uint8 256² noise, made batch by batch and not timed. "embed" is
the Inception forward pass (TF1-style resize to 299², pool3) plus the float64 statistics; "distance" is one
Fréchet distance between two 2048-dimensional Gaussians (a matrix square root), paid once per FID whatever N.
Peak memory is the process's maximum resident set (and the GPU's peak allocation on CUDA).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from machine import cpu_model  # tools/machine.py

from pggan.metrics import fid, inception


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def noise_batches(count: int, resolution: int, batch: int, seed: int):
    rng = torch.Generator().manual_seed(seed)
    for start in range(0, count, batch):
        n = min(batch, count - start)
        yield torch.randint(0, 256, (n, 3, resolution, resolution), generator=rng, dtype=torch.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="1000,10000", help="Comma-separated image counts.")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--batch", type=int, default=64, help="Images per Inception call.")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (CPU).")
    parser.add_argument("--json", default=None, help="Also write the results here.")
    parser.add_argument("--no-distance", action="store_true", help="Skip timing the 2048-d square root (~20 s).")
    parser.add_argument("--smoke", action="store_true", help="4 images at 32², no distance (the tools test).")
    args = parser.parse_args()
    if args.smoke:
        args.counts, args.resolution, args.batch, args.no_distance = "4", 32, 4, True
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    counts = [int(c) for c in args.counts.split(",") if c]

    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "random-inception.pth"
        inception.write_random_weights(weights)
        start = time.perf_counter()
        network = inception.load_inception(weights, allow_unverified=True, device=device)
        load_seconds = time.perf_counter() - start
    print(f"CPU: {cpu_model()}, torch threads {torch.get_num_threads()}, device {device}")
    print(f"load + verify weights file: {load_seconds:.2f} s")
    results = []
    stats = None
    for count in counts:
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        generating = 0.0
        accumulator = fid.StatsAccumulator()
        batches = noise_batches(count, args.resolution, args.batch, seed=count)
        while True:
            t = time.perf_counter()
            batch = next(batches, None)
            generating += time.perf_counter() - t
            if batch is None:
                break
            accumulator.add(network.features(batch))
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start - generating
        stats = accumulator.result()
        row = {
            "num_images": count,
            "resolution": args.resolution,
            "embed_seconds": round(seconds, 2),
            "images_per_second": round(count / seconds, 2),
            "peak_rss_mb": round(peak_rss_mb(), 1),
        }
        if device.type == "cuda":
            row["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        results.append(row)
        print(
            f"{count:>6d} images at {args.resolution}²: embed {seconds:8.1f} s ({count / seconds:6.1f} img/s), "
            f"peak RSS {row['peak_rss_mb']:.0f} MB"
            + (f", GPU {row['peak_gpu_mb']:.0f} MB" if "peak_gpu_mb" in row else "")
        )
    assert stats is not None
    distance_seconds = None
    if not args.no_distance:
        rng = np.random.default_rng(0)
        other = stats.sigma + np.diag(rng.uniform(0, 1e-3, stats.sigma.shape[0]))
        start = time.perf_counter()
        value = fid.frechet_distance(stats.mu, stats.sigma, stats.mu + 0.01, other)
        distance_seconds = round(time.perf_counter() - start, 2)
        print(f"Fréchet distance (2048-d matrix square root): {distance_seconds:.1f} s (value {value:.4f})")
    report = {
        "cpu": cpu_model(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "batch": args.batch,
        "load_seconds": round(load_seconds, 2),
        "distance_seconds": distance_seconds,
        "runs": results,
    }
    print(json.dumps(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
