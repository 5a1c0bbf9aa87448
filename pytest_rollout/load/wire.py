"""How a generator in a child process streams its records to the parent: compact, batched frames.

Each frame is ``<u32 length><u8 kind><payload>`` (little-endian; ``length`` counts the kind
byte and the payload). Strings are sent once and then named by number, so a record is a fixed
33 bytes plus 4 per captured or used value:

``S`` strings
    a JSON array of new strings; they take the next numbers, from 1 up (0 means "none").
``B`` batch
    ``<u32 count, f64 started_at, u32 dropped, u32 peak_in_flight>`` then ``count`` records,
    each ``<f64 intended, f64 sent, f64 latency, u16 route, u16 status (0: none), u8 error
    (0: none, else 1 + its index in ERROR_KINDS), u32 version>`` followed by one u32 string per
    name the route captures and one per name its path uses (in the route's order; 0: absent).
    Times are epoch seconds on the parent's clock; ``route`` indexes the spec's mix.
``E`` end
    the run completed; empty payload. The last batch before it holds the final counts.
``X`` failure
    the generator raised; the payload is its traceback (UTF-8).

The parent sends the other way ``<u32 length>`` and a pickle of ``(spec, clock base, log
path)``, then nothing until it stops the run: one byte ``s`` means "stop the schedule, finish
what is in flight, report"; end of file without it means the parent is gone.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping, Sequence
from typing import IO, Any

from pytest_rollout.errors import RolloutError
from pytest_rollout.load.mix import Route
from pytest_rollout.load.traffic import ERROR_KINDS, NO_VALUES, RequestRecord

STRINGS, BATCH, END, FAILURE = b"S", b"B", b"E", b"X"
STOP = b"s"

_FRAME = struct.Struct("<IB")
_LENGTH = struct.Struct("<I")
_BATCH = struct.Struct("<IdII")
_ROUTE_AT = struct.Struct("<H")
_RECORD = "<dddHHBI"
_ROUTE_OFFSET = 24  # after the three f64 times


def frame(kind: bytes, payload: bytes) -> bytes:
    """One frame of ``kind`` around ``payload``."""
    return _FRAME.pack(len(payload) + 1, kind[0]) + payload


def read_frame(stream: IO[bytes]) -> tuple[bytes, bytes] | None:
    """The next ``(kind, payload)`` from ``stream``, or ``None`` at a clean end of file."""
    head = _read_exactly(stream, _LENGTH.size)
    if head is None:
        return None
    (length,) = _LENGTH.unpack(head)
    body = _read_exactly(stream, length)
    if body is None or length < 1:
        raise RolloutError(f"load generator stream: truncated frame ({length} bytes announced)")
    return body[:1], body[1:]


def _read_exactly(stream: IO[bytes], size: int) -> bytes | None:
    chunks: list[bytes] = []
    remaining = size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            if remaining == size:
                return None
            raise RolloutError(f"load generator stream: ended inside a frame ({size} bytes)")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _record_structs(routes: Sequence[Route]) -> list[struct.Struct]:
    return [struct.Struct(_RECORD + "I" * (len(r.capture) + len(r.names))) for r in routes]


class RecordEncoder:
    """Turns records into ``S`` and ``B`` frames (in the child)."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self._index = {route.name: i for i, route in enumerate(routes)}
        self._captures = [tuple(route.capture) for route in routes]
        self._names = [route.names for route in routes]
        self._structs = _record_structs(routes)
        self._ids: dict[str, int] = {}
        self._new: list[str] = []
        self._pending: list[bytes] = []

    def add(self, record: RequestRecord) -> None:
        route = self._index[record.route]
        error = 0 if record.error is None else ERROR_KINDS.index(record.error) + 1
        values = [self._id(record.captured.get(name)) for name in self._captures[route]]
        values += [self._id(record.used.get(name)) for name in self._names[route]]
        self._pending.append(
            self._structs[route].pack(
                record.intended,
                record.sent,
                record.latency,
                route,
                record.status or 0,
                error,
                self._id(record.version),
                *values,
            )
        )

    def flush(self, *, started_at: float, dropped: int, peak_in_flight: int) -> bytes:
        """The frames for every record added since the last flush (a batch even when empty)."""
        out = b""
        if self._new:
            out = frame(STRINGS, json.dumps(self._new).encode())
            self._new = []
        header = _BATCH.pack(len(self._pending), started_at, dropped, peak_in_flight)
        out += frame(BATCH, header + b"".join(self._pending))
        self._pending = []
        return out

    def _id(self, text: str | None) -> int:
        if text is None:
            return 0
        number = self._ids.get(text)
        if number is None:
            number = self._ids[text] = len(self._ids) + 1
            self._new.append(text)
        return number


class RecordDecoder:
    """Turns ``S`` and ``B`` frames back into records (in the parent)."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self._routes = [route.name for route in routes]
        self._captures = [tuple(route.capture) for route in routes]
        self._names = [route.names for route in routes]
        self._structs = _record_structs(routes)
        self._strings: list[str | None] = [None]
        self.started_at: float | None = None
        self.dropped = 0
        self.peak_in_flight = 0

    def strings(self, payload: bytes) -> None:
        self._strings.extend(json.loads(payload))

    def batch(self, payload: bytes) -> list[RequestRecord]:
        count, self.started_at, self.dropped, self.peak_in_flight = _BATCH.unpack_from(payload)
        offset = _BATCH.size
        records: list[RequestRecord] = []
        for _ in range(count):
            (route,) = _ROUTE_AT.unpack_from(payload, offset + _ROUTE_OFFSET)
            layout = self._structs[route]
            fields = layout.unpack_from(payload, offset)
            offset += layout.size
            records.append(self._record(route, fields))
        return records

    def _record(self, route: int, fields: tuple[Any, ...]) -> RequestRecord:
        intended, sent, latency, _, status, error, version, *values = fields
        captures = self._captures[route]
        return RequestRecord(
            intended=intended,
            sent=sent,
            latency=latency,
            route=self._routes[route],
            status=status or None,
            error=None if error == 0 else ERROR_KINDS[error - 1],
            version=self._strings[version],
            captured=self._values(captures, values[: len(captures)]),
            used=self._values(self._names[route], values[len(captures) :]),
        )

    def _values(self, names: Sequence[str], ids: Sequence[int]) -> Mapping[str, str]:
        if not names:
            return NO_VALUES
        found = {}
        for name, number in zip(names, ids, strict=True):
            text = self._strings[number]
            if text is not None:
                found[name] = text
        return found or NO_VALUES
