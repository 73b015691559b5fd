"""``pggan-prepare --verify``: prove a dataset is whole and that its pyramid is what the paper's tool makes.

Checks every key of every level exists and decodes to (C, R, R), that each
lower level is exactly what the dataset's ``level_rule`` makes from the top
level (``float-rint``: the official dataset_tool.py's float cascade rounded
with np.rint, so bit for bit the official TFRecords' levels; datasets from
before that rule: the 2×2 box filter of the level above, ±1 for rounding), and
that the LMDB holds no stray records. Cheap enough to run after copying a dataset
to a new machine.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pggan.data.pyramid import (
    LEGACY_LEVEL_RULE,
    META_KEY,
    DatasetDamaged,
    box_downsample,
    build_levels,
    decode_record_into,
    level_rule,
    read_meta,
    record_key,
    shared_env,
)

MAX_LISTED = 20


@dataclass
class VerifyResult:
    """Outcome of :func:`verify_dataset`: ``problems`` is empty when the dataset is sound."""

    path: Path
    count: int
    resolutions: list[int]
    channels: int
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def summary(self) -> str:
        """One line for the terminal."""
        levels = ", ".join(str(r) for r in self.resolutions)
        if self.ok:
            return (
                f"OK: {self.path}: {self.count} images × {len(self.resolutions)} levels ({levels}), "
                f"{self.channels} channel{'s' if self.channels > 1 else ''}; levels match the box filter"
            )
        return f"{self.path}: {self.problem_count} problem{'s' if self.problem_count > 1 else ''} found"


def verify_dataset(path: str | os.PathLike[str], progress: bool = True) -> VerifyResult:
    """Check the dataset at ``path`` record by record; UserError only if it is not a finished dataset at all."""
    import lmdb
    from tqdm import tqdm

    path = Path(path)
    try:
        meta = read_meta(path)
    except DatasetDamaged as exc:  # truncated or unreadable: a finding of the check, not a reason to crash
        result = VerifyResult(path, 0, [], 0)
        result.problems.append(str(exc))
        result.problem_count = 1
        return result
    count, channels = int(meta["count"]), int(meta["channels"])
    resolutions = sorted(int(r) for r in meta["resolutions"])
    encoding = {int(r): e for r, e in meta["encoding"].items()}
    result = VerifyResult(path, count, resolutions, channels)
    rule = level_rule(meta)

    def problem(text: str) -> None:
        result.problem_count += 1
        if len(result.problems) < MAX_LISTED:
            result.problems.append(text)

    env = shared_env(path)
    with env.begin(buffers=True) as txn:
        entries = env.stat()["entries"]
        expected = count * len(resolutions) + 1
        if entries != expected:
            problem(f"the LMDB holds {entries} records, expected {expected} ({count} images × levels + meta)")
        if txn.get(META_KEY) is None:
            problem("the meta record is missing")
        bar = tqdm(range(count), unit="img", desc="verify", disable=not progress, file=sys.stderr)
        for index in bar:
            above: np.ndarray | None = None
            expected_levels: dict[int, np.ndarray] | None = None  # float-rint: all levels from the top one
            for r in reversed(resolutions):  # top level first, so each level can be checked against the one above
                key = record_key(r, index)
                try:
                    record = txn.get(key)
                except lmdb.Error as exc:
                    problem(f"record {key.decode()} cannot be read ({str(exc).splitlines()[0][:120]})")
                    above = None
                    continue
                if record is None:
                    problem(f"record {key.decode()} is missing")
                    above = None
                    continue
                image = np.empty((channels, r, r), dtype=np.uint8)
                try:
                    decode_record_into(record, encoding[r], image)
                except ValueError as exc:
                    problem(f"record {key.decode()} does not decode to {channels}×{r}×{r}: {exc}")
                    above = None
                    continue
                if r == resolutions[-1] and rule != LEGACY_LEVEL_RULE:
                    expected_levels = build_levels(image.transpose(1, 2, 0), rule)
                elif expected_levels is not None:
                    worst = _worst(expected_levels[r].transpose(2, 0, 1), image)
                    if worst > 0:
                        problem(
                            f"record {key.decode()} is not the 2×2 box filter of level {2 * r} "
                            f"(the float cascade from level {resolutions[-1]}, rounded with np.rint; "
                            f"off by up to {worst})"
                        )
                elif above is not None and rule == LEGACY_LEVEL_RULE:
                    worst = _worst(box_downsample(above.transpose(1, 2, 0)).transpose(2, 0, 1), image)
                    if worst > 1:
                        problem(
                            f"record {key.decode()} is not the 2×2 box filter of level {2 * r} (off by up to {worst})"
                        )
                above = image
    return result


def _worst(expected: np.ndarray, image: np.ndarray) -> int:
    return int(np.abs(expected.astype(np.int16) - image.astype(np.int16)).max())
