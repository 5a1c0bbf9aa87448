"""The one time base of a run: epoch seconds that never go backwards.

The wall clock is read once, at import; every later reading is that instant plus the monotonic
time elapsed since. Load records, backend events and experiment instants all come from here, so
comparing them (a request against an abort) compares readings of one clock, and an NTP step
during a run cannot reorder or stretch them.
"""

from __future__ import annotations

import time

WALL0 = time.time()
MONO0 = time.monotonic()


def epoch_now() -> float:
    """Epoch seconds now, on the run's time base."""
    return WALL0 + (time.monotonic() - MONO0)


def epoch_at(monotonic: float) -> float:
    """Epoch seconds for a ``time.monotonic()`` reading, on the run's time base."""
    return WALL0 + (monotonic - MONO0)
