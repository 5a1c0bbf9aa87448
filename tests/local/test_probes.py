"""Probe specs, the probe state machine, and the probe executors against real sockets/processes."""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pytest_rollout._proc import ManagedProcess, live_processes
from pytest_rollout.backends.local.addresses import default_allocator
from pytest_rollout.backends.local.probes import (
    ContainerHealth,
    ExecAction,
    HealthChange,
    HTTPGetAction,
    ProbeKind,
    ProbeSpec,
    ProbeTarget,
    TCPSocketAction,
    execute,
    expand_references,
    http_get,
    tcp_connect,
    wait_for_exit,
)
from pytest_rollout.errors import ConfigError
from pytest_rollout.fieldcheck import FieldRef

PORTS = {"http": 8080, "metrics": 9090}


def parse(
    raw: dict[str, Any], kind: ProbeKind = ProbeKind.READINESS, scale: float = 1.0
) -> ProbeSpec:
    where = FieldRef(("spec", "containers", 0, kind.field))
    return ProbeSpec.from_manifest(raw, kind=kind, where=where, ports=PORTS, time_scale=scale)


def spec(
    *,
    delay: float = 0.0,
    period: float = 1.0,
    success: int = 1,
    failure: int = 3,
) -> ProbeSpec:
    return ProbeSpec(
        action=TCPSocketAction(8080),
        initial_delay=delay,
        period=period,
        success_threshold=success,
        failure_threshold=failure,
    )


# --- parsing --------------------------------------------------------------------------------


def test_kubernetes_defaults_apply_when_fields_are_absent_or_zero() -> None:
    for raw in (
        {"httpGet": {"path": "/readyz", "port": 8080}},
        {
            "httpGet": {"path": "/readyz", "port": 8080},
            "periodSeconds": 0,
            "timeoutSeconds": 0,
            "successThreshold": 0,
            "failureThreshold": 0,
        },
    ):
        probe = parse(raw)
        assert (probe.initial_delay, probe.period, probe.timeout) == (0.0, 10.0, 1.0)
        assert (probe.success_threshold, probe.failure_threshold) == (1, 3)
        assert probe.action == HTTPGetAction(port=8080, path="/readyz")


@given(
    delay=st.integers(0, 600),
    period=st.integers(1, 600),
    timeout=st.integers(1, 600),
    success=st.integers(1, 20),
    failure=st.integers(1, 20),
    scale=st.sampled_from([1.0, 0.5, 0.1]),
)
def test_timing_fields_are_kept_and_scaled(
    delay: int, period: int, timeout: int, success: int, failure: int, scale: float
) -> None:
    probe = parse(
        {
            "tcpSocket": {"port": "http"},
            "initialDelaySeconds": delay,
            "periodSeconds": period,
            "timeoutSeconds": timeout,
            "successThreshold": success,
            "failureThreshold": failure,
        },
        scale=scale,
    )
    assert probe.initial_delay == pytest.approx(delay * scale)
    assert probe.period == pytest.approx(period * scale)
    assert probe.timeout == pytest.approx(timeout * scale)
    assert (probe.success_threshold, probe.failure_threshold) == (success, failure)
    assert probe.action == TCPSocketAction(port=8080)


def test_named_port_header_and_host_are_resolved() -> None:
    probe = parse(
        {
            "httpGet": {
                "path": "healthz",
                "port": "metrics",
                "host": "localhost",
                "scheme": "HTTP",
                "httpHeaders": [{"name": "X-Probe", "value": "yes"}],
            }
        }
    )
    assert probe.action == HTTPGetAction(
        port=9090, path="/healthz", host="127.0.0.1", headers=(("X-Probe", "yes"),)
    )


def test_exec_probe_is_parsed() -> None:
    probe = parse({"exec": {"command": ["cat", "/tmp/healthy"]}}, ProbeKind.LIVENESS)
    assert probe.action == ExecAction(("cat", "/tmp/healthy"))


