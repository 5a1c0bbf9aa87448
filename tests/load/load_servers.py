"""Helpers for the load generator's tests: service-side counts, open sockets, bad servers."""

from __future__ import annotations

import os
import socket
import socketserver
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import httpx
from prometheus_client.parser import text_string_to_metric_families

from service.launcher import RunningService

Misbehaviour = Literal["reset", "garbage"]
LOAD_ROUTES = ("/", "/checkout")


def served_requests(service: RunningService) -> int:
    """How many ``GET /`` and ``POST /checkout`` the service says it answered."""
    text = httpx.get(f"{service.url}/metrics", timeout=5.0, trust_env=False).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "http_requests_total" and sample.labels["route"] in LOAD_ROUTES:
                total += sample.value
    return int(total)


def open_sockets(pid: int | str = "self") -> set[str]:
    """The sockets a process (this one by default) holds open (their ``socket:[inode]`` names)."""
    names = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue  # closed while listing
        if target.startswith("socket:"):
            names.add(target)
    return names


class _Handler(socketserver.BaseRequestHandler):
    server: _MisbehavingServer

    def handle(self) -> None:
        conn: socket.socket = self.request
        conn.recv(65536)
        if self.server.misbehaviour == "garbage":
            conn.sendall(b"this is not HTTP\r\n\r\n")
        else:
            # Linger on, zero seconds: close() sends RST instead of FIN.
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()


class _MisbehavingServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    block_on_close = True

    def __init__(self, misbehaviour: Misbehaviour) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.misbehaviour = misbehaviour


@contextmanager
def misbehaving_server(misbehaviour: Misbehaviour) -> Iterator[str]:
    """A loopback HTTP URL whose server reads each request, then resets (``reset``: RST) or
    answers bytes that are not HTTP (``garbage``)."""
    server = _MisbehavingServer(misbehaviour)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"{misbehaviour}-server"
    )
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
