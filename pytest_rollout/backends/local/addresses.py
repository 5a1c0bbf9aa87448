"""Pod IPs for the local backend: distinct 127.x.y.z addresses, like a node's pod CIDR.

Linux routes the whole of 127.0.0.0/8 to the loopback interface, so any of its addresses can be
bound without setup, and two pods can both listen on their ``containerPort`` (say 8080) at once.

Each pytest-xdist worker gets its own /16 (``gwN`` -> ``127.(101+N).0.0/16``, a run without
xdist ``127.100.0.0/16``), so workers never hand out the same address. 127.0.0.0/16 is never
used: it holds 127.0.0.1 and the 127.0.1.1 that Debian maps to the host name. Addresses are
handed out in order and a released one is reused only when the range is exhausted, so a
router or scraper that still remembers a deleted pod's address does not reach its successor.
Two separate pytest runs on one machine are kept apart by starting each process at a
PID-derived offset and by skipping any address whose requested ports are already bound.
"""

from __future__ import annotations

import collections
import os
import re
import socket
import threading
from collections.abc import Iterable

from pytest_rollout.errors import ConfigError

_BASE_OCTET = 100
_MAX_WORKERS = 255 - _BASE_OCTET
_HOSTS_PER_BLOCK = 256 * 254  # third octet 0..255, fourth octet 1..254
_WORKER_RE = re.compile(r"gw(\d+)")


def worker_index(worker_id: str | None) -> int | None:
    """The xdist worker number of ``gw3`` -> 3; ``None`` for a run without xdist."""
    if worker_id is None or worker_id in ("", "master"):
        return None
    match = _WORKER_RE.fullmatch(worker_id)
    if match is None:
        raise ConfigError(
            f"PYTEST_XDIST_WORKER={worker_id!r}: expected 'gw<N>' (as pytest-xdist sets it)"
        )
    return int(match.group(1))


def second_octet(worker_id: str | None) -> int:
    """The second octet of the /16 that belongs to ``worker_id``."""
    index = worker_index(worker_id)
    octet = _BASE_OCTET if index is None else _BASE_OCTET + 1 + index
    if octet > 255:
        raise ConfigError(
            f"pytest-xdist worker {worker_id}: at most {_MAX_WORKERS} workers can get "
            f"their own pod address range"
        )
    return octet


class AddressAllocator:
    """Hands out pod IPs from one worker's 127.S.0.0/16; thread-safe."""

    def __init__(self, worker_id: str | None = None, *, start_offset: int | None = None) -> None:
        if worker_id is None:
            worker_id = os.environ.get("PYTEST_XDIST_WORKER")
        self.worker_id = worker_id
        self.octet = second_octet(worker_id)
        offset = (os.getpid() * 7919) if start_offset is None else start_offset
        self._cursor = offset % _HOSTS_PER_BLOCK
        self._fresh_left = _HOSTS_PER_BLOCK
        self._released: collections.deque[str] = collections.deque()
        self._in_use: set[str] = set()
        self._lock = threading.Lock()

    @property
    def network(self) -> str:
        return f"127.{self.octet}.0.0/16"

    def allocate(self, ports: Iterable[int] = ()) -> str:
        """A free address; with ``ports``, one where none of those TCP ports is bound."""
        wanted = tuple(ports)
        with self._lock:
            for _ in range(_HOSTS_PER_BLOCK):
                address = self._next_candidate()
                if address is None:
                    break
                if all(_port_free(address, port) for port in wanted):
                    self._in_use.add(address)
                    return address
                # Busy (another run on this machine holds it): keep it out of rotation for now.
                self._released.append(address)
        raise ConfigError(
            f"no free pod address left in {self.network} "
            f"({len(self._in_use)} in use; ports {list(wanted)})"
        )

    def release(self, address: str) -> None:
        """Give ``address`` back; it is reused only after the fresh addresses run out."""
        with self._lock:
            if address in self._in_use:
                self._in_use.remove(address)
                self._released.append(address)

    def in_use(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._in_use)

    def _next_candidate(self) -> str | None:
        if self._fresh_left > 0:
            self._fresh_left -= 1
            index = self._cursor
            self._cursor = (self._cursor + 1) % _HOSTS_PER_BLOCK
            return f"127.{self.octet}.{index // 254}.{index % 254 + 1}"
        while self._released:
            address = self._released.popleft()
            if address not in self._in_use:
                return address
        return None


def _port_free(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR, so a TIME_WAIT leftover must not count as busy.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return False
        return True


_default: AddressAllocator | None = None
_default_lock = threading.Lock()


def default_allocator() -> AddressAllocator:
    """The process-wide allocator: every pod in one process must draw from the same one."""
    global _default
    with _default_lock:
        if _default is None:
            _default = AddressAllocator()
        return _default
