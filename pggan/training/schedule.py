"""The progressive-growing schedule: images shown → where training stands. Pure Python, no torch.

Training starts with a stable phase at 4×4; every higher resolution then gets
a fade-in phase (alpha rising linearly from 0 to 1) followed by a stable phase
(alpha = 1), each measured in thousands of real images shown ("kimg"), so the
schedule is the same whatever the batch size or number of GPUs. The last
stable phase (at the target resolution) lasts until ``total_kimg``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pggan.defaults import FADE_KIMG, LEARNING_RATE, STABLE_KIMG
from pggan.resolutions import growth_resolutions, is_resolution, resolution_error


@dataclass(frozen=True)
class Phase:
    """One phase of training: a fade-in into ``resolution`` or a stable stretch at it.

    ``start`` and ``end`` are images shown; ``end`` is None for the last phase, which lasts until the run stops.
    """

    index: int
    resolution: int
    fading: bool
    start: int
    end: int | None
    batch_size: int
    learning_rate: float

    def alpha(self, images_shown: int) -> float:
        """Fade-in weight of the newest block at ``images_shown`` (1.0 in a stable phase)."""
        if not self.fading or self.end is None:
            return 1.0
        return min(max((images_shown - self.start) / (self.end - self.start), 0.0), 1.0)


def parse_batch_schedule(spec: str) -> dict[int, int]:
    """``"4:16,8:16,..."`` → {resolution: batch}. Raises ValueError when unreadable.

    The preset names (``official``, ``paper``) depend on the number of processes: ``TrainOptions.resolved``
    turns them into pairs first.
    """
    spec = spec.strip()
    return {res: int(value) for res, value in _parse_mapping(spec, "batch schedule", int).items()}


def parse_learning_rates(spec: str) -> dict[int, float]:
    """``"1024:0.0015"`` → {1024: 0.0015}; an empty string gives {}."""
    return _parse_mapping(spec, "learning-rate schedule", float) if spec.strip() else {}


def _parse_mapping(spec: str, what: str, kind: type) -> dict:
    result = {}
    for item in spec.split(","):
        try:
            res_text, value_text = item.split(":")
            res, value = int(res_text), kind(value_text)
        except ValueError:
            raise ValueError(
                f"unreadable {what} {spec!r}: expected RES:VALUE pairs separated by commas, like 4:16,8:16"
            ) from None
        if not is_resolution(res) or not value > 0:
            raise ValueError(f"unreadable {what} {spec!r}: {item!r} needs a power-of-two resolution and a value > 0")
        result[res] = value
    return result


class Schedule:
    """Maps images shown to the current :class:`Phase` for a run that grows from 4×4 to ``target_resolution``."""

    def __init__(
        self,
        target_resolution: int,
        fade_kimg: float = FADE_KIMG,
        stable_kimg: float = STABLE_KIMG,
        batch_sizes: dict[int, int] | None = None,
        learning_rates: dict[int, float] | None = None,
        base_learning_rate: float = LEARNING_RATE,
        total_kimg: float | None = None,
    ) -> None:
        if not is_resolution(target_resolution):
            raise ValueError(resolution_error(target_resolution))
        if fade_kimg < 0 or stable_kimg < 0:
            raise ValueError("fade and stable kimg must be >= 0")
        self.target_resolution = target_resolution
        self.fade_images = round(fade_kimg * 1000)
        self.stable_images = round(stable_kimg * 1000)
        if batch_sizes is None or learning_rates is None:
            from pggan.training.presets import OFFICIAL, resolve_batches, resolve_learning_rates

            if batch_sizes is None:  # the official one-GPU table
                batch_sizes = resolve_batches(OFFICIAL, target_resolution, 1, OFFICIAL.mbstd_group_size)
            if learning_rates is None:
                learning_rates = resolve_learning_rates(OFFICIAL, 1)
        resolutions = growth_resolutions(target_resolution)
        missing = [r for r in resolutions if r not in batch_sizes]
        if missing:
            raise ValueError(f"the batch schedule has no batch size for resolution(s) {missing}")
        self.phases: list[Phase] = []
        position = 0
        for resolution in resolutions:
            batch = batch_sizes[resolution]
            lr = learning_rates.get(resolution, base_learning_rate)
            if resolution > 4 and self.fade_images > 0:
                self._add(resolution, True, position, position + self.fade_images, batch, lr)
                position += self.fade_images
            self._add(resolution, False, position, position + self.stable_images, batch, lr)
            position += self.stable_images
        last = self.phases[-1]
        self.phases[-1] = Phase(
            last.index, last.resolution, False, last.start, None, last.batch_size, last.learning_rate
        )
        self.growth_end_images = position
        self.total_images = position if total_kimg is None else round(total_kimg * 1000)
        if self.total_images <= 0:
            raise ValueError("total kimg must be > 0")

    def _add(self, resolution: int, fading: bool, start: int, end: int, batch: int, lr: float) -> None:
        # Zero-length phases (stable_kimg=0) are kept for the record; phase_at() never selects them.
        self.phases.append(Phase(len(self.phases), resolution, fading, start, end, batch, lr))

    def phase_at(self, images_shown: int) -> Phase:
        """The phase that the next minibatch, starting at ``images_shown``, belongs to."""
        for phase in self.phases:
            if phase.end is None or images_shown < phase.end:
                return phase
        raise AssertionError("unreachable: the last phase is open-ended")

    def batch_sizes(self) -> dict[int, int]:
        """The batch size used at each resolution of this run."""
        return {phase.resolution: phase.batch_size for phase in self.phases}
