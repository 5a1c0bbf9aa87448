"""The load generator's clock: the run's one time base (:mod:`pytest_rollout.clock`)."""

from __future__ import annotations

import time

from pytest_rollout import clock as run_clock


class Clock:
    """Epoch seconds derived from a monotonic base: by default the run's own time base, so
    request times compare directly with backend events and experiment instants."""

    def __init__(self, wall0: float | None = None, mono0: float | None = None) -> None:
        self._wall0 = run_clock.WALL0 if wall0 is None else wall0
        self._mono0 = run_clock.MONO0 if mono0 is None else mono0

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
