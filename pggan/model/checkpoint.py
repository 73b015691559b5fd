"""Checkpoints: the one schema, a checksum verified before unpickling, and networks rebuilt from what they hold.

A checkpoint is a dict of plain tensors and plain Python values, so it loads
with ``torch.load(..., weights_only=True)`` and can never run code. This module
alone knows its keys: every other module reads a checkpoint through the
accessors below (``generator_config``, ``position``, ``run_progress``, ...), and
the trainer's resumable counters travel as one :class:`RunProgress` record.

Writes are atomic (:mod:`pggan.atomic`). The file is the zip archive
``torch.save`` makes, with a SHA-256 of that archive stored in the zip's
end-of-archive comment: still a valid zip that ``torch.load`` reads as is, and
:func:`load_checkpoint` checks the digest first, so bit rot or a truncated copy
is reported as damage instead of being unpickled.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch

from pggan.atomic import WriteFailed, atomic_write_bytes
from pggan.errors import UserError
from pggan.model.networks import Discriminator, Generator

CHECKPOINT_FORMAT = "pggan-checkpoint"
CHECKPOINT_VERSION = 2  # 2: counters in one "progress" record, "dataset" fingerprint, checksum trailer
LATEST_NAME = "latest.pt"
SNAPSHOT_PATTERN = re.compile(r"checkpoint-(\d+\.\d+)\.pt")
_TRAILER_PREFIX = b"pggan-sha256:"
_TRAILER = len(_TRAILER_PREFIX) + 64
_EOCD_SIGNATURE = b"PK\x05\x06"
_EOCD_SIZE = 22  # zip end-of-central-directory record without its comment


class CheckpointDamaged(UserError):
    """The file exists but cannot be used: truncated, corrupted, or not a pggan checkpoint."""


#: Where checkpoints before the timeline kept each event's next position (they become ``timeline`` entries).
_LEGACY_EVENTS = {"next_tick": ("tick",), "next_snapshot": ("snapshot", "grid"), "next_swd": ("swd",),
                  "next_fid": ("fid",)}  # fmt: skip


@dataclass
class RunProgress:
    """Where a run stands: every counter a resume must restore, saved and restored as a whole.

    Positions are counted in images shown. ``timeline`` holds when each recurring event (tick, snapshot, grid,
    each training metric) is next due, as the trainer's timeline saves it; ``None`` means the event is off.
    """

    images_shown: int = 0
    step: int = 0
    tick_index: int = 0
    optimizer_phase: int = -1  # the phase the optimizers' moments belong to
    timeline: dict[str, int | None] = field(default_factory=dict)
    elapsed_seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunProgress:
        known = {f.name for f in dataclasses.fields(cls)}
        progress = cls(**{k: v for k, v in values.items() if k in known})
        if "timeline" not in values:  # saved before the timeline: one key per event
            for key, events in _LEGACY_EVENTS.items():
                for event in events:
                    if values.get(key) is not None:
                        progress.timeline[event] = int(values[key])
        return progress


# ---------------------------------------------------------------- the schema: writing
def network_state(
    generator: Generator,
    discriminator: Discriminator,
    generator_ema: Generator,
    resolution: int,
    alpha: float,
) -> dict[str, Any]:
    """The part of a checkpoint that describes the networks (enough for sampling and SWD)."""

    def cpu(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu() for k, v in sd.items()}

    return networks_checkpoint(
        generator.config,
        discriminator.config,
        cpu(generator.state_dict()),
        cpu(generator_ema.state_dict()),
        cpu(discriminator.state_dict()),
        resolution,
        alpha,
    )


def networks_checkpoint(
    generator_config: dict[str, Any],
    discriminator_config: dict[str, Any],
    generator: dict[str, torch.Tensor],
    generator_ema: dict[str, torch.Tensor],
    discriminator: dict[str, torch.Tensor],
    resolution: int,
    alpha: float,
    **extra: Any,
) -> dict[str, Any]:
    """A networks-only checkpoint from constructor kwargs and state dicts (training, ``pggan-import``)."""
    return {
        "generator_config": dict(generator_config),
        "discriminator_config": dict(discriminator_config),
        "generator": generator,
        "generator_ema": generator_ema,
        "discriminator": discriminator,
        "resolution": int(resolution),
        "alpha": float(alpha),
        **extra,
    }


def training_state(
    networks: dict[str, Any],
    g_optimizer: torch.optim.Optimizer,
    d_optimizer: torch.optim.Optimizer,
    progress: RunProgress,
    noise_rng: torch.Tensor,
    options: dict[str, Any],
    dataset: dict[str, Any] | None,
) -> dict[str, Any]:
    """A resumable checkpoint: ``network_state(...)`` plus optimizers, progress, RNG states, options, dataset."""
    return {
        **networks,
        "g_optimizer": g_optimizer.state_dict(),
        "d_optimizer": d_optimizer.state_dict(),
        "progress": progress.to_dict(),
        "noise_rng": noise_rng,
        "torch_rng": torch.get_rng_state(),
        "options": options,
        "dataset": dataset,
    }


# ---------------------------------------------------------------- the schema: reading
def generator_config(state: dict[str, Any]) -> dict[str, Any]:
    """The Generator constructor's keyword arguments."""
    if "generator_config" not in state:
        raise UserError("the checkpoint holds no generator")
    return dict(state["generator_config"])


