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

A checkpoint may also come from someone else (a shared run, an imported
network), so :func:`load_checkpoint` validates everything before any network
is built: the archive holds only uncompressed members (``torch.load`` would
inflate a deflated one in full before noticing it is too large); configs are
dicts of exactly the constructor's arguments with the right types and ranges;
every weight tensor has exactly the shape the config's network has (computed
on the meta device, no memory) and is backed by its own bytes in the file (a
stride-0 tensor claims any shape over four bytes); position, counters, options,
random states and optimizer moments have the types and shapes their users
expect. So a small file cannot make any command allocate more than about three
times its size, and a malformed one is a one-line error in every command.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
import numbers
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
from pggan.input_files import FileTooLarge, NotRegularFile, check_stored_zip, open_regular
from pggan.model.networks import Discriminator, Generator
from pggan.resolutions import is_resolution

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
        """The known fields of ``values``; a UserError unless each is a non-negative number of its type and the
        timeline maps event names to positions (checkpoints before the timeline kept one key per event)."""
        if not isinstance(values, dict):
            raise CheckpointDamaged(f"the run's progress record is a {type(values).__name__}, not a dict")
        known = {f.name: f.type for f in dataclasses.fields(cls)}
        chosen = {k: v for k, v in values.items() if k in known and k != "timeline"}
        for name, value in chosen.items():
            allowed_none = "None" in str(known[name])
            if value is None and allowed_none:
                continue
            if "int" in str(known[name]) and not _is_int(value):
                raise CheckpointDamaged(f"the run's progress field {name} is {_show(value)}, not an integer")
            if not _is_number(value) or value < (-1 if name == "optimizer_phase" else 0):
                raise CheckpointDamaged(f"the run's progress field {name} is {_show(value)}, not a count")
        progress = cls(**chosen)
        if "timeline" in values:
            saved = values["timeline"]
            if not isinstance(saved, dict):
                raise CheckpointDamaged(f"the run's timeline is a {type(saved).__name__}, not a dict")
            pairs = saved.items()
        else:  # saved before the timeline: one key per event
            pairs = [(e, values[k]) for k, events in _LEGACY_EVENTS.items() if k in values for e in events]
        for event, position in pairs:
            if not isinstance(event, str) or not (position is None or (_is_int(position) and position >= 0)):
                raise CheckpointDamaged(f"the run's timeline entry {_show(event)} is {_show(position)}, not a position")
            if position is not None:
                progress.timeline[event] = int(position)
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
    """The Generator constructor's keyword arguments, checked (types, ranges, no unknown keys)."""
    if "generator_config" not in state:
        raise UserError("the checkpoint holds no generator")
    return check_config(state["generator_config"], GENERATOR_FIELDS, "generator_config")


def discriminator_config(state: dict[str, Any]) -> dict[str, Any]:
    """The Discriminator constructor's keyword arguments."""
    if "discriminator_config" not in state:
        raise UserError("the checkpoint holds no discriminator")
    return check_config(state["discriminator_config"], DISCRIMINATOR_FIELDS, "discriminator_config")


def mismatched_networks(state: dict[str, Any]) -> list[str]:
    """The networks whose weights do not have the shapes their configs give (checked on the meta device, so a
    checkpoint claiming huge widths allocates nothing)."""
    wrong = []
    for key, config_key in _NETWORKS:
        expected = network_shapes(state, config_key)
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
        raise UserError(f"{where} is an incomplete pggan checkpoint (missing {', '.join(missing)})")


def image_channels(state: dict[str, Any]) -> int:
    """Channels of the images the checkpoint's generator makes."""
    return int(generator_config(state).get("channels", 3))


def position(state: dict[str, Any]) -> tuple[int, float]:
    """``(resolution, alpha)``: where the networks stood in the growth schedule when saved."""
    if "resolution" not in state:
        raise UserError("the checkpoint does not say at which resolution it was saved")
    _check_position(state)
    return int(state["resolution"]), float(state.get("alpha", 1.0))


def generation_batch(state: dict[str, Any]) -> int | None:
    """Images per generator call the run used for its grids and metrics at the checkpoint's resolution (its
    per-process training batch there); None for checkpoints written before it was recorded, and imports."""
    value = state.get("generation_batch")
    return int(value) if value else None


def is_resumable(state: dict[str, Any]) -> bool:
    """True for a full training state (optimizers, progress, options), False for networks only."""
    return all(key in state for key in ("options", "g_optimizer", "d_optimizer"))


#: What a resume reads: the networks and where they stood, both optimizers, both random states, the options.
TRAINING_KEYS = (
    "generator_config", "discriminator_config", "generator", "generator_ema", "discriminator", "resolution",
    "alpha", "g_optimizer", "d_optimizer", "noise_rng", "torch_rng", "options",
)  # fmt: skip


