"""Reading one canary's counters from Prometheus as of instants shared by both versions.

The judge compares the versions within each interval, so both versions' counts must cover the
same interval. Prometheus scrapes every pod on its own schedule: a look "now" would pair the
canary's latest scrape with a stable scrape up to a scrape interval older or newer, and looks
between the two would give one version's increase to one interval and the other's to the next.
:class:`CanaryWatch` reads the counters instead *as of* an instant (an instant query at that
time: each series' last sample at or before it), ``settle`` seconds in the past so that a scrape
that started before the instant has been stored, and at least ``interval`` after the previous
instant so that every interval holds a scrape of every pod. Each interval then holds the scrapes
of both versions whose timestamps fall in it.

The first instant is the judge's first look at the canary (less ``settle``): counts start there
(:mod:`.counters`).
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
from pytest_rollout.names import DNS_LABEL
from pytest_rollout.prom import LabelMatcher, PromClient, selector

BASELINE_LOOKBACK = "5m"
"""How far before the first instant the judge searches a series' value (a failed scrape then
must not make an old series count from zero)."""
DEFAULT_INTERVAL_S = 1.0
"""The scrape interval of the Prometheus the judge reads (both backends scrape every second)."""
DEFAULT_SETTLE_S = 0.5
"""Longer than a scrape of a pod takes. A slower scrape is read one interval late: its counts
land in the next interval, which costs precision, not validity."""
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
        for metric in (self.requests_metric, self.bucket_metric):
            if metric is not None:
                selector(metric)  # a bad metric name is a ConfigError now, not at the first look

    @property
    def error_code(self) -> re.Pattern[str]:
        return re.compile(self.error_codes)

    @property
    def bucket_metric(self) -> str | None:
        return f"{self.latency_metric}_bucket" if self.latency_metric else None

    def selector(self, namespace: str, hashes: tuple[str, str]) -> str:
        """One instant-vector selector for the request counters and the latency buckets of the
        two versions: one query per look, so both come from the same moment."""
        names = [self.requests_metric, *([self.bucket_metric] if self.bucket_metric else [])]
        matchers = [
            LabelMatcher("__name__", "=~", "|".join(names)),
            LabelMatcher("namespace", "=", namespace),
            LabelMatcher(self.labels.version, "=~", "|".join(re.escape(h) for h in hashes)),
        ]
        if self.excluded_routes:
            matchers.append(LabelMatcher(self.route_label, "!~", self.excluded_routes))
        return "{" + ",".join(str(m) for m in matchers) + "}"


@dataclass(frozen=True)
class Timing:
    """When to read: instants at least ``interval_s`` apart (the scrape interval), each
    ``settle_s`` before the look that reads it."""

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
            ("namespace", DNS_LABEL),
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
        self._last: float | None = None
        self._trackers = (CounterTracker(), CounterTracker())
        self._selector = queries.selector(ref.namespace, (ref.canary_hash, ref.stable_hash))

    @property
    def first_instant(self) -> float | None:
        """Epoch seconds the counts start from (None before the first look)."""
        return self._first

    def look(self, now: float) -> None:
        """Read the counters as of ``now - settle``, unless the last instant read is less than
        an interval before it (blocking; one look at a time)."""
        instant = now - self.timing.settle_s
        if self._last is not None and instant - self._last < self.timing.interval_s:
            return
        if self._first is None:
            self._first = instant
        self._read(instant)
        self._last = instant

    def _read(self, at: float) -> None:
        by_metric: dict[str | None, dict[SeriesKey, float]] = {}
        for key, value in self._values(self._selector, at).items():
            by_metric.setdefault(dict(key).get("__name__"), {})[key] = value
        names = (self.queries.requests_metric, self.queries.bucket_metric)
        answers = [by_metric.get(name, {}) for name in names]
        unseen = {k for t, a in zip(self._trackers, answers, strict=True) for k in t.unseen(a)}
        if at == self._first:
            baselines = {k: v for a in answers for k, v in a.items() if k in unseen}
        else:
            baselines = self._baselines(unseen)
        for tracker, answer in zip(self._trackers, answers, strict=True):
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

    def _baselines(self, unseen: set[SeriesKey]) -> dict[SeriesKey, float]:
        """Values of ``unseen`` series at the first instant (absent: they did not exist yet)."""
        if not unseen or self._first is None:
            return {}
        # last_over_time drops the metric name; the other labels identify the series (a bucket
        # series has an `le`, a request counter none).
        promql = f"last_over_time({self._selector}[{BASELINE_LOOKBACK}])"
        at_first = self._values(promql, self._first)
        return {k: at_first[_without_name(k)] for k in unseen if _without_name(k) in at_first}


def _without_name(key: SeriesKey) -> SeriesKey:
    return tuple(item for item in key if item[0] != "__name__")
