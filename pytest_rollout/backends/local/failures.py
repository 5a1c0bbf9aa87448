"""Failures of the local backend's own machinery, kept so that they surface as themselves.

A controller's reconcile, a pod's probe loop, a readiness observer and a delayed router call
all run in the background: an exception there reaches no caller. Retried or logged only, an
error in the engine would surface many seconds later as a wait running into its deadline ("timed
out after 75s waiting for Rollout/web to be Healthy"), its traceback gone. Instead each one is
recorded in a :class:`FailureLatch` with its traceback, the machinery goes on as before (a
controller retries at its next sync), and every wait guarded by the latch fails at once with a
:class:`~pytest_rollout.errors.BackendError` chained to the original exception.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable
from typing import TypeVar

from pytest_rollout.errors import BackendError

T = TypeVar("T")

_log = logging.getLogger(__name__)


class FailureLatch:
    """The first failure of some background machinery (each later one is logged), and the
    waits it should end.

    ``parent`` hears of every failure too (a namespace hears of its pods'). A latch is used on
    one event loop; :attr:`error` and :meth:`raise_if_failed` may be read from any thread.
    """

    def __init__(self, *, parent: FailureLatch | None = None) -> None:
        self._parent = parent
        self._what = ""
        self._error: Exception | None = None
        self._failed = asyncio.Event()
        self._last_logged: tuple[str, type[Exception], str] | None = None

    @property
    def error(self) -> Exception | None:
        return self._error

    def record(self, error: Exception, what: str) -> None:
        """Keep ``error``, raised by ``what`` ("the reconcile of Deployment/web"), log it with
        its traceback, and end the waits this latch (or its parent) guards. Call it on the
        latch's loop."""
        said = (what, type(error), str(error))
        if said != self._last_logged:  # a controller retrying logs the same failure once
            self._last_logged = said
            _log.error("%s failed", what, exc_info=error)
        self._keep(error, what)

    def _keep(self, error: Exception, what: str) -> None:
        if self._error is None:
            self._error, self._what = error, what
            self._failed.set()
        if self._parent is not None:
            self._parent._keep(error, what)

    def raise_if_failed(self) -> None:
        """Raise the recorded failure as a BackendError chained to it, if there is one."""
        error = self._error
        if error is not None:
            raise BackendError(f"{self._what} failed: {type(error).__name__}: {error}") from error

    async def guard(self, waiting: Awaitable[T]) -> T:
        """Await ``waiting``, unless a failure is or gets recorded first: then cancel it and
        raise that failure."""
        if self._error is not None:
            if inspect.iscoroutine(waiting):
                waiting.close()  # never to be awaited
            self.raise_if_failed()
        task = asyncio.ensure_future(waiting)
        failed = asyncio.ensure_future(self._failed.wait())
        try:
            await asyncio.wait({task, failed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            failed.cancel()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self.raise_if_failed()
        return task.result()
