"""One service process's life: boot, serve, and drain on SIGTERM.

Boot: the listening socket is already open; a second descriptor of it is served by
:class:`~service.listener.DropConnection` until the boot period ends. Closing that descriptor
leaves the socket listening, so connections arriving at the switch wait in the backlog for the
app instead of being refused.

Shutdown (SIGTERM or SIGINT): /readyz turns 503 at once; after the optional shutdown delay the
listener closes (new connections are refused), idle keep-alive connections close, and requests
in flight run to completion, up to the drain timeout.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from service.app import Lifecycle, ServiceApp
from service.config import ServiceConfig
from service.db import OrderStore, make_engine
from service.listener import LISTEN_BACKLOG, DropConnection
from service.metrics import ServiceMetrics
from service.schema import release_script

log = logging.getLogger("service")

DB_THREADS = 8


async def serve(config: ServiceConfig, sock: socket.socket) -> None:
    """Serve on the listening ``sock`` until SIGTERM/SIGINT, then drain and return."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    where = _address(sock)

    booting: asyncio.Server | None = None
    if config.boot_seconds > 0:
        booting = await loop.create_server(DropConnection, sock=sock.dup())
        log.info("%s booting on %s for %gs", config.version, where, config.boot_seconds)

    executor = ThreadPoolExecutor(DB_THREADS, thread_name_prefix="db")
    store = OrderStore(make_engine(config.database_url), config.order_sku)
    lifecycle = Lifecycle()
    service = ServiceApp(
        config,
        store=store,
        script=release_script(config.schema_revision),
        executor=executor,
        metrics=ServiceMetrics(config.version),
        lifecycle=lifecycle,
    )
    runner = web.AppRunner(
        service.build(),
        access_log=None,
        handle_signals=False,
        shutdown_timeout=config.drain_timeout_seconds,
    )
    await runner.setup()
    try:
        if booting is not None:
            stopped_while_booting = await _wait(stop, config.boot_seconds)
            booting.close()
            await booting.wait_closed()
            if stopped_while_booting:
                log.info("%s stopped while booting", config.version)
                sock.close()
                return
        await web.SockSite(runner, sock, backlog=LISTEN_BACKLOG).start()
        lifecycle.booted = True
        log.info("%s serving on %s", config.version, where)

        await stop.wait()
        lifecycle.shutting_down = True
        log.info("%s shutting down: readiness off", config.version)
        if config.shutdown_delay_seconds > 0:
            await asyncio.sleep(config.shutdown_delay_seconds)
        log.info("%s closing the listener, draining in-flight requests", config.version)
    finally:
        await runner.cleanup()
        executor.shutdown(wait=True, cancel_futures=True)
        store.close()
    log.info("%s stopped", config.version)


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``event``; True when it was set."""
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    return True


def _address(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
