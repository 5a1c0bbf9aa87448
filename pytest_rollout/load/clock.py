"""Wall-clock epoch timestamps that never go backwards within a run."""

from __future__ import annotations

import time


class Clock:
    """Epoch seconds derived from a monotonic base.

    The wall clock is read once; every later reading is that instant plus the monotonic time
    elapsed since, so an NTP step during a run cannot reorder or stretch recorded times.
    ``CLOCK_MONOTONIC`` is one clock for the whole machine on Linux, so a child process given
    this clock's :attr:`base` (``Clock(base=...)``) stamps times on the very same time base.
    """

    def __init__(self, base: tuple[float, float] | None = None) -> None:
        if base is None:
            base = (time.time(), time.monotonic())
        self._wall0, self._mono0 = base

    @property
    def base(self) -> tuple[float, float]:
        """The wall-clock reading and the monotonic reading it was taken at."""
        return self._wall0, self._mono0

    @staticmethod
    def monotonic() -> float:
        """The monotonic reading that :meth:`epoch` converts."""
        return time.monotonic()

    def epoch(self, monotonic: float) -> float:
        """Epoch seconds for a :meth:`monotonic` reading."""
        return self._wall0 + (monotonic - self._mono0)

    def now(self) -> float:
        """Epoch seconds now."""
        return self.epoch(time.monotonic())


PROCESS_CLOCK = Clock()
"""The clock of this process: loads that are given no clock stamp their records with it."""
