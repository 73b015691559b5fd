"""``pggan-eval``: the metrics of every checkpoint of a run, one table row per checkpoint.

The official release's ``util_scripts.evaluate_metrics`` loads every network snapshot of a finished run, feeds
each metric the generator's images and prints one row per snapshot (kimg, evaluation time, one column per metric
value). pggan does the same over ``checkpoint-*.pt`` and ``latest.pt`` in kimg order, with three differences
that follow from pggan's checkpoints: each metric runs at the checkpoint's own resolution and alpha (as training's
``--swd-kimg``/``--fid-kimg``/``--msssim-kimg`` do; the official snapshots always output the full size), the real
side is the run's dataset level at that resolution, and finished values are kept so that an interrupted
evaluation continues where it stopped.

Each metric is the object training uses (``DatasetSWD``, ``DatasetFID``, ``DatasetMSSSIM``): the same images,
the same real-side caches in the run directory (computed once per resolution, and reused when training already
made them with the same dataset, image count and seed), so a row equals what ``pggan-swd DATASET CHECKPOINT``,
``pggan-fid`` and ``pggan-msssim`` print for that checkpoint with the same ``--num-images`` and ``--seed``.

Finished values are appended, one line per checkpoint and metric, to ``eval-metrics.jsonl`` in the run directory,
keyed by the checkpoint (name and images shown) and the metric's settings; a rerun reuses every line whose key
matches and computes the rest. New values also go to the run's TensorBoard under ``eval/…`` tags.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from pggan import defaults
from pggan.errors import UserError
from pggan.model.checkpoint import (
    SNAPSHOT_PATTERN,
    build_generator,
    generation_batch,
    load_checkpoint,
    position,
    run_checkpoints,
    run_progress,
    saved_options,
)
from pggan.pictures.generate import generation_batch_size

METRIC_NAMES = ("swd", "fid", "msssim")
DEFAULT_METRICS = defaults.EVAL_METRICS
STORE_NAME = "eval-metrics.jsonl"
_TITLES = {"swd": "SWD", "fid": "FID", "msssim": "MS-SSIM"}
_DEFAULT_COUNTS = {"swd": defaults.SWD_IMAGES, "fid": defaults.FID_IMAGES, "msssim": defaults.MSSSIM_IMAGES}


# ---------------------------------------------------------------- the arguments
def parse_metrics(text: str) -> list[str]:
    """``"swd,fid"`` → ``["swd", "fid"]``; a one-line error naming an unknown metric."""
    names: list[str] = []
    for part in text.split(","):
        name = part.strip().lower().replace("-", "")
        if not name:
            continue
        if name not in METRIC_NAMES:
            raise UserError(f"unknown metric {part.strip()!r} (choose from {', '.join(METRIC_NAMES)})")
        if name not in names:
            names.append(name)
    if not names:
        raise UserError(f"--metrics names no metric (choose from {', '.join(METRIC_NAMES)})")
    return names


def metric_counts(names: list[str], num_images: int | None) -> dict[str, int]:
    """Images per metric: ``num_images`` for all, or each metric's own default (16,384, 50,000, 20,000)."""
    if num_images is None:
        return {name: _DEFAULT_COUNTS[name] for name in names}
    if "msssim" in names:
        from pggan.metrics.ms_ssim import check_num_images

        check_num_images(num_images)  # even, at least 2
    least = 2 if "fid" in names else 1  # FID's covariance needs two images; SWD one
    if num_images < least:
        raise UserError(f"--num-images must be at least {least}, got {num_images}")
    return {name: num_images for name in names}


@dataclass
class Snapshot:
    """One checkpoint of the run: its file, where it stands, and (for ``latest.pt``) the state already loaded."""

    path: Path
    images_shown: int
    state: dict[str, Any] | None = None

    @property
    def kimg(self) -> float:
        return self.images_shown / 1000


