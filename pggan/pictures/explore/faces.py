"""The explore page's engine, without HTTP: checkpoints of a run, one shared generator each, faces as PNG bytes.

Everything here is the library of the "pick, steer and replay" commands used as it is: the seed rule
(:mod:`pggan.pictures.latents`), directions applied by :func:`~pggan.pictures.directions.apply_direction`,
faces drawn one latent per generator call (:func:`~pggan.pictures.generate.generate_faces_uint8`), PNGs from the
one encoder (:func:`~pggan.pictures.grids.png_bytes`) and the morph video of ``pggan-sample --keyframe-seeds``
(:func:`~pggan.pictures.video.render_morph_video`). So the face of seed S served here is the same bytes as the
file ``pggan-sample --seeds S`` writes, and a script may use either.

What a web server adds, and why:

- **One generator per checkpoint, shared by every request** (at most :data:`MAX_LOADED_GENERATORS` checkpoints
  loaded at once, least recently used dropped first): a 1024² generator is 92 MB of weights, far too much to copy
  per request. Requests take turns on it (one render lock): on a CPU two faces drawn at once would each take
  twice as long anyway, and on a GPU the turns keep memory bounded.
- **Stale requests dropped**: a request waiting for its turn asks ``still_wanted()`` (the server checks whether the
  browser has hung up) and is dropped unrendered when the answer is no; the page aborts the requests of a page it
  has left, so paging fast through a 1024² network does not queue minutes of faces nobody will see.
- **A bounded cache** (:class:`ByteCache`, ``cache_mb``): the rendered faces (uint8) and their PNGs, least
  recently used dropped first, so going back a page is instant and memory stays flat however long it runs.
- **Live runs**: the checkpoint list is read from the run directory at each request, and a checkpoint file that
  changed (``latest.pt`` rewritten by a training run) is loaded again: its cached faces are keyed by the file's
  size and modification time and so are never served for the new weights.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pggan import defaults
from pggan.devices import resolve_device
from pggan.errors import UserError
from pggan.model.checkpoint import (
    LATEST_NAME,
    SNAPSHOT_PATTERN,
    find_readable_checkpoint,
    load_checkpoint,
    run_checkpoints,
    run_progress,
)
from pggan.pictures.directions import SEFA_PREFIX, Factorization, apply_direction, load_direction_file, sefa_directions
from pggan.pictures.generate import generate_faces_uint8
from pggan.pictures.grids import make_grid, png_bytes
from pggan.pictures.latents import MAX_SEED, check_seed, seed_latents, seed_path
from pggan.pictures.sample_command import image_file_name, sampler_from_state
from pggan.pictures.video import render_morph_video

#: Faces per page of the browse grid (4×4).
PAGE_SIZE = 16
#: Closed-form directions that get a slider (``sefa:0`` … ``sefa:N-1``); any ``sefa:K`` works in a URL.
DEFAULT_SEFA_SLIDERS = 5
#: Strengths beyond this are refused: SeFa and InterFaceGAN edits of PGGAN faces live within about ±3, and at
#: ±10 a face is long gone (the latent has moved √512/2 ≈ 11 away on its sphere of radius 22.6).
MAX_STRENGTH = 10.0
#: Directions combined in one face.
MAX_EDITS = 16
#: Faces a morph travels through.
MAX_MORPH_SEEDS = 16
#: Frames of one interpolation strip (``/morph.png``).
MAX_STRIP_FRAMES = 64
#: Frames of one exported mp4 (20 s at 30 fps): at 1024² on a CPU that is already an hour of drawing.
MAX_VIDEO_FRAMES = 600
MAX_FPS = 60
#: Faces cache, MiB (rendered uint8 faces and their PNGs): ~40 faces at 1024², thousands at 32².
DEFAULT_CACHE_MB = 256
#: Checkpoints whose generators stay loaded at once (a paper-width one is 92 MB of weights).
MAX_LOADED_GENERATORS = 2
#: A name given with ``--direction NAME=FILE.npy``: goes into URLs as it is.
DIRECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
LATEST_ID = "latest"
#: How often a request waiting for its turn checks that its client is still there, seconds.
TURN_POLL_SECONDS = 0.05


class ExploreError(UserError):
    """A request that cannot be served, with the HTTP status that says why (400: a bad parameter)."""

    status = 400


class NotFound(ExploreError):
    """An unknown checkpoint (or page): 404."""

    status = 404


class Busy(ExploreError):
    """Another video export is running: 503, try again when it has finished."""

    status = 503


class Unreadable(ExploreError):
    """A listed checkpoint file that cannot be loaded (damaged, foreign, or of another latent size): 500."""

    status = 500


class Dropped(Exception):
    """The client left before its face was drawn: nothing is rendered and nothing is sent."""


@dataclass(frozen=True)
class CheckpointEntry:
    """One checkpoint the page can show: its id in URLs, its file, and its kimg when the name tells it."""

    id: str
    path: Path
    kimg: float | None


@dataclass
class LoadedCheckpoint:
    """A checkpoint's generator, loaded once and shared by every request, and what it was loaded from."""

    entry: CheckpointEntry
    identity: tuple[str, int, int]  # (path, size, mtime_ns): a rewritten file is another checkpoint
    generator: torch.nn.Module
    resolution: int
    alpha: float
    kimg: float | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    factorization: Factorization | None = None

    def sefa(self) -> Factorization:
        """This generator's closed-form directions, computed on first use (0.3 s at paper widths)."""
        with self.lock:
            if self.factorization is None:
                self.factorization = sefa_directions(self.generator)
            return self.factorization


