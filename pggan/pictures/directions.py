"""Semantic directions in latent space: closed-form ones from the generator's weights (SeFa), ones from files,
and the one way to apply either.

**Closed form** (SeFa: Shen & Zhou, "Closed-Form Factorization of Latent Semantics in GANs", CVPR 2021), as the
authors' released code computes it for PGGAN: take ``A``, the generator's first layer (latent → 4×4 features)
as a matrix with one row per output feature and one column per latent dimension; scale every row to unit length
(which also removes the equalized-learning-rate constant); the directions are the unit eigenvectors of ``AᵀA``,
largest eigenvalue first. They are the latent moves that change the first layer's output the most, and on face
generators the first few tend to mean pose, age, gender, lighting. ``sefa:K`` names the K-th (from 0).

**Sign rule**: an eigenvector is only defined up to its sign, so each direction is flipped, if need be, to make
its entry of largest magnitude positive (the first such entry when several tie). ``sefa:0`` therefore points
the same way on every machine and every run of the same weights.

**From a file**: a ``.npy`` holding latent-size numbers, shape ``(n,)`` or ``(1, n)`` — the format of the
published InterFaceGAN boundaries for the PGGAN CelebA-HQ network (age, gender, smile, pose, eyeglasses). Read
with ``allow_pickle=False`` (a file can never run code), checked (numbers, finite, right length, not zero) and
scaled to unit length.

**Applying** (:func:`apply_direction`): the latent is put on the √n sphere the generator expects
(:func:`pggan.pictures.latents.to_sphere`) and moved by ``strength × direction``; InterFaceGAN and SeFa move
PGGAN latents the same way, so their strengths (about −3 … 3) carry over.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pggan.errors import UserError
from pggan.pictures.latents import to_sphere

SEFA_PREFIX = "sefa:"
#: ``--strengths`` when only ``--direction`` is given: seven steps, the middle one the face itself.
DEFAULT_STRENGTHS = "-3:3:7"
#: More columns than this in one edit is a typo, not a picture.
MAX_STRENGTHS = 1000


@dataclass(frozen=True)
class Factorization:
    """The closed-form directions of one generator.

    ``directions[k]`` is ``sefa:k`` (unit length, float32, sign by the module's rule); ``eigenvalues[k]`` its
    eigenvalue of ``AᵀA`` (float64, descending) — how strongly the first layer responds to that move.
    """

    directions: torch.Tensor
    eigenvalues: torch.Tensor


@dataclass(frozen=True)
class Direction:
    """A named unit direction in latent space, ready for :func:`apply_direction`."""

    name: str
    vector: torch.Tensor
    eigenvalue: float | None = None  # SeFa directions only


def first_layer_matrix(generator: torch.nn.Module) -> torch.Tensor:
    """``A``: the generator's latent → 4×4 dense weight, ``(features·16, latent_size)``, float64 on the CPU.

    One row per output feature, one column per latent dimension, without the run-time equalized-LR constant
    (a common factor of all rows, which the row scaling would remove anyway).
    """
    try:
        weight = generator.blocks[0].dense.weight
    except (AttributeError, IndexError, TypeError):
        raise UserError("this network has no PGGAN first layer (blocks[0].dense) to factorise") from None
    return weight.detach().to(device="cpu", dtype=torch.float64)


def sefa_factorize(matrix: torch.Tensor) -> Factorization:
    """SeFa on a first-layer matrix ``A`` ``(rows, latent_size)``: rows scaled to unit length, eigenvectors of
    ``AᵀA`` by descending eigenvalue, signs by the module's rule.

    In float64 throughout (``AᵀA`` of a 8192×512 matrix: ~30 ms on 2 CPU cores). All-zero rows stay zero
    instead of dividing by zero; they add nothing to ``AᵀA``.
    """
    if matrix.ndim != 2 or min(matrix.shape) < 1:
        raise ValueError(f"SeFa needs a 2-D weight matrix, got shape {tuple(matrix.shape)}")
    a = matrix.detach().to(device="cpu", dtype=torch.float64)
    if not bool(torch.isfinite(a).all()):
        raise UserError("the generator's first layer holds NaN or infinite weights: no directions to compute")
    a = a / a.norm(dim=1, keepdim=True).clamp_min(1e-300)
    values, vectors = torch.linalg.eigh(a.T @ a)  # ascending eigenvalues, eigenvectors in columns
    order = torch.argsort(values, descending=True, stable=True)
    values, vectors = values[order], vectors[:, order].T.contiguous()  # one direction per row
    largest = vectors.abs().argmax(dim=1)  # the first index among ties
    signs = torch.sign(vectors[torch.arange(vectors.shape[0]), largest])
    vectors = vectors * torch.where(signs == 0, torch.ones_like(signs), signs)[:, None]
    return Factorization(directions=vectors.float(), eigenvalues=values)


def sefa_directions(generator: torch.nn.Module) -> Factorization:
    """The closed-form (SeFa) directions of ``generator``: all ``latent_size`` of them, in milliseconds."""
    return sefa_factorize(first_layer_matrix(generator))


def load_direction_file(path: str | os.PathLike[str], latent_size: int) -> torch.Tensor:
    """A direction from a ``.npy`` file (InterFaceGAN's boundary format), as a unit float32 vector ``(latent_size,)``.

    Refused, one line each: a missing file, a pickle or object array (``allow_pickle=False``), an ``.npz``
    archive, anything but real numbers, a shape other than ``(n,)`` / ``(1, n)`` with ``n = latent_size``,
    NaN or infinite values, an all-zero vector.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"direction file {path} not found")
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as exc:  # pickled data, object arrays, or not an .npy at all
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreadable"
        raise UserError(f"{path}: not a .npy array of numbers ({reason[:120]})") from None
    except (OSError, EOFError) as exc:
        raise UserError(f"{path}: cannot read it as a .npy file ({type(exc).__name__}: {exc})"[:300]) from None
    if isinstance(array, np.lib.npyio.NpzFile):
        array.close()
        raise UserError(f"{path} is an .npz archive; give a .npy file holding one direction")
    if array.dtype.kind not in "fiu":
        raise UserError(f"{path} holds {array.dtype} values, not real numbers")
    if array.shape not in ((latent_size,), (1, latent_size)):
        raise UserError(
            f"{path} has shape {array.shape}; a direction for this generator is ({latent_size},) or "
            f"(1, {latent_size}) (its latent size)"
        )
    vector = array.astype(np.float64).reshape(latent_size)
    if not np.isfinite(vector).all():
        raise UserError(f"{path} holds NaN or infinite values")
    norm = float(np.linalg.norm(vector))
    if not norm > 0:
        raise UserError(f"{path} is all zeros: it points nowhere")
    return torch.from_numpy(vector / norm).float()


def parse_direction(spec: str) -> int | Path:
    """``"sefa:K"`` → ``K``; anything else → the path of a direction file, which must exist.

    Checks only what can be checked without the generator (the index against the latent size comes in
    :func:`resolve_direction`), so bad input is refused before any checkpoint is loaded.
    """
    spec = spec.strip()
    if spec.lower().startswith(SEFA_PREFIX):
        index = spec[len(SEFA_PREFIX) :].strip()
        if not re.fullmatch(r"\d+", index):
            raise UserError(f"--direction sefa:K needs a whole number K ≥ 0 (sefa:0 is the strongest), got {spec!r}")
        return int(index)
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"--direction {spec!r} is neither sefa:K nor an existing .npy file")
    return path


