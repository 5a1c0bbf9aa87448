from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from pytest_rollout._wait import async_wait_for, wait_for
from pytest_rollout.errors import WaitTimeout


def test_returns_the_first_truthy_value() -> None:
    counter = itertools.count()
    assert wait_for(lambda: next(counter) >= 3 and "ready", what="counter", timeout=2) == "ready"


def test_timeout_names_the_condition_and_last_value() -> None:
    with pytest.raises(WaitTimeout, match=r"waiting for the moon \(last value: False\)"):
        wait_for(lambda: False, what="the moon", timeout=0.2, interval=0.05)


def test_timeout_names_the_last_error_and_chains_it() -> None:
    def probe() -> None:
        raise ConnectionRefusedError("nobody home")

    with pytest.raises(
        WaitTimeout, match="last error: ConnectionRefusedError: nobody home"
    ) as info:
        wait_for(probe, what="a server", timeout=0.2, retry_on=ConnectionRefusedError)
    assert isinstance(info.value.__cause__, ConnectionRefusedError)


def test_an_error_the_caller_did_not_name_propagates_at_once() -> None:
    calls = itertools.count()

    counts: dict[str, int] = {}

    def probe() -> bool:
        next(calls)
        return counts["missing"] > 0  # a bug in the probe: KeyError

    started = time.monotonic()
    with pytest.raises(KeyError, match="missing"):
        wait_for(probe, what="a buggy probe", timeout=30, retry_on=OSError)
    assert next(calls) == 1, "the probe must not be called again after a bug"
    assert time.monotonic() - started < 5


def test_named_errors_are_retried_until_the_probe_answers() -> None:
    answers: list[OSError | str] = [OSError("refused"), OSError("refused"), "up"]

    def probe() -> str:
        answer = answers.pop(0)
        if isinstance(answer, OSError):
            raise answer
        return answer

    assert wait_for(probe, what="a server", timeout=5, interval=0.01, retry_on=OSError) == "up"


def test_async_twin() -> None:
    counter = itertools.count()

    async def probe() -> int | None:
        value = next(counter)
        return value if value >= 2 else None

    assert asyncio.run(async_wait_for(probe, what="counter", timeout=2)) == 2

    async def never() -> None:
        return None

    with pytest.raises(WaitTimeout, match=r"timed out after 0\.2s waiting for nothing"):
        asyncio.run(async_wait_for(never, what="nothing", timeout=0.2))