def require_training_state(state: dict[str, Any], where: str | os.PathLike[str]) -> None:
    """UserError unless the checkpoint holds everything a resume reads (each field was checked at load)."""
    missing = [key for key in TRAINING_KEYS if key not in state]
    if missing:
        raise CheckpointDamaged(f"{where} is an incomplete training state (missing {', '.join(missing)})")


def run_progress(state: dict[str, Any]) -> RunProgress:
    """The saved counters; version-1 checkpoints kept them as loose keys (and had no ``next_swd``)."""
    if "progress" in state:
        return RunProgress.from_dict(state["progress"])
    return RunProgress.from_dict({k: v for k, v in state.items() if k != "next_swd"})


def saved_options(state: dict[str, Any]) -> dict[str, Any]:
    options = state.get("options") or {}
    if not isinstance(options, dict):
        raise CheckpointDamaged(f"the checkpoint's options are a {type(options).__name__}, not a dict")
    return dict(options)


def dataset_fingerprint(state: dict[str, Any]) -> dict[str, Any] | None:
    """What the run was trained on (see ``pggan.data.identity.dataset_fingerprint``); None in older checkpoints."""
    fingerprint = state.get("dataset")
    if fingerprint is not None and not isinstance(fingerprint, dict):
        raise CheckpointDamaged(f"the checkpoint's dataset record is a {type(fingerprint).__name__}, not a dict")
    return fingerprint


def restore_rng(state: dict[str, Any], noise: torch.Generator) -> None:
    noise.set_state(state["noise_rng"])
    torch.set_rng_state(state["torch_rng"])


# ---------------------------------------------------------------- the schema: checking what was read
#: A config's keys and their types: exactly the constructor arguments (``max_resolution`` required).
GENERATOR_FIELDS: dict[str, type] = {
    "max_resolution": int, "channels": int, "latent_size": int, "fmap_base": int, "fmap_max": int,
}  # fmt: skip
DISCRIMINATOR_FIELDS: dict[str, type] = {
    "max_resolution": int, "channels": int, "fmap_base": int, "fmap_max": int, "mbstd_group_size": int,
    "fused_downsample": bool, "mbstd_strided": bool,
}  # fmt: skip
#: Bounds of the integer arguments: far beyond any real network, they keep absurd numbers out of arithmetic.
#: What a network may really cost is bounded by its weights, which must all be in the file.
_INT_BOUNDS = {
    "channels": (1, 1 << 12), "latent_size": (1, 1 << 16), "fmap_base": (1, 1 << 24), "fmap_max": (1, 1 << 16),
    "mbstd_group_size": (0, 1 << 16),
}  # fmt: skip
_NETWORKS = (("generator", "generator_config"), ("generator_ema", "generator_config"),
             ("discriminator", "discriminator_config"))  # fmt: skip
_OPTIMIZERS = (("g_optimizer", "generator_config"), ("d_optimizer", "discriminator_config"))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _show(value: Any) -> str:
    """A short description of a value read from a file, for messages (never its full repr)."""
    if isinstance(value, (bool, int, float)) or value is None:
        return repr(value)[:40]
    if isinstance(value, str):
        return repr(value[:40])
    return f"a {type(value).__name__}"


def check_config(config: Any, fields: dict[str, type], what: str) -> dict[str, Any]:
    """A copy of a network config, or a CheckpointDamaged naming what is wrong with it."""
    if not isinstance(config, dict):
        raise CheckpointDamaged(f"{what} is {_show(config)}, not a dict of constructor arguments")
    unknown = [str(key)[:40] for key in config if key not in fields]
    if unknown:
        raise CheckpointDamaged(f"{what} has unexpected key(s) {', '.join(unknown[:4])}")
    if "max_resolution" not in config:
        raise CheckpointDamaged(f"{what} lacks max_resolution")
    for key, value in config.items():
        kind = fields[key]
        if (kind is bool and not isinstance(value, bool)) or (kind is int and not _is_int(value)):
            wanted = "True or False" if kind is bool else "an integer"
            raise CheckpointDamaged(f"{what}: {key} is {_show(value)}, not {wanted}")
        if key == "max_resolution" and not is_resolution(value):
            raise CheckpointDamaged(f"{what}: max_resolution {value} is not a power of two from 4 to 1024")
        low, high = _INT_BOUNDS.get(key, (0, 1))
        if kind is int and key != "max_resolution" and not low <= value <= high:
            raise CheckpointDamaged(f"{what}: {key} {value} is outside [{low}, {high}]")
    return dict(config)