def resolve_direction(spec: str, generator: torch.nn.Module) -> Direction:
    """The direction ``spec`` names (``sefa:K`` or a ``.npy`` path) for ``generator``, checked against its latent."""
    parsed = parse_direction(spec)
    latent_size = int(generator.latent_size)
    if isinstance(parsed, int):
        if parsed >= latent_size:
            raise UserError(
                f"--direction sefa:{parsed}: this generator's latent has {latent_size} dimensions, so its "
                f"directions are sefa:0 … sefa:{latent_size - 1}"
            )
        factorization = sefa_directions(generator)
        return Direction(
            f"{SEFA_PREFIX}{parsed}", factorization.directions[parsed], float(factorization.eigenvalues[parsed])
        )
    return Direction(parsed.stem, load_direction_file(parsed, latent_size))


def apply_direction(latents: torch.Tensor, direction: torch.Tensor, strength: float | torch.Tensor) -> torch.Tensor:
    """``to_sphere(latents) + strength × direction``: latents ``(N, n)`` (or ``(n,)``) moved along ``direction``.

    ``strength`` is a number or one per latent. Strength 0 returns the latent on the sphere — exactly the
    seed's latent for a seed's face (:func:`~pggan.pictures.latents.to_sphere` leaves it untouched), so the
    edited face at 0 is the plain face, bit for bit. ``direction`` is used as given; the loaders here return
    unit vectors, so a strength is a distance on the √n sphere's scale.
    """
    base = to_sphere(latents.float())
    step = torch.as_tensor(strength, dtype=base.dtype)
    if step.ndim == 1 and base.ndim == 2:
        step = step[:, None]
    return base + step * direction.to(base.dtype)


