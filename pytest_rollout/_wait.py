"""Waiting for a condition with a deadline, never with a bare sleep.

A probe answers "not yet" by returning a falsy value. An exception is "not yet" only when its
type is one the caller named in ``retry_on`` (a connection refused while a server boots, say);
any other exception is a bug or a verdict and propagates at once, with its traceback, instead
of turning into a timeout many seconds later.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import tenacity

from pytest_rollout.errors import WaitTimeout

T = TypeVar("T")

RetryOn = type[BaseException] | tuple[type[BaseException], ...]

_SENTINEL = object()


def wait_for(
    probe: Callable[[], T | None],
    *,
    what: str,
    timeout: float,
    interval: float = 0.05,
    retry_on: RetryOn = (),
) -> T:
    """Call ``probe`` until it returns a truthy value; return that value.

    ``what`` names the condition for the :class:`WaitTimeout` raised after ``timeout``
    seconds, together with the last value or the last ``retry_on`` error seen (chained as the
    cause). An exception not in ``retry_on`` propagates unchanged from the first call that
    raises it.
    """
    last: list[object] = [_SENTINEL]

    def attempt() -> T:
        try:
            value = probe()
        except retry_on as exc:
            last[0] = exc
            raise _NotYet from exc
        last[0] = value
        if not value:
            raise _NotYet
        return value

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_delay(timeout),
        wait=tenacity.wait_fixed(interval),
        retry=tenacity.retry_if_exception_type(_NotYet),
        reraise=False,
    )
    try:
        return retrying(attempt)
    except tenacity.RetryError as exc:
        raise WaitTimeout(_timeout_message(what, timeout, last[0])) from _cause(last[0], exc)


async def async_wait_for(
    probe: Callable[[], Awaitable[T | None]],
    *,
    what: str,
    timeout: float,
    interval: float = 0.05,
    retry_on: RetryOn = (),
) -> T:
    """The asyncio twin of :func:`wait_for`."""
    last: list[object] = [_SENTINEL]

    async def attempt() -> T:
        try:
            value = await probe()
        except retry_on as exc:
            last[0] = exc
            raise _NotYet from exc
        last[0] = value
        if not value:
            raise _NotYet
        return value

    retrying = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_delay(timeout),
        wait=tenacity.wait_fixed(interval),
        retry=tenacity.retry_if_exception_type(_NotYet),
        reraise=False,
    )
    try:
        return await retrying(attempt)
    except tenacity.RetryError as exc:
        raise WaitTimeout(_timeout_message(what, timeout, last[0])) from _cause(last[0], exc)


class _NotYet(Exception):
    """The probe answered "not yet": a falsy value, or an error the caller expects."""


def _timeout_message(what: str, timeout: float, last: object) -> str:
    if last is _SENTINEL:
        seen = "no attempt completed"
    elif isinstance(last, BaseException):
        seen = f"last error: {type(last).__name__}: {last}"
    else:
        seen = f"last value: {last!r}"
    return f"timed out after {timeout:g}s waiting for {what} ({seen})"


def _cause(last: object, fallback: BaseException) -> BaseException:
    return last if isinstance(last, BaseException) else fallback
