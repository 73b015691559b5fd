"""Choosing each pyramid level's storage encoding by measuring it on the dataset's own first images.

The trade-off: ``raw`` records cost no decoding (a memcpy, so the loader
delivers thousands of small images per second) but take C·R² bytes; lossless
``png`` roughly halves a photo's bytes but costs milliseconds per 1024² image
to decode (``tools/bench_data.py`` measures both on a machine). Bytes only
matter at the big levels (each level holds a quarter of the pixels of the one
above), and decoding speed matters most at the small ones, where training
consumes thousands of images per second. Levels up to 64 px are always raw:
PNG's fixed per-image overhead alone would take a large share of a core to
reach the 2,000 images/s target there, to save bytes that are at most 1/16 of
a pyramid's. A larger level is stored as PNG only when all three hold,
measured on the dataset's first images:

* PNG saves at least ``MIN_SAVING`` of that level's bytes;
* the level is a real share of the pyramid (``MIN_SHARE`` of the raw bytes of
  all levels): the small levels stay raw, their bytes are negligible;
* one core decodes it at least at a quarter of the loader's target rate for
  that level (targets: 2,000 images/s up to 64 px, falling geometrically to 60
  images/s at 1024 px), so four loader workers keep up. Decoding is timed in
  CPU seconds, not wall seconds, so a busy machine does not flip the choice.

On a current CPU this stores the top three levels of a photo pyramid as PNG
and the rest raw: about 1.4x the bytes of the top level alone as PNG, against
about 4x for an all-raw pyramid.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from pggan.data.pyramid import decode_record_into, encode_record

MIN_SAVING = 0.2
MIN_SHARE = 1 / 64
SMALL_LEVEL = 64
SMALL_LEVEL_RATE = 2000.0
TOP_LEVEL_RATE = 60.0
LOADER_WORKERS = 4


def loader_target_rate(resolution: int) -> float:
    """Images/s the loader must deliver at ``resolution``: 2,000 up to 64 px, geometric down to 60 at 1024."""
    if resolution <= SMALL_LEVEL:
        return SMALL_LEVEL_RATE
    slope = math.log(TOP_LEVEL_RATE / SMALL_LEVEL_RATE) / math.log(1024 / SMALL_LEVEL)
    return SMALL_LEVEL_RATE * (resolution / SMALL_LEVEL) ** slope


def choose_encodings(
    samples: list[dict[int, np.ndarray]], resolutions: list[int], channels: int
) -> tuple[dict[int, str], dict[str, Any]]:
    """Pick ``raw`` or ``png`` per level from sample pyramids; return the choice and the measurements behind it."""
    total_raw = sum(channels * r * r for r in resolutions)
    choice: dict[int, str] = {}
    measured: dict[str, Any] = {}
    for r in resolutions:
        raw_bytes = channels * r * r
        encoded = [encode_record(levels[r], "png") for levels in samples]
        png_bytes = float(np.mean([len(e) for e in encoded]))
        out = np.empty((channels, r, r), dtype=np.uint8)
        seconds = []
        for record in encoded:
            began = time.process_time()
            decode_record_into(record, "png", out)
            seconds.append(time.process_time() - began)
        decode_rate = 1.0 / max(float(np.median(seconds)), 1e-6)
        saving = 1.0 - png_bytes / raw_bytes
        share = raw_bytes / total_raw
        needed = loader_target_rate(r) / LOADER_WORKERS
        big_enough = r > SMALL_LEVEL
        use_png = big_enough and saving >= MIN_SAVING and share >= MIN_SHARE and decode_rate >= needed
        choice[r] = "png" if use_png else "raw"
        measured[str(r)] = {
            "raw_bytes": raw_bytes,
            "png_bytes_mean": round(png_bytes, 1),
            "png_saving": round(saving, 3),
            "share_of_pyramid": round(share, 4),
            "png_decode_images_per_s_one_core": round(decode_rate, 1),
            "needed_images_per_s_one_core": round(needed, 1),
            "chosen": choice[r],
        }
    measured["samples"] = len(samples)
    return choice, measured
