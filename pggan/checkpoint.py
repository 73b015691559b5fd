"""Checkpoints: atomic writes, code-free loads, and networks rebuilt from what they hold.

A checkpoint is a dict of plain tensors and plain Python values, so it loads
with ``torch.load(..., weights_only=True)`` and can never run code. It is
written to a temporary file in the same directory, flushed to disk, then
renamed over the target: a crash or ``kill -9`` mid-save leaves the previous
file intact.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from pggan.errors import UserError
from pggan.networks import Discriminator, Generator

CHECKPOINT_FORMAT = "pggan-checkpoint"
CHECKPOINT_VERSION = 1


def atomic_write_bytes(path: str | os.PathLike[str], writer: Any) -> None:
    """Call ``writer(file_object)`` on a temp file beside ``path``, fsync, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            writer(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def save_checkpoint(state: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``state`` (plain tensors and Python values only) atomically to ``path``."""
    state = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state}
    atomic_write_bytes(path, lambda handle: torch.save(state, handle))


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a pggan checkpoint with ``weights_only=True``; a UserError for anything else."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"checkpoint not found: {path}")
    if path.is_dir():
        raise UserError(f"{path} is a directory, not a checkpoint file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # protocol chatter from foreign pickles; they are rejected below
            state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle, code-carrying pickle, ...
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path} is not a readable pggan checkpoint ({reason[:200]})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path} is not a pggan checkpoint")
    if state.get("version", 0) > CHECKPOINT_VERSION:
        raise UserError(f"{path} was written by a newer pggan (checkpoint version {state['version']})")
    return state


def build_generator(state: dict[str, Any], ema: bool = True, device: str | torch.device = "cpu") -> Generator:
    """Rebuild the (EMA by default) generator held in a loaded checkpoint, in eval mode."""
    key = "generator_ema" if ema else "generator"
    if key not in state:
        raise UserError(f"checkpoint holds no {key.replace('_', ' ')}")
    generator = Generator(**state["generator_config"])
    generator.load_state_dict(state[key])
    return generator.to(device).eval().requires_grad_(False)


def build_discriminator(state: dict[str, Any], device: str | torch.device = "cpu") -> Discriminator:
    """Rebuild the discriminator held in a loaded checkpoint."""
    discriminator = Discriminator(**state["discriminator_config"])
    discriminator.load_state_dict(state["discriminator"])
    return discriminator.to(device)


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

    return {
        "generator_config": generator.config,
        "discriminator_config": discriminator.config,
        "generator": cpu(generator.state_dict()),
        "generator_ema": cpu(generator_ema.state_dict()),
        "discriminator": cpu(discriminator.state_dict()),
        "resolution": int(resolution),
        "alpha": float(alpha),
    }
