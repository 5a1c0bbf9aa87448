"""What a load run is asked to do, validated before anything is sent."""

from __future__ import annotations

import ipaddress
import math
import socket
from dataclasses import dataclass

from yarl import URL

from pytest_rollout.errors import ConfigError
from pytest_rollout.load.mix import DEFAULT_MIX, Route, check_captures
from pytest_rollout.load.version import DEFAULT_VERSION_SOURCE, VersionSource

DEFAULT_TIMEOUT = 5.0
# Enough for 2,000 req/s at 100 ms latency; far below the file-descriptor limit.
DEFAULT_CONNECTIONS = 256


@dataclass(frozen=True)
class LoadSpec:
    """An open-loop run: ``rate`` requests per second to ``url``, by the clock.

    The schedule ends after ``duration`` seconds or ``count`` requests, whichever comes first
    (at least one is required). ``timeout`` bounds each request, connection wait included.
    Targets must be loopback addresses unless ``allow_remote`` is set. A spec is plain data (it
    pickles), so that a generator in another process can run it.
    """

    url: str
    rate: float
    duration: float | None = None
    count: int | None = None
    mix: tuple[Route, ...] = DEFAULT_MIX
    version: VersionSource = DEFAULT_VERSION_SOURCE
    timeout: float = DEFAULT_TIMEOUT
    connections: int = DEFAULT_CONNECTIONS
    allow_remote: bool = False

    def __post_init__(self) -> None:
        if not _positive(self.rate):
            raise ConfigError(f"load rate: must be a positive number of req/s, got {self.rate!r}")
        if self.duration is None and self.count is None:
            raise ConfigError("load bounds: give a duration, a count, or both")
        if self.duration is not None and not _positive(self.duration):
            raise ConfigError(f"load duration: must be positive seconds, got {self.duration!r}")
        if self.count is not None and (isinstance(self.count, bool) or self.count < 1):
            raise ConfigError(f"load count: must be a whole number >= 1, got {self.count!r}")
        if not self.mix:
            raise ConfigError("load mix: at least one route is needed")
        check_captures(self.mix)
        if not _positive(self.timeout):
            raise ConfigError(f"load timeout: must be positive seconds, got {self.timeout!r}")
        if self.connections < 1:
            raise ConfigError(f"load connections: must be >= 1, got {self.connections!r}")
        check_target(self.url, allow_remote=self.allow_remote)

    @property
    def planned(self) -> int:
        """How many requests the schedule holds."""
        # Request i is due at i / rate; those due before ``duration`` are in. Rounding first
        # keeps 1.1 s x 10 req/s at 11 requests, not 12.
        by_duration = (
            math.ceil(round(self.duration * self.rate, 9)) if self.duration is not None else None
        )
        bounds = [n for n in (by_duration, self.count) if n is not None]
        return max(1, min(bounds))


def check_target(url: str, *, allow_remote: bool = False) -> URL:
    """Parse ``url``; refuse it unless every address it names is loopback or remote is allowed."""
    try:
        parsed = URL(url)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"load target {url!r}: not a URL ({exc})") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ConfigError(f"load target {url!r}: expected http://HOST[:PORT][/PATH]")
    if allow_remote:
        return parsed
    host = parsed.host
    addresses = _addresses(host, url)
    remote = sorted(a for a in addresses if not _is_loopback(a))
    if remote or not addresses:
        seen = ", ".join(remote) or "nothing"
        what = f"{host} is" if addresses == {host} else f"{host} resolves to {seen},"
        raise ConfigError(
            f"load target {url!r}: {what} not loopback (127.0.0.0/8 or ::1); "
            "allow it explicitly with allow_remote / --allow-remote"
        )
    return parsed


def _addresses(host: str, url: str) -> set[str]:
    try:
        return {str(ipaddress.ip_address(host))}
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        raise ConfigError(f"load target {url!r}: cannot resolve {host}: {exc}") from exc
    return {str(info[4][0]) for info in infos}


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _positive(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0
