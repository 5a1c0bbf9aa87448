"""The open-loop dispatcher: requests leave when the clock says, never when a response returns."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import math
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import aiohttp
from yarl import URL

from pytest_rollout.errors import RolloutError
from pytest_rollout.load.clock import PROCESS_CLOCK, Clock
from pytest_rollout.load.mix import Route, RouteCycle, fill_path
from pytest_rollout.load.spec import LoadSpec
from pytest_rollout.load.traffic import NO_VALUES, ErrorKind, RequestRecord, TrafficLog
from pytest_rollout.load.version import ResponseView, json_field

DISPATCH_GRACE = 1.0
"""Seconds past the last due time after which requests still unsent are dropped, not sent."""

_RESET_ERRNOS = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED})


def classify_error(exc: BaseException) -> ErrorKind:
    """Name the transport failure: ``refused``, ``reset``, ``timeout`` or ``other``.

    ``reset`` covers every connection dropped before a complete response — an RST as well as
    a close without an answer, which is how a half-booted server fails a request.
    """
    chain = list(_exception_chain(exc))
    for cause in chain:
        if isinstance(cause, TimeoutError):
            return "timeout"
        if isinstance(cause, aiohttp.ServerDisconnectedError):
            return "reset"
        if isinstance(cause, OSError) and cause.errno is not None:
            if cause.errno == errno.ECONNREFUSED:
                return "refused"
            if cause.errno in _RESET_ERRNOS:
                return "reset"
            if cause.errno == errno.ETIMEDOUT:
                return "timeout"
    if any(isinstance(cause, aiohttp.ClientPayloadError) for cause in chain):
        return "reset"
    return "other"


def _exception_chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


@dataclass(frozen=True, slots=True)
class _PreparedRoute:
    name: str
    method: str
    base: str
    path: str
    url: URL
    """The URL of a route whose path has no ``{NAME}``."""
    body: bytes | None
    headers: dict[str, str] | None
    names: tuple[str, ...]
    capture: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, route: Route, base: str) -> _PreparedRoute:
        body = route.encoded_body()
        headers = {"Content-Type": "application/json"} if body is not None else None
        base = base.rstrip("/")
        return cls(
            route.name,
            route.method,
            base,
            route.path,
            URL(base + route.path),
            body,
            headers,
            route.names,
            tuple(route.capture.items()),
        )

    def url_with(self, values: Mapping[str, str]) -> URL:
        if not values:
            return self.url
        return URL(self.base + fill_path(self.path, values), encoded=True)


class LoadGenerator:
    """Runs one :class:`LoadSpec` on the running event loop; :meth:`run` once per instance.

    Request ``i`` is due at ``start + i / rate``. The dispatcher sleeps until the next due time
    and then hands every due request to its own task, so a slow response never delays the
    next request; if the loop woke late it sends the overdue ones at once (their lateness is
    recorded) rather than silently shifting the schedule.

    Each finished request goes to ``on_record`` when given (and is not kept: :attr:`log` then
    holds no records), else into :attr:`log`.
    """

    def __init__(
        self,
        spec: LoadSpec,
        *,
        clock: Clock | None = None,
        on_record: Callable[[RequestRecord], None] | None = None,
    ) -> None:
        self.spec = spec
        self._clock = clock if clock is not None else PROCESS_CLOCK
        self._routes = [_PreparedRoute.of(route, spec.url) for route in spec.mix]
        self._records: list[RequestRecord] = []
        self._on_record = on_record if on_record is not None else self._records.append
        self._captured: dict[str, list[str]] = {}
        # Which routes have a value for every name in their path; None when no path has one.
        self._sendable: list[bool] | None = (
            [not route.names for route in self._routes]
            if any(route.names for route in self._routes)
            else None
        )
        self._version = spec.version.extractor()
        self._random = random.Random()
        self._in_flight: set[asyncio.Task[None]] = set()
        self._peak_in_flight = 0
        self._dropped = 0
        self._start_mono: float | None = None
        self._stop_mono: float | None = None
        self._wake: asyncio.Future[None] | None = None
        self._failure: BaseException | None = None
        self._ran = False

    @property
    def log(self) -> TrafficLog:
        """The requests completed so far (safe to read from another thread)."""
        return TrafficLog(
            list(self._records),
            target_rate=self.spec.rate,
            started_at=self.started_at,
            dropped=self._dropped,
            peak_in_flight=self._peak_in_flight,
        )

    @property
    def started_at(self) -> float:
        """Epoch seconds of the schedule's start (of now, before it started)."""
        start = self._start_mono if self._start_mono is not None else self._clock.monotonic()
        return self._clock.epoch(start)

    @property
    def dropped(self) -> int:
        """Requests due but never sent (the loop fell more than the grace behind)."""
        return self._dropped

    @property
    def peak_in_flight(self) -> int:
        return self._peak_in_flight

    def stop(self) -> None:
        """End the schedule now; call on the loop's thread. Requests already due still go."""
        if self._stop_mono is None:
            self._stop_mono = self._clock.monotonic()
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def run(self) -> TrafficLog:
        """Send the schedule, wait for every request to finish, and return the log."""
        if self._ran:
            raise RolloutError("a LoadGenerator runs once; create a new one for another run")
        self._ran = True
        with _old_objects_frozen():
            return await self._run()

    async def _run(self) -> TrafficLog:
        connector = aiohttp.TCPConnector(limit=self.spec.connections, limit_per_host=0)
        async with aiohttp.ClientSession(
            connector=connector,
            # aiohttp rounds timeouts of 5 s and more up to a whole second of loop time, so the
            # requests of a hung release would all time out in one burst every second: a
            # 100 ms+ stall of the schedule. Each request gets its own deadline instead.
            timeout=aiohttp.ClientTimeout(total=self.spec.timeout, ceil_threshold=math.inf),
            cookie_jar=aiohttp.DummyCookieJar(),
        ) as session:
            try:
                await self._dispatch(session)
                await self._drain(cancel=False)
            except BaseException:
                await self._drain(cancel=True)
                raise
        if self._failure is not None:
            raise self._failure
        return self.log

    async def _dispatch(self, session: aiohttp.ClientSession) -> None:
        rate = self.spec.rate
        planned = self.spec.planned
        cycle = RouteCycle(self.spec.mix)
        monotonic = self._clock.monotonic
        start = self._start_mono = monotonic()
        deadline = start + (planned - 1) / rate + DISPATCH_GRACE
        sent = 0
        while sent < (limit := self._limit(planned, start, rate)):
            now = monotonic()
            due = start + sent / rate
            if due > now:
                await self._pause(due - now)
                continue
            if now > deadline:
                self._dropped = limit - sent
                return
            while sent < limit and start + sent / rate <= now:
                route = self._routes[cycle.next_index(self._sendable)]
                self._fire(session, route, start + sent / rate)
                sent += 1

    def _limit(self, planned: int, start: float, rate: float) -> int:
        if self._stop_mono is None:
            return planned
        if self._stop_mono < start:
            return 0
        return min(planned, math.floor((self._stop_mono - start) * rate) + 1)

    async def _pause(self, delay: float) -> None:
        loop = asyncio.get_running_loop()
        wake: asyncio.Future[None] = loop.create_future()
        self._wake = wake
        timer = loop.call_later(delay, _resolve, wake)
        try:
            await wake
        finally:
            timer.cancel()
            self._wake = None

    def _fire(self, session: aiohttp.ClientSession, route: _PreparedRoute, due: float) -> None:
        task = asyncio.get_running_loop().create_task(self._request(session, route, due))
        self._in_flight.add(task)
        task.add_done_callback(self._finished)
        self._peak_in_flight = max(self._peak_in_flight, len(self._in_flight))

    async def _request(
        self, session: aiohttp.ClientSession, route: _PreparedRoute, due: float
    ) -> None:
        used = self._draw(route.names)
        url = route.url_with(used)
        sent = self._clock.monotonic()
        response: ResponseView | None = None
        error: ErrorKind | None = None
        try:
            async with session.request(
                route.method, url, data=route.body, headers=route.headers
            ) as answer:
                body = await answer.read()
                response = ResponseView(answer.status, answer.headers, body)
        except (aiohttp.ClientError, OSError) as exc:
            error = classify_error(exc)
        done = self._clock.monotonic()
        epoch = self._clock.epoch
        self._on_record(
            RequestRecord(
                intended=epoch(due),
                sent=epoch(sent),
                latency=done - due,
                route=route.name,
                status=response.status if response is not None else None,
                error=error,
                version=self._version(response) if response is not None else None,
                captured=self._capture(route, response) if route.capture else NO_VALUES,
                used=used,
            )
        )

    def _draw(self, names: tuple[str, ...]) -> Mapping[str, str]:
        """A uniformly random value captured so far for each of ``names``."""
        if not names:
            return NO_VALUES
        return {name: self._random.choice(self._captured[name]) for name in names}

    def _capture(self, route: _PreparedRoute, response: ResponseView | None) -> Mapping[str, str]:
        """Keep the values a 2xx answer gives for the route's capture names; return them."""
        if response is None or not 200 <= response.status < 300:
            return NO_VALUES
        try:
            document = response.json()
        except ValueError:
            return NO_VALUES
        found: dict[str, str] = {}
        for name, source in route.capture:
            value = json_field(document, source)
            if value is None:
                continue
            found[name] = value
            values = self._captured.setdefault(name, [])
            values.append(value)
            if len(values) == 1:
                self._update_sendable()
        return found

    def _update_sendable(self) -> None:
        if self._sendable is not None:
            self._sendable = [
                all(name in self._captured for name in route.names) for route in self._routes
            ]

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and self._failure is None:
            self._failure = exc
            self.stop()

    async def _drain(self, *, cancel: bool) -> None:
        pending = list(self._in_flight)
        if cancel:
            for task in pending:
                task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)


_freeze_lock = threading.Lock()
_freeze_depth = 0


@contextlib.contextmanager
def _old_objects_frozen() -> Iterator[None]:
    """Keep the objects that exist before a run out of the cyclic GC until the last run ends.

    A full collection walks every object in the process; inside a pytest run that is
    ~100k objects and a 60 ms stop of the event loop — measured as 60 ms of lateness.
    """
    global _freeze_depth
    with _freeze_lock:
        if _freeze_depth == 0:
            gc.freeze()
        _freeze_depth += 1
    try:
        yield
    finally:
        with _freeze_lock:
            _freeze_depth -= 1
            if _freeze_depth == 0:
                gc.unfreeze()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
