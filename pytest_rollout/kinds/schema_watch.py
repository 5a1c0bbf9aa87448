"""The schema revision of a service over time, read through its route.

A :class:`SchemaWatch` asks a path of the route (``/readyz``, say) every
:data:`SCHEMA_PROBE_INTERVAL` seconds for a JSON field holding the revision, from a thread of
its own. Reading through the route works wherever the route does, also where the database is out
of the test's reach (a cluster). The migration is the first answer showing a revision other than
the first answer's.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from pytest_rollout.clock import epoch_now
from pytest_rollout.errors import RolloutError
from pytest_rollout.load.version import json_field

SCHEMA_PROBE_INTERVAL = 0.2
"""Seconds between two reads of the schema revision: the migration instant's resolution."""
EMPTY = "(empty)"
"""How an empty array of revisions (a database no migration has run on) is recorded."""
_HTTP_TIMEOUT = 2.0


@dataclass(frozen=True)
class SchemaProbe:
    """Where the route answers the schema revision: a GET path and a (dotted) JSON field."""

    path: str
    json: str

    def describe(self) -> str:
        return f"GET {self.path} {self.json}"


def revision_of(document: object, field: str) -> str | None:
    """The revision at dotted ``field``: a scalar as text, an array of scalars as its items
    joined by ", "; None when the answer does not hold one."""
    value = document
    for key in field.split("."):
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    if not isinstance(value, list):
        return json_field({"v": value}, "v")
    items = [json_field({"v": item}, "v") for item in value]
    if not items:
        return EMPTY
    return None if None in items else ", ".join(str(item) for item in items)


@dataclass(frozen=True)
class Migration:
    """The first schema answer showing a revision other than the first answer's."""

    at: float
    before: str
    after: str
    last_before_at: float
    """The last answer still showing ``before``: the migration committed between the two."""


def revision_changes(samples: Sequence[tuple[float, str]]) -> list[tuple[float, str]]:
    """The first sample and every sample whose revision differs from the one before it."""
    changes: list[tuple[float, str]] = []
    for t, value in samples:
        if not changes or changes[-1][1] != value:
            changes.append((t, value))
    return changes


def first_migration(samples: Sequence[tuple[float, str]]) -> Migration | None:
    if not samples:
        return None
    first = samples[0][1]
    last_before_at = samples[0][0]
    for t, value in samples:
        if value != first:
            return Migration(t, first, value, last_before_at)
        last_before_at = t
    return None


class SchemaWatch:
    """Reads the schema revision through the route every :data:`SCHEMA_PROBE_INTERVAL` in a
    thread of its own, from :meth:`start` to :meth:`stop`."""

    def __init__(self, base_url: str, probe: SchemaProbe) -> None:
        self.url = base_url.rstrip("/") + probe.path
        self.probe = probe
        self.samples: list[tuple[float, str]] = []
        """(epoch seconds the answer arrived, revision)."""
        self.failed: Counter[str] = Counter()
        """Reads that gave no revision, by status or transport error."""
        self.error: BaseException | None = None
        """What ended the thread early, if anything did (see :meth:`check`)."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> SchemaWatch:
        self._thread = threading.Thread(
            target=self._loop, name="pytest-rollout-schema-watch", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=_HTTP_TIMEOUT + 1.0)

    def check(self) -> None:
        """Raise what ended the thread early, if anything did."""
        if self.error is not None:
            raise RolloutError(
                f"reading the schema revision from {self.url} failed: "
                f"{type(self.error).__name__}: {self.error}"
            ) from self.error

    def _loop(self) -> None:
        try:
            with httpx.Client(timeout=_HTTP_TIMEOUT) as client:
                while True:
                    self._read(client)
                    # Paces the reads; stop() ends the wait at once.
                    if self._stop.wait(SCHEMA_PROBE_INTERVAL):
                        return
        except BaseException as exc:  # surfaced by check() in the test's thread
            self.error = exc

    def _read(self, client: httpx.Client) -> None:
        try:
            response = client.get(self.url)
        except httpx.HTTPError as exc:
            self.failed[type(exc).__name__] += 1
            return
        try:
            revision = revision_of(response.json(), self.probe.json)
        except ValueError:
            revision = None
        if revision is None:
            self.failed[str(response.status_code)] += 1
        else:
            self.samples.append((epoch_now(), revision))


@contextmanager
def watching(base_url: str, probe: SchemaProbe) -> Iterator[SchemaWatch]:
    watch = SchemaWatch(base_url, probe).start()
    try:
        yield watch
    finally:
        watch.stop()
