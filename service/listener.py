"""The listening socket, opened first thing, and what answers on it while the app boots.

The socket is bound before the heavy imports so the port is open as soon as the process runs,
as it is for a real app whose framework binds early and then loads. Until the boot period ends,
every connection is accepted and closed without a byte of HTTP: a proxy in front sees the
upstream drop the connection and answers 502.
"""

from __future__ import annotations

import asyncio
import socket

LISTEN_BACKLOG = 1024


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (IPv4 or IPv6, SO_REUSEADDR)."""
    family, _, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(LISTEN_BACKLOG)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class DropConnection(asyncio.Protocol):
    """Accepts a connection and closes it at once, before any request is answered."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.close()
