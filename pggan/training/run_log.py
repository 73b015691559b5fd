"""Where a run reports its progress: the console, ``stats.jsonl`` and TensorBoard (rank 0 only).

The trainer builds one record per tick (a flat dict of numbers, plus one entry per quality metric) and hands it
here; this module alone knows how each output shows it. Adding a metric means putting it in the record and, if it
needs a console line of its own, naming it in :data:`METRICS`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pggan.atomic import WriteFailed, append_line, atomic_write_bytes
from pggan.input_files import read_regular

#: Quality metrics a tick record may carry, with their console titles; a dict value is one number per key (per level
#: for SWD, "fake" and "real" for MS-SSIM).
METRICS = {"swd": "SWD x1e3", "fid": "FID", "msssim": "MS-SSIM"}
#: Decimals a metric's values show on the console (2 unless named).
_DECIMALS = {"msssim": 4}
#: Record keys that are counters, not curves: kept out of TensorBoard.
_NOT_PLOTTED = ("tick", "step")


#: A stats.jsonl larger than this is not one pggan wrote (a 12,000-kimg run logs a few hundred KB).
STATS_LIMIT = 1 << 30


class RunLog:
    """The console, ``stats.jsonl`` and TensorBoard outputs of one run directory."""

    def __init__(self, run_dir: Path, tensorboard: bool, console: Callable[[str], None] = print) -> None:
        self.run_dir = Path(run_dir)
        self.stats_path = self.run_dir / "stats.jsonl"
        self.console = console
        self.tensorboard = tensorboard
        self.writer: Any = None
        self.purge_step: int | None = None

    # ------------------------------------------------------------------ stats.jsonl
    def resume_at(self, images_shown: int) -> None:
        """Forget what was logged past a resumed position: it is logged again, so the outputs read as one run.

        ``stats.jsonl`` loses those lines now; TensorBoard drops those events when its writer opens.
        """
        self.purge_step = images_shown + 1 if images_shown else None  # TensorBoard drops steps >= this
        if not self.stats_path.is_file():
            return
        lines = read_regular(self.stats_path, STATS_LIMIT).decode("utf-8", "replace").splitlines()
        kept = []
        for line in lines:
            try:
                if round(float(json.loads(line)["kimg"]) * 1000) > images_shown:
                    continue
            except (ValueError, KeyError, TypeError):
                continue  # a torn or foreign line
            kept.append(line + "\n")
        if len(kept) != len(lines):
            atomic_write_bytes(self.stats_path, lambda handle: handle.write("".join(kept).encode("utf-8")))

    def append(self, record: dict[str, Any]) -> None:
        """One whole line in ``stats.jsonl`` (written before the tick's checkpoint, see ``resume_at``)."""
        append_line(self.stats_path, json.dumps(record))

    # ------------------------------------------------------------------ console and TensorBoard
    def show(self, record: dict[str, Any], images_shown: int) -> None:
        """The tick's console line(s) and TensorBoard scalars."""
        self.console(
            f"tick {record['tick']:<4d} kimg {record['kimg']:9.3f}  res {record['resolution']:4d}  "
            f"alpha {record['alpha']:.3f}  D {record.get('d_loss', 0):+.3f}  G {record.get('g_loss', 0):+.3f}  "
            f"sec/kimg {record['sec_per_kimg']:.2f}  img/s {record['img_per_s']:.1f}  mem {record['memory_mb']:.0f} MB"
            + (f"  skipped {record['nonfinite_steps']} non-finite" if record.get("nonfinite_steps") else "")
        )
        where = f"{record['resolution']}x{record['resolution']}"
        for key, title in METRICS.items():
            value = record.get(key)
            if isinstance(value, dict) and value:
                digits = _DECIMALS.get(key, 2)
                self.console(f"{title} at {where}  " + "  ".join(f"{k}: {v:.{digits}f}" for k, v in value.items()))
            elif isinstance(value, (int, float)):
                self.console(f"{title} at {where}  {value:.3f}")
        writer = self._writer()
        if writer is None:
            return
        with self._tensorboard_errors():
            for key, value in record.items():
                if isinstance(value, dict):
                    for level, number in value.items():
                        writer.add_scalar(f"{key}/{level}", number, images_shown)
                elif key in METRICS:
                    writer.add_scalar(key, value, images_shown)
                elif key not in _NOT_PLOTTED:
                    writer.add_scalar(f"train/{key}", value, images_shown)
            writer.flush()

    def add_grid(self, grid_uint8: Any, images_shown: int) -> None:
        """A snapshot grid (H, W, C uint8) in TensorBoard's images tab."""
        writer = self._writer()
        if writer is not None:
            with self._tensorboard_errors():
                writer.add_image("ema_grid", grid_uint8, images_shown, dataformats="HWC")

    def close(self) -> None:
        if self.writer is not None:
            try:
                self.writer.close()
            except Exception:  # a failed events write is reported where it happened, not again here
                pass
            self.writer = None

    def _writer(self) -> Any:
        if not self.tensorboard:
            return None
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            with self._tensorboard_errors():  # purge_step: events past a resumed position are dropped, like lines
                self.writer = SummaryWriter(log_dir=str(self.run_dir), purge_step=self.purge_step)
        return self.writer

    def _tensorboard_errors(self) -> _ReportWriteErrors:
        return _ReportWriteErrors(f"{self.run_dir}/events.out.tfevents.* (TensorBoard)")


class _ReportWriteErrors:
    """Turn an OSError from TensorBoard's writer into the run's one-line ``WriteFailed``."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: BaseException | None, traceback: Any) -> bool:
        if isinstance(exc, OSError):
            raise WriteFailed(self.what, exc) from None
        return False