def checkpoint_id(path: Path) -> str:
    """The id of a checkpoint in URLs: ``latest``, the kimg of ``checkpoint-<kimg>.pt`` (``20``, ``40.016``),
    or the file's stem for other names."""
    if path.name == LATEST_NAME:
        return LATEST_ID
    match = SNAPSHOT_PATTERN.fullmatch(path.name)
    if match is None:
        return path.stem
    return f"{float(match.group(1)):.3f}".rstrip("0").rstrip(".")


def list_checkpoints(source: Path) -> list[CheckpointEntry]:
    """A run directory's checkpoints by kimg (``latest`` last), or the one checkpoint file ``source`` names."""
    if not source.is_dir():
        return [CheckpointEntry(checkpoint_id(source), source, None)]
    entries = []
    for path in run_checkpoints(source):
        match = SNAPSHOT_PATTERN.fullmatch(path.name)
        entries.append(CheckpointEntry(checkpoint_id(path), path, float(match.group(1)) if match else None))
    snapshots = sorted((e for e in entries if e.kimg is not None), key=lambda e: e.kimg or 0.0)
    return snapshots + [e for e in entries if e.kimg is None]


def parse_direction_specs(specs: Sequence[str]) -> dict[str, Path]:
    """``--direction NAME=FILE.npy`` (or just ``FILE.npy``, named by its stem) → ``{name: path}``, checked.

    Names go into URLs and onto sliders, so they are short and plain (letters, digits, ``_ . -``); ``sefa:K``
    names the closed-form directions and cannot be taken by a file.
    """
    chosen: dict[str, Path] = {}
    for spec in specs:
        name, sep, file = spec.partition("=")
        if not sep:
            name, file = Path(spec).stem, spec
        name, file = name.strip(), file.strip()
        if not DIRECTION_NAME.fullmatch(name):
            raise UserError(
                f"--direction {spec!r}: a name is 1-64 letters, digits, '_', '.' or '-' (e.g. smile=smile.npy)"
            )
        if name in chosen:
            raise UserError(f"--direction: the name {name!r} is given twice")
        path = Path(file)
        if not path.is_file():
            raise UserError(f"--direction {spec!r}: {file} is not a file")
        chosen[name] = path
    return chosen