def list_snapshots(run_dir: Path, warn: Callable[[str], None]) -> tuple[list[Snapshot], dict[str, Any] | None]:
    """``checkpoint-*.pt`` by kimg, then ``latest.pt`` unless it is the last snapshot again; and latest's state.

    ``latest.pt`` is rewritten every tick, so it is never behind a snapshot; at the same position it holds the same
    networks as that snapshot and gives no row of its own.
    """
    paths = run_checkpoints(run_dir)
    if not paths:
        raise UserError(f"no checkpoint-*.pt or latest.pt in {run_dir}: nothing to evaluate")
    snapshots = []
    latest_state = None
    for path in reversed(paths):  # oldest snapshot first, latest.pt last
        match = SNAPSHOT_PATTERN.fullmatch(path.name)
        if match is not None:
            snapshots.append(Snapshot(path, round(float(match.group(1)) * 1000)))
            continue
        try:  # latest.pt: its position is in the file
            latest_state = load_checkpoint(path)
        except UserError as exc:
            warn(f"warning: skipped {path.name}: {exc}")
            continue
        shown = run_progress(latest_state).images_shown
        if all(s.images_shown != shown for s in snapshots):
            snapshots.append(Snapshot(path, shown, latest_state))
    return snapshots, latest_state


def run_options(run_dir: Path, latest_state: dict[str, Any] | None) -> dict[str, Any]:
    """The run's saved options (``options.json``, else the newest checkpoint's); {} when neither says."""
    try:
        values = json.loads((run_dir / "options.json").read_text(encoding="utf-8"))
        if isinstance(values, dict):
            return values
    except (OSError, ValueError):
        pass
    if latest_state is not None:
        return saved_options(latest_state)
    return {}


# ---------------------------------------------------------------- finished values, kept for a rerun
class RowStore:
    """``eval-metrics.jsonl``: one whole line per (checkpoint, metric, settings) value, appended as it is found."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines: dict[str, dict[str, Any]] = {}
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            return
        for line in text.splitlines():
            try:
                entry = json.loads(line)
                self.lines[self.key(entry["checkpoint"], entry["images_shown"], entry["metric"], entry["settings"])] = (
                    entry
                )
            except (ValueError, KeyError, TypeError):
                continue  # a torn or foreign line: that value is computed again

    @staticmethod
    def key(checkpoint: str, images_shown: int, metric: str, settings: dict[str, Any]) -> str:
        return json.dumps([checkpoint, int(images_shown), metric, settings], sort_keys=True)

    def get(self, checkpoint: str, images_shown: int, metric: str, settings: dict[str, Any]) -> dict[str, Any] | None:
        return self.lines.get(self.key(checkpoint, images_shown, metric, settings))

    def add(self, entry: dict[str, Any]) -> None:
        from pggan.atomic import append_line

        append_line(self.path, json.dumps(entry))
        self.lines[self.key(entry["checkpoint"], entry["images_shown"], entry["metric"], entry["settings"])] = entry


# ---------------------------------------------------------------- the table
def _columns(names: list[str], swd_levels: list[int] | None) -> list[tuple[str, str, str | int | None]]:
    """(header, metric, sub-key) per value column; SWD shows its average, or every level then the average."""
    columns: list[tuple[str, str, str | int | None]] = []
    for name in names:
        if name == "swd":
            for level in swd_levels or []:
                columns.append((f"SWD-{level}", "swd", str(level)))
            columns.append(("SWD-avg" if swd_levels else "SWD", "swd", "avg"))
        elif name == "fid":
            columns.append(("FID", "fid", None))
        else:
            columns.append(("MS-SSIM", "msssim", "fake"))
            columns.append(("MS-SSIM-real", "msssim", "real"))
    return columns


_FORMATS = {"swd": "{:.3f}", "fid": "{:.4f}", "msssim": "{:.4f}"}
_WIDTH = 12


def _cell(row: dict[str, Any], metric: str, sub: str | int | None) -> str:
    value = row.get(metric)
    if isinstance(value, dict):
        value = value.get(str(sub))
    return "—" if value is None else _FORMATS[metric].format(value)


def format_header(names: list[str], swd_levels: list[int] | None) -> str:
    head = f"{'kimg':<10}{'res':<6}{'alpha':<7}{'seconds':<10}"
    line = f"{'---':<10}{'---':<6}{'---':<7}{'---':<10}"
    for header, _, _ in _columns(names, swd_levels):
        head += f"{header:<{_WIDTH}}"
        line += f"{'---':<{_WIDTH}}"
    return f"{head.rstrip()}\n{line.rstrip()}"


def format_row(row: dict[str, Any], names: list[str], swd_levels: list[int] | None) -> str:
    text = f"{row['kimg']:<10g}{row['resolution']:<6d}{row['alpha']:<7.3f}{row['seconds']:<10.1f}"
    for _, metric, sub in _columns(names, swd_levels):
        text += f"{_cell(row, metric, sub):<{_WIDTH}}"
    return text.rstrip()


# ---------------------------------------------------------------- TensorBoard
class _EvalBoard:
    """The run's TensorBoard: each new value under ``eval/<metric>[/<key>]`` at the checkpoint's images shown."""

    def __init__(self, run_dir: Path, enabled: bool) -> None:
        self.run_dir = run_dir
        self.enabled = enabled
        self.writer: Any = None

    def add(self, metric: str, value: Any, images_shown: int) -> None:
        if not self.enabled or value is None:
            return
        from pggan.atomic import WriteFailed

        try:
            if self.writer is None:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(log_dir=str(self.run_dir), filename_suffix=".eval")
            if isinstance(value, dict):
                for key, number in value.items():
                    self.writer.add_scalar(f"eval/{metric}/{key}", number, images_shown)
            else:
                self.writer.add_scalar(f"eval/{metric}", value, images_shown)
            self.writer.flush()
        except OSError as exc:
            raise WriteFailed(f"{self.run_dir}/events.out.tfevents.* (TensorBoard)", exc) from None

    def close(self) -> None:
        if self.writer is not None:
            try:
                self.writer.close()
            except OSError:
                pass
            self.writer = None


# ---------------------------------------------------------------- the evaluation
def _json_value(metric: str, value: Any) -> Any:
    """A metric's result as stored: SWD and MS-SSIM dicts keyed by strings (None below 16²), FID a float."""
    if isinstance(value, dict):
        return {str(k): float(v) for k, v in value.items()} or None
    return None if value is None else float(value)