def edit_latents(latents: torch.Tensor, direction: torch.Tensor, strengths: list[float]) -> torch.Tensor:
    """One row per latent, one column per strength, row-major: ``(N·len(strengths), n)``, for an edit grid."""
    rows = [apply_direction(latents, direction, strength) for strength in strengths]
    return torch.stack(rows, dim=1).reshape(-1, latents.shape[-1])


def parse_strengths(text: str) -> list[float]:
    """``"LO:HI:N"`` → N evenly spaced strengths from LO to HI; ``"a,b,c"`` → those values.

    Each value is computed as ``LO·(N−1−i)/(N−1) + HI·i/(N−1)``, so the ends are exact and the middle of a
    symmetric range (``-3:3:7``) is exactly 0 — the plain face.
    """
    text = text.strip()
    try:
        if ":" in text:
            parts = text.split(":")
            if len(parts) != 3:
                raise ValueError
            low, high, count = float(parts[0]), float(parts[1]), int(parts[2])
            if count < 2:
                raise UserError(f"--strengths LO:HI:N needs N ≥ 2 (use one number for a single strength), got {text!r}")
            values = [low * (count - 1 - i) / (count - 1) + high * i / (count - 1) for i in range(count)]
        else:
            values = [float(part) for part in text.split(",")]
    except ValueError:
        raise UserError(f"--strengths must look like LO:HI:N (e.g. -3:3:7) or a list (-2,0,2), got {text!r}") from None
    if not all(math.isfinite(value) for value in values):
        raise UserError(f"--strengths must be finite numbers, got {text!r}")
    if len(values) > MAX_STRENGTHS:
        raise UserError(f"--strengths asks for {len(values)} columns; at most {MAX_STRENGTHS}")
    return values


def sweep_strengths(num_frames: int, low: float, high: float) -> torch.Tensor:
    """Strengths for a looping video that sweeps back and forth: ``mid + half·sin(2π·frame/num_frames)``.

    Starts at the middle of ``[low, high]`` (the plain face for a symmetric range), reaches ``high`` a quarter
    of the way, ``low`` at three quarters, and returns smoothly (a sine slows down at the ends).
    """
    frame = torch.arange(num_frames, dtype=torch.float64)
    middle, half = (low + high) / 2, (high - low) / 2
    return (middle + half * torch.sin(2 * math.pi * frame / num_frames)).float()


def sweep_latents(latents: torch.Tensor, direction: torch.Tensor, strengths: torch.Tensor) -> torch.Tensor:
    """``(frames, N, n)``: each of the N latents moved by each frame's strength, for a direction video."""
    return torch.stack([apply_direction(latents, direction, float(s)) for s in strengths])
