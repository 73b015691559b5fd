"""``pggan-swd``: two image sources (dataset, folder, zip, checkpoint, run directory) compared, one table.

The sources are opened and read by :mod:`pggan.metrics.sources`, the distance is :mod:`pggan.metrics.swd`'s;
this module only agrees on size and channels, runs it, and reports.
"""

from __future__ import annotations

import json
import os
from typing import Any

from pggan.devices import resolve_device
from pggan.errors import UserError
from pggan.metrics import swd
from pggan.metrics.sources import DEFAULT_NUM_IMAGES, image_batches, open_image_set


def format_table(result: dict[int | str, float]) -> str:
    """One column per pyramid level plus the average, values ×10³ as in the paper."""
    keys = list(result)
    headers = [str(k) if k == "avg" else f"{k}²" for k in keys]
    cells = [f"{result[k]:.3f}" for k in keys]
    widths = [max(len(h), len(c)) for h, c in zip(headers, cells, strict=True)]
    line = lambda items: "  ".join(item.rjust(w) for item, w in zip(items, widths, strict=True))  # noqa: E731
    return f"SWD ×1e3\n{line(headers)}\n{line(cells)}"


def compare_swd(
    real: str | os.PathLike[str],
    fake: str | os.PathLike[str],
    num_images: int | None = None,
    resolution: int | None = None,
    seed: int = 0,
    device: str = "auto",
    json_path: str | os.PathLike[str] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Everything ``pggan-swd`` does: open both sides, agree on size and channels, measure, write JSON."""
    from tqdm import tqdm

    torch_device = resolve_device(device)
    sides = [open_image_set(real), open_image_set(fake)]
    if resolution is None:
        resolution = min(side.native_resolution for side in sides)
    swd.swd_resolutions(resolution)  # a clear error for sizes SWD cannot use
    fixed = {side.channels for side in sides if side.channels is not None and side.kind != "folder"}
    if len(fixed) > 1:
        raise UserError(f"the two sides have different channel counts ({sorted(fixed)})")
    channels = fixed.pop() if fixed else (1 if all(side.channels == 1 for side in sides) else 3)
    counts = [side.count for side in sides if side.count is not None]
    if num_images is None:
        num_images = min([DEFAULT_NUM_IMAGES, *counts])
    if num_images < 1:
        raise UserError("--num-images must be at least 1")
    batches = [image_batches(side, num_images, resolution, channels, seed, torch_device) for side in sides]
    bar = tqdm(total=2 * num_images, desc="SWD", unit="img", disable=not progress)
    try:
        scores = swd.sliced_wasserstein_pyramid(
            *batches, seed=seed, device=torch_device, progress=bar, num_images=num_images
        )
    finally:
        bar.close()
    report = {
        "real": str(real),
        "fake": str(fake),
        "num_images": num_images,
        "resolution": resolution,
        "channels": channels,
        "seed": seed,
        "swd": {str(k): v for k, v in scores.items()},
    }
    if json_path is not None:
        from pggan.atomic import atomic_write_bytes

        text = json.dumps(report, indent=2) + "\n"
        atomic_write_bytes(json_path, lambda handle: handle.write(text.encode()))
    report["table"] = format_table(scores)
    return report