def evaluate_run(
    run_dir: str | os.PathLike[str],
    metrics: str = DEFAULT_METRICS,
    num_images: int | None = None,
    inception_path: str | os.PathLike[str] | None = None,
    allow_unverified: bool = False,
    data: str | os.PathLike[str] | None = None,
    seed: int | None = None,
    device: str = "auto",
    json_path: str | os.PathLike[str] | None = None,
    swd_levels: bool = False,
    tensorboard: bool = True,
    echo: Callable[[str], None] = print,
    warn: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
) -> dict[str, Any]:
    """Everything ``pggan-eval`` does; returns the report that ``--json`` writes (``rows``: one per checkpoint).

    Every argument is checked, and the inception weights loaded, before anything is computed or written.
    """
    from pggan.data.loader import read_meta
    from pggan.devices import resolve_device
    from pggan.resolutions import is_power_of_two, swd_resolutions

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} is not a run directory (the folder that holds checkpoint-*.pt and latest.pt)")
    names = parse_metrics(metrics)
    if "fid" in names and inception_path is None:
        raise UserError("--metrics fid needs --inception PATH (the Inception-v3 weights file)")
    counts = metric_counts(names, num_images)
    snapshots, latest_state = list_snapshots(run_dir, warn)
    if not snapshots:
        raise UserError(f"no readable checkpoint in {run_dir}: nothing to evaluate")
    options = run_options(run_dir, latest_state)
    del latest_state  # a latest.pt that gets a row keeps its state in its Snapshot until that row is done
    data = data if data is not None else options.get("data")
    if not data:
        raise UserError(f"{run_dir} does not name its dataset (no options.json): pass --data DATASET")
    data = str(data)
    meta = read_meta(data)
    seed = int(options.get("seed", defaults.SEED)) if seed is None else int(seed)
    torch_device = resolve_device(device)

    # Each checkpoint's fakes are drawn in the batch its checkpoint records, as pggan-swd/-fid/-msssim draw them.
    batch_of_checkpoint = {"size": generation_batch_size()}

    def batch_for(resolution: int) -> int:
        return batch_of_checkpoint["size"]

    evaluators: dict[str, Any] = {}
    if "swd" in names:
        from pggan.metrics.dataset_metrics import DatasetSWD

        evaluators["swd"] = DatasetSWD(data, counts["swd"], seed, torch_device, run_dir, batch_for)
    if "fid" in names:
        from pggan.metrics.dataset_metrics import DatasetFID

        assert inception_path is not None
        evaluators["fid"] = DatasetFID(data, counts["fid"], seed, torch_device, run_dir, str(inception_path),
                                        allow_unverified, batch_for)  # fmt: skip
    if "msssim" in names:
        from pggan.metrics.dataset_metrics import DatasetMSSSIM

        evaluators["msssim"] = DatasetMSSSIM(data, counts["msssim"], seed, torch_device, run_dir, batch_for)

    dataset_id = str(Path(data).resolve())
    settings: dict[str, dict[str, Any]] = {}
    for name in names:
        effective = min(counts[name], int(meta["count"])) if name == "swd" else counts[name]
        settings[name] = {"data": dataset_id, "num_images": effective, "seed": seed}
    if "fid" in names:
        settings["fid"]["inception_sha256"] = evaluators["fid"].inception.sha256

    top = options.get("resolution")
    levels = None
    if swd_levels and "swd" in names:
        top = int(top) if isinstance(top, int) and is_power_of_two(top) else 16
        levels = swd_resolutions(max(16, top))
    store = RowStore(run_dir / STORE_NAME)
    board = _EvalBoard(run_dir, tensorboard)
    report: dict[str, Any] = {
        "run": str(run_dir),
        "data": data,
        "seed": seed,
        "device": str(torch_device),
        "metrics": names,
        "num_images": counts,
        "rows": [],
    }
    echo(format_header(names, levels))
    try:
        for snapshot in snapshots:
            row = _evaluate_snapshot(
                snapshot, names, settings, evaluators, store, board, torch_device, warn, batch_of_checkpoint
            )
            if row is None:
                continue
            report["rows"].append(row)
            echo(format_row(row, names, levels))
            if json_path is not None:
                _write_json(json_path, report)
    finally:
        board.close()
    return report


