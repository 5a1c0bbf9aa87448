"""Time for analysis runs: the real clock, and a virtual one that jumps to the next deadline.

A run asks its clock for ``now()`` (epoch seconds) and to ``wait(deadline, wake)``: return
at ``deadline`` or as soon as ``wake`` is set (a measurement finished, termination was asked
for). :class:`VirtualClock` lets the roll-up be exercised over minutes of schedule in
milliseconds: when nothing is runnable it advances straight to the earliest deadline.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from typing import Protocol


class Clock(Protocol):
    """What an analysis run needs from time."""

    def now(self) -> float:
        """Epoch seconds; never goes backwards."""
        ...

    async def wait(self, deadline: float | None, wake: asyncio.Event) -> None:
        """Return at ``deadline`` (None: no deadline) or once ``wake`` is set."""
        ...


_WALL0 = time.time()
_MONO0 = time.monotonic()


class RealClock:
    """Wall-clock epoch seconds from a monotonic base shared by every instance, so readings
    never go backwards and agree across runs."""

    def now(self) -> float:
        return _WALL0 + (time.monotonic() - _MONO0)

    async def wait(self, deadline: float | None, wake: asyncio.Event) -> None:
        if deadline is None:
            await wake.wait()
            return
        remaining = deadline - self.now()
        if remaining <= 0 or wake.is_set():
            return
        # Waiting for the next scheduled measurement is the behaviour, not a synchronisation.
        try:
            await asyncio.wait_for(wake.wait(), timeout=remaining)
        except TimeoutError:
            return


class VirtualClock:
    """Simulated time for tests: ``sleep`` and ``wait`` complete by advancing the clock.

    Time moves only when every task has settled (no task is runnable for ``settle_rounds``
    turns of the event loop), and then to the earliest pending deadline or sleeper.
    """

    def __init__(self, start: float = 1_700_000_000.0, settle_rounds: int = 20) -> None:
        self._now = start
        self._settle_rounds = settle_rounds
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._serial = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        """Resume once the virtual clock has moved ``seconds`` on."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + max(seconds, 0.0), next(self._serial), future))
        await future

    async def wait(self, deadline: float | None, wake: asyncio.Event) -> None:
        while True:
            await self._settle(wake)
            if wake.is_set():
                return
            while self._sleepers and self._sleepers[0][2].done():
                heapq.heappop(self._sleepers)  # a sleeper that was cancelled
            next_sleeper = self._sleepers[0][0] if self._sleepers else None
            targets = [t for t in (deadline, next_sleeper) if t is not None]
            if not targets:
                raise RuntimeError(
                    "virtual time cannot advance: no deadline, no sleeper, and nothing runnable"
                )
            self._now = max(self._now, min(targets))
            while self._sleepers and self._sleepers[0][0] <= self._now:
                _, _, future = heapq.heappop(self._sleepers)
                if not future.done():
                    future.set_result(None)
            if deadline is not None and self._now >= deadline:
                return

    async def _settle(self, wake: asyncio.Event) -> None:
        for _ in range(self._settle_rounds):
            if wake.is_set():
                return
            await asyncio.sleep(0)
