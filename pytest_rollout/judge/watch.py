"""Reading one canary's counters from Prometheus on a time grid shared by both versions.

The judge compares the versions within each interval, so both versions' counts must cover the
same interval. Prometheus scrapes every pod on its own schedule, so a look "now" would pair the
canary's latest scrape with a stable scrape up to a scrape interval older or newer, and a look
between the two would give one version's increase to one interval and the other's to the next.
:class:`CanaryWatch` reads the counters instead *as of* fixed instants ``t0, t0 + w, ...``
(instant queries at those times: each series' last sample at or before the instant), once an
instant is ``settle`` seconds in the past so that every scrape before it has been stored. Every
interval ``[t_j, t_j+1)`` then holds the scrapes of both versions whose timestamps fall in it.

The first instant, ``t0``, is the judge's first look at the canary (less ``settle``): counts
start there (:mod:`.counters`).
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from pytest_rollout.errors import ConfigError
from pytest_rollout.judge.counters import (
    CounterTracker,
    SeriesKey,
    SeriesLabels,
    series_key,
    version_counts,
)
from pytest_rollout.judge.sequential import Snapshot
from pytest_rollout.prom import LabelMatcher, PromClient, selector

BASELINE_LOOKBACK = "5m"
"""How far before the first instant the judge searches a series' value (a failed scrape then
must not make an old series count from zero)."""
DEFAULT_INTERVAL_S = 1.0
DEFAULT_SETTLE_S = 1.5
MAX_CATCH_UP = 30
"""Instants read in one look at most; after a longer silence the older ones merge into one
interval (any interval is valid; only resolution is lost)."""
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_LABEL_VALUE = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")


@dataclass(frozen=True)
class JudgeQueries:
    """What the judge reads from Prometheus: the defaults are the reference service's metrics.

    ``requests_metric`` is a counter with a status-code label; ``latency_metric`` a histogram
    (its ``_bucket`` series; empty: no latency test); series whose ``route`` label matches
    ``excluded_routes`` (probes, scrapes) are left out.
    """

    requests_metric: str = "http_requests_total"
    latency_metric: str = "http_request_duration_seconds"
    error_codes: str = "5.."
    route_label: str = "route"
    excluded_routes: str = "/healthz|/readyz|/metrics"
    labels: SeriesLabels = field(default_factory=SeriesLabels)

    def __post_init__(self) -> None:
        for name in ("error_codes", "excluded_routes"):
            try:
                re.compile(getattr(self, name))
            except re.error as exc:
                raise ConfigError(f"judge {name}: not a regular expression: {exc}") from None
        self.selectors("namespace", ("canary", "stable"))  # metric names: ConfigError now

    @property
    def error_code(self) -> re.Pattern[str]:
        return re.compile(self.error_codes)

    def selectors(self, namespace: str, hashes: tuple[str, str]) -> tuple[str, str | None]:
        """The instant-vector selectors of the request counters and of the latency buckets."""
        matchers = [
            LabelMatcher("namespace", "=", namespace),
            LabelMatcher(self.labels.version, "=~", "|".join(re.escape(h) for h in hashes)),
        ]
        if self.excluded_routes:
            matchers.append(LabelMatcher(self.route_label, "!~", self.excluded_routes))
        requests = selector(self.requests_metric, matchers)
        if not self.latency_metric:
            return requests, None
        return requests, selector(f"{self.latency_metric}_bucket", matchers)


@dataclass(frozen=True)
class Timing:
    """The grid: ``interval_s`` between instants, read ``settle_s`` after they pass (more than
    a scrape interval plus a scrape's duration)."""

    interval_s: float = DEFAULT_INTERVAL_S
    settle_s: float = DEFAULT_SETTLE_S

    def __post_init__(self) -> None:
        for name in ("interval_s", "settle_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"judge {name}: expected a number > 0, got {value!r}")


class QueryError(ValueError):
    """The query string of a ``/judge`` request is not usable (a 400)."""


@dataclass(frozen=True)
class CanaryRef:
    """Which canary to judge: a namespace and the canary's and stable's pod-template hashes."""

    namespace: str
    canary_hash: str
    stable_hash: str

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> CanaryRef:
        values = {}
        for name, pattern in (
            ("namespace", _NAMESPACE),
            ("canary-hash", _LABEL_VALUE),
            ("stable-hash", _LABEL_VALUE),
        ):
            value = query.get(name, "")
            if not pattern.fullmatch(value):
                raise QueryError(
                    f"query parameter {name}: expected a "
                    f"{'DNS-1123 label' if name == 'namespace' else 'Kubernetes label value'}, "
                    f"got {value!r}"
                )
            values[name] = value
        if values["canary-hash"] == values["stable-hash"]:
            raise QueryError(
                f"canary-hash and stable-hash are both {values['canary-hash']!r}: "
                "nothing to compare (is the rollout complete?)"
            )
        return cls(values["namespace"], values["canary-hash"], values["stable-hash"])

    def __str__(self) -> str:
        return f"{self.namespace}/{self.canary_hash} vs {self.stable_hash}"


class CanaryWatch:
    """One canary's history: tracked series and counts at every instant read so far."""

    def __init__(
        self, ref: CanaryRef, queries: JudgeQueries, client: PromClient, timing: Timing
    ) -> None:
        self.ref = ref
        self.queries = queries
        self.client = client
        self.timing = timing
        self.snapshots: list[Snapshot] = []
        self.lock = asyncio.Lock()
        self.last_decision = ""
        self._first: float | None = None
        self._next: float | None = None
        self._trackers = (CounterTracker(), CounterTracker())
        self._selectors = queries.selectors(ref.namespace, (ref.canary_hash, ref.stable_hash))

    @property
    def first_instant(self) -> float | None:
        """Epoch seconds the counts start from (None before the first look)."""
        return self._first

    def look(self, now: float) -> None:
        """Read every instant that has settled by ``now`` (blocking; one look at a time)."""
        settled = now - self.timing.settle_s
        if self._next is None:
            self._first = self._next = settled
        due: list[float] = []
        instant = self._next
        while instant <= settled:
            due.append(instant)
            instant += self.timing.interval_s
        for at in due[-MAX_CATCH_UP:]:
            self._read(at)
        self._next = instant

    def _read(self, at: float) -> None:
        first = at == self._first
        for tracker, chosen in zip(self._trackers, self._selectors, strict=True):
            if chosen is None:
                continue
            answer = self._values(chosen, at)
            unseen = tracker.unseen(answer)
            baselines = {k: answer[k] for k in unseen} if first else self._baselines(chosen, unseen)
            tracker.update(answer, baselines)
        requests, buckets = (t.increases for t in self._trackers)
        snapshot = Snapshot(
            *(
                version_counts(
                    requests,
                    buckets,
                    version,
                    error_code=self.queries.error_code,
                    labels=self.queries.labels,
                )
                for version in (self.ref.canary_hash, self.ref.stable_hash)
            )
        )
        if not self.snapshots or snapshot != self.snapshots[-1]:
            self.snapshots.append(snapshot)

    def _values(self, promql: str, at: float) -> dict[SeriesKey, float]:
        return {series_key(s.labels): s.value for s in self.client.query(promql, at=at)}

    def _baselines(self, chosen: str, unseen: set[SeriesKey]) -> dict[SeriesKey, float]:
        """Values of ``unseen`` series at the first instant (absent: they did not exist yet)."""
        if not unseen or self._first is None:
            return {}
        # last_over_time drops the metric name; the other labels identify the series.
        promql = f"last_over_time({chosen}[{BASELINE_LOOKBACK}])"
        at_first = self._values(promql, self._first)
        return {k: at_first[_without_name(k)] for k in unseen if _without_name(k) in at_first}


def _without_name(key: SeriesKey) -> SeriesKey:
    return tuple(item for item in key if item[0] != "__name__")
