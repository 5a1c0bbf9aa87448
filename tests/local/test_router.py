"""The local router: a real HAProxy in front of real HTTP endpoints on their own loopback IPs."""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from pytest_rollout._proc import free_port, live_processes, port_accepts
from pytest_rollout._wait import wait_for
from pytest_rollout.backends.local import haproxy_config as cfg
from pytest_rollout.backends.local.haproxy_cli import parse_show_proc
from pytest_rollout.backends.local.router import Router
from pytest_rollout.errors import ConfigError, ProcessError

pytestmark = pytest.mark.slow  # starts real processes, or renders for seconds

T = TypeVar("T")
SERVED_BY = "X-Served-By"


# -- harness: an event loop thread hosting endpoints and clients -----------------------------


class LoopThread:
    """An asyncio loop in a thread, so blocking router calls and async HTTP can interleave."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-loop", daemon=True)
        self._thread.start()

    def submit(self, coro: Awaitable[T]) -> concurrent.futures.Future[T]:
        async def wrapper() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrapper(), self.loop)

    def run(self, coro: Awaitable[T], timeout: float = 30.0) -> T:
        return self.submit(coro).result(timeout)

    def close(self) -> None:
        async def cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5.0)
        self.loop.close()


class Endpoints:
    """Tiny aiohttp servers standing in for pods: ``GET /`` and ``GET /slow?seconds=S``."""

    def __init__(self, loop: LoopThread) -> None:
        self._loop = loop
        self._runners: list[web.AppRunner] = []
        self._raw: list[asyncio.Server] = []

    def http(self, host: str, name: str) -> str:
        async def root(request: web.Request) -> web.Response:
            return web.Response(text=name, headers={SERVED_BY: name})

        async def slow(request: web.Request) -> web.Response:
            await asyncio.sleep(float(request.query["seconds"]))  # the latency under test
            return web.Response(text=name, headers={SERVED_BY: name})

        async def start() -> str:
            app = web.Application()
            app.router.add_get("/", root)
            app.router.add_get("/slow", slow)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.bind((host, 0))
            await web.SockSite(runner, listener).start()
            self._runners.append(runner)
            return f"{host}:{listener.getsockname()[1]}"

        return self._loop.run(start())

    def accept_then_close(self, host: str) -> str:
        """Accepts every connection and closes it without an answer (a booting process)."""

        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.close()

        async def start() -> str:
            server = await asyncio.start_server(hang_up, host, 0)
            self._raw.append(server)
            return f"{host}:{server.sockets[0].getsockname()[1]}"

        return self._loop.run(start())

    def close(self) -> None:
        async def stop_all() -> None:
            for runner in self._runners:
                await runner.cleanup()
            for server in self._raw:
                server.close()
                await server.wait_closed()

        self._loop.run(stop_all())


def refused_address(host: str) -> str:
    """An address where nothing listens: connecting is refused."""
    return f"{host}:{free_port(host)}"


@dataclass
class Outcome:
    sent_at: float
    status: int | None
    served_by: str | None
    error: str | None = None


@dataclass
class Responses:
    outcomes: list[Outcome] = field(default_factory=list)

    def statuses(self) -> Counter[int | str]:
        return Counter(
            o.status if o.status is not None else f"error:{o.error}" for o in self.outcomes
        )

    def served_by(self, since: float = 0.0) -> Counter[str]:
        return Counter(o.served_by or "-" for o in self.outcomes if o.sent_at >= since)

    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status != 200]


async def fetch(session: aiohttp.ClientSession, url: str) -> Outcome:
    sent_at = time.monotonic()
    try:
        async with session.get(url) as response:
            await response.read()
            return Outcome(sent_at, response.status, response.headers.get(SERVED_BY))
    except (TimeoutError, aiohttp.ClientError) as exc:
        return Outcome(sent_at, None, None, type(exc).__name__)


async def fetch_many(url: str, count: int, concurrency: int = 8) -> Responses:
    traffic = Responses()
    queue = iter(range(count))

    async def worker(session: aiohttp.ClientSession) -> None:
        for _ in queue:
            traffic.outcomes.append(await fetch(session, url))

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        await asyncio.gather(*(worker(session) for _ in range(concurrency)))
    return traffic


class Load:
    """Closed-loop background traffic from ``workers`` keep-alive clients until stopped."""

    def __init__(self, loop: LoopThread, url: str, workers: int = 4) -> None:
        self.traffic = Responses()
        self._stop = asyncio.Event()
        self._loop = loop
        self._future = loop.submit(self._run(url, workers))

    async def _run(self, url: str, workers: int) -> None:
        async def worker(session: aiohttp.ClientSession) -> None:
            while not self._stop.is_set():
                self.traffic.outcomes.append(await fetch(session, url))

        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            await asyncio.gather(*(worker(session) for _ in range(workers)))

    def count(self) -> int:
        return len(self.traffic.outcomes)

    def wait_for_more(self, requests: int, what: str) -> None:
        """Wait until ``requests`` more requests have completed from now."""
        target = self.count() + requests
        wait_for(lambda: self.count() >= target, what=f"{requests} requests {what}", timeout=10)

    def stop(self) -> Responses:
        self._loop.loop.call_soon_threadsafe(self._stop.set)
        self._future.result(15.0)
        return self.traffic


def binomial_bound(n: int, p: float, sigmas: float = 4.0) -> tuple[float, float]:
    spread = sigmas * math.sqrt(n * p * (1 - p))
    return n * p - spread, n * p + spread


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture
def endpoints(loop: LoopThread) -> Iterator[Endpoints]:
    servers = Endpoints(loop)
    yield servers
    servers.close()


@pytest.fixture
def router(tmp_path: Path) -> Iterator[Router]:
    with Router(tmp_path / "router") as started:
        yield started


def wait_in_flight(router: Router, pod: str, timeout: float = 5.0) -> None:
    def active() -> bool:
        return any(s.pod == pod and s.active > 0 for s in router.stats().servers)

    wait_for(active, what=f"a request in flight on {pod}", timeout=timeout)


# -- pure logic ------------------------------------------------------------------------------


@given(st.lists(st.integers(min_value=0, max_value=1_000_000), min_size=1, max_size=6))
def test_thresholds_are_cumulative_and_end_at_the_scale(weights: list[int]) -> None:
    limits = cfg.thresholds(weights)
    assert len(limits) == len(weights)
    assert list(limits) == sorted(limits)
    if sum(weights) == 0:
        assert set(limits) == {0}
    else:
        assert limits[-1] == cfg.SPLIT_SCALE
        for weight, low, high in zip(weights, (0, *limits), limits, strict=False):
            share = (high - low) / cfg.SPLIT_SCALE
            assert abs(share - weight / sum(weights)) <= 1 / cfg.SPLIT_SCALE


def test_a_negative_weight_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"weights must be >= 0, got \[1, -1\]"):
        cfg.thresholds([1, -1])


def test_every_integer_percentage_is_exact() -> None:
    for percent in range(101):
        assert cfg.thresholds([100 - percent, percent]) == (
            (100 - percent) * cfg.SPLIT_SCALE // 100,
            cfg.SPLIT_SCALE,
        )


def test_show_proc_is_parsed_with_old_workers() -> None:
    text = (
        "#<PID>          <type>          <reloads>       <uptime>        <version>\n"
        "100             master          2 [failed: 1]   0d00h00m07s     2.6.12\n"
        "# workers\n"
        "130             worker          0               0d00h00m01s     2.6.12\n"
        "# old workers\n"
        "120             worker          1               0d00h00m03s     2.6.12\n"
        "# programs\n"
    )
    assert parse_show_proc(text).__dict__ == {
        "master_pid": 100,
        "reloads": 2,
        "failed_reloads": 1,
        "workers": (130,),
        "old_workers": (120,),
    }


def test_bad_input_is_one_clear_error(router: Router) -> None:
    with pytest.raises(ConfigError, match=r"weight of pool 'ns/a' is -1; an integer 0\.\.1000000"):
        router.ensure_route("web", [("ns/a", -1)])
    with pytest.raises(ConfigError, match="weight of pool 'ns/a' is True"):
        router.ensure_route("web", [("ns/a", True)])
    with pytest.raises(ConfigError, match="appears twice"):
        router.ensure_route("web", [("ns/a", 1), ("ns/a", 2)])
    with pytest.raises(ConfigError, match=r"'10\.0\.0\.5' is not an address in 127\.0\.0\.0/8"):
        router.set_endpoints("ns/a", {"pod-1": "10.0.0.5:80"})
    with pytest.raises(ConfigError, match=r"address '127\.0\.5\.1' is not '127\.x\.y\.z:port'"):
        router.set_endpoints("ns/a", {"pod-1": "127.0.5.1"})
    router.ensure_route("web", [("ns/a", 1)])
    with pytest.raises(ConfigError, match=r"no backend pool\(s\) \['ns/b'\]; its pools are"):
        router.set_weights("web", {"ns/b": 1})
    with pytest.raises(ConfigError, match=r"no route 'other'; known routes: \['web'\]"):
        router.set_weights("other", {"ns/a": 1})
    with pytest.raises(ConfigError, match=r"still a backend of route\(s\) \['web'\]"):
        router.remove_pool("ns/a")
    assert router.reloads == 1, "rejected input must not have changed the proxy"


# -- against a real HAProxy ------------------------------------------------------------------


def test_split_is_exact_and_a_weight_change_applies_to_the_next_request(
    router: Router, endpoints: Endpoints, loop: LoopThread
) -> None:
    router.set_endpoints("ns1/stable-svc", {"stable-1": endpoints.http("127.0.5.1", "stable-1")})
    router.set_endpoints("ns1/canary-svc", {"canary-1": endpoints.http("127.0.5.2", "canary-1")})
    router.ensure_route("web", [("ns1/stable-svc", 80), ("ns1/canary-svc", 20)])
    reloads, worker = router.reloads, router.worker_pid

    traffic = loop.run(fetch_many(router.route_url("web"), 2000))
    assert traffic.statuses() == {200: 2000}
    canary = traffic.served_by()["canary-1"]
    low, high = binomial_bound(2000, 0.20)
    assert low <= canary <= high, f"canary served {canary} of 2000, expected {low:.0f}..{high:.0f}"

    for stable, canary_weight in ((100, 0), (0, 100), (95, 5)):
        router.set_weights("web", {"ns1/stable-svc": stable, "ns1/canary-svc": canary_weight})
        batch = loop.run(fetch_many(router.route_url("web"), 400))
        seen = batch.served_by()
        if canary_weight in (0, 100):
            expected = "canary-1" if canary_weight else "stable-1"
            assert seen == {expected: 400}, f"weights {stable}/{canary_weight}: saw {dict(seen)}"
        else:
            low, high = binomial_bound(400, 0.05)
            assert low <= seen["canary-1"] <= high, f"5% step: {dict(seen)}"

    assert (router.reloads, router.worker_pid) == (reloads, worker), "weights must not reload"
    stats = router.stats()
    assert stats.routes["web"].requests == 3200
    assert stats.pools["ns1/canary-svc"].requests == stats.requests_by_pod()["canary-1"]


def test_endpoint_changes_under_load_lose_no_request(
    router: Router, endpoints: Endpoints, loop: LoopThread
) -> None:
    pool = "ns1/web"
    router.ensure_route("web", [(pool, 1)])
    router.set_endpoints(pool, {"web-1": endpoints.http("127.0.5.11", "web-1")})
    url = router.route_url("web")
    worker = router.worker_pid

    slow = loop.submit(fetch_once(f"{url}/slow?seconds=1.5"))
    wait_in_flight(router, "web-1")
    load = Load(loop, url)
    load.wait_for_more(200, "of background load")

    router.set_endpoints(pool, {"web-2": endpoints.http("127.0.5.12", "web-2")})
    replaced_at = time.monotonic()
    assert router.draining(pool) == {"web-1": router_address(router, "web-1")}, (
        "web-1 has a request in flight, so it must still be draining"
    )
    load.wait_for_more(400, "after the first change")
    router.set_endpoints(
        pool,
        {"web-2": router.endpoints(pool)["web-2"], "web-3": endpoints.http("127.0.5.13", "web-3")},
    )
    load.wait_for_more(400, "after the second change")
    router.set_endpoints(pool, {"web-3": router.endpoints(pool)["web-3"]})
    third_change = time.monotonic()
    load.wait_for_more(400, "after the third change")

    slow_outcome = slow.result(10)
    traffic = load.stop()
    router.wait_drained()

    assert (slow_outcome.status, slow_outcome.served_by) == (200, "web-1")
    assert traffic.failures() == [], f"load saw {traffic.statuses()}"
    assert "web-1" not in traffic.served_by(since=replaced_at), "drained endpoint got new work"
    assert set(traffic.served_by(since=third_change)) == {"web-3"}
    assert set(traffic.served_by()) == {"web-1", "web-2", "web-3"}
    statuses = {s.pod: s.status for s in router.stats().servers}
    assert statuses == {"web-1": "removed", "web-2": "removed", "web-3": "no check"}
    assert router.worker_pid == worker, "endpoint changes must not reload"


def test_reload_keeps_state_and_finishes_in_flight_requests(
    router: Router, endpoints: Endpoints, loop: LoopThread
) -> None:
    router.ensure_route("web", [("ns1/a", 70), ("ns1/b", 30)])
    router.set_endpoints(
        "ns1/a",
        {"a-1": endpoints.http("127.0.5.21", "a-1"), "a-2": endpoints.http("127.0.5.22", "a-2")},
    )
    router.set_endpoints("ns1/b", {"b-1": endpoints.http("127.0.5.23", "b-1")})
    router.set_endpoints("ns1/b", {"b-2": endpoints.http("127.0.5.24", "b-2")})  # b-1 drains
    url = router.route_url("web")
    endpoints_a = router.endpoints("ns1/a")
    old_worker = router.worker_pid

    router.set_weights("web", {"ns1/a": 0, "ns1/b": 100})
    slow = loop.submit(fetch_once(f"{url}/slow?seconds=1.5"))
    wait_in_flight(router, "b-2")
    router.set_weights("web", {"ns1/a": 70, "ns1/b": 30})
    load = Load(loop, url)
    load.wait_for_more(200, "of background load")

    port = router.ensure_route("other", [("ns2/c", 1)])  # a new route: a reload
    reloaded_at = time.monotonic()
    assert router.worker_pid != old_worker
    load.wait_for_more(400, "after the reload")
    traffic = load.stop()
    slow_outcome = slow.result(10)

    assert (slow_outcome.status, slow_outcome.served_by) == (200, "b-2")
    assert traffic.failures() == [], f"load across the reload saw {traffic.statuses()}"
    assert set(traffic.served_by(since=reloaded_at)) == {"a-1", "a-2", "b-2"}
    assert router.endpoints("ns1/a") == endpoints_a
    assert router.endpoints("ns1/b") == {"b-2": router_address(router, "b-2")}
    assert router.weights("web") == {"ns1/a": 70, "ns1/b": 30}
    after = loop.run(fetch_many(url, 1000))
    low, high = binomial_bound(1000, 0.30)
    assert low <= after.served_by()["b-2"] <= high, f"split after reload: {after.served_by()}"
    assert router.draining() == {}, "a draining endpoint is left to the old worker"

    router.set_endpoints("ns2/c", {"c-1": endpoints.http("127.0.5.25", "c-1")})
    assert loop.run(fetch_many(f"http://127.0.0.1:{port}", 20)).served_by() == {"c-1": 20}
    # The old worker's last read is right after the reload; what it finished later (at most one
    # request per load connection, plus the slow one) is not counted.
    sent = len(traffic.outcomes) + 1 + 1000
    counted = router.stats().routes["web"].requests
    assert sent - 5 <= counted <= sent, f"counts across the reload: {counted} of {sent} sent"


def test_an_endpoint_back_before_its_drain_ended_is_revived_and_a_new_address_replaces_it(
    router: Router, endpoints: Endpoints, loop: LoopThread
) -> None:
    first = endpoints.http("127.0.5.15", "web-1")
    router.set_endpoints("ns1/web", {"web-1": first})
    router.ensure_route("web", [("ns1/web", 1)])
    url = router.route_url("web")
    slow = loop.submit(fetch_once(f"{url}/slow?seconds=1"))
    wait_in_flight(router, "web-1")

    router.set_endpoints("ns1/web", {})
    assert router.draining() == {"web-1": first}
    router.set_endpoints("ns1/web", {"web-1": first})
    assert router.draining() == {}
    assert loop.run(fetch_many(url, 20)).served_by() == {"web-1": 20}

    moved = endpoints.http("127.0.5.16", "web-1-restarted")
    router.set_endpoints("ns1/web", {"web-1": moved})
    assert loop.run(fetch_many(url, 20)).served_by() == {"web-1-restarted": 20}
    assert slow.result(10).status == 200
    router.wait_drained()
    servers = {(s.server, s.address, s.status) for s in router.stats().servers}
    assert servers == {("web-1", first, "removed"), ("web-1_2", moved, "no check")}


def test_request_log_names_route_pool_and_endpoint(
    tmp_path: Path, endpoints: Endpoints, loop: LoopThread
) -> None:
    with Router(tmp_path / "router", settings=cfg.Settings(request_log=True)) as router:
        router.set_endpoints("ns1/web", {"web-1": endpoints.http("127.0.5.17", "web-1")})
        router.ensure_route("web", [("ns1/web", 1)])
        assert loop.run(fetch_many(router.route_url("web"), 3)).statuses() == {200: 3}

        def logged() -> list[str] | None:
            text = router.log_path.read_text()
            lines = [line for line in text.splitlines() if "GET / HTTP/1.1" in line]
            return lines if len(lines) == 3 else None

        lines = wait_for(logged, what="3 request log lines", timeout=5)
    pattern = re.compile(r" route\d+_web pool\d+_ns1_web/web-1 \S+ 200 ")
    assert [bool(pattern.search(line)) for line in lines] == [True] * 3, lines


def test_client_visible_status_for_each_failure(
    router: Router, endpoints: Endpoints, loop: LoopThread
) -> None:
    router.set_endpoints("closes", {"booting": endpoints.accept_then_close("127.0.5.31")})
    router.set_endpoints("refuses", {"gone": refused_address("127.0.5.32")})
    router.ensure_pool("empty")
    pools = ("closes", "refuses", "empty")
    router.ensure_route("web", [(pool, 0) for pool in pools])

    seen: dict[str, tuple[Counter[int | str], float]] = {}
    for case in (*pools, "all-zero"):
        router.set_weights("web", {pool: int(pool == case) for pool in pools})
        started = time.monotonic()
        traffic = loop.run(fetch_many(router.route_url("web"), 20, concurrency=1))
        seen[case] = (traffic.statuses(), (time.monotonic() - started) / 20)

    expected = {"closes": 502, "refuses": 503, "empty": 503, "all-zero": 500}
    assert {case: dict(s) for case, (s, _) in seen.items()} == {
        case: {status: 20} for case, status in expected.items()
    }
    slowest = max(per_request for _, per_request in seen.values())
    assert slowest < 0.5, f"failures must be answered at once, not retried: {seen}"


def test_a_pool_without_endpoints_keeps_its_share(
    router: Router, endpoints: Endpoints, loop: LoopThread
) -> None:
    router.set_endpoints("stable", {"s-1": endpoints.http("127.0.5.41", "s-1")})
    router.ensure_route("web", [("stable", 50), ("canary", 50)])
    traffic = loop.run(fetch_many(router.route_url("web"), 1000))
    failed = traffic.statuses()[503]
    low, high = binomial_bound(1000, 0.5)
    assert low <= failed <= high, f"empty canary pool: {traffic.statuses()}"
    assert traffic.statuses()[200] == 1000 - failed


def test_server_timeout_answers_504(tmp_path: Path, endpoints: Endpoints, loop: LoopThread) -> None:
    settings = cfg.Settings(timeout_server="300ms")
    with Router(tmp_path / "router", settings=settings) as router:
        router.set_endpoints("slow", {"slow-1": endpoints.http("127.0.5.51", "slow-1")})
        router.ensure_route("web", [("slow", 1)])
        outcome = loop.run(fetch_once(f"{router.route_url('web')}/slow?seconds=2"))
    assert outcome.status == 504


def test_a_failed_reload_keeps_the_previous_state_serving(
    router: Router, endpoints: Endpoints, loop: LoopThread
) -> None:
    router.set_endpoints("ns/a", {"a-1": endpoints.http("127.0.5.61", "a-1")})
    router.ensure_route("web", [("ns/a", 1)])
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        with pytest.raises(ProcessError, match=rf"cannot bind socket.*127\.0\.0\.1:{taken}"):
            router.ensure_route("clash", [("ns/b", 1)], port=taken)
    assert router.routes() == ["web"]
    assert router.pools() == ["ns/a"]
    assert loop.run(fetch_many(router.route_url("web"), 10)).served_by() == {"a-1": 10}
    router.ensure_route("next", [("ns/a", 1)])
    assert loop.run(fetch_many(router.route_url("next"), 10)).served_by() == {"a-1": 10}


def test_removing_routes_and_pools_closes_them(
    router: Router, endpoints: Endpoints, loop: LoopThread
) -> None:
    router.set_endpoints("ns/a", {"a-1": endpoints.http("127.0.5.71", "a-1")})
    port = router.ensure_route("web", [("ns/a", 1)])
    router.remove_route("web")
    router.remove_pool("ns/a")
    assert (router.routes(), router.pools()) == ([], [])
    assert not port_accepts("127.0.0.1", port)
    assert "ns_a" not in router.config_path.read_text()


def test_stop_leaves_no_process_socket_or_port(tmp_path: Path, endpoints: Endpoints) -> None:
    router = Router(tmp_path / "router").start()
    router.set_endpoints("ns/a", {"a-1": endpoints.http("127.0.5.81", "a-1")})
    port = router.ensure_route("web", [("ns/a", 1)])
    master, worker, sockets = router.master_pid, router.worker_pid, router.socket_dir
    assert master is not None
    assert sockets is not None
    assert sorted(p.name for p in sockets.iterdir()) == ["admin.sock", "master.sock"]

    router.stop()
    router.stop()  # idempotent

    wait_for(
        lambda: not pid_alive(master) and not pid_alive(worker),
        what=f"haproxy master {master} and worker {worker} to be gone",
        timeout=5,
    )
    assert not sockets.exists()
    assert not port_accepts("127.0.0.1", port)
    assert not [p for p in live_processes() if p.pid == master]
    with pytest.raises(ProcessError, match="not running"):
        router.set_weights("web", {"ns/a": 1})


# -- small helpers ---------------------------------------------------------------------------


async def fetch_once(url: str) -> Outcome:
    """One request on its own connection (so it can be in flight while other traffic flows)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        return await fetch(session, url)


def router_address(router: Router, pod: str) -> str:
    return next(s.address for s in router.stats().servers if s.pod == pod)
