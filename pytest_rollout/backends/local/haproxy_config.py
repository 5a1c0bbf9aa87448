"""Rendering the router's whole state as one HAProxy configuration file.

The configuration is rendered on start and on every topology change (a route or pool added or
removed); everything that changes more often — endpoints, weights — is changed through the
runtime API and written into the next rendering, so a reload never loses state.

Weighted split: each route owns one process-wide variable ``proc.route<N>`` holding its
cumulative thresholds in parts per million, ``"t1_t2_..._tn"``. Every request copies that
variable once into its transaction (so one request never sees half of a change), draws
``rand(1000000)`` and goes to the first pool whose threshold is above the draw. One variable per
route makes a weight change a single atomic ``set var``; parts per million represent every
integer percentage exactly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from pytest_rollout.errors import ConfigError

SPLIT_SCALE = 1_000_000
"""Resolution of a route's split: thresholds are in parts per million."""

ZERO_WEIGHT_BACKEND = "no_weighted_backend"
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.:-]")
_DELIMITER = "_"


@dataclass(frozen=True)
class Settings:
    """Proxy settings; see the router module's docstring for why each is what it is."""

    bind_host: str = "127.0.0.1"
    timeout_connect: str = "5s"
    timeout_client: str = "30s"
    timeout_server: str = "15s"
    timeout_http_request: str = "10s"
    timeout_http_keep_alive: str = "60s"
    hard_stop_after: str = "30s"
    balance: str = "roundrobin"
    abort_on_close: bool = True
    threads: int = 1
    request_log: bool = False


@dataclass(frozen=True)
class ServerSpec:
    name: str
    address: str


@dataclass(frozen=True)
class BackendSpec:
    name: str
    servers: tuple[ServerSpec, ...] = ()


@dataclass(frozen=True)
class FrontendSpec:
    name: str
    port: int
    variable: str
    backends: tuple[str, ...]
    weights: tuple[int, ...]


@dataclass(frozen=True)
class ProxyConfig:
    admin_socket: str
    backends: tuple[BackendSpec, ...] = ()
    frontends: tuple[FrontendSpec, ...] = ()
    settings: Settings = field(default_factory=Settings)


def safe_name(text: str) -> str:
    """``text`` with every character HAProxy does not allow in a proxy/server name replaced."""
    return _NAME_UNSAFE.sub("_", text) or "_"


def thresholds(weights: Sequence[int]) -> tuple[int, ...]:
    """Cumulative split thresholds in parts per million for relative ``weights``.

    All weights zero gives all thresholds zero: no pool is chosen and the request falls
    through to the zero-weight backend, which answers 500.
    """
    if any(weight < 0 for weight in weights):
        raise ConfigError(f"weights must be >= 0, got {list(weights)}")
    total = sum(weights)
    if total == 0:
        return tuple(0 for _ in weights)
    cumulative = 0
    result = []
    for weight in weights:
        cumulative += weight
        # Integer round-half-up of SCALE * cumulative / total: exact, no float drift.
        result.append((2 * SPLIT_SCALE * cumulative + total) // (2 * total))
    return tuple(result)


def split_value(weights: Sequence[int]) -> str:
    """The string stored in a route's ``proc.`` variable for ``weights``."""
    return _DELIMITER.join(str(value) for value in thresholds(weights))


def server_arguments(address: str) -> str:
    """The options of one server, identical in the file and in a runtime ``add server``.

    Servers added at runtime do not inherit ``default-server``, so nothing relies on it.
    """
    return address


def render(config: ProxyConfig) -> str:
    """The complete configuration file text."""
    settings = config.settings
    lines = [
        "global",
        f"    stats socket {config.admin_socket} mode 600 level admin expose-fd listeners",
        f"    nbthread {settings.threads}",
        f"    hard-stop-after {settings.hard_stop_after}",
    ]
    if settings.request_log:
        lines.append("    log stdout format raw local0 info")
    for frontend in config.frontends:
        lines.append(f"    set-var {frontend.variable} str({split_value(frontend.weights)})")
    lines += [
        "",
        "defaults",
        "    mode http",
        "    log global" if settings.request_log else "    no log",
        *(["    option httplog"] if settings.request_log else []),
        "    option http-keep-alive",
        "    option http-ignore-probes",
        "    option abortonclose" if settings.abort_on_close else "    no option abortonclose",
        "    no option redispatch",
        "    retries 0",
        "    retry-on none",
        f"    timeout connect {settings.timeout_connect}",
        f"    timeout client {settings.timeout_client}",
        f"    timeout server {settings.timeout_server}",
        f"    timeout http-request {settings.timeout_http_request}",
        f"    timeout http-keep-alive {settings.timeout_http_keep_alive}",
        "",
        f"backend {ZERO_WEIGHT_BACKEND}",
        "    http-request return status 500 content-type text/plain"
        ' string "no backend of this route has a weight above zero"',
    ]
    for frontend in config.frontends:
        lines += ["", *_frontend_lines(frontend, settings)]
    for backend in config.backends:
        lines += ["", f"backend {backend.name}", f"    balance {settings.balance}"]
        lines += [
            f"    server {server.name} {server_arguments(server.address)}"
            for server in backend.servers
        ]
    return "\n".join(lines) + "\n"


def _frontend_lines(frontend: FrontendSpec, settings: Settings) -> list[str]:
    lines = [
        f"frontend {frontend.name}",
        f"    bind {settings.bind_host}:{frontend.port}",
        f"    http-request set-var(txn.split) var({frontend.variable})",
        f"    http-request set-var(txn.pick) rand({SPLIT_SCALE})",
    ]
    for index in range(1, len(frontend.backends) + 1):
        lines.append(
            f"    http-request set-var(txn.t{index}) var(txn.split),field({index},{_DELIMITER})"
        )
    for index, backend in enumerate(frontend.backends, start=1):
        lines.append(f"    use_backend {backend} if {{ var(txn.pick),sub(txn.t{index}) lt 0 }}")
    lines.append(f"    default_backend {ZERO_WEIGHT_BACKEND}")
    return lines
