"""Benchmark pggan-import on a full-size synthetic release file, and sampling a 1024² grid from the result.

Builds (once, unless it exists) a pickle in the release's exact format with the
CelebA-HQ network's shapes — 1024×1024, 3 channels, latent 512, paper widths
(fmap_base 8192, fmap_max 512), the released Conv0 + Conv1 layout,
minibatch-stddev group 16 — and random weights (~277 MB, as
``karras2018iclr-celebahq-1024x1024.pkl``). Then, each in a fresh process so
that its peak memory is its own, runs ``pggan-import`` and ``pggan-sample
--grid`` and prints time and peak RSS (plus one JSON line with ``--json``).

    python tools/bench_import.py [--workdir /tmp/pggan-bench-import] [--rows 4 --cols 4] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

from machine import cpu_model  # tools/machine.py

REPO = Path(__file__).resolve().parents[1]


def build_file(path: Path, resolution: int = 1024, fmap_max: int = 512) -> float:
    """Write a synthetic release pickle (1024², paper widths by default); returns its size in MB."""
    sys.path.insert(0, str(REPO))
    from tests.official_pickles import official_states, write_official_pickle  # the format, written in one place

    states = official_states(
        seed=0,
        resolution=resolution,
        latent_size=512,
        fmap_base=8192,
        fmap_max=fmap_max,
        fused=False,
        mbstd_group_size=16,
    )
    tmp = path.with_suffix(".tmp")
    write_official_pickle(tmp, states, numpy1=True)
    os.replace(tmp, path)
    return path.stat().st_size / 1e6


def child(step: str, args: list[str]) -> None:
    """Run one step in this process and print its time, its own peak RSS and the RSS before it as JSON."""
    from pggan.official.importer import import_official
    from pggan.pictures.sample_command import run_sample

    baseline_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Python + torch + pggan loaded
    start = time.perf_counter()
    if step == "import":
        import_official(args[0], args[1], overwrite=True)
    else:
        run_sample(args[0], grid=args[1], rows=int(args[2]), cols=int(args[3]), device="cpu", overwrite=True)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_mb, "rss_before_mb": baseline_mb}))


def measure(step: str, *args: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, __file__, "--child", step, *args], capture_output=True, text=True, env=env, check=False
    )
    if result.returncode != 0:
        raise SystemExit(f"{step} failed: {result.stderr.strip()[-500:]}")
    record = json.loads(result.stdout.strip().splitlines()[-1])
    record["seconds_with_startup"] = time.perf_counter() - start
    return record


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/pggan-bench-import"))
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--cols", type=int, default=4)
    parser.add_argument("--json", action="store_true", help="also print one JSON line")
    parser.add_argument("--smoke", action="store_true", help="a tiny 16² file with narrow layers (the tools test)")
    args = parser.parse_args()
    resolution, fmap_max = (16, 16) if args.smoke else (1024, 512)
    args.workdir.mkdir(parents=True, exist_ok=True)
    pkl = args.workdir / f"synthetic-{resolution}-{fmap_max}.pkl"
    checkpoint, grid = args.workdir / "imported.pt", args.workdir / "grid.png"
    if not pkl.exists():
        start = time.perf_counter()
        build_file(pkl, resolution, fmap_max)
        print(f"built {pkl} in {time.perf_counter() - start:.1f} s")
    import torch

    cpu = cpu_model()
    results = {
        "cpu": cpu,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "file_mb": pkl.stat().st_size / 1e6,
        "import": measure("import", str(pkl), str(checkpoint)),
        "checkpoint_mb": checkpoint.stat().st_size / 1e6,
        "grid": {"rows": args.rows, "cols": args.cols},
    }
    results["sample"] = measure("sample", str(checkpoint), str(grid), str(args.rows), str(args.cols))
    results["sample"]["seconds_per_image"] = results["sample"]["seconds"] / (args.rows * args.cols)
    imp, smp = results["import"], results["sample"]
    print(f"CPU {cpu}, {results['threads']} threads, torch {results['torch']}")
    print(
        f"synthetic release file     {results['file_mb']:.0f} MB ({resolution}², fmap_max {fmap_max}, released layout)"
    )
    print(
        f"pggan-import               {imp['seconds']:.1f} s ({imp['seconds_with_startup']:.1f} s with start-up), "
        f"peak RSS {imp['peak_rss_mb']:.0f} MB ({imp['rss_before_mb']:.0f} MB before: Python, torch, pggan) "
        f"-> {results['checkpoint_mb']:.0f} MB checkpoint"
    )
    print(
        f"pggan-sample {args.rows}x{args.cols} grid     {smp['seconds']:.1f} s "
        f"({smp['seconds_per_image']:.1f} s per {resolution}² image, load included), "
        f"peak RSS {smp['peak_rss_mb']:.0f} MB ({smp['rss_before_mb']:.0f} MB before)"
    )
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
