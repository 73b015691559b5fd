"""Benchmark semantic edits: computing a generator's SeFa directions, and rendering an edit grid.

On one randomly initialised generator at the paper's widths (synthetic weights: the timings do not depend on
what the weights learned), measures

- ``sefa_seconds``: :func:`pggan.pictures.directions.sefa_directions`, all ``latent_size`` directions (first
  call and the best of ``--repeats`` more);
- ``edit_grid_seconds``: ``pggan-sample --direction sefa:0 --strengths -3:3:7 --grid`` for one seed without the
  checkpoint load — latents, the seven faces drawn one per generator call, tiling, PNG write — and its parts;
- ``batched_generate_seconds``: the same seven faces in one generator call, the price of the one-face-per-call
  rule that makes a face independent of its batch.

Prints a table and, with ``--json``, one JSON object (CPU model from tools/machine.py). ``--smoke``: a tiny
32² network, seconds in all, for the test suite.

    python tools/bench_directions.py [--resolution 1024] [--repeats 3] [--device cpu] [--json] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# As pggan-sample runs (pggan/cli.py): sleeping OpenMP threads. With spinning ones, a 512×512 eigen-decomposition
# on a busy 2-core machine took 2.2 s instead of 0.06 s.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_model

from pggan.devices import resolve_device
from pggan.model.networks import Generator
from pggan.pictures.directions import edit_latents, parse_strengths, sefa_directions
from pggan.pictures.generate import generate_faces_uint8, generate_uint8
from pggan.pictures.grids import make_grid, save_png
from pggan.pictures.latents import seed_latents


def timed(func: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    start = time.perf_counter()
    result = func()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--resolution", type=int, default=1024)
    parser.add_argument("--fmap-base", type=int, default=8192)
    parser.add_argument("--fmap-max", type=int, default=512)
    parser.add_argument("--latent-size", type=int, default=512)
    parser.add_argument("--strengths", default="-3:3:7")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of the SeFa computation")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", action="store_true", help="also print one JSON object")
    parser.add_argument("--smoke", action="store_true", help="a tiny 32² network: checks the tool, times nothing")
    args = parser.parse_args(argv)
    if args.smoke:
        args.resolution, args.fmap_base, args.fmap_max, args.latent_size, args.repeats = 32, 256, 32, 64, 1

    device = resolve_device(args.device)
    torch.manual_seed(0)
    generator = Generator(
        args.resolution, latent_size=args.latent_size, fmap_base=args.fmap_base, fmap_max=args.fmap_max
    ).to(device).eval()  # fmt: skip
    strengths = parse_strengths(args.strengths)
    results: dict[str, Any] = {
        "cpu": cpu_model(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "resolution": args.resolution,
        "generator_parameters": sum(p.numel() for p in generator.parameters()),
        "first_layer_shape": list(generator.blocks[0].dense.weight.shape),
        "strengths": len(strengths),
    }

    first, factorization = timed(lambda: sefa_directions(generator), device)
    again = [timed(lambda: sefa_directions(generator), device)[0] for _ in range(args.repeats)]
    results["sefa_first_seconds"] = first
    results["sefa_seconds"] = min(again)
    results["sefa_median_seconds"] = statistics.median(again)

    direction = factorization.directions[0]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "edit.png"
        start = time.perf_counter()
        latents = edit_latents(seed_latents([12], args.latent_size), direction, strengths)
        generate_seconds, images = timed(
            lambda: generate_faces_uint8(generator, latents, args.resolution, 1.0, device), device
        )
        write_start = time.perf_counter()
        save_png(make_grid(images, 1, len(strengths)), out)
        results["edit_grid_write_seconds"] = time.perf_counter() - write_start
        results["edit_grid_seconds"] = time.perf_counter() - start
        results["edit_grid_generate_seconds"] = generate_seconds
        results["edit_grid_png_bytes"] = out.stat().st_size
    batched, _ = timed(
        lambda: list(generate_uint8(generator, latents, args.resolution, 1.0, len(strengths), device)), device
    )
    results["batched_generate_seconds"] = batched

    width = max(len(key) for key in results)
    for key, value in results.items():
        print(f"{key:{width}s}  {value:.3f}" if isinstance(value, float) else f"{key:{width}s}  {value}")
    if args.json:
        print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()