def shrink(face: np.ndarray, size: int) -> np.ndarray:
    """An HWC uint8 face box-filtered down to at most ``size`` pixels wide (a power-of-two factor).

    The mean of each f×f block, rounded half to even: a thumbnail for the browse grid of a 1024² network, where
    sixteen full faces would be 30 MB per page through an SSH tunnel. Faces already that small come back as
    they are.
    """
    width = face.shape[1]
    if width <= size:
        return face
    factor = width // size
    height, channels = face.shape[0] // factor, face.shape[2]
    blocks = face.reshape(height, factor, size, factor, channels).astype(np.float64)
    return np.rint(blocks.mean(axis=(1, 3))).astype(np.uint8)


class ByteCache:
    """A least-recently-used map bounded by the bytes of its values (numpy arrays or bytes), thread-safe."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, int(max_bytes))
        self.entries: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self.lock = threading.Lock()

    def get(self, key: Any, count: bool = True) -> Any:
        """The value of ``key`` (now the most recently used) or None; ``count``: add to the hit/miss figures."""
        with self.lock:
            found = self.entries.get(key)
            if found is None:
                self.misses += count
                return None
            self.entries.move_to_end(key)
            self.hits += count
            return found[0]

    def put(self, key: Any, value: Any) -> None:
        size = value.nbytes if isinstance(value, np.ndarray) else len(value)
        if size > self.max_bytes:
            return
        with self.lock:
            if key in self.entries:
                self.bytes -= self.entries.pop(key)[1]
            self.entries[key] = (value, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                self.bytes -= self.entries.popitem(last=False)[1][1]

    def stats(self) -> dict[str, int]:
        with self.lock:
            return {
                "entries": len(self.entries),
                "bytes": self.bytes,
                "max_bytes": self.max_bytes,
                "hits": self.hits,
                "misses": self.misses,
            }


class TakingTurns(torch.nn.Module):
    """The shared generator seen through the render lock: each call waits its turn, so a video export of
    hundreds of frames lets the page's faces through between its batches. Wraps, never copies, the generator;
    a call after the client has hung up raises :class:`Dropped` (the export stops)."""

    def __init__(self, generator: torch.nn.Module, turn: Callable[[], Any]) -> None:
        super().__init__()
        self.generator = generator
        self.turn = turn
        self.latent_size = generator.latent_size

    def forward(self, latents: torch.Tensor, resolution: int, alpha: float) -> torch.Tensor:
        with self.turn():
            return self.generator(latents, resolution, alpha)


def check_strength(strength: float) -> float:
    if not np.isfinite(strength) or abs(strength) > MAX_STRENGTH:
        raise ExploreError(f"strength must be a number from -{MAX_STRENGTH:g} to {MAX_STRENGTH:g}, got {strength}")
    return float(strength)


def check_size(size: int | None) -> int | None:
    if size is not None and (size < 4 or size > 1024 or size & (size - 1)):
        raise ExploreError(f"size must be a power of two from 4 to 1024, got {size}")
    return size


class Explorer:
    """A checkpoint (or a run directory's checkpoints) ready to draw faces for many clients at once.

    Loads the default checkpoint (a run's newest readable one, as ``pggan-sample`` does) and the direction files
    at once, so a bad argument is refused before the server listens. Every method checks its arguments and
    raises :class:`ExploreError` (status 400/404/500/503) with a one-line message.
    """

    def __init__(
        self,
        source: str | os.PathLike[str],
        *,
        device: str = "auto",
        raw: bool = False,
        directions: Sequence[str] = (),
        sefa_sliders: int = DEFAULT_SEFA_SLIDERS,
        cache_mb: float = DEFAULT_CACHE_MB,
        max_generators: int = MAX_LOADED_GENERATORS,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        if sefa_sliders < 0:
            raise UserError(f"--sefa must be 0 or more, got {sefa_sliders}")
        if not cache_mb >= 0:
            raise UserError(f"--cache-mb must be 0 or more, got {cache_mb}")
        if max_generators < 1:
            raise UserError(f"at least one generator must stay loaded, got {max_generators}")
        files = parse_direction_specs(directions)
        self.source = Path(source)
        if not self.source.exists():
            raise UserError(f"checkpoint not found: {self.source}")
        self.device = resolve_device(device)
        self.raw = raw
        self.max_generators = max_generators
        self.cache = ByteCache(int(cache_mb * 2**20))
        self.render_lock = threading.Lock()
        self.export_lock = threading.Lock()
        self.guard = threading.Lock()  # the loaded-generators table
        self.loading: dict[str, threading.Lock] = {}
        self.loaded: OrderedDict[tuple[str, int, int], LoadedCheckpoint] = OrderedDict()
        self.renders = 0  # faces drawn (not served from the cache): how tests see a request was dropped

        if self.source.is_dir():
            found = find_readable_checkpoint(self.source)
            note = found.fallback_note()
            if note is not None and warn is not None:
                warn(f"warning: {self.source}: {note}")
            path, state = found.path, found.state
        else:
            path, state = self.source, load_checkpoint(self.source)
        self.default_id = checkpoint_id(path)
        entry = CheckpointEntry(self.default_id, path, None)
        first = self.adopt(entry, state)
        self.latent_size = int(first.generator.latent_size)
        self.channels = int(first.generator.config.get("channels", 3))
        self.sefa_sliders = min(sefa_sliders, self.latent_size)
        self.direction_files = files
        self.file_vectors = {name: load_direction_file(p, self.latent_size) for name, p in files.items()}

    # ------------------------------------------------------------ checkpoints and their generators
    def checkpoints(self) -> list[CheckpointEntry]:
        """The checkpoints there are now (a live run grows new ones)."""
        return list_checkpoints(self.source)

    def entry(self, checkpoint: str | None) -> CheckpointEntry:
        """The checkpoint with this id (``None``: the default one); :class:`NotFound` for other ids."""
        wanted = self.default_id if checkpoint is None else checkpoint.strip()
        entries = self.checkpoints()
        for entry in entries:
            if entry.id == wanted or entry.path.name in (wanted, f"{wanted}.pt"):
                return entry
        known = ", ".join(e.id for e in entries[:12]) + (" …" if len(entries) > 12 else "")
        raise NotFound(f"no checkpoint {wanted!r} here (there are: {known})")

    def identity(self, path: Path) -> tuple[str, int, int]:
        try:
            stat = path.stat()
        except OSError:
            raise NotFound(f"checkpoint {path.name} is gone") from None
        return (str(path), stat.st_size, stat.st_mtime_ns)

    def adopt(self, entry: CheckpointEntry, state: dict[str, Any]) -> LoadedCheckpoint:
        """Build the generator of a loaded checkpoint state and keep it (the least recently used one goes)."""
        identity = self.identity(entry.path)
        generator, resolution, alpha = sampler_from_state(state, entry.path, self.raw, self.device)
        kimg = run_progress(state).images_shown / 1000 if ("progress" in state or "images_shown" in state) else None
        loaded = LoadedCheckpoint(entry, identity, generator, resolution, alpha, kimg)
        with self.guard:
            self.loaded[identity] = loaded
            while len(self.loaded) > self.max_generators:
                self.loaded.popitem(last=False)
        return loaded

    def generator_for(self, checkpoint: str | None) -> LoadedCheckpoint:
        """The shared generator of a checkpoint, loaded on first use; one load at a time per file."""
        entry = self.entry(checkpoint)
        identity = self.identity(entry.path)
        with self.guard:
            loaded = self.loaded.get(identity)
            if loaded is not None:
                self.loaded.move_to_end(identity)
                return loaded
            loading = self.loading.setdefault(str(entry.path), threading.Lock())
        with loading:
            with self.guard:
                loaded = self.loaded.get(identity)
            if loaded is not None:
                return loaded
            try:
                state = load_checkpoint(entry.path)
                loaded = self.adopt(entry, state)
            except ExploreError:
                raise
            except UserError as exc:
                raise Unreadable(f"checkpoint {entry.id} cannot be used: {str(exc).splitlines()[0][:200]}") from None
            if int(loaded.generator.latent_size) != self.latent_size:
                with self.guard:
                    self.loaded.pop(identity, None)
                raise Unreadable(
                    f"checkpoint {entry.id} has latents of {loaded.generator.latent_size} numbers, the others "
                    f"{self.latent_size}: it is not from this run"
                )
            return loaded

    # ------------------------------------------------------------ what the page asks for
    def info(self) -> dict[str, Any]:
        """What ``GET /api/info`` answers: the network, its checkpoints, directions and the limits of requests."""
        with self.guard:
            loaded = {lc.entry.path: lc for lc in self.loaded.values()}
        checkpoints = []
        for entry in self.checkpoints():
            known = loaded.get(entry.path)
            item: dict[str, Any] = {"id": entry.id, "file": entry.path.name, "kimg": entry.kimg}
            if known is not None:
                item.update(kimg=known.kimg if known.kimg is not None else entry.kimg,
                            resolution=known.resolution, alpha=known.alpha)  # fmt: skip
            checkpoints.append(item)
        default = self.generator_for(None)
        sefa = default.sefa()
        directions: list[dict[str, Any]] = [
            {"name": f"{SEFA_PREFIX}{k}", "kind": "sefa", "eigenvalue": float(sefa.eigenvalues[k])}
            for k in range(self.sefa_sliders)
        ]
        directions += [{"name": name, "kind": "file", "file": p.name} for name, p in self.direction_files.items()]
        return {
            "source": str(self.source),
            "checkpoint": self.default_id,
            "kimg": default.kimg,
            "resolution": default.resolution,
            "alpha": default.alpha,
            "channels": self.channels,
            "latent_size": self.latent_size,
            "generator": "raw" if self.raw else "ema",
            "device": str(self.device),
            "checkpoints": checkpoints,
            "directions": directions,
            "limits": {
                "page_size": PAGE_SIZE,
                "max_seed": MAX_SEED,
                "max_strength": MAX_STRENGTH,
                "max_edits": MAX_EDITS,
                "max_morph_seeds": MAX_MORPH_SEEDS,
                "max_strip_frames": MAX_STRIP_FRAMES,
                "max_video_frames": MAX_VIDEO_FRAMES,
                "max_fps": MAX_FPS,
            },
            "cache": self.cache.stats(),
        }

    def direction_vector(self, name: str, loaded: LoadedCheckpoint) -> torch.Tensor:
        """The unit vector of a direction name: ``sefa:K`` of this checkpoint's generator, or a file's."""
        if name in self.file_vectors:
            return self.file_vectors[name]
        if name.lower().startswith(SEFA_PREFIX):
            index = name[len(SEFA_PREFIX) :]
            if re.fullmatch(r"\d{1,6}", index) and int(index) < self.latent_size:
                return loaded.sefa().directions[int(index)]
            raise ExploreError(f"direction {name!r}: closed-form directions are sefa:0 … sefa:{self.latent_size - 1}")
        known = ", ".join([f"{SEFA_PREFIX}K", *self.file_vectors])
        raise ExploreError(f"unknown direction {name!r} (known: {known})")

    def face_latent(self, seed: int, edits: Sequence[tuple[str, float]], loaded: LoadedCheckpoint) -> torch.Tensor:
        """The latent ``(1, n)`` of seed ``seed`` moved by every ``(direction, strength)`` of ``edits``.

        Strength-0 edits are left out, so the plain face has one latent and one cache entry. One edit is
        ``apply_direction(z, strength × direction, 1)`` — the very numbers ``pggan-sample --direction`` adds,
        so a one-direction face equals its one-column grid bit for bit; several add up, in the order given.
        """
        latent = seed_latents([check_seed(seed)], self.latent_size)
        moves = [(name, check_strength(strength)) for name, strength in edits]
        if len(moves) > MAX_EDITS:
            raise ExploreError(f"{len(moves)} directions at once; at most {MAX_EDITS}")
        names = [name for name, _ in moves]
        if len(set(names)) != len(names):
            raise ExploreError("a direction is given twice; give each once with its strength")
        vectors = [(self.direction_vector(name, loaded), strength) for name, strength in moves]
        step: torch.Tensor | None = None
        for vector, strength in vectors:
            if strength == 0:
                continue
            move = torch.as_tensor(strength, dtype=torch.float32) * vector
            step = move if step is None else step + move
        return latent if step is None else apply_direction(latent, step, 1.0)

    @contextlib.contextmanager
    def turn(self, still_wanted: Callable[[], bool] | None = None) -> Iterator[None]:
        """Hold the render lock; while waiting for it, drop the request (:class:`Dropped`) once unwanted."""
        while not self.render_lock.acquire(timeout=TURN_POLL_SECONDS):
            if still_wanted is not None and not still_wanted():
                raise Dropped
        try:
            if still_wanted is not None and not still_wanted():
                raise Dropped
            yield
        finally:
            self.render_lock.release()

    def draw(
        self, loaded: LoadedCheckpoint, key: Any, latent: torch.Tensor, still_wanted: Callable[[], bool] | None
    ) -> np.ndarray:
        """One face as an HWC uint8 array, from the cache or drawn on the shared generator in its turn."""
        key = ("face", loaded.identity, self.raw, key)
        face = self.cache.get(key)
        if face is None:
            with self.turn(still_wanted):
                face = self.cache.get(key, count=False)  # drawn by another request while this one waited
                if face is None:
                    images = generate_faces_uint8(
                        loaded.generator, latent, loaded.resolution, loaded.alpha, self.device
                    )
                    face = make_grid(images, 1, 1)
                    self.renders += 1
            self.cache.put(key, face)
        return face

    def png(
        self,
        loaded: LoadedCheckpoint,
        key: Any,
        latent: Callable[[], torch.Tensor],
        size: int | None,
        still_wanted: Callable[[], bool] | None,
    ) -> bytes:
        png_key = ("png", loaded.identity, self.raw, key, size)
        data = self.cache.get(png_key)
        if data is None:
            face = self.draw(loaded, key, latent(), still_wanted)
            data = png_bytes(shrink(face, size) if size is not None else face)
            self.cache.put(png_key, data)
        return data

    def face_png(
        self,
        seed: int,
        edits: Sequence[tuple[str, float]] = (),
        checkpoint: str | None = None,
        size: int | None = None,
        still_wanted: Callable[[], bool] | None = None,
    ) -> bytes:
        """``GET /image.png``: the face of ``seed`` (edited, at another checkpoint, shrunk to ``size``) as PNG."""
        check_seed(seed)
        check_size(size)
        loaded = self.generator_for(checkpoint)
        latent = self.face_latent(seed, edits, loaded)  # checked before the cache is asked
        moved = tuple((name, float(s)) for name, s in edits if s != 0)
        return self.png(loaded, ("seed", seed, moved), lambda: latent, size, still_wanted)

    def check_morph(self, seeds: Sequence[int]) -> tuple[int, ...]:
        seeds = tuple(check_seed(seed) for seed in seeds)
        if not 2 <= len(seeds) <= MAX_MORPH_SEEDS:
            raise ExploreError(f"a morph goes through 2 to {MAX_MORPH_SEEDS} faces, got {len(seeds)}")
        return seeds

    def morph_png(
        self,
        seeds: Sequence[int],
        frames: int,
        frame: int | None = None,
        checkpoint: str | None = None,
        size: int | None = None,
        still_wanted: Callable[[], bool] | None = None,
    ) -> bytes:
        """``GET /morph.png``: frame ``frame`` of ``frames`` along great circles through the faces of ``seeds``
        (first frame the first face, last frame the last), or the whole strip in one row when ``frame`` is None."""
        seeds = self.check_morph(seeds)
        if not 2 <= frames <= MAX_STRIP_FRAMES:
            raise ExploreError(f"frames must be from 2 to {MAX_STRIP_FRAMES}, got {frames}")
        if frame is not None and not 0 <= frame < frames:
            raise ExploreError(f"frame must be from 0 to {frames - 1} (of {frames} frames), got {frame}")
        check_size(size)
        loaded = self.generator_for(checkpoint)

        def latent_of(k: int) -> Callable[[], torch.Tensor]:
            return lambda: seed_path(list(seeds), self.latent_size, frames, loop=False)[k : k + 1]

        if frame is not None:
            return self.png(loaded, ("morph", seeds, frames, frame), latent_of(frame), size, still_wanted)
        faces = [self.draw(loaded, ("morph", seeds, frames, k), latent_of(k)(), still_wanted) for k in range(frames)]
        strip = np.concatenate([shrink(f, size) if size is not None else f for f in faces], axis=1)
        return png_bytes(strip)

    def morph_mp4(
        self,
        seeds: Sequence[int],
        seconds: float = 4.0,
        fps: int = defaults.VIDEO_FPS,
        loop: bool = True,
        checkpoint: str | None = None,
        still_wanted: Callable[[], bool] | None = None,
    ) -> bytes:
        """``GET /morph.mp4``: ``pggan-sample --keyframe-seeds`` through ``seeds`` (the same function, the same
        frames), one export at a time, its generator calls taking turns with the page's faces."""
        seeds = self.check_morph(seeds)
        if not 1 <= fps <= MAX_FPS:
            raise ExploreError(f"fps must be from 1 to {MAX_FPS}, got {fps}")
        if not np.isfinite(seconds) or seconds <= 0:
            raise ExploreError(f"seconds must be positive, got {seconds}")
        frames = round(seconds * fps)
        if not 1 <= frames <= MAX_VIDEO_FRAMES:
            raise ExploreError(f"{seconds:g} s at {fps} fps is {frames} frames; a video has 1 to {MAX_VIDEO_FRAMES}")
        loaded = self.generator_for(checkpoint)
        if not self.export_lock.acquire(blocking=False):
            raise Busy("another video is being exported; try again when it has finished")
        try:
            shared = TakingTurns(loaded.generator, lambda: self.turn(still_wanted))
            with tempfile.TemporaryDirectory(prefix="pggan-explore-") as folder:
                path = Path(folder) / "morph.mp4"
                render_morph_video(
                    shared, path, list(seeds), loaded.resolution, loaded.alpha, seconds=seconds, fps=fps, loop=loop,
                    batch_size=defaults.SAMPLE_BATCH, device=self.device,
                )  # fmt: skip
                return path.read_bytes()
        finally:
            self.export_lock.release()

    def describe(self) -> str:
        """One line for the console: what is served, at which resolution, on which device."""
        loaded = self.generator_for(None)
        kind = {1: "grayscale", 3: "RGB"}.get(self.channels, f"{self.channels}-channel")
        count = len(self.checkpoints())
        where = f"{count} checkpoints, showing {self.default_id}" if self.source.is_dir() else self.default_id
        return f"{self.source} ({where}; {loaded.resolution}×{loaded.resolution} {kind}, on {self.device})"


def download_name(seed: int, edited: bool) -> str:
    """The file name a face downloads as: ``seed00012.png`` as ``pggan-sample --outdir`` names it."""
    name = image_file_name(seed)
    return name.replace(".png", "-edited.png") if edited else name