def discriminator_config(state: dict[str, Any]) -> dict[str, Any]:
    """The Discriminator constructor's keyword arguments."""
    if "discriminator_config" not in state:
        raise UserError("the checkpoint holds no discriminator")
    return dict(state["discriminator_config"])


def mismatched_networks(state: dict[str, Any]) -> list[str]:
    """The networks whose weights do not have the shapes their configs give (checked on the meta device, so a
    checkpoint claiming huge widths allocates nothing)."""
    with torch.device("meta"):
        shapes = {
            "generator": Generator(**generator_config(state)).state_dict(),
            "discriminator": Discriminator(**discriminator_config(state)).state_dict(),
        }
    wrong = []
    for key, net in (("generator", "generator"), ("generator_ema", "generator"), ("discriminator", "discriminator")):
        expected = {name: tuple(value.shape) for name, value in shapes[net].items()}
        if key in state and {name: tuple(value.shape) for name, value in state[key].items()} != expected:
            wrong.append(key)
    return wrong


def require_generator(state: dict[str, Any], where: str | os.PathLike[str]) -> None:
    """UserError unless the checkpoint holds what sampling needs: a generator and where it stood."""
    missing = [key for key in ("generator_config", "resolution", "alpha") if key not in state]
    if missing:
        raise UserError(f"{where} is an incomplete pggan checkpoint (missing {', '.join(missing)})")


def require_networks(state: dict[str, Any], where: str) -> None:
    """UserError unless the checkpoint holds both networks and where they stood (what ``--init`` starts from)."""
    needed = ("generator_config", "discriminator_config", "generator", "discriminator", "resolution", "alpha")
    missing = [key for key in needed if key not in state]
    if missing:
        raise UserError(f"{where}: the checkpoint lacks {', '.join(missing)}")


def image_channels(state: dict[str, Any]) -> int:
    """Channels of the images the checkpoint's generator makes."""
    return int(generator_config(state).get("channels", 3))


def position(state: dict[str, Any]) -> tuple[int, float]:
    """``(resolution, alpha)``: where the networks stood in the growth schedule when saved."""
    if "resolution" not in state:
        raise UserError("the checkpoint does not say at which resolution it was saved")
    return int(state["resolution"]), float(state.get("alpha", 1.0))


def generation_batch(state: dict[str, Any]) -> int | None:
    """Images per generator call the run used for its grids and metrics at the checkpoint's resolution (its
    per-process training batch there); None for checkpoints written before it was recorded, and imports."""
    value = state.get("generation_batch")
    return int(value) if value else None


def is_resumable(state: dict[str, Any]) -> bool:
    """True for a full training state (optimizers, progress, options), False for networks only."""
    return all(key in state for key in ("options", "g_optimizer", "d_optimizer"))


def run_progress(state: dict[str, Any]) -> RunProgress:
    """The saved counters; version-1 checkpoints kept them as loose keys (and had no ``next_swd``)."""
    if "progress" in state:
        return RunProgress.from_dict(state["progress"])
    return RunProgress.from_dict({k: v for k, v in state.items() if k != "next_swd"})


def saved_options(state: dict[str, Any]) -> dict[str, Any]:
    return dict(state.get("options") or {})


def dataset_fingerprint(state: dict[str, Any]) -> dict[str, Any] | None:
    """What the run was trained on (see ``pggan.data.identity.dataset_fingerprint``); None in older checkpoints."""
    return state.get("dataset")


