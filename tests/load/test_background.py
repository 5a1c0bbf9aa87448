"""BackgroundLoad: load from a process of its own while the test does other things; it streams
its records, shares the test's clock, stops without a trace and dies with its parent."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from pytest_rollout._proc import live_processes
from pytest_rollout._wait import wait_for
from pytest_rollout.errors import RolloutError
from pytest_rollout.load import BackgroundLoad, Clock, LoadSpec, Route
from service.launcher import RunningService, run_service
from tests.load.load_servers import open_sockets, served_requests

pytestmark = pytest.mark.slow  # starts real processes, or renders for seconds

REPO = Path(__file__).resolve().parents[2]


def _exited(pid: int) -> bool:
    """Whether ``pid`` is gone or a zombie (its parent may be dead and not reap it)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return True
    return state in ("Z", "X")


def test_stop_ends_the_run_early_and_leaves_nothing_behind() -> None:
    # 200 ms of latency at 200 req/s keeps ~40 requests in flight when stop() is called.
    with run_service({"SERVICE_VERSION": "v-slow", "SERVICE_LATENCY_MS": "200"}) as slow:
        served_before = served_requests(slow)
        fds_before = set(os.listdir("/proc/self/fd"))
        threads_before = set(threading.enumerate())
        processes_before = set(live_processes())

        with BackgroundLoad(LoadSpec(slow.url, rate=200, duration=60)) as load:
            snapshot = wait_for(
                lambda: load.log if len(load.log) >= 100 else None,
                what="100 requests completed in the background",
                timeout=15,
            )
            pid = load.pid
            assert pid is not None
            running_before_stop = load.running
            load_sockets = open_sockets(pid)
            log = load.stop()

        assert running_before_stop
        assert load_sockets, "the generator's process holds the load's connections"
        assert load.stop() is log
        assert not load.running
        assert 100 <= len(snapshot) < len(log) < 60 * 200 / 4, (len(snapshot), len(log))
        assert log.dropped == 0
        assert log.by_version() == {"v-slow": len(log)}
        assert log.peak_in_flight >= 20, log.summary()
        assert _exited(pid)
        assert set(live_processes()) == processes_before
        assert set(threading.enumerate()) == threads_before
        assert set(os.listdir("/proc/self/fd")) == fds_before
        # Every request it sent was answered and recorded: none was abandoned in flight.
        assert served_requests(slow) - served_before == len(log)


def test_the_log_grows_while_the_load_runs(service: RunningService) -> None:
    sizes: list[int] = []
    with BackgroundLoad(LoadSpec(service.url, rate=100, duration=1.5)) as load:

        def finished() -> bool:
            sizes.append(len(load.log))
            return not load.running

        wait_for(finished, what="the 1.5 s run to end", timeout=15, interval=0.01)
        log = load.wait()
    assert len(log) == 150
    # Batches every 50 ms: about 30 steps over the run, each of a few requests.
    steps = sorted(set(sizes))
    assert len(steps) >= 10, steps
    assert max(b - a for a, b in itertools.pairwise(steps)) <= 30, steps


def test_times_are_on_the_parents_clock(service: RunningService) -> None:
    # A clock whose epoch is 1000 s after boot: the child's times can only land in the window
    # below if it stamps them from this clock's base.
    clock = Clock(base=(1000.0, time.monotonic()))
    before = clock.now()
    with BackgroundLoad(LoadSpec(service.url, rate=100, count=20), clock=clock) as load:
        log = load.wait()
    after = clock.now()
    assert before <= log.started_at <= log.records[0].intended < after
    assert all(before <= r.intended <= r.sent < after for r in log.records), log.records[:3]


def test_captures_reach_the_parent(service: RunningService) -> None:
    mix = (
        Route("checkout", "POST", "/checkout", json_body={"item": "x"}, capture={"id": "order_id"}),
        Route("read", "GET", "/orders/{id}"),
    )
    with BackgroundLoad(LoadSpec(service.url, rate=100, count=60, mix=mix)) as load:
        log = load.wait()
    ids = log.captured_values("id")
    reads = [r for r in log.records if r.route == "read"]
    assert log.by_status() == {200: 60}, log.summary()
    assert len(ids) + len(reads) == 60
    assert reads
    assert all(r.used["id"] in ids for r in reads)


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


def test_a_generator_that_dies_is_reported_with_its_exit_status(service: RunningService) -> None:
    load = BackgroundLoad(LoadSpec(service.url, rate=100, duration=30)).start()
    wait_for(lambda: len(load.log) >= 10, what="10 requests", timeout=10)
    assert load.pid is not None
    os.kill(load.pid, signal.SIGKILL)
    with pytest.raises(RolloutError, match=r"exited with status -9 before the run ended \(\d+ "):
        load.wait(timeout=15)
    assert not load.running


def test_a_failure_in_the_generators_process_reaches_the_caller_with_its_traceback() -> None:
    spec = LoadSpec("http://127.0.0.1:1", rate=10, count=5)
    # Past validation, as a bug in the generator would be: its process cannot build the URL.
    object.__setattr__(spec, "url", "http://127.0.0.1:99999")
    load = BackgroundLoad(spec).start()
    with pytest.raises(RolloutError, match=r"(?s)failed:\nTraceback.*Port out of range"):
        load.wait(timeout=15)
    assert not load.running


def test_the_generator_dies_with_a_killed_parent(service: RunningService, tmp_path: Path) -> None:
    # A parent that starts a long load, says the generator's pid, and waits to be killed.
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import sys
            from pytest_rollout.load import BackgroundLoad, LoadSpec
            load = BackgroundLoad(LoadSpec({service.url!r}, rate=50, duration=120)).start()
            print(load.pid, flush=True)
            sys.stdin.read()
            """
        )
    )
    parent = subprocess.Popen(
        [sys.executable, str(script)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=REPO,
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        before = served_requests(service)
        wait_for(
            lambda: served_requests(service) - before >= 10,
            what="the orphan-to-be to send 10 requests",
            timeout=15,
        )
        parent.kill()
        parent.wait(10)
        # Its stdin closed with the parent: it exits at once, sending nothing more.
        wait_for(lambda: _exited(child), what=f"generator pid {child} to exit", timeout=3)
    finally:
        parent.kill()
        parent.wait(10)
        if parent.stdout is not None:
            parent.stdout.close()
        if parent.stdin is not None:
            parent.stdin.close()


def test_a_background_load_runs_once() -> None:
    load = BackgroundLoad(LoadSpec("http://127.0.0.1:1", rate=10, count=1))
    with pytest.raises(RolloutError, match="never started"):
        load.stop()
    with load, pytest.raises(RolloutError, match="already started"):
        load.start()
