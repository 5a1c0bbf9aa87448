"""BackgroundLoad: load that runs while the test does other things, and stops without a trace."""

from __future__ import annotations

import threading
import time

import pytest

from pytest_rollout._wait import wait_for
from pytest_rollout.errors import RolloutError
from pytest_rollout.load import BackgroundLoad, LoadSpec, ResponseView
from service.launcher import RunningService, run_service
from tests.load.load_servers import open_sockets, served_requests


def test_stop_ends_the_run_early_and_leaves_nothing_behind() -> None:
    # 200 ms of latency at 200 req/s keeps ~40 requests in flight when stop() is called.
    with run_service({"SERVICE_VERSION": "v-slow", "SERVICE_LATENCY_MS": "200"}) as slow:
        served_before = served_requests(slow)
        sockets_before = open_sockets()
        threads_before = set(threading.enumerate())

        with BackgroundLoad(LoadSpec(slow.url, rate=200, duration=60)) as load:
            snapshot = wait_for(
                lambda: load.log if len(load.log) >= 100 else None,
                what="100 requests completed in the background",
                timeout=15,
            )
            running_before_stop = load.running
            sockets_while_running = open_sockets() - sockets_before
            log = load.stop()

        assert running_before_stop
        assert sockets_while_running, "the check below must be able to see the load's sockets"
        assert load.stop() is log
        assert not load.running
        assert 100 <= len(snapshot) < len(log) < 60 * 200 / 4, (len(snapshot), len(log))
        assert log.dropped == 0
        assert log.by_version() == {"v-slow": len(log)}
        assert log.peak_in_flight >= 20, log.summary()
        assert set(threading.enumerate()) == threads_before
        assert open_sockets() - sockets_before == set()
        # Every request it sent was answered and recorded: none was abandoned in flight.
        assert served_requests(slow) - served_before == len(log)


def test_stop_does_not_wait_for_the_next_due_request(service: RunningService) -> None:
    load = BackgroundLoad(LoadSpec(service.url, rate=0.2, duration=60)).start()
    wait_for(lambda: len(load.log) == 1, what="the first request", timeout=10)
    began = time.monotonic()
    log = load.stop()
    assert time.monotonic() - began < 2.0, "stop waited for the 5 s gap to the next request"
    assert len(log) == 1


def test_wait_returns_when_the_count_is_reached(service: RunningService) -> None:
    with BackgroundLoad(LoadSpec(service.url, rate=100, count=50)) as load:
        log = load.wait()
    assert len(log) == 50
    assert load.log is log


def test_an_extractor_that_raises_ends_the_run_and_reaches_the_caller(
    service: RunningService,
) -> None:
    def broken(response: ResponseView) -> str:
        raise RuntimeError(f"extractor broke on status {response.status}")

    load = BackgroundLoad(LoadSpec(service.url, rate=100, duration=30, version=broken)).start()
    with pytest.raises(RuntimeError, match="extractor broke on status 200"):
        load.wait(timeout=15)
    assert not load.running


def test_a_background_load_runs_once() -> None:
    load = BackgroundLoad(LoadSpec("http://127.0.0.1:1", rate=10, count=1))
    with pytest.raises(RolloutError, match="never started"):
        load.stop()
    with load, pytest.raises(RolloutError, match="already started"):
        load.start()
