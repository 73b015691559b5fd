"""The run's timeline: when each recurring event — tick, snapshot, grid, each training metric — is next due.

One object owns every cadence, so a new run, a resume and ``--init`` set them in one place, and the whole
timeline travels in the checkpoint's run-progress record. Positions are images shown; an event whose interval
is ``None`` is switched off.
"""

from __future__ import annotations

from collections.abc import Callable

#: images shown now -> images until the event is next due (None: the event is off).
Interval = Callable[[int], "int | None"]


class Timeline:
    """Next-due positions of named events, each with its own interval rule."""

    def __init__(self, intervals: dict[str, Interval]) -> None:
        self.intervals = intervals
        self.next: dict[str, int | None] = {}

    def _after(self, name: str, images_shown: int) -> int | None:
        step = self.intervals[name](images_shown)
        return None if step is None else images_shown + max(1, int(step))

    def start_at(self, images_shown: int) -> None:
        """Every event counted from ``images_shown`` (a new run, or a run entering the schedule via --init)."""
        self.next = {name: self._after(name, images_shown) for name in self.intervals}

    def restore(self, saved: dict[str, int | None], images_shown: int) -> None:
        """A resumed timeline: saved positions are kept (never behind the resume point); an event switched on at
        this resume starts counting now, and one switched off stays off."""
        self.next = {}
        for name in self.intervals:
            if self.intervals[name](images_shown) is None:
                self.next[name] = None
            elif saved.get(name) is not None:
                self.next[name] = max(int(saved[name]), images_shown + 1)  # type: ignore[arg-type]
            else:
                self.next[name] = self._after(name, images_shown)

    def due(self, name: str, images_shown: int) -> bool:
        position = self.next.get(name)
        return position is not None and images_shown >= position

    def advance(self, name: str, images_shown: int) -> None:
        """The event happened at ``images_shown``: count its next interval from here."""
        self.next[name] = self._after(name, images_shown)

    def to_dict(self) -> dict[str, int | None]:
        return dict(self.next)