def restore_rng(state: dict[str, Any], noise: torch.Generator) -> None:
    noise.set_state(state["noise_rng"])
    torch.set_rng_state(state["torch_rng"])


# ---------------------------------------------------------------- files
class _HashingWriter:
    """Passes ``torch.save``'s writes through, hashing them and keeping the first OSError (torch rewraps it)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle = handle
        self.digest = hashlib.sha256()
        self.tail = b""
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        data = bytes(data)
        try:
            written = self.handle.write(data)
        except OSError as exc:
            self.error = self.error or exc
            raise
        self.digest.update(data)
        self.tail = (self.tail + data)[-_EOCD_SIZE:]
        return written

    def flush(self) -> None:
        try:
            self.handle.flush()
        except OSError as exc:
            self.error = self.error or exc
            raise


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``state`` (plain tensors and Python values only) atomically to ``path``, with its checksum.

    A full disk or any other refused write raises :class:`pggan.atomic.WriteFailed` naming ``path``; the
    previous file at ``path`` stays as it was and no temp file remains.
    """
    state = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}

    def write(handle: IO[bytes]) -> None:
        hashing = _HashingWriter(handle)
        try:
            torch.save(state, hashing)
        except RuntimeError:
            if hashing.error is not None:  # torch reports a failed write as "unexpected pos ..."
                raise hashing.error from None
            raise
        tail = hashing.tail
        if len(tail) == _EOCD_SIZE and tail[:4] == _EOCD_SIGNATURE and tail[-2:] == b"\0\0":
            trailer = _TRAILER_PREFIX + hashing.digest.hexdigest().encode("ascii")
            handle.seek(-2, os.SEEK_END)
            handle.write(len(trailer).to_bytes(2, "little") + trailer)

    atomic_write_bytes(path, write)


def _verify_checksum(path: Path) -> None:
    """Check the stored SHA-256 (if the file has one) before anything is unpickled."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        if size < _EOCD_SIZE + _TRAILER:
            return  # too short to carry a trailer; torch.load will say what is wrong
        handle.seek(size - _TRAILER - 2)
        end = handle.read()
        if int.from_bytes(end[:2], "little") != _TRAILER or not end[2:].startswith(_TRAILER_PREFIX):
            return  # an older checkpoint, or another program's file: no checksum to check
        expected = end[2 + len(_TRAILER_PREFIX) :].decode("ascii", "replace")
        digest = hashlib.sha256()
        handle.seek(0)
        remaining = size - _TRAILER - 2
        while remaining > 0:
            chunk = handle.read(min(remaining, 1 << 22))
            if not chunk:
                break
            digest.update(chunk)
            remaining -= len(chunk)
        digest.update(b"\0\0")
    if digest.hexdigest() != expected:
        raise CheckpointDamaged(f"{path} is damaged: its SHA-256 does not match the one saved with it")


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a pggan checkpoint with ``weights_only=True`` after checking its checksum; a UserError for anything else."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise UserError(f"{path} is a directory, not a checkpoint file")
    try:
        _verify_checksum(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # protocol chatter from foreign pickles; they are rejected below
            state = torch.load(path, map_location=map_location, weights_only=True)
    except CheckpointDamaged:
        raise
    except Exception as exc:  # truncated zip, foreign pickle, code-carrying pickle, unreadable file, ...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointDamaged(f"{path} is not a readable pggan checkpoint ({reason[:200]})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointDamaged(f"{path} is not a pggan checkpoint")
    if state.get("version", 0) > CHECKPOINT_VERSION:
        raise UserError(f"{path} was written by a newer pggan (checkpoint version {state['version']})")
    return state


def run_checkpoints(run_dir: str | os.PathLike[str]) -> list[Path]:
    """A run directory's checkpoints, newest first: ``latest.pt``, then ``checkpoint-<kimg>.pt`` by kimg."""
    run_dir = Path(run_dir)
    snapshots = [p for p in run_dir.glob("checkpoint-*.pt") if SNAPSHOT_PATTERN.fullmatch(p.name)]
    snapshots.sort(key=lambda p: float(SNAPSHOT_PATTERN.fullmatch(p.name).group(1)), reverse=True)
    latest = run_dir / LATEST_NAME
    return ([latest] if latest.is_file() else []) + snapshots