def _evaluate_snapshot(
    snapshot: Snapshot,
    names: list[str],
    settings: dict[str, dict[str, Any]],
    evaluators: dict[str, Any],
    store: RowStore,
    board: _EvalBoard,
    device: torch.device,
    warn: Callable[[str], None],
    batch_of_checkpoint: dict[str, int],
) -> dict[str, Any] | None:
    """One row: stored values where their key matches, the others computed (and stored, and sent to TensorBoard)."""
    name = snapshot.path.name
    row: dict[str, Any] = {"checkpoint": name, "kimg": snapshot.kimg, "images_shown": snapshot.images_shown}
    found = {m: store.get(name, snapshot.images_shown, m, settings[m]) for m in names}
    missing = [m for m in names if found[m] is None]
    seconds = sum(float(entry["seconds"]) for entry in found.values() if entry is not None)
    if missing:
        state = snapshot.state
        if state is None:
            try:
                state = load_checkpoint(snapshot.path)
            except UserError as exc:
                warn(f"warning: skipped {name}: {exc}")
                return None
        snapshot.state = None  # latest.pt's state is not kept past its row
        resolution, alpha = position(state)
        batch_of_checkpoint["size"] = generation_batch_size(generation_batch(state))
        generator = build_generator(state, ema=True, device=device)
        del state
        for metric in missing:
            start = time.perf_counter()
            value = _json_value(metric, evaluators[metric].evaluate(generator, resolution, alpha))
            spent = time.perf_counter() - start
            seconds += spent
            board.add(metric, value, snapshot.images_shown)
            entry = {"checkpoint": name, "images_shown": snapshot.images_shown, "resolution": resolution,
                     "alpha": alpha, "metric": metric, "settings": settings[metric], "value": value,
                     "seconds": spent}  # fmt: skip
            store.add(entry)
            found[metric] = entry
        del generator
    first = next(entry for entry in found.values() if entry is not None)
    row.update(resolution=int(first["resolution"]), alpha=float(first["alpha"]), seconds=seconds)
    for metric in names:
        row[metric] = found[metric]["value"] if found[metric] is not None else None
    return row


def _write_json(path: str | os.PathLike[str], report: dict[str, Any]) -> None:
    from pggan.atomic import atomic_write_bytes

    text = json.dumps(report, indent=2) + "\n"
    atomic_write_bytes(path, lambda handle: handle.write(text.encode()))
