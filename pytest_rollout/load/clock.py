"""Wall-clock epoch timestamps that never go backwards within a run."""

from __future__ import annotations

import time


class Clock:
    """Epoch seconds derived from a monotonic base.

    The wall clock is read once; every later reading is that instant plus the monotonic time
    elapsed since, so an NTP step during a run cannot reorder or stretch recorded times.
    """

    def __init__(self) -> None:
        self._wall0 = time.time()
        self._mono0 = time.monotonic()

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
