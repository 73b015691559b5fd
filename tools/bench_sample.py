"""Benchmark pggan-sample's video path: generation vs. encoding, and what batching buys.

Prints frames per second for (a) generating frames with several batch sizes and
(b) encoding ready frames to H.264, on one randomly initialised generator with
the paper's widths (or --fmap-max). Compare ratios from one run; the machine is
shared.

    python tools/bench_sample.py --resolution 64 --frames 32 [--device cpu] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from pggan.devices import resolve_device
from pggan.model.networks import Generator
from pggan.pictures.video import gaussian_walk, video_frames, write_mp4


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--fmap-max", type=int, default=512)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args()

    device = resolve_device(args.device)
    torch.manual_seed(0)
    generator = Generator(args.resolution, fmap_max=args.fmap_max).to(device).eval()
    walk = gaussian_walk(args.frames, 1, generator.latent_size, seed=0, sigma=4.0)
    results: dict[str, object] = {"resolution": args.resolution, "frames": args.frames, "device": str(device)}
    frames = None
    for batch_size in [int(b) for b in args.batch_sizes.split(",")]:
        list(video_frames(generator, walk[:batch_size], args.resolution, 1.0, (1, 1), batch_size, device))  # warm-up
        start = time.perf_counter()
        frames = list(video_frames(generator, walk, args.resolution, 1.0, (1, 1), batch_size, device))
        if device.type == "cuda":
            torch.cuda.synchronize()
        results[f"generate_fps_batch{batch_size}"] = args.frames / (time.perf_counter() - start)
    assert frames is not None
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        codec = write_mp4(iter(frames), Path(tmp) / "bench.mp4", fps=30)
        results["encode_fps"] = args.frames / (time.perf_counter() - start)
        results["codec"] = codec
        results["mp4_bytes_per_frame"] = (Path(tmp) / "bench.mp4").stat().st_size / args.frames
    if args.json:
        print(json.dumps(results))
    else:
        for key, value in results.items():
            print(f"{key:28s} {value:.1f}" if isinstance(value, float) else f"{key:28s} {value}")


if __name__ == "__main__":
    main()
