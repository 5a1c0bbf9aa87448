"""The local backend's router: one real HAProxy process, driven through its runtime API.

Model (Gateway API shaped, without Kubernetes objects):

* a *pool* is a Service: a name such as ``"ns1/stable-svc"`` and its ready endpoints
  ``{pod name: "127.x.y.z:port"}``;
* a *route* is an HTTPRoute listener: one client-facing loopback port whose requests are split
  between pools by relative integer weights, exactly (see :mod:`.haproxy_config`).

What changes how:

* endpoint changes never reload: a new endpoint is ``add server`` + ``set server ... state
  ready``; a gone one is set to ``drain`` at once (no new requests), and a background reaper
  puts it in ``maint`` and ``del server`` only once HAProxy counts no session on it, so a request
  in flight on a removed endpoint still completes;
* weight changes never reload: one atomic ``set var proc.route<N>``, in effect for the next
  request;
* topology changes (a route or pool added or removed) cannot be made at runtime, so the full
  current state — pools, their current servers, every route's current weights — is rendered
  into a new file and the master is asked to ``reload``. The new worker takes over the listening
  sockets; the old one finishes its in-flight requests (for at most ``hard-stop-after``).
  An endpoint still draining at that moment is left out of the new file: it lives on only in
  the old worker, which is what drains it. The listening sockets are handed over
  (``expose-fd listeners``), so keep-alive clients see no error across a reload.

Router settings, chosen to mirror a Gateway (Envoy Gateway, Traefik) in its defaults, because
they decide what a readiness experiment observes:

* no retries and no redispatch (``retries 0``, ``retry-on none``): neither gateway retries a
  request unless a retry policy is configured;
* no HAProxy health checks: readiness comes from the kubelet's probes through the endpoint
  list, like a gateway that follows EndpointSlices;
* ``balance roundrobin`` with every endpoint weight 1 (a Service spreads evenly);
* keep-alive on both sides, ``timeout connect 5s``, ``timeout server 15s`` (Envoy's default
  route timeout; a slower answer becomes 504), ``timeout client 30s``,
  ``timeout http-keep-alive 60s``;
* ``option abortonclose``: a request whose client has gone away is not forwarded if it has not
  reached the server yet, as Envoy resets the upstream stream when the downstream goes away;
* a pool with no ready endpoint keeps its weight share, and that share fails with 503 (Gateway
  semantics; Envoy answers 503 too). A rollout engine only gives weight to pods that are
  available, so this is a misconfiguration made visible, not hidden;
* all weights of a route zero: no pool takes the request and it is answered 500, the Gateway
  API's status for a rule without a usable backend (implementations differ here; Istio
  answers 503).

What a client sees, measured on HAProxy 2.6.12 with these settings (see the router tests):

* endpoint accepts the connection then closes it without answering: 502 at once;
* endpoint refuses the connection (process gone, endpoint not yet removed): 503 at once;
* pool with no endpoint: 503 at once;
* endpoint slower than ``timeout server``: 504.

Envoy would answer 503 for the first case and Traefik 502 for the second; the counts of
client-visible errors are what experiments compare, and those match.

The public methods are synchronous and thread-safe; a cluster controller thread calls them.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import ipaddress
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from pytest_rollout._proc import free_port, port_accepts
from pytest_rollout._wait import wait_for
from pytest_rollout.backends.local import haproxy_config as cfg
from pytest_rollout.backends.local.haproxy_cli import CommandFailed
from pytest_rollout.backends.local.haproxy_process import RELOAD_TIMEOUT, HAProxyProcess
from pytest_rollout.backends.local.router_stats import RouterStats, TrafficLedger
from pytest_rollout.errors import ConfigError, ProcessError, RolloutError, WaitTimeout

MAX_WEIGHT = 1_000_000
"""The Gateway API's upper bound for a backendRef weight."""

_REAP_INTERVAL = 0.05
_PORT_ATTEMPTS = 3


@dataclass
class _Server:
    name: str
    pod: str
    address: str


@dataclass
class _Pool:
    name: str
    backend: str
    ready: dict[str, _Server] = field(default_factory=dict)  # by pod
    draining: dict[str, _Server] = field(default_factory=dict)  # by server name
    used_names: set[str] = field(default_factory=set)