@functools.lru_cache(maxsize=16)
def _parameter_shapes(kind: str, config: tuple[tuple[str, Any], ...]) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """The state-dict shapes of the network a config describes, built on the meta device (no memory)."""
    with torch.device("meta"):
        network = (Generator if kind == "generator_config" else Discriminator)(**dict(config))
    return tuple((name, tuple(value.shape)) for name, value in network.state_dict().items())


def network_shapes(state: dict[str, Any], config_key: str) -> dict[str, tuple[int, ...]]:
    """``{parameter name: shape}`` of the network ``state[config_key]`` describes (checked config)."""
    fields = GENERATOR_FIELDS if config_key == "generator_config" else DISCRIMINATOR_FIELDS
    config = check_config(state[config_key], fields, config_key)
    try:
        return dict(_parameter_shapes(config_key, tuple(sorted(config.items()))))
    except ValueError as exc:  # a constructor's own check
        raise CheckpointDamaged(f"{config_key}: {str(exc).splitlines()[0][:200]}") from None


def _check_backed(tensor: torch.Tensor, what: str) -> None:
    """A tensor whose elements are its own bytes in the file: dense (any memory format), inside its storage."""
    if tensor.layout != torch.strided or tensor.is_quantized or tensor.is_nested:
        raise CheckpointDamaged(f"{what} is a {tensor.layout} tensor, not a plain one")
    dense = tensor.is_contiguous() or (tensor.ndim == 4 and tensor.is_contiguous(memory_format=torch.channels_last))
    end = (tensor.storage_offset() + tensor.numel()) * tensor.element_size()
    if not dense or end > tensor.untyped_storage().nbytes():
        raise CheckpointDamaged(f"{what} claims shape {tuple(tensor.shape)} but the file does not hold its data")


def _check_tensors(state: dict[str, Any]) -> None:
    """Each network's weights: float tensors with exactly its config's names and shapes, backed, finite."""
    views: dict[tuple[Any, ...], int] = {}
    storages: dict[int, int] = {}
    for key, config_key in _NETWORKS:
        if key not in state:
            continue
        weights = state[key]
        if not isinstance(weights, dict):
            raise CheckpointDamaged(f"{key} is {_show(weights)}, not a state dict")
        for name, tensor in weights.items():
            if not isinstance(tensor, torch.Tensor) or not tensor.is_floating_point():
                raise CheckpointDamaged(f"{key}: {str(name)[:60]} is {_show(tensor)}, not a float tensor")
        if config_key in state:
            expected = network_shapes(state, config_key)
            missing = [name for name in expected if name not in weights]
            extra = [str(name)[:60] for name in weights if name not in expected]
            if missing or extra:
                listed = f"missing {', '.join(missing[:3])}" if missing else f"unexpected {', '.join(extra[:3])}"
                raise CheckpointDamaged(f"{key} does not fit its {config_key} ({listed})")
            for name, shape in expected.items():
                if tuple(weights[name].shape) != shape:
                    raise CheckpointDamaged(
                        f"{key}: {name} has shape {tuple(weights[name].shape)}, its {config_key} says {shape}"
                    )
        for name, tensor in weights.items():
            _check_backed(tensor, f"{key}: {name}")
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
            views[(storage.data_ptr(), tensor.storage_offset(), tuple(tensor.shape))] = (
                tensor.numel() * tensor.element_size()
            )
            if not bool(torch.isfinite(tensor).all()):
                raise CheckpointDamaged(
                    f"{key}: {name} holds NaN or infinite weights (the run had diverged when it was saved)"
                )
    if sum(views.values()) > sum(storages.values()):  # distinct views sharing bytes: claims beyond the file
        raise CheckpointDamaged("the weights claim more data than the file holds (tensors share their bytes)")


def _check_position(state: dict[str, Any]) -> None:
    """``resolution`` a power of two the generator has; ``alpha`` a number in [0, 1]."""
    config = state.get("generator_config")
    top = config.get("max_resolution") if isinstance(config, dict) else None
    top = top if is_resolution(top) else 1024
    if "resolution" in state and not is_resolution(state["resolution"], high=top):
        raise CheckpointDamaged(f"resolution is {_show(state['resolution'])}, not a power of two from 4 to {top}")
    alpha = state.get("alpha", 1.0)
    if not _is_number(alpha) or not 0.0 <= alpha <= 1.0:
        raise CheckpointDamaged(f"alpha is {_show(alpha)}, not a number in [0, 1]")


