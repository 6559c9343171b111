"""A job's deadline: an instant, never a duration. Monotonic inside a process; epoch seconds on
the wire (monotonic clocks differ between machines)."""

from __future__ import annotations

import time
from dataclasses import dataclass

__all__ = ["Deadline"]


@dataclass(frozen=True, order=True)
class Deadline:
    """The instant by which work must end, as `time.monotonic()` seconds."""

    monotonic_s: float

    @classmethod
    def after(cls, budget_s: float) -> Deadline:
        """`budget_s` seconds from now."""
        return cls(time.monotonic() + budget_s)

    @classmethod
    def at_epoch(cls, epoch_s: float) -> Deadline:
        """The instant `epoch_s` (wall-clock, `time.time()` seconds: what another machine sent)."""
        return cls(time.monotonic() + (epoch_s - time.time()))

    def epoch_s(self) -> float:
        """This instant as wall-clock seconds, for another machine."""
        return time.time() + (self.monotonic_s - time.monotonic())

    def remaining_s(self, budget_s: float | None = None) -> float:
        """Seconds left (0 once passed); with `budget_s` (a stage's own budget, counted from
        now), whichever ends first. Stage budgets are applied here and nowhere else."""
        left = max(0.0, self.monotonic_s - time.monotonic())
        return left if budget_s is None else min(left, max(0.0, budget_s))

    @property
    def passed(self) -> bool:
        return time.monotonic() >= self.monotonic_s

    def earliest(self, other: Deadline | None) -> Deadline:
        """The earlier of the two (self when `other` is None)."""
        return self if other is None or self <= other else other

    def plus(self, seconds: float) -> Deadline:
        return Deadline(self.monotonic_s + seconds)
