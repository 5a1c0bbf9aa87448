"""The router's request counts: HAProxy's ``show stat`` rows from every worker, summed.

A reload starts a new worker with counters at zero while the old one finishes its requests, so
the counts of a router are those of every worker it has run: the ledger keeps the last rows read
from each worker and sums them by route (frontend), pool (backend) and endpoint (server).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

_RESPONSE_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx", "other")


@dataclass(frozen=True)
class Traffic:
    """Requests counted by HAProxy, and their responses by status class."""

    requests: int = 0
    responses: Mapping[str, int] = field(default_factory=dict)

    def __add__(self, other: Traffic) -> Traffic:
        classes = set(self.responses) | set(other.responses)
        return Traffic(
            self.requests + other.requests,
            {c: self.responses.get(c, 0) + other.responses.get(c, 0) for c in sorted(classes)},
        )

    @property
    def errors_5xx(self) -> int:
        return self.responses.get("5xx", 0)


@dataclass(frozen=True)
class ServerStats:
    """One endpoint as HAProxy sees it; ``status`` is HAProxy's, or ``"removed"``."""

    pool: str
    pod: str
    server: str
    address: str
    status: str
    active: int
    traffic: Traffic


@dataclass(frozen=True)
class RouterStats:
    """Counters summed over every worker this router has run (reloads do not reset them).

    A retired worker's counts are those last read from it (right after the reload, and on every
    call while it lives); the few requests it finishes after the last read are not included.
    """

    routes: Mapping[str, Traffic]
    pools: Mapping[str, Traffic]
    servers: tuple[ServerStats, ...]

    def requests_by_pod(self, pool: str | None = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        for server in self.servers:
            if pool is None or server.pool == pool:
                counts[server.pod] = counts.get(server.pod, 0) + server.traffic.requests
        return counts


@dataclass
class _Snapshot:
    """Last counters read from one worker, by (proxy, server) row."""

    rows: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    present: set[tuple[str, str]] = field(default_factory=set)  # rows of the latest read


class TrafficLedger:
    """What each HAProxy proxy and server stands for, and the rows last read from each worker."""

    def __init__(self) -> None:
        self._snapshots: dict[int, _Snapshot] = {}
        self._server_owner: dict[tuple[str, str], tuple[str, str, str]] = {}
        self._backend_pool: dict[str, str] = {}
        self._frontend_route: dict[str, str] = {}

    def name_route(self, frontend: str, route: str) -> None:
        self._frontend_route[frontend] = route

    def name_pool(self, backend: str, pool: str) -> None:
        self._backend_pool[backend] = pool

    def name_server(self, backend: str, server: str, pool: str, pod: str, address: str) -> None:
        self._server_owner[(backend, server)] = (pool, pod, address)

    def remember(self, pid: int, rows: list[dict[str, str]]) -> None:
        """Keep ``rows`` (``show stat``) as worker ``pid``'s latest counters."""
        snapshot = self._snapshots.setdefault(pid, _Snapshot())
        snapshot.present = set()
        for row in rows:
            key = (row["pxname"], row["svname"])
            snapshot.rows[key] = row
            snapshot.present.add(key)

    def aggregate(self, current_worker: int) -> RouterStats:
        """The sums over every worker; servers' status and active sessions as
        ``current_worker`` last reported them."""
        routes: dict[str, Traffic] = {}
        pools: dict[str, Traffic] = {}
        servers: dict[tuple[str, str], Traffic] = {}
        latest = self._snapshots.get(current_worker, _Snapshot())
        current = {key: latest.rows[key] for key in latest.present}
        for snapshot in self._snapshots.values():
            for (proxy, server), row in snapshot.rows.items():
                if server == "FRONTEND" and proxy in self._frontend_route:
                    name = self._frontend_route[proxy]
                    routes[name] = routes.get(name, Traffic()) + _traffic(row, "req_tot")
                elif server == "BACKEND" and proxy in self._backend_pool:
                    name = self._backend_pool[proxy]
                    pools[name] = pools.get(name, Traffic()) + _traffic(row, "stot")
                elif (proxy, server) in self._server_owner:
                    key = (proxy, server)
                    servers[key] = servers.get(key, Traffic()) + _traffic(row, "stot")
        server_stats = []
        for (backend, name), traffic in sorted(servers.items()):
            pool, pod, address = self._server_owner[(backend, name)]
            live = current.get((backend, name))
            status = live["status"] if live is not None else "removed"
            active = int(live["scur"] or 0) if live is not None else 0
            server_stats.append(ServerStats(pool, pod, name, address, status, active, traffic))
        return RouterStats(routes, pools, tuple(server_stats))


def _traffic(row: Mapping[str, str], total_column: str) -> Traffic:
    return Traffic(
        int(row.get(total_column) or 0),
        {c: int(row.get(f"hrsp_{c}") or 0) for c in _RESPONSE_CLASSES},
    )