def _check_optimizer(state: dict[str, Any], key: str, config_key: str) -> None:
    """An Adam state dict whose moments have the shapes of the parameters they belong to, backed by the file."""
    saved = state[key]
    if not isinstance(saved, dict) or not isinstance(saved.get("state"), dict):
        raise CheckpointDamaged(f"{key} is not an optimizer state dict")
    groups = saved.get("param_groups")
    if not isinstance(groups, list) or not all(isinstance(g, dict) and isinstance(g.get("params"), list)
                                               for g in groups):  # fmt: skip
        raise CheckpointDamaged(f"{key} has no list of parameter groups")
    shapes = list(network_shapes(state, config_key).values()) if config_key in state else None
    indices = [index for group in groups for index in group["params"]]
    if not all(_is_int(i) for i in indices) or (shapes is not None and len(indices) != len(shapes)):
        raise CheckpointDamaged(f"{key} does not list one entry per parameter of its network")
    for group in groups:
        for name, value in group.items():
            if name == "params":
                continue
            values = value if name == "betas" and isinstance(value, (list, tuple)) else [value]
            if not all(v is None or isinstance(v, (bool, str)) or _is_number(v) for v in values):
                raise CheckpointDamaged(f"{key}: {str(name)[:40]} is {_show(value)}, not a setting")
    for index, moments in saved["state"].items():
        if index not in indices or not isinstance(moments, dict):
            raise CheckpointDamaged(f"{key} holds moments for a parameter it does not list")
        for name, value in moments.items():
            if not isinstance(value, torch.Tensor):
                if _is_number(value):
                    continue
                raise CheckpointDamaged(f"{key}: {str(name)[:40]} is {_show(value)}, not a tensor")
            _check_backed(value, f"{key}: {name}")
            if name != "step" and shapes is not None and tuple(value.shape) != shapes[indices.index(index)]:
                raise CheckpointDamaged(f"{key}: {name} of parameter {index} has the wrong shape {tuple(value.shape)}")


def _check_random_state(value: Any, key: str) -> None:
    expected = torch.Generator().get_state()
    if not isinstance(value, torch.Tensor) or value.dtype != torch.uint8 or value.shape != expected.shape:
        raise CheckpointDamaged(f"{key} is not a random generator's state ({expected.numel()} bytes)")
    _check_backed(value, key)


def check_checkpoint(state: dict[str, Any]) -> None:
    """Everything present in a loaded checkpoint, checked before any of it is used (CheckpointDamaged).

    Only what is present is checked: a command that needs more asks for it by name (``require_generator``,
    ``is_resumable``) and says what is missing.
    """
    for key, fields in (("generator_config", GENERATOR_FIELDS), ("discriminator_config", DISCRIMINATOR_FIELDS)):
        if key in state:
            check_config(state[key], fields, key)
    _check_position(state)
    _check_tensors(state)
    for key, config_key in _OPTIMIZERS:
        if key in state:
            _check_optimizer(state, key, config_key)
    for key in ("noise_rng", "torch_rng"):
        if key in state:
            _check_random_state(state[key], key)
    if "progress" in state:
        RunProgress.from_dict(state["progress"])
    saved_options(state)
    dataset_fingerprint(state)


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


def _check_archive(path: Path) -> None:
    """Stored-only zip members (see :func:`pggan.input_files.check_stored_zip`), as CheckpointDamaged."""
    try:
        check_stored_zip(path, "pggan checkpoint")
    except (NotRegularFile, FileTooLarge):
        raise
    except UserError as exc:
        raise CheckpointDamaged(str(exc)) from None


def _verify_checksum(path: Path) -> None:
    """Check the stored SHA-256 (if the file has one) before anything is unpickled."""
    size = path.stat().st_size
    with open_regular(path) as handle:
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
        _check_archive(path)
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
    version = state.get("version", 0)
    if not _is_int(version):
        raise CheckpointDamaged(f"{path} is not a pggan checkpoint (version {_show(version)})")
    if version > CHECKPOINT_VERSION:
        raise UserError(f"{path} was written by a newer pggan (checkpoint version {version})")
    try:
        check_checkpoint(state)
    except CheckpointDamaged as exc:
        raise CheckpointDamaged(f"{path} is not a usable pggan checkpoint: {exc}") from None
    except Exception as exc:  # a tensor kind the checks cannot even inspect (sparse, quantized, nested, ...)
        reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise CheckpointDamaged(f"{path} is not a usable pggan checkpoint ({reason})") from None
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
    _check_tensors({k: state[k] for k in ("generator_config", key) if k in state})
    generator = Generator(**generator_config(state))
    generator.load_state_dict(state[key])
    return generator.to(device).eval().requires_grad_(False)


def build_discriminator(state: dict[str, Any], device: str | torch.device = "cpu") -> Discriminator:
    """Rebuild the discriminator held in a loaded checkpoint."""
    _check_tensors({key: state[key] for key in ("discriminator_config", "discriminator") if key in state})
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
    "require_training_state",
    "run_checkpoints",
    "run_progress",
    "save_checkpoint",
    "saved_options",
    "training_state",
]
