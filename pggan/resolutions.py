"""The one vocabulary of resolutions: powers of two from 4 to 1024, and the sequences built from them.

Training grows through ``growth_resolutions(R)`` = 4, 8, …, R (smallest first, the
dataset pyramid's levels too); SWD compares ``swd_resolutions(R)`` = R, R/2, …, 16
(largest first, its Laplacian pyramid). Every module checks and enumerates
resolutions through this module, so they never disagree.
"""

from __future__ import annotations

import math
from typing import Any

from pggan.errors import UserError

MIN_RESOLUTION = 4
MAX_RESOLUTION = 1024
#: SWD's coarsest Laplacian level (official metrics/sliced_wasserstein.py stops at 16×16).
SWD_MIN_RESOLUTION = 16


def is_power_of_two(value: Any) -> bool:
    """True for a positive int power of two (bools are not ints here)."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0 and value & (value - 1) == 0


def is_resolution(value: Any, low: int = MIN_RESOLUTION, high: int = MAX_RESOLUTION) -> bool:
    """True when ``value`` is a power of two in [low, high]."""
    return is_power_of_two(value) and low <= value <= high


def resolution_error(value: Any, high: int = MAX_RESOLUTION, what: str = "resolution") -> str:
    """The one message for a resolution that is not a power of two in [4, high]."""
    return f"{what} must be a power of two from {MIN_RESOLUTION} to {high}, got {value!r}"


def check_resolution(value: Any, what: str = "resolution", high: int = MAX_RESOLUTION) -> int:
    """``value`` when it is a power of two in [4, high]; else the one-line UserError naming ``what``."""
    if not is_resolution(value, high=high):
        raise UserError(resolution_error(value, high, what))
    return int(value)


def stage_of(resolution: int) -> int:
    """Index of the network block that produces ``resolution`` (0 for 4×4, 1 for 8×8, ...)."""
    return int(math.log2(resolution)) - 2


def growth_resolutions(top: int) -> list[int]:
    """4, 8, …, ``top``: the resolutions a run grows through and the levels of a dataset pyramid."""
    if not is_resolution(top):
        raise ValueError(resolution_error(top))
    return [1 << k for k in range(2, top.bit_length())]


def swd_resolutions(top: int) -> list[int]:
    """``top``, top/2, …, 16: the Laplacian levels SWD compares, largest first."""
    if not is_power_of_two(top) or top < SWD_MIN_RESOLUTION:
        raise ValueError(f"SWD needs images of at least {SWD_MIN_RESOLUTION}x{SWD_MIN_RESOLUTION}, got {top}")
    return [top >> k for k in range(int(math.log2(top // SWD_MIN_RESOLUTION)) + 1)]
