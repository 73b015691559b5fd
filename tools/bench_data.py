"""Benchmark pggan-prepare and the batch loader on generated photo-like images, against issue 3's targets.

    python tools/bench_data.py            # a few minutes on a 2-core machine
    python tools/bench_data.py --json     # the same figures as one JSON object

Prints prepare throughput (images/s, and per worker core) at R = 256 and 1024,
the encoding chosen per level and the pyramid's bytes relative to its top level
stored as lossless PNG, and the loader's images/s at every level of the 1024
dataset with 0 and 2 loader workers. Targets (issue 3): loader >= 2,000 img/s at
4-64 px and >= 60 img/s at 1024 px; pyramid <= 1.5x the top level's lossless bytes.

The generated photos are smooth colour fields with soft shapes, mid-frequency
texture and sensor noise, saved as JPEG (quality 90) at 5:4, so prepare must
decode, crop and resize as for real photos; their lossless PNG size (about half
of raw at 1024) is close to real face photos such as FFHQ's.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from itertools import islice
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pggan.data.loader import make_batch_loader, read_meta
from pggan.data.prepare import prepare_dataset
from pggan.data.pyramid import PNG_COMPRESS_LEVEL

LOADER_TARGETS = {4: 2000, 8: 2000, 16: 2000, 32: 2000, 64: 2000, 1024: 60}
PYRAMID_TARGET = 1.5


def photo_like(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A synthetic photograph: smooth lighting, soft objects, texture and sensor noise."""
    field = Image.fromarray(rng.integers(30, 226, (4, 5, 3), dtype=np.uint8)).resize((width, height), Image.BICUBIC)
    pixels = np.asarray(field, dtype=np.float32).copy()
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    for _ in range(5):
        cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
        ry, rx = rng.uniform(0.1, 0.35) * height, rng.uniform(0.1, 0.35) * width
        mask = np.exp(-((((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2) ** 2))[:, :, None]
        pixels = pixels * (1 - mask) + rng.uniform(20, 235, 3).astype(np.float32) * mask
    small = rng.normal(0, 1, (height // 12, width // 12, 3)).astype(np.float32)
    texture = np.stack(
        [np.asarray(Image.fromarray(small[:, :, c], "F").resize((width, height), Image.BICUBIC)) for c in range(3)],
        axis=2,
    )
    pixels += 10 * texture + rng.normal(0, 2.0, pixels.shape).astype(np.float32)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def make_photos(folder: Path, count: int, resolution: int, seed: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        photo_like(rng, resolution * 5 // 4, resolution).save(folder / f"photo_{i:04d}.jpg", quality=90)


def bench_prepare(source: Path, out: Path, resolution: int, workers: int) -> dict:
    result = prepare_dataset([str(source)], out, resolution, workers=workers, overwrite=True, progress=False)
    meta = read_meta(out)
    top_png = 0  # the top level stored losslessly, for the size target
    from pggan.data.loader import PyramidDataset

    top = PyramidDataset(out, resolution)
    for i in range(len(top)):
        buffer = io.BytesIO()
        Image.fromarray(top[i].permute(1, 2, 0).numpy()).save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
        top_png += len(buffer.getvalue())
    total = sum(result.bytes_per_level.values())
    return {
        "resolution": resolution,
        "images": result.count,
        "workers": workers,
        "seconds": round(result.seconds, 2),
        "images_per_s": round(result.count / result.seconds, 2),
        "images_per_s_per_core": round(result.count / result.seconds / workers, 2),
        "encoding": meta["encoding"],
        "bytes_per_image": {r: round(b / result.count) for r, b in sorted(result.bytes_per_level.items())},
        "pyramid_bytes_over_top_png": round(total / top_png, 3),
        "raw_top_bytes_over_top_png": round(3 * resolution * resolution * result.count / top_png, 3),
    }


def bench_loader(dataset: Path, resolution: int, workers: int, seconds: float) -> tuple[float, float]:
    """(images per wall second, images per CPU second of this process); the second resists a busy machine."""
    batch = 64 if resolution <= 64 else 32 if resolution <= 256 else 8
    loader = make_batch_loader(dataset, resolution, batch, start=0, seed=0, num_workers=workers, mirror=True)
    try:
        for _ in islice(loader, 2):  # start-up (worker fork, first reads) is not throughput
            pass
        images, began, cpu = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - began < seconds:
            images += next(loader).shape[0]
        return images / (time.perf_counter() - began), images / max(time.process_time() - cpu, 1e-9)
    finally:
        loader.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--images-256", type=int, default=64)
    parser.add_argument("--images-1024", type=int, default=24)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--loader-seconds", type=float, default=1.5, help="timing window per level and setting")
    args = parser.parse_args()
    say = (lambda *a: None) if args.json else print
    figures: dict = {"cpu_cores": len(os.sched_getaffinity(0)), "prepare": [], "loader": {}}
    with tempfile.TemporaryDirectory(prefix="pggan-bench-") as work:
        work = Path(work)
        say(f"generating {args.images_256} + {args.images_1024} photo-like JPEGs ...")
        make_photos(work / "photos256", args.images_256, 256, seed=0)
        make_photos(work / "photos1024", args.images_1024, 1024, seed=1)
        for resolution, count_source in ((256, "photos256"), (1024, "photos1024")):
            row = bench_prepare(work / count_source, work / f"ds{resolution}", resolution, args.workers)
            figures["prepare"].append(row)
            say(
                f"prepare R={resolution}: {row['images']} images in {row['seconds']} s = {row['images_per_s']} img/s "
                f"({row['images_per_s_per_core']} per core, {row['workers']} workers); encoding "
                f"{' '.join(f'{r}:{e}' for r, e in row['encoding'].items())}; pyramid = "
                f"{row['pyramid_bytes_over_top_png']}x the top level as PNG (raw top alone would be "
                f"{row['raw_top_bytes_over_top_png']}x)"
            )
        dataset = work / "ds1024"
        say("loader images/s on the 1024 dataset (mirror on): 0 workers (per CPU-s)  2 workers   target")
        for resolution in read_meta(dataset)["resolutions"]:
            (plain, per_cpu), (two, _) = (bench_loader(dataset, resolution, w, args.loader_seconds) for w in (0, 2))
            rates = {"workers_0": round(plain, 1), "workers_2": round(two, 1)}
            figures["loader"][resolution] = {**rates, "workers_0_per_cpu_second": round(per_cpu, 1)}
            target = LOADER_TARGETS.get(resolution)
            mark = "" if target is None else f"   >= {target}: {'met' if max(plain, two) >= target else 'MISSED'}"
            say(f"  {resolution:5d} px {plain:12.0f} ({per_cpu:9.0f}) {two:10.0f}{mark}")
    ratio = figures["prepare"][-1]["pyramid_bytes_over_top_png"]
    figures["targets"] = {
        "loader_small_levels_met": all(
            max(figures["loader"][r]["workers_0"], figures["loader"][r]["workers_2"]) >= 2000
            for r in (4, 8, 16, 32, 64)
        ),
        "loader_1024_met": max(figures["loader"][1024]["workers_0"], figures["loader"][1024]["workers_2"]) >= 60,
        "pyramid_bytes_met": ratio <= PYRAMID_TARGET,
    }
    say(f"pyramid bytes at 1024: {ratio}x the top level's lossless bytes (target <= {PYRAMID_TARGET})")
    if args.json:
        print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
