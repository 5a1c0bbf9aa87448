"""Synchronous entry points: run a load to completion, or in the background of a test."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType

from pytest_rollout.errors import RolloutError, WaitTimeout
from pytest_rollout.load.clock import Clock
from pytest_rollout.load.generator import DISPATCH_GRACE, LoadGenerator
from pytest_rollout.load.spec import LoadSpec
from pytest_rollout.load.traffic import TrafficLog

_START_TIMEOUT = 10.0
_JOIN_MARGIN = 5.0


def run_load(spec: LoadSpec, *, clock: Clock | None = None) -> TrafficLog:
    """Run ``spec`` to the end on a fresh event loop and return its log.

    Pass the ``clock`` an experiment stamps its events with to share one time base.
    """
    with asyncio.Runner() as runner:
        return runner.run(LoadGenerator(spec, clock=clock).run())


class BackgroundLoad:
    """Runs a :class:`LoadSpec` on its own event loop in a thread while the test goes on.

    Use it as a context manager; leaving the block stops the schedule, waits for the requests
    in flight (each bounded by the spec's timeout), closes every connection and joins the
    thread. :attr:`log` is a snapshot of the requests completed so far.

    The loop shares the interpreter with the test: while the test's own thread waits (on a
    process, a socket, a deadline) the schedule holds; while it computes, the loop waits for
    the GIL, lateness rises and the log says *inconclusive* rather than mislead.
    """

    def __init__(self, spec: LoadSpec, *, clock: Clock | None = None) -> None:
        self.spec = spec
        self._generator = LoadGenerator(spec, clock=clock)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_ready = threading.Event()
        self._result: TrafficLog | None = None
        self._failure: BaseException | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "idle"
        return f"<BackgroundLoad {self.spec.url} {self.spec.rate:g} req/s {state}>"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def log(self) -> TrafficLog:
        """The final log once stopped; before that, the requests completed so far."""
        return self._result if self._result is not None else self._generator.log

    def start(self) -> BackgroundLoad:
        if self._thread is not None:
            raise RolloutError(f"{self!r}: already started; a BackgroundLoad runs once")
        self._thread = threading.Thread(target=self._main, name="pytest-rollout-load", daemon=True)
        self._thread.start()
        if not self._loop_ready.wait(_START_TIMEOUT):
            raise WaitTimeout(
                f"timed out after {_START_TIMEOUT:g}s waiting for the load generator's event "
                "loop to start"
            )
        return self

    def stop(self, timeout: float | None = None) -> TrafficLog:
        """End the schedule now and return the final log; idempotent.

        Waits up to ``timeout`` seconds (default: the request timeout plus a margin) for the
        requests in flight, then raises :class:`WaitTimeout` if the thread is still busy.
        """
        loop = self._loop
        if self.running and loop is not None:
            # RuntimeError: the loop closed between the check and the call; the run is over.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._generator.stop)
        return self._join(timeout if timeout is not None else self.spec.timeout + _JOIN_MARGIN)

    def wait(self, timeout: float | None = None) -> TrafficLog:
        """Wait for the run to end by itself (duration or count reached); return the log."""
        schedule = self.spec.planned / self.spec.rate + DISPATCH_GRACE + self.spec.timeout
        return self._join(timeout if timeout is not None else schedule + _JOIN_MARGIN)

    def _join(self, timeout: float) -> TrafficLog:
        thread = self._thread
        if thread is None:
            raise RolloutError(f"{self!r}: never started")
        thread.join(timeout)
        if thread.is_alive():
            raise WaitTimeout(
                f"timed out after {timeout:g}s waiting for the load generator to finish "
                f"({len(self._generator.log)} requests completed so far)"
            )
        if self._failure is not None:
            raise self._failure
        if self._result is None:
            raise RolloutError(f"{self!r}: the load thread ended without a result")
        return self._result

    def _main(self) -> None:
        try:
            with asyncio.Runner() as runner:
                self._loop = runner.get_loop()
                self._loop_ready.set()
                self._result = runner.run(self._generator.run())
        except BaseException as exc:  # handed to the caller's thread by wait()
            self._failure = exc
        finally:
            self._loop_ready.set()

    def __enter__(self) -> BackgroundLoad:
        return self.start() if self._thread is None else self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