@dataclass
class _Route:
    name: str
    frontend: str
    variable: str
    port: int
    pools: tuple[str, ...]
    weights: dict[str, int]


class Router:
    """A real HAProxy in master-worker mode; see the module docstring for semantics.

    ``Router(workdir).start()`` (or ``with Router(workdir) as router``) starts it; ``stop()``
    stops it and removes its sockets. ``workdir`` holds the configuration and HAProxy's log.
    """

    def __init__(self, workdir: str | Path, *, settings: cfg.Settings | None = None) -> None:
        self.workdir = Path(workdir)
        self.settings = settings or cfg.Settings()
        _require_loopback(self.settings.bind_host, "router bind_host")
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._pools: dict[str, _Pool] = {}
        self._routes: dict[str, _Route] = {}
        self._serial = 0
        self._haproxy = HAProxyProcess(self.workdir)
        self._reloads = 0
        self._ledger = TrafficLedger()
        self._reaper: threading.Thread | None = None
        self._reap_error: Exception | None = None
        self._stopping = False

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self._haproxy.config_path

    @property
    def log_path(self) -> Path:
        return self._haproxy.log_path

    @property
    def master_pid(self) -> int | None:
        return self._haproxy.master_pid

    @property
    def worker_pid(self) -> int:
        """The PID of the worker serving new connections."""
        return self._haproxy.worker

    @property
    def reloads(self) -> int:
        """How many topology reloads this router has done."""
        return self._reloads

    @property
    def socket_dir(self) -> Path | None:
        return self._haproxy.socket_dir

    def running(self) -> bool:
        return self._haproxy.running()

    def start(self) -> Router:
        with self._lock:
            if self._haproxy.started:
                raise ProcessError(f"router already started (master pid {self.master_pid})")
            self.workdir.mkdir(parents=True, exist_ok=True)
            try:
                self._haproxy.make_socket_dir()
                self._haproxy.start(self._render())
            except BaseException:
                self.stop()
                raise
            # An interrupted run still removes the socket directory, not only the processes.
            atexit.register(self.stop)
            self._stopping = False
            self._reaper = threading.Thread(
                target=self._reap_forever, name="haproxy-reaper", daemon=True
            )
            self._reaper.start()
            return self

    def stop(self) -> None:
        """Stop HAProxy (master and every worker) and remove its sockets. Idempotent."""
        atexit.unregister(self.stop)
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        reaper = self._reaper
        if reaper is not None and reaper is not threading.current_thread():
            reaper.join(timeout=5.0)
        with self._lock:
            self._reaper = None
            self._haproxy.stop()

    def __enter__(self) -> Router:
        return self.start() if not self._haproxy.started else self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- pools and endpoints ---------------------------------------------------------------

    def ensure_pool(self, pool: str) -> None:
        """Create the pool (a topology change: one reload) unless it exists."""
        with self._lock:
            if pool not in self._pools:
                self._change_topology(lambda: self._add_pool(pool))

    def remove_pool(self, pool: str) -> None:
        """Remove a pool no route refers to (a topology change: one reload)."""
        with self._lock:
            if pool not in self._pools:
                return
            users = sorted(r.name for r in self._routes.values() if pool in r.pools)
            if users:
                raise ConfigError(f"pool {pool!r} is still a backend of route(s) {users}")

            def drop() -> None:
                del self._pools[pool]

            self._change_topology(drop)

    def pools(self) -> list[str]:
        with self._lock:
            return sorted(self._pools)

    def endpoints(self, pool: str) -> dict[str, str]:
        """The pool's endpoints receiving new requests, by pod name."""
        with self._lock:
            return {pod: s.address for pod, s in self._known_pool(pool).ready.items()}

    def draining(self, pool: str | None = None) -> dict[str, str]:
        """Endpoints removed but still finishing requests, by HAProxy server name."""
        with self._lock:
            pools = [self._known_pool(pool)] if pool is not None else self._pools.values()
            return {name: s.address for p in pools for name, s in p.draining.items()}

    def set_endpoints(self, pool: str, endpoints: Mapping[str, str]) -> None:
        """Make ``endpoints`` (pod -> "127.x.y.z:port") the pool's ready set.

        New endpoints take requests at once; gone ones stop taking new requests at once and are
        deleted once their in-flight requests are done. Creates the pool if needed (a reload).
        """
        wanted = {pod: _checked_address(pool, pod, addr) for pod, addr in endpoints.items()}
        with self._lock:
            self._haproxy.require_running()
            if pool not in self._pools:

                def create() -> None:
                    created = self._add_pool(pool)
                    for pod, address in wanted.items():
                        self._new_server(created, pod, address)

                self._change_topology(create)
                return
            state = self._pools[pool]
            # Admit first, then drain: a pod replaced by another never leaves the pool empty.
            for pod, address in wanted.items():
                current = state.ready.get(pod)
                if current is None or current.address != address:
                    self._admit(state, pod, address)
            for pod in [pod for pod in state.ready if pod not in wanted]:
                self._drain(state, state.ready.pop(pod))
            if any(p.draining for p in self._pools.values()):
                self._wake.notify_all()

    def wait_drained(self, timeout: float = 10.0) -> None:
        """Wait until every removed endpoint has finished its requests and been deleted."""
        try:
            wait_for(
                lambda: not self.draining(),
                what="removed haproxy servers to finish their requests and be deleted",
                timeout=timeout,
            )
        except WaitTimeout as exc:
            if self._reap_error is None:
                raise
            raise WaitTimeout(f"{exc}; last reaper error: {self._reap_error}") from exc

    # -- routes and weights ----------------------------------------------------------------

    def ensure_route(
        self, route: str, backends: Sequence[tuple[str, int]], *, port: int | None = None
    ) -> int:
        """Make ``route`` split between ``backends`` [(pool, weight), ...]; return its port.

        Unknown pools are created. Only a new route, a changed list of pools or a changed port
        reloads; the same pools with other weights is a weight change.
        """
        if not backends:
            raise ConfigError(f"route {route!r}: at least one backend (pool, weight) is needed")
        pools = tuple(pool for pool, _ in backends)
        if len(set(pools)) != len(pools):
            raise ConfigError(f"route {route!r}: a pool appears twice in {list(pools)}")
        weights = {pool: _checked_weight(route, pool, weight) for pool, weight in backends}
        with self._lock:
            self._haproxy.require_running()
            existing = self._routes.get(route)
            if existing is not None and existing.pools == pools and port in (None, existing.port):
                self.set_weights(route, weights)
                return existing.port
            if port is None and existing is not None:
                port = existing.port
            if port is None:
                chosen = self._route_on_free_port(route, pools, weights)
            else:
                chosen = port
                self._change_topology(
                    functools.partial(self._put_route, route, pools, weights, port)
                )
            wait_for(
                lambda: port_accepts(self.settings.bind_host, chosen),
                what=f"route {route!r} to accept connections on port {chosen}",
                timeout=RELOAD_TIMEOUT,
            )
            return chosen

    def remove_route(self, route: str) -> None:
        """Remove a route and close its port (a topology change: one reload)."""
        with self._lock:
            if route in self._routes:

                def drop() -> None:
                    del self._routes[route]

                self._change_topology(drop)

    def routes(self) -> list[str]:
        with self._lock:
            return sorted(self._routes)

    def set_weights(self, route: str, weights: Mapping[str, int]) -> None:
        """Change some or all of a route's pool weights; in effect for the next request."""
        with self._lock:
            self._haproxy.require_running()
            state = self._known_route(route)
            unknown = sorted(set(weights) - set(state.pools))
            if unknown:
                raise ConfigError(
                    f"route {route!r}: no backend pool(s) {unknown}; its pools are "
                    f"{list(state.pools)}"
                )
            merged = dict(state.weights)
            merged.update({p: _checked_weight(route, p, w) for p, w in weights.items()})
            if merged == state.weights:
                return
            value = cfg.split_value([merged[p] for p in state.pools])
            self._command(f"set var {state.variable} str({value})", "", experimental=True)
            state.weights = merged

    def weights(self, route: str) -> dict[str, int]:
        with self._lock:
            return dict(self._known_route(route).weights)

    def route_port(self, route: str) -> int:
        with self._lock:
            return self._known_route(route).port

    def route_url(self, route: str) -> str:
        return f"http://{self.settings.bind_host}:{self.route_port(route)}"

    # -- evidence --------------------------------------------------------------------------

    def stats(self) -> RouterStats:
        """Request counts by route, pool and endpoint, from HAProxy's ``show stat``."""
        with self._lock:
            self._haproxy.require_running()
            cli = self._haproxy.cli()
            table = cli.processes()
            for pid in (self._haproxy.worker, *table.old_workers):
                try:
                    self._ledger.remember(pid, cli.stat_rows(pid))
                except ProcessError:
                    if pid == self._haproxy.worker:
                        raise
            return self._ledger.aggregate(self._haproxy.worker)

    # -- internals: topology ---------------------------------------------------------------

    def _add_pool(self, pool: str) -> _Pool:
        if not pool:
            raise ConfigError("pool name must not be empty")
        self._serial += 1
        backend = f"pool{self._serial}_{cfg.safe_name(pool)}"
        self._ledger.name_pool(backend, pool)
        state = _Pool(pool, backend)
        self._pools[pool] = state
        return state

    def _put_route(
        self, route: str, pools: tuple[str, ...], weights: Mapping[str, int], port: int
    ) -> None:
        for pool in pools:
            if pool not in self._pools:
                self._add_pool(pool)
        self._serial += 1
        frontend = f"route{self._serial}_{cfg.safe_name(route)}"
        self._ledger.name_route(frontend, route)
        self._routes[route] = _Route(
            route, frontend, f"proc.route{self._serial}", port, pools, dict(weights)
        )

    def _route_on_free_port(
        self, route: str, pools: tuple[str, ...], weights: Mapping[str, int]
    ) -> int:
        # Another process may bind the free port before HAProxy does; then take another one.
        for attempt in range(_PORT_ATTEMPTS):
            port = free_port(self.settings.bind_host)
            try:
                self._change_topology(
                    functools.partial(self._put_route, route, pools, weights, port)
                )
            except ProcessError as exc:
                if "cannot bind socket" not in str(exc) or attempt == _PORT_ATTEMPTS - 1:
                    raise
                continue
            return port
        raise AssertionError("unreachable")  # pragma: no cover

    def _change_topology(self, mutate: Callable[[], object]) -> None:
        """Apply ``mutate`` to the state and reload; on failure restore the previous state."""
        saved_pools = {name: _copy_pool(p) for name, p in self._pools.items()}
        saved_routes = {
            name: replace(r, weights=dict(r.weights)) for name, r in self._routes.items()
        }
        try:
            mutate()
            if self._haproxy.started:
                self._reload()
        except BaseException:
            self._pools, self._routes = saved_pools, saved_routes
            with contextlib.suppress(OSError):
                self._haproxy.write_config(self._render())
            raise

    def _render(self) -> str:
        backends = tuple(
            cfg.BackendSpec(
                pool.backend,
                tuple(cfg.ServerSpec(s.name, s.address) for s in pool.ready.values()),
            )
            for pool in self._pools.values()
        )
        frontends = tuple(
            cfg.FrontendSpec(
                route.frontend,
                route.port,
                route.variable,
                tuple(self._pools[p].backend for p in route.pools),
                tuple(route.weights[p] for p in route.pools),
            )
            for route in self._routes.values()
        )
        socket_dir = self._haproxy.socket_dir or self.workdir
        return cfg.render(
            cfg.ProxyConfig(str(socket_dir / "admin.sock"), backends, frontends, self.settings)
        )

    def _reload(self) -> None:
        cli = self._haproxy.cli()
        old_worker = self._haproxy.worker
        with contextlib.suppress(ProcessError):
            self._ledger.remember(old_worker, cli.stat_rows(old_worker))
        self._haproxy.reload(self._render())
        # The old worker takes no new connection from here on: its counts are nearly final.
        with contextlib.suppress(ProcessError):
            self._ledger.remember(old_worker, cli.stat_rows(old_worker))
        self._reloads += 1
        # Endpoints still draining stay in the old worker only, which finishes them.
        for pool in self._pools.values():
            pool.draining.clear()

    # -- internals: endpoints --------------------------------------------------------------

    def _new_server(self, pool: _Pool, pod: str, address: str) -> _Server:
        base = cfg.safe_name(pod)
        name, suffix = base, 1
        while name in pool.used_names:
            suffix += 1
            name = f"{base}_{suffix}"
        pool.used_names.add(name)
        server = _Server(name, pod, address)
        pool.ready[pod] = server
        self._ledger.name_server(pool.backend, name, pool.name, pod, address)
        return server

    def _admit(self, pool: _Pool, pod: str, address: str) -> None:
        """Put ``pod`` at ``address`` into rotation: revive its draining server or add one."""
        for name, server in list(pool.draining.items()):
            if server.pod == pod and server.address == address:
                self._command(f"set server {pool.backend}/{name} state ready", "")
                del pool.draining[name]
                previous = pool.ready.pop(pod, None)
                pool.ready[pod] = server
                if previous is not None:
                    self._drain(pool, previous)
                return
        previous = pool.ready.pop(pod, None)
        server = self._new_server(pool, pod, address)
        target = f"{pool.backend}/{server.name}"
        try:
            self._command(
                f"add server {target} {cfg.server_arguments(address)}", "New server registered."
            )
            self._command(f"set server {target} state ready", "")
        except RolloutError:
            pool.ready.pop(pod, None)
            if previous is not None:
                pool.ready[pod] = previous
            raise
        if previous is not None:
            self._drain(pool, previous)

    def _drain(self, pool: _Pool, server: _Server) -> None:
        self._command(f"set server {pool.backend}/{server.name} state drain", "")
        pool.draining[server.name] = server

    def _reap_forever(self) -> None:
        with self._wake:
            while not self._stopping:
                pending = any(p.draining for p in self._pools.values())
                if pending:
                    try:
                        self._reap_once()
                        self._reap_error = None
                    except Exception as exc:  # retried on the next tick; reported by waits
                        self._reap_error = exc
                self._wake.wait(_REAP_INTERVAL if pending else None)

    def _reap_once(self) -> None:
        rows = self._haproxy.cli().stat_rows(self._haproxy.worker)
        self._ledger.remember(self._haproxy.worker, rows)
        by_key = {(r["pxname"], r["svname"]): r for r in rows}
        for pool in self._pools.values():
            for name in list(pool.draining):
                row = by_key.get((pool.backend, name))
                if row is None:
                    del pool.draining[name]
                    continue
                if int(row["scur"] or 0) > 0:
                    continue
                target = f"{pool.backend}/{name}"
                if row["status"] != "MAINT":
                    self._command(f"set server {target} state maint", "")
                try:
                    self._command(f"del server {target}", "Server deleted.")
                except CommandFailed:
                    continue  # idle connections still attached: try again next tick
                del pool.draining[name]

    # -- internals: plumbing ---------------------------------------------------------------

    def _command(self, command: str, success: str, *, experimental: bool = False) -> None:
        self._haproxy.cli().expect(
            self._haproxy.worker, command, success, experimental=experimental
        )

    def _known_pool(self, pool: str) -> _Pool:
        try:
            return self._pools[pool]
        except KeyError:
            raise ConfigError(f"no pool {pool!r}; known pools: {sorted(self._pools)}") from None

    def _known_route(self, route: str) -> _Route:
        try:
            return self._routes[route]
        except KeyError:
            raise ConfigError(f"no route {route!r}; known routes: {sorted(self._routes)}") from None


def _copy_pool(pool: _Pool) -> _Pool:
    return _Pool(
        pool.name, pool.backend, dict(pool.ready), dict(pool.draining), set(pool.used_names)
    )


def _checked_weight(route: str, pool: str, weight: object) -> int:
    if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= MAX_WEIGHT:
        raise ConfigError(
            f"route {route!r}: weight of pool {pool!r} is {weight!r}; "
            f"an integer 0..{MAX_WEIGHT} is allowed"
        )
    return weight


def _checked_address(pool: str, pod: str, address: str) -> str:
    host, sep, port = address.rpartition(":")
    try:
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("no port")
        _require_loopback(host, f"pool {pool!r} endpoint {pod!r}")
    except ValueError as exc:
        raise ConfigError(
            f"pool {pool!r} endpoint {pod!r}: address {address!r} is not '127.x.y.z:port' ({exc})"
        ) from exc
    return address


def _require_loopback(host: str, what: str) -> None:
    try:
        loopback = ipaddress.IPv4Address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(f"{what}: {host!r} is not an address in 127.0.0.0/8")
