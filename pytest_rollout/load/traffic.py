"""What the load generator saw: one record per request, and the questions asked of them."""

from __future__ import annotations

import bisect
import csv
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from pytest_rollout.errors import InconclusiveError

ErrorKind = Literal["refused", "reset", "timeout", "other"]
ERROR_KINDS: tuple[ErrorKind, ...] = ("refused", "reset", "timeout", "other")

# Below this share of the target rate the generator, not the system under test, shaped the load.
MIN_ACHIEVED_RATIO = 0.97

# Measured on a 2-core machine: a healthy generator's p99 lateness is ~1.1 ms at 300-6,000
# req/s (the event loop wakes on a 1 ms epoll timer) and 3-10 ms with other CPU-heavy processes
# on the machine; a generator that is starved or saturated (a full GC pass, a test thread
# computing while the loop waits for the GIL) shows 15-60 ms. The bound is one gap between two
# requests, so that 99% of requests leave before the next one is due and the service sees the
# planned order and spacing; never below 5 ms, the noise floor of a healthy loop at high rates.
# Either way it is small next to the 1 s Prometheus scrape interval requests are lined up against.
MAX_P99_LATENESS = 0.005
"""The lowest bound on p99 lateness, whatever the rate (see :func:`lateness_bound`)."""


def lateness_bound(target_rate: float) -> float:
    """The p99 lateness above which a run at ``target_rate`` req/s is *inconclusive*."""
    return max(MAX_P99_LATENESS, 1.0 / target_rate) if target_rate > 0 else MAX_P99_LATENESS


UNKNOWN_VERSION = "unknown"
"""How :meth:`TrafficLog.summary` names requests whose serving version is not known."""

CSV_COLUMNS = (
    "intended",
    "sent",
    "lateness",
    "latency",
    "route",
    "status",
    "error",
    "version",
    "captured",
    "used",
)
"""The columns of :meth:`TrafficLog.to_csv`. ``captured`` and ``used`` hold a JSON object of
name to value (empty when there is none); readers find every column by name."""

NO_VALUES: Mapping[str, str] = MappingProxyType({})


