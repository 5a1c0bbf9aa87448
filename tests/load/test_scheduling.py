"""The load generator's request for a short scheduler slice."""

from __future__ import annotations

import platform
import threading

import pytest

from pytest_rollout.load.scheduling import request_short_slice


def _in_a_thread_of_its_own() -> str:
    """The request, made by a thread that ends with it (the slice is per thread)."""
    outcome: list[str] = []
    thread = threading.Thread(target=lambda: outcome.append(request_short_slice()))
    thread.start()
    thread.join()
    return outcome[0]


def _linux_with_custom_slices() -> bool:
    """Linux 6.12 or later: a normal task's sched_runtime sets its slice."""
    if platform.system() != "Linux":
        return False
    major, minor, *_ = (platform.release().split("-")[0] + ".0").split(".")
    return (int(major), int(minor)) >= (6, 12)


@pytest.mark.skipif(not _linux_with_custom_slices(), reason="needs Linux 6.12 or later")
def test_the_generator_gets_the_shortest_slice_linux_allows() -> None:
    assert _in_a_thread_of_its_own() == "scheduler slice now 0.1 ms"


def test_the_outcome_is_always_a_sentence_never_an_exception() -> None:
    outcome = _in_a_thread_of_its_own()
    assert outcome.startswith(("scheduler slice now", "no short slice:"))
