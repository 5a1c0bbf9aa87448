"""One asyncio event loop in a daemon thread: where the local backend's kubelet and controllers run.

Tests are synchronous; pods, probes and controllers are coroutines. :class:`LoopThread` gives
the synchronous side a way to run a coroutine on the loop and wait for its result with a
deadline, and stops the loop cleanly (every task cancelled and awaited) on :meth:`stop`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from pytest_rollout.errors import RolloutError, WaitTimeout

T = TypeVar("T")


class LoopThread:
    def __init__(self, name: str = "rollout-local-loop") -> None:
        self.name = name
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._started = threading.Event()

    def start(self) -> LoopThread:
        self._thread.start()
        self._started.wait()
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def in_loop(self) -> bool:
        return threading.current_thread() is self._thread

    def call(self, coro: Coroutine[Any, Any, T], *, timeout: float, what: str) -> T:
        """Run ``coro`` on the loop and wait; WaitTimeout naming ``what`` after ``timeout``."""
        if self.in_loop():
            coro.close()
            raise RolloutError(f"{what}: cannot block the loop thread waiting for itself")
        if not self.running:
            coro.close()
            raise RolloutError(f"{what}: the local backend's loop is not running")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise WaitTimeout(f"timed out after {timeout:g}s waiting for {what}") from exc

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run ``coro`` on the loop without waiting for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def stop(self, timeout: float = 30.0) -> None:
        """Cancel every task, wait for them to finish, then stop and close the loop."""
        if not self.running:
            return
        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            asyncio.run_coroutine_threadsafe(self._cancel_all(), self.loop).result(timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)

    async def _cancel_all(self) -> None:
        current = asyncio.current_task()
        tasks = [task for task in asyncio.all_tasks() if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._started.set)
        try:
            self.loop.run_forever()
        finally:
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(self.loop.shutdown_asyncgens())
            self.loop.close()
