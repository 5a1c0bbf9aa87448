"""The load generator's own process: ``python -m pytest_rollout.load.child``.

:class:`~pytest_rollout.load.background.BackgroundLoad` starts it and talks to it over its
stdin and stdout (the frames of :mod:`pytest_rollout.load.wire`). It runs the generator on an
event loop that shares no interpreter lock with pytest, sends its records every
:data:`FLUSH_INTERVAL` seconds, and ends the schedule at once when its stdin closes: a parent
that was killed leaves no load running behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import pickle
import sys
import traceback
from typing import NoReturn

from pytest_rollout.load.clock import Clock
from pytest_rollout.load.generator import LoadGenerator
from pytest_rollout.load.scheduling import request_short_slice
from pytest_rollout.load.spec import LoadSpec
from pytest_rollout.load.wire import END, FAILURE, STOP, RecordEncoder, frame

FLUSH_INTERVAL = 0.05
"""Seconds between two batches of records: the parent's live log lags by at most this much."""

GC_BACKSTOP = 1_000_000
"""Objects allocated and not freed since the last collection above which the process collects
its cyclic garbage (tens of megabytes; a stuck release at 300 req/s takes minutes to get there)."""

_WIRE_FD = 1
_CONTROL_FD = 0


def main() -> int:
    # The wire gets a descriptor of its own, and fd 1 becomes stderr, so that nothing printed
    # by accident can corrupt the stream.
    wire = os.dup(_WIRE_FD)
    os.dup2(2, _WIRE_FD)
    spec, base, log_path = _read_spec()
    _orphaned.log_path = log_path
    # No automatic cyclic collection: with hundreds of requests hanging on a stuck release,
    # each pass walks all of them and stalls the schedule (measured: 12-15 ms of CPU per
    # generation-1 pass, p99 lateness 113 ms against 12.5 ms without, at 300 req/s into a
    # service that never answers). Little garbage here is cyclic — about four objects per
    # timed-out request, almost none per answered one — so collecting it is left to a backstop.
    gc.disable()
    gc.freeze()
    print(f"load generator: {request_short_slice()}", file=sys.stderr, flush=True)
    return asyncio.run(_serve(spec, Clock(base=base), wire))


class _Orphaned:
    """What to do when the parent is gone: drop the log file it would have removed, and exit
    at once, leaving the requests in flight to the kernel, which closes their sockets."""

    log_path: str | None = None

    def __call__(self, status: int) -> NoReturn:
        if self.log_path is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.log_path)
        os._exit(status)


_orphaned = _Orphaned()


def _read_spec() -> tuple[LoadSpec, tuple[float, float], str | None]:
    with os.fdopen(os.dup(_CONTROL_FD), "rb", buffering=0) as control:
        payload = _read_exactly(control.fileno(), 4)
        data = _read_exactly(control.fileno(), int.from_bytes(payload, "little"))
    # The payload comes from the parent that started this process, over a private pipe.
    spec, base, log_path = pickle.loads(data)  # noqa: S301
    if not isinstance(spec, LoadSpec):
        raise TypeError(f"expected a LoadSpec on stdin, got {type(spec).__name__}")
    return spec, base, log_path


def _read_exactly(fd: int, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            raise EOFError(f"stdin closed after {len(data)} of {size} bytes of the spec")
        data += chunk
    return data


async def _serve(spec: LoadSpec, clock: Clock, wire_fd: int) -> int:
    """Run the load and stream its records; whatever fails is sent as a ``FAILURE`` frame."""
    loop = asyncio.get_running_loop()
    closed = loop.create_future()
    wire, _ = await loop.connect_write_pipe(
        lambda: _WireProtocol(closed), os.fdopen(wire_fd, "wb", buffering=0)
    )
    status = 0
    try:
        await _run(spec, clock, wire)
    except Exception:
        status = 1
        wire.write(frame(FAILURE, traceback.format_exc().encode()))
    else:
        wire.write(frame(END, b""))
    finally:
        wire.close()
    await closed
    return status


async def _run(spec: LoadSpec, clock: Clock, wire: asyncio.WriteTransport) -> None:
    loop = asyncio.get_running_loop()
    encoder = RecordEncoder(spec.mix)
    generator = LoadGenerator(spec, clock=clock, on_record=encoder.add)
    timer: asyncio.TimerHandle | None = None

    def flush() -> None:
        wire.write(
            encoder.flush(
                started_at=generator.started_at,
                dropped=generator.dropped,
                peak_in_flight=generator.peak_in_flight,
            )
        )

    def tick() -> None:
        nonlocal timer
        flush()
        if gc.get_count()[0] > GC_BACKSTOP:
            gc.collect()
        timer = loop.call_later(FLUSH_INTERVAL, tick)

    control, _ = await loop.connect_read_pipe(
        lambda: _ControlProtocol(generator), os.fdopen(_CONTROL_FD, "rb", buffering=0)
    )
    try:
        tick()  # the first batch, empty, tells the parent the loop runs
        await generator.run()
    finally:
        if timer is not None:
            timer.cancel()
        control.close()
        flush()


class _WireProtocol(asyncio.BaseProtocol):
    def __init__(self, closed: asyncio.Future[None]) -> None:
        self._closed = closed

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed.done():
            self._closed.set_result(None)
        if exc is not None:
            # The parent stopped reading: it is gone, and so is any use for this load.
            _orphaned(3)


class _ControlProtocol(asyncio.Protocol):
    """Stops the schedule on ``s``; ends the process at once on end of file without it."""

    def __init__(self, generator: LoadGenerator) -> None:
        self._generator = generator
        self._stopping = False

    def data_received(self, data: bytes) -> None:
        if STOP in data:
            self._stopping = True
            self._generator.stop()

    def eof_received(self) -> bool | None:
        if not self._stopping:
            # The parent died (a SIGKILL leaves no time to say stop): send nothing more.
            _orphaned(2)
        return None


if __name__ == "__main__":
    sys.exit(main())
