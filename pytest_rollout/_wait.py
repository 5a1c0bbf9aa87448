"""Waiting for a condition with a deadline, never with a bare sleep."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import tenacity

from pytest_rollout.errors import WaitTimeout

T = TypeVar("T")

_SENTINEL = object()


def wait_for(
    probe: Callable[[], T | None],
    *,
    what: str,
    timeout: float,
    interval: float = 0.05,
) -> T:
    """Call ``probe`` until it returns a truthy value; return that value.

    Exceptions raised by ``probe`` count as "not yet" and the last one is named in the
    :class:`WaitTimeout` message together with ``what`` and the deadline.
    """
    last: list[object] = [_SENTINEL]

    def attempt() -> T:
        try:
            value = probe()
        except Exception as exc:  # the probe's failure is the observation we report
            last[0] = exc
            raise
        last[0] = value
        if not value:
            raise _NotYet
        return value

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_delay(timeout),
        wait=tenacity.wait_fixed(interval),
        retry=tenacity.retry_if_exception_type(Exception),
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
) -> T:
    """The asyncio twin of :func:`wait_for`."""
    last: list[object] = [_SENTINEL]

    async def attempt() -> T:
        try:
            value = await probe()
        except Exception as exc:
            last[0] = exc
            raise
        last[0] = value
        if not value:
            raise _NotYet
        return value

    retrying = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_delay(timeout),
        wait=tenacity.wait_fixed(interval),
        retry=tenacity.retry_if_exception_type(Exception),
        reraise=False,
    )
    try:
        return await retrying(attempt)
    except tenacity.RetryError as exc:
        raise WaitTimeout(_timeout_message(what, timeout, last[0])) from _cause(last[0], exc)


class _NotYet(Exception):
    """The probe answered, but not yet with a truthy value."""


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
