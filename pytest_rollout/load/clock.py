"""The load generator's clock: the run's one time base (:mod:`pytest_rollout.clock`)."""

from __future__ import annotations

import time

from pytest_rollout import clock as run_clock


class Clock:
    """Epoch seconds derived from a monotonic base: by default the run's own time base, so
    request times compare directly with backend events and experiment instants.

    ``CLOCK_MONOTONIC`` is one clock for the whole machine on Linux, so a child process given
    this clock's :attr:`base` (``Clock(base=...)``) stamps times on the very same time base.
    """

    def __init__(self, base: tuple[float, float] | None = None) -> None:
        self._wall0, self._mono0 = base if base is not None else (run_clock.WALL0, run_clock.MONO0)

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
"""The run's time base as a clock: loads that are given no clock stamp their records with it."""