@pytest.mark.parametrize(
    ("kind", "raw", "message"),
    [
        (
            ProbeKind.READINESS,
            {"grpc": {"port": 9000}},
            "unsupported: spec.containers[0].readinessProbe.grpc",
        ),
        (
            ProbeKind.LIVENESS,
            {"tcpSocket": {"port": 8080}, "successThreshold": 2},
            "spec.containers[0].livenessProbe.successThreshold=2: must be 1",
        ),
        (
            ProbeKind.STARTUP,
            {"tcpSocket": {"port": 8080}, "successThreshold": 3},
            "spec.containers[0].startupProbe.successThreshold=3: must be 1",
        ),
        (
            ProbeKind.READINESS,
            {"tcpSocket": {"port": 8080}, "terminationGracePeriodSeconds": 5},
            "readinessProbe.terminationGracePeriodSeconds: must not be set",
        ),
        (
            ProbeKind.LIVENESS,
            {"tcpSocket": {"port": 8080}, "terminationGracePeriodSeconds": 0},
            "livenessProbe.terminationGracePeriodSeconds=0: must be greater than 0",
        ),
        (
            ProbeKind.READINESS,
            {"httpGet": {"port": 8080, "scheme": "HTTPS"}},
            "unsupported: spec.containers[0].readinessProbe.httpGet.scheme='HTTPS'",
        ),
        (
            ProbeKind.READINESS,
            {"httpGet": {"port": 8080, "host": "10.0.0.7"}},
            "unsupported: spec.containers[0].readinessProbe.httpGet.host='10.0.0.7'",
        ),
        (
            ProbeKind.READINESS,
            {"httpGet": {"port": "grpc-port"}},
            "readinessProbe.httpGet.port='grpc-port': no container port has that name",
        ),
        (
            ProbeKind.READINESS,
            {"tcpSocket": {"port": 70000}},
            "readinessProbe.tcpSocket.port=70000: must be between 1 and 65535",
        ),
        (
            ProbeKind.READINESS,
            {"tcpSocket": {"port": 8080}, "exec": {"command": ["true"]}},
            "may not specify more than 1 handler type",
        ),
        (ProbeKind.READINESS, {"periodSeconds": 5}, "must specify a handler type"),
        (
            ProbeKind.READINESS,
            {"tcpSocket": {"port": 8080}, "periodSeconds": -1},
            "readinessProbe.periodSeconds=-1: must be greater than or equal to 0",
        ),
        (
            ProbeKind.READINESS,
            {"tcpSocket": {"port": 8080}, "periodSeconds": 1.5},
            "readinessProbe.periodSeconds=1.5: must be an integer",
        ),
        (
            ProbeKind.READINESS,
            {"tcpSocket": {"port": 8080}, "perodSeconds": 5},
            "unsupported: spec.containers[0].readinessProbe.perodSeconds",
        ),
        (ProbeKind.READINESS, {"exec": {"command": []}}, "exec.command: must be a non-empty list"),
    ],
)
def test_bad_probe_is_one_clear_error(kind: ProbeKind, raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(raw, kind)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


# --- the state machine ----------------------------------------------------------------------


def settled_by_runs(results: list[bool], success: int, failure: int, initial: bool) -> bool:
    """Reference: the last run of equal results that reached its threshold decides."""
    state = initial
    for value, run in itertools.groupby(results):
        if len(list(run)) >= (success if value else failure):
            state = value
    return state


@given(
    results=st.lists(st.booleans(), max_size=60),
    success=st.integers(1, 5),
    failure=st.integers(1, 5),
)
def test_readiness_follows_thresholds(results: list[bool], success: int, failure: int) -> None:
    health = ContainerHealth(started_at=0.0, readiness=spec(success=success, failure=failure))
    transitions: list[HealthChange] = []
    now = 0.0
    for result in results:
        tick = health.next_probe_at(ProbeKind.READINESS, now)
        assert tick is not None
        transitions += health.record(ProbeKind.READINESS, result, tick=tick, now=tick)
        now = tick
    assert health.ready is settled_by_runs(results, success, failure, initial=False)
    # Transitions alternate, starting with READY (the initial state is not ready).
    expected = itertools.cycle([HealthChange.READY, HealthChange.NOT_READY])
    assert transitions == [next(expected) for _ in transitions]


@given(results=st.lists(st.booleans(), min_size=1, max_size=30), success=st.integers(1, 5))
def test_never_ready_before_success_threshold_probes(results: list[bool], success: int) -> None:
    health = ContainerHealth(started_at=0.0, readiness=spec(success=success, failure=1))
    for count, result in enumerate(results, start=1):
        tick = health.next_probe_at(ProbeKind.READINESS, 0.0)
        assert tick is not None
        health.record(ProbeKind.READINESS, result, tick=tick, now=tick)
        if health.ready:
            assert count >= success
            assert all(results[count - success : count])


@given(
    started_at=st.floats(0, 1e6),
    delay=st.floats(0, 100),
    period=st.floats(0.05, 60),
    durations=st.lists(st.floats(0, 200), min_size=1, max_size=20),
)
def test_schedule_honours_initial_delay_and_skips_missed_ticks(
    started_at: float, delay: float, period: float, durations: list[float]
) -> None:
    health = ContainerHealth(started_at=started_at, liveness=spec(delay=delay, period=period))
    origin = started_at + delay
    now = started_at
    previous: float | None = None
    for index, duration in enumerate(durations):
        tick = health.next_probe_at(ProbeKind.LIVENESS, now)
        assert tick is not None
        if index == 0:
            assert tick == pytest.approx(origin)  # first probe exactly after the initial delay
        assert tick >= origin - 1e-6
        assert tick >= now - 1e-6
        if now >= origin:
            assert tick - now < period + 1e-6  # a missed tick is dropped, not made up later
        steps = (tick - origin) / period
        assert steps == pytest.approx(round(steps), abs=1e-6)  # on the period grid
        if previous is not None:
            assert tick > previous
        health.record(ProbeKind.LIVENESS, True, tick=tick, now=tick + duration)
        previous, now = tick, tick + duration


@given(failure=st.integers(1, 6), successes_first=st.integers(0, 5))
def test_liveness_failure_fires_once_then_holds(failure: int, successes_first: int) -> None:
    health = ContainerHealth(started_at=0.0, liveness=spec(failure=failure))
    fired: list[HealthChange] = []
    results = [True] * successes_first + [False] * failure
    for result in results:
        tick = health.next_probe_at(ProbeKind.LIVENESS, 0.0)
        assert tick is not None
        fired += health.record(ProbeKind.LIVENESS, result, tick=tick, now=tick)
    assert fired == [HealthChange.LIVENESS_FAILED]
    assert health.next_probe_at(ProbeKind.LIVENESS, 1e9) is None


def test_liveness_failures_must_be_consecutive() -> None:
    health = ContainerHealth(started_at=0.0, liveness=spec(failure=3))
    fired: list[HealthChange] = []
    for result in (False, False, True, False, False, True, False, False):
        tick = health.next_probe_at(ProbeKind.LIVENESS, 0.0)
        assert tick is not None
        fired += health.record(ProbeKind.LIVENESS, result, tick=tick, now=tick)
    assert fired == []


def test_startup_probe_gates_readiness_and_liveness() -> None:
    health = ContainerHealth(
        started_at=100.0,
        readiness=spec(delay=0.0, period=10.0),
        liveness=spec(delay=0.0, period=10.0),
        startup=spec(delay=1.0, period=2.0, failure=30),
    )
    assert health.startup_done_at is None
    assert health.next_probe_at(ProbeKind.READINESS, 100.0) is None
    assert health.next_probe_at(ProbeKind.LIVENESS, 100.0) is None
    assert health.next_probe_at(ProbeKind.STARTUP, 100.0) == 101.0
    assert health.record(ProbeKind.STARTUP, False, tick=101.0, now=101.0) == []
    assert health.next_probe_at(ProbeKind.STARTUP, 101.0) == 103.0
    assert health.record(ProbeKind.STARTUP, True, tick=103.0, now=103.5) == [HealthChange.STARTED]
    assert health.started
    assert not health.ready  # the readiness probe has not passed yet
    assert health.next_probe_at(ProbeKind.STARTUP, 103.5) is None
    # Readiness and liveness start the moment startup succeeds, then keep their own period.
    assert health.next_probe_at(ProbeKind.READINESS, 103.5) == 103.5
    assert health.record(ProbeKind.READINESS, True, tick=103.5, now=103.6) == [HealthChange.READY]
    assert health.next_probe_at(ProbeKind.READINESS, 103.6) == 113.5


def test_startup_failure_asks_for_a_restart() -> None:
    health = ContainerHealth(started_at=0.0, startup=spec(failure=2))
    assert health.record(ProbeKind.STARTUP, False, tick=0.0, now=0.0) == []
    assert health.record(ProbeKind.STARTUP, False, tick=1.0, now=1.0) == [
        HealthChange.STARTUP_FAILED
    ]
    assert health.next_probe_at(ProbeKind.STARTUP, 1.0) is None


def test_without_readiness_probe_ready_once_started() -> None:
    assert ContainerHealth(started_at=0.0).ready
    assert ContainerHealth(started_at=0.0, liveness=spec()).ready
    health = ContainerHealth(started_at=0.0, startup=spec())
    assert not health.ready
    assert health.record(ProbeKind.STARTUP, True, tick=0.0, now=0.2) == [
        HealthChange.STARTED,
        HealthChange.READY,
    ]


@given(delay=st.floats(0.1, 100), period=st.floats(0.05, 10))
def test_readiness_before_initial_delay_is_not_ready(delay: float, period: float) -> None:
    health = ContainerHealth(started_at=0.0, readiness=spec(delay=delay, period=period))
    assert not health.ready
    tick = health.next_probe_at(ProbeKind.READINESS, 0.0)
    assert tick is not None
    assert tick == pytest.approx(delay)


# --- executors --------------------------------------------------------------------------------

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def tcp_server(handler: Handler) -> AsyncIterator[tuple[str, int]]:
    allocator = default_allocator()
    host = allocator.allocate()
    server = await asyncio.start_server(handler, host, 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield host, port
    finally:
        server.close()
        await server.wait_closed()
        allocator.release(host)


def answering(status: int, requests: list[bytes] | None = None, delay: float = 0.0) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readuntil(b"\r\n\r\n")
        if requests is not None:
            requests.append(request)
        if delay:
            await asyncio.sleep(delay)  # the server's latency under test
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\n\r\nok".encode())
        await writer.drain()
        writer.close()

    return handle


async def never_answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # holds the connection until the client gives up
    writer.close()


async def closing_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


@pytest.mark.parametrize(
    ("status", "success"),
    [(200, True), (204, True), (302, True), (399, True), (404, False), (500, False)],
)
def test_http_get_success_is_200_to_399(status: int, success: bool) -> None:
    async def scenario() -> None:
        async with tcp_server(answering(status)) as (host, port):
            result = await http_get(HTTPGetAction(port=port, path="/readyz"), host, 2.0)
        assert result.success is success
        assert result.status == status
        if not success:
            assert result.output == f"HTTP probe failed with statuscode: {status}"

    asyncio.run(scenario())


def test_http_get_sends_kube_probe_headers_and_custom_ones() -> None:
    async def scenario() -> None:
        requests: list[bytes] = []
        async with tcp_server(answering(200, requests)) as (host, port):
            plain = HTTPGetAction(port=port, path="/healthz")
            custom = HTTPGetAction(
                port=port, path="/healthz", headers=(("User-Agent", "mine"), ("X-Env", "prod"))
            )
            assert (await http_get(plain, host, 2.0)).success
            assert (await http_get(custom, host, 2.0)).success
        first, second = (r.decode() for r in requests)
        assert first.startswith("GET /healthz HTTP/1.1\r\n")
        assert "User-Agent: kube-probe/" in first
        assert "Accept: */*" in first
        assert f"Host: {host}:" in first
        assert "User-Agent: mine" in second
        assert "kube-probe" not in second
        assert "X-Env: prod" in second

    asyncio.run(scenario())


@pytest.mark.parametrize(("latency", "timeout", "success"), [(0.0, 1.0, True), (0.6, 0.15, False)])
def test_http_get_timeout_is_a_failure(latency: float, timeout: float, success: bool) -> None:
    async def scenario() -> None:
        async with tcp_server(answering(200, delay=latency)) as (host, port):
            loop = asyncio.get_running_loop()
            began = loop.time()
            result = await http_get(HTTPGetAction(port=port, path="/slow"), host, timeout)
            took = loop.time() - began
        assert result.success is success
        if not success:
            assert "context deadline exceeded" in result.output
            assert f'Get "http://{host}:{port}/slow"' in result.output
            assert took < latency, f"probe waited {took:.2f}s, past its {timeout}s timeout"

    asyncio.run(scenario())


def test_http_get_failures_say_why() -> None:
    async def scenario() -> None:
        async with tcp_server(never_answering) as (host, port):
            hung = await http_get(HTTPGetAction(port=port), host, 0.2)
        async with tcp_server(closing_at_once) as (host, port):
            closed = await http_get(HTTPGetAction(port=port), host, 2.0)
        refused = await http_get(HTTPGetAction(port=port), host, 2.0)
        assert not hung.success
        assert "context deadline exceeded" in hung.output
        assert not closed.success
        assert closed.output.endswith(": EOF") or "reset" in closed.output
        assert not refused.success
        assert refused.output.endswith(f"dial tcp {host}:{port}: connect: connection refused")

    asyncio.run(scenario())


def test_tcp_socket_succeeds_when_a_connection_opens() -> None:
    async def scenario() -> None:
        async with tcp_server(closing_at_once) as (host, port):
            opened = await tcp_connect(TCPSocketAction(port), host, 1.0)
        refused = await tcp_connect(TCPSocketAction(port), host, 1.0)
        assert opened.success
        assert not refused.success
        assert refused.output == f"dial tcp {host}:{port}: connect: connection refused"

    asyncio.run(scenario())


def exec_target(tmp_path: Path, **env: str) -> ProbeTarget:
    return ProbeTarget(
        pod_ip="127.0.0.1",
        env={"PATH": "/usr/bin:/bin", **env},
        cwd=tmp_path,
        scratch_dir=tmp_path / "exec",
        name="exec probe under test",
    )


def python(code: str) -> ExecAction:
    return ExecAction((sys.executable, "-c", code))


def test_exec_exit_code_decides_and_output_is_the_message(tmp_path: Path) -> None:
    async def scenario() -> None:
        target = exec_target(tmp_path, MARKER="$(HOME)")
        ok = await execute(python("print('fine')"), target, 5.0)
        bad = await execute(
            python("import sys; print('cache cold', file=sys.stderr); sys.exit(3)"), target, 5.0
        )
        missing = await execute(ExecAction(("cat", "/nonexistent/healthy")), target, 5.0)
        assert ok.success
        assert ok.output.strip() == "fine"
        assert not bad.success
        assert bad.output.strip() == "cache cold"
        assert not missing.success
        assert "No such file or directory" in missing.output

    asyncio.run(scenario())
    assert list((tmp_path / "exec").iterdir()) == []  # captured output is cleaned up


def test_exec_sees_the_pod_environment_and_expands_references(tmp_path: Path) -> None:
    async def scenario() -> None:
        target = exec_target(tmp_path, STATE=str(tmp_path), WANT="yes")
        (tmp_path / "ready").write_text("x")
        found = await execute(ExecAction(("test", "-f", "$(STATE)/ready")), target, 5.0)
        absent = await execute(ExecAction(("test", "-f", "$(STATE)/gone")), target, 5.0)
        env = await execute(
            python("import os, sys; sys.exit(0 if os.environ['WANT'] == 'yes' else 1)"),
            target,
            5.0,
        )
        assert found.success
        assert not absent.success
        assert env.success

    asyncio.run(scenario())


def test_exec_timeout_is_a_failure_and_leaves_no_process(tmp_path: Path) -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        result = await execute(python("import time; time.sleep(30)"), exec_target(tmp_path), 0.3)
        took = loop.time() - began
        assert not result.success
        assert "timed out" in result.output
        assert took < 5.0

    asyncio.run(scenario())
    assert not [p for p in live_processes() if p.name == "exec probe under test"]


def test_wait_for_exit_returns_code_or_none_on_timeout() -> None:
    async def scenario() -> None:
        quick = ManagedProcess("quick", [sys.executable, "-c", "raise SystemExit(7)"]).start()
        slow = ManagedProcess("slow", [sys.executable, "-c", "import time; time.sleep(30)"]).start()
        try:
            assert await wait_for_exit(quick, 10.0) == 7
            assert await wait_for_exit(slow, 0.2) is None
        finally:
            quick.stop(grace=0)
            slow.stop(grace=0)

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)/x", "1/x"),
        ("$(MISSING)", "$(MISSING)"),
        ("$$(A)", "$(A)"),
        ("a$$b", "a$b"),
        ("$(A)$(B)", "12"),
        ("$(A", "$(A"),
        ("cost: $5", "cost: $5"),
        ("trailing $", "trailing $"),
    ],
)
def test_expand_references_follows_kubernetes(text: str, expected: str) -> None:
    assert expand_references(text, {"A": "1", "B": "2"}) == expected