def _no_values() -> Mapping[str, str]:
    return NO_VALUES


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request. Times are epoch seconds; ``latency`` runs from ``intended`` to completion.

    Exactly one of ``status`` (an HTTP response arrived) and ``error`` (it did not) is set.
    ``captured`` holds the values this request's response gave for its route's ``capture``
    names; ``used`` the captured values its path was filled with.
    """

    intended: float
    sent: float
    latency: float
    route: str
    status: int | None = None
    error: ErrorKind | None = None
    version: str | None = None
    captured: Mapping[str, str] = field(default_factory=_no_values)
    used: Mapping[str, str] = field(default_factory=_no_values)

    @property
    def lateness(self) -> float:
        """How long after its scheduled time the request was handed to the transport."""
        return self.sent - self.intended

    @property
    def outcome(self) -> str:
        """``"2xx"``-style status class, or the error kind."""
        if self.status is not None:
            return f"{self.status // 100}xx"
        return self.error or "other"


class TrafficLog:
    """The records of one load run and the numbers experiments assert on.

    Time windows are half-open ``[start, end)`` in epoch seconds, either end optional, and
    select requests by their send time — when the request reached the system under test.
    """

    def __init__(
        self,
        records: Iterable[RequestRecord],
        *,
        target_rate: float,
        started_at: float,
        dropped: int = 0,
        peak_in_flight: int = 0,
    ) -> None:
        self.records: tuple[RequestRecord, ...] = tuple(sorted(records, key=_sent_time))
        self.target_rate = target_rate
        self.started_at = started_at
        self.dropped = dropped
        self.peak_in_flight = peak_in_flight
        self._sent = [record.sent for record in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return (
            f"<TrafficLog {len(self.records)} requests, target {self.target_rate:g} req/s, "
            f"achieved {self.achieved_rate:.1f} req/s>"
        )

    # -- windows and counts ---------------------------------------------------------------

    def in_window(
        self, start: float | None = None, end: float | None = None
    ) -> tuple[RequestRecord, ...]:
        """The records sent in ``[start, end)``."""
        lo = 0 if start is None else bisect.bisect_left(self._sent, start)
        hi = len(self._sent) if end is None else bisect.bisect_left(self._sent, end)
        return self.records[lo:hi] if hi > lo else ()

    def count(self, start: float | None = None, end: float | None = None) -> int:
        return len(self.in_window(start, end))

    def by_version(
        self, start: float | None = None, end: float | None = None
    ) -> dict[str | None, int]:
        """Requests per serving version; ``None`` where no version was seen (errors included)."""
        return dict(Counter(record.version for record in self.in_window(start, end)))

    def by_status_class(
        self, start: float | None = None, end: float | None = None
    ) -> dict[str, int]:
        """Requests per ``"2xx"``/``"4xx"``/``"5xx"`` class or error kind."""
        return dict(Counter(record.outcome for record in self.in_window(start, end)))

    def by_status(self, start: float | None = None, end: float | None = None) -> dict[int, int]:
        """Responses per exact HTTP status (requests without a response are not counted)."""
        window = self.in_window(start, end)
        return dict(Counter(record.status for record in window if record.status is not None))

    def by_error(self, start: float | None = None, end: float | None = None) -> dict[str, int]:
        """Requests without a response, per error kind."""
        window = self.in_window(start, end)
        return dict(Counter(record.error for record in window if record.error is not None))

    def by_route(self, start: float | None = None, end: float | None = None) -> dict[str, int]:
        return dict(Counter(record.route for record in self.in_window(start, end)))

    @property
    def errors(self) -> int:
        """Requests that got no HTTP response at all."""
        return sum(1 for record in self.records if record.error is not None)

    def share(
        self, version: str | None, start: float | None = None, end: float | None = None
    ) -> float:
        """The fraction of all requests sent in the window that ``version`` served.

        An empty window has no share: it raises :class:`InconclusiveError` rather than
        answering 0, which would let "at most 5% hit the bad version" pass on no evidence.
        """
        window = self.in_window(start, end)
        if not window:
            raise InconclusiveError(
                f"no requests were sent {self._describe_window(start, end)}, so the share "
                f"served by {version!r} is unknown ({len(self.records)} requests in the log)"
            )
        return sum(1 for record in window if record.version == version) / len(window)

    def captured_values(self, name: str) -> list[str]:
        """Every value captured under ``name``, in the order the requests were sent."""
        return [r.captured[name] for r in self.records if name in r.captured]

    def first_seen(self, version: str | None) -> float | None:
        """Send time of the first request ``version`` served, or ``None``."""
        return next((r.sent for r in self.records if r.version == version), None)

    def last_seen(self, version: str | None) -> float | None:
        """Send time of the last request ``version`` served, or ``None``."""
        return next((r.sent for r in reversed(self.records) if r.version == version), None)

    # -- rate and timing ------------------------------------------------------------------

    @property
    def duration(self) -> float:
        """Seconds from the first scheduled send to one interval past the last request."""
        if not self.records:
            return 0.0
        last = max(self.records[-1].sent, max(record.intended for record in self.records))
        return last - self.started_at + 1.0 / self.target_rate

    @property
    def achieved_rate(self) -> float:
        """Requests sent per second over :attr:`duration`; equals the target when on time."""
        duration = self.duration
        return len(self.records) / duration if duration > 0 else 0.0

    @cached_property
    def _lateness_sorted(self) -> list[float]:
        return sorted(record.lateness for record in self.records)

    @cached_property
    def _latency_sorted(self) -> list[float]:
        # Only answered requests: a refused connection's microseconds say nothing of service time.
        return sorted(record.latency for record in self.records if record.status is not None)

    def lateness_quantile(self, q: float) -> float | None:
        """Nearest-rank quantile of send time minus intended time, in seconds."""
        return _quantile(self._lateness_sorted, q)

    def latency_quantile(self, q: float) -> float | None:
        """Nearest-rank quantile of latency (from intended time) over answered requests."""
        return _quantile(self._latency_sorted, q)

    @property
    def lateness_p50(self) -> float | None:
        return self.lateness_quantile(0.50)

    @property
    def lateness_p99(self) -> float | None:
        return self.lateness_quantile(0.99)

    @property
    def latency_p50(self) -> float | None:
        return self.latency_quantile(0.50)

    @property
    def latency_p99(self) -> float | None:
        return self.latency_quantile(0.99)

    # -- verdict ----------------------------------------------------------------------------

    @property
    def inconclusive_reason(self) -> str | None:
        """Why the generator, not the system under test, shaped this load; else ``None``."""
        if not self.records:
            return f"no request was sent (target {self.target_rate:g} req/s)"
        reasons: list[str] = []
        if self.dropped:
            planned = self.dropped + len(self.records)
            reasons.append(f"{self.dropped} of {planned} scheduled requests were never sent")
        achieved = self.achieved_rate
        if achieved < MIN_ACHIEVED_RATIO * self.target_rate:
            reasons.append(
                f"achieved {achieved:.1f} req/s = {achieved / self.target_rate:.1%} of the "
                f"target {self.target_rate:g} req/s (needs >= {MIN_ACHIEVED_RATIO:.0%})"
            )
        p99 = self.lateness_p99
        bound = lateness_bound(self.target_rate)
        if p99 is not None and p99 > bound:
            reasons.append(
                f"p99 lateness {p99 * 1e3:.2f} ms > {bound * 1e3:g} ms "
                f"over {len(self.records)} requests"
            )
        return "; ".join(reasons) or None

    @property
    def inconclusive(self) -> bool:
        return self.inconclusive_reason is not None

    def raise_if_inconclusive(self) -> None:
        """Raise :class:`InconclusiveError` with the numbers when the generator fell behind."""
        reason = self.inconclusive_reason
        if reason is not None:
            raise InconclusiveError(
                f"the load generator fell behind, so the run proves nothing: {reason}"
            )

    # -- output -----------------------------------------------------------------------------

    def summary(self) -> dict[str, object]:
        """The run's numbers as a JSON-ready dict (times in ms, rates in req/s)."""
        return {
            "target_rate": self.target_rate,
            "achieved_rate": round(self.achieved_rate, 3),
            "duration_s": round(self.duration, 3),
            "started_at": self.started_at,
            "requests": len(self.records),
            "dropped": self.dropped,
            "errors": self.errors,
            "by_error": _sorted_dict(self.by_error()),
            "by_status_class": _sorted_dict(self.by_status_class()),
            "by_status": {str(code): n for code, n in sorted(self.by_status().items())},
            "by_version": _sorted_dict(
                {(v if v is not None else UNKNOWN_VERSION): n for v, n in self.by_version().items()}
            ),
            "by_route": _sorted_dict(self.by_route()),
            "lateness_p50_ms": _ms(self.lateness_p50),
            "lateness_p99_ms": _ms(self.lateness_p99),
            "lateness_max_ms": _ms(self._lateness_sorted[-1] if self.records else None),
            "latency_p50_ms": _ms(self.latency_p50),
            "latency_p99_ms": _ms(self.latency_p99),
            "peak_in_flight": self.peak_in_flight,
            "max_p99_lateness_ms": lateness_bound(self.target_rate) * 1e3,
            "min_achieved_ratio": MIN_ACHIEVED_RATIO,
            "inconclusive": self.inconclusive,
            "inconclusive_reason": self.inconclusive_reason,
        }

    def to_csv(self, path: str | Path) -> Path:
        """Write one row per request (times in epoch seconds) and return the path."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(CSV_COLUMNS)
            for r in self.records:
                writer.writerow(
                    (
                        f"{r.intended:.6f}",
                        f"{r.sent:.6f}",
                        f"{r.lateness:.6f}",
                        f"{r.latency:.6f}",
                        r.route,
                        "" if r.status is None else r.status,
                        r.error or "",
                        r.version or "",
                        _json_object(r.captured),
                        _json_object(r.used),
                    )
                )
        return target

    def _describe_window(self, start: float | None, end: float | None) -> str:
        def rel(t: float | None, open_end: str) -> str:
            return open_end if t is None else f"{t - self.started_at:+.3f}s"

        return f"in [{rel(start, 'start')}, {rel(end, 'end')}) of the run"


def _sent_time(record: RequestRecord) -> float:
    return record.sent


def _quantile(sorted_values: Sequence[float], q: float) -> float | None:
    if not sorted_values:
        return None
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def _json_object(values: Mapping[str, str]) -> str:
    return json.dumps(dict(values), separators=(",", ":")) if values else ""


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1e3, 3)


def _sorted_dict(counts: dict[str, int]) -> dict[str, int]:
    return dict(sorted(counts.items()))