@dataclass
class Found:
    """The newest readable checkpoint of a run directory, and the newer ones that could not be read."""

    path: Path
    state: dict[str, Any]
    unreadable: list[tuple[Path, str]]

    def fallback_note(self) -> str | None:
        """One line for the user when a newer checkpoint was skipped; None when the newest one was read."""
        if not self.unreadable:
            return None
        skipped = "; ".join(f"{p.name}: {reason}" for p, reason in self.unreadable)
        return f"skipped unreadable checkpoint(s) ({skipped}); using {self.path.name}"


def find_readable_checkpoint(
    run_dir: str | os.PathLike[str], accept: Callable[[dict[str, Any]], bool] = lambda state: True
) -> Found:
    """The newest checkpoint of ``run_dir`` that loads (checksum, unpickling) and that ``accept`` takes."""
    run_dir = Path(run_dir)
    candidates = run_checkpoints(run_dir)
    if not candidates:
        raise UserError(f"no latest.pt or checkpoint-*.pt in {run_dir}: nothing to load")
    unreadable: list[tuple[Path, str]] = []
    for path in candidates:
        try:
            state = load_checkpoint(path)
        except UserError as exc:
            reason = str(exc).replace(str(path), "").strip(" :")
            unreadable.append((path, reason[:160]))
            continue
        if accept(state):
            return Found(path, state, unreadable)
        unreadable.append((path, "not a resumable training state"))
    raise CheckpointDamaged(
        f"no readable checkpoint in {run_dir}: " + "; ".join(f"{p.name}: {reason}" for p, reason in unreadable)[:400]
    )


def load_checkpoint_or_run(path: str | os.PathLike[str], warn: Callable[[str], None] | None = None) -> dict[str, Any]:
    """A checkpoint file, or a run directory's newest readable checkpoint (``warn`` hears about skipped ones)."""
    path = Path(path)
    if not path.is_dir():
        return load_checkpoint(path)
    found = find_readable_checkpoint(path)
    note = found.fallback_note()
    if note is not None and warn is not None:
        warn(f"warning: {path}: {note}")
    return found.state


# ---------------------------------------------------------------- networks
def build_generator(state: dict[str, Any], ema: bool = True, device: str | torch.device = "cpu") -> Generator:
    """Rebuild the (EMA by default) generator held in a loaded checkpoint, in eval mode."""
    key = "generator_ema" if ema else "generator"
    if key not in state:
        raise UserError(f"checkpoint holds no {key.replace('_', ' ')}")
    generator = Generator(**generator_config(state))
    generator.load_state_dict(state[key])
    return generator.to(device).eval().requires_grad_(False)


def build_discriminator(state: dict[str, Any], device: str | torch.device = "cpu") -> Discriminator:
    """Rebuild the discriminator held in a loaded checkpoint."""
    discriminator = Discriminator(**discriminator_config(state))
    discriminator.load_state_dict(state["discriminator"])
    return discriminator.to(device)


def load_networks(state: dict[str, Any], generator: Generator, discriminator: Discriminator, ema: Generator) -> None:
    """Load the three networks' weights from a checkpoint; UserError naming the mismatch if they do not fit."""
    try:
        generator.load_state_dict(state["generator"])
        discriminator.load_state_dict(state["discriminator"])
        ema.load_state_dict(state["generator_ema"])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise UserError(f"the checkpoint does not fit these networks: {str(exc).splitlines()[0][:200]}") from None


def load_optimizers(
    state: dict[str, Any], g_optimizer: torch.optim.Optimizer, d_optimizer: torch.optim.Optimizer
) -> None:
    try:
        g_optimizer.load_state_dict(state["g_optimizer"])
        d_optimizer.load_state_dict(state["d_optimizer"])
    except (KeyError, RuntimeError, ValueError) as exc:
        raise UserError(f"the checkpoint's optimizer state does not fit: {str(exc).splitlines()[0][:200]}") from None


__all__ = [
    "CheckpointDamaged",
    "Found",
    "RunProgress",
    "WriteFailed",
    "build_discriminator",
    "build_generator",
    "dataset_fingerprint",
    "discriminator_config",
    "find_readable_checkpoint",
    "generation_batch",
    "generator_config",
    "image_channels",
    "is_resumable",
    "load_checkpoint",
    "load_checkpoint_or_run",
    "mismatched_networks",
    "network_state",
    "networks_checkpoint",
    "position",
    "require_generator",
    "require_networks",
    "run_checkpoints",
    "run_progress",
    "save_checkpoint",
    "saved_options",
    "training_state",
]
