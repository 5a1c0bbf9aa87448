"""From Prometheus counter series to the judge's cumulative counts since its first look.

Prometheus keeps each pod's counters since the pod started; the judge needs counts since it
first looked at a canary. :class:`CounterTracker` follows every series (one pod, route, code or
bucket) separately, as ``increase()`` does:

- a series seen at the first look, or existing then (its value at that time, as Prometheus
  recorded it), starts from that value: a stable pod's history before the canary is left out;
- a series that appears later (a new canary pod, the first 5xx of a pod) counts from zero;
- a value below the last one is a counter reset (a restarted container): the new value is the
  increase since the reset;
- a series missing from one answer (a failed scrape) is remembered, so its reappearance counts
  only what is new.

:func:`version_counts` sums the tracked increases into the judge's :class:`VersionCounts`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pytest_rollout.judge.sequential import VersionCounts

SeriesKey = tuple[tuple[str, str], ...]
"""A series' labels, sorted: its identity across answers."""


def series_key(labels: Mapping[str, str]) -> SeriesKey:
    return tuple(sorted(labels.items()))


class CounterTracker:
    """The increase of every counter series since a baseline; see the module docstring."""

    def __init__(self) -> None:
        self._last: dict[SeriesKey, float] = {}
        self._increase: dict[SeriesKey, float] = {}

    def unseen(self, values: Mapping[SeriesKey, float]) -> set[SeriesKey]:
        """The series of ``values`` this tracker has never seen (they need a baseline)."""
        return {key for key in values if key not in self._last}

    def update(
        self, values: Mapping[SeriesKey, float], baselines: Mapping[SeriesKey, float]
    ) -> None:
        """Take one answer. ``baselines`` holds the value at the first look of each unseen
        series that existed then; the others start from zero."""
        for key, value in values.items():
            previous = self._last.get(key)
            if previous is None:
                previous = baselines.get(key, 0.0)
            increase = value - previous if value >= previous else value
            self._increase[key] = self._increase.get(key, 0.0) + increase
            self._last[key] = value

    @property
    def increases(self) -> Mapping[SeriesKey, float]:
        return dict(self._increase)


@dataclass(frozen=True)
class SeriesLabels:
    """Which labels tell a series' version, status code and histogram bound."""

    version: str = "rollouts_pod_template_hash"
    code: str = "code"
    bound: str = "le"


def version_counts(
    requests: Mapping[SeriesKey, float],
    buckets: Mapping[SeriesKey, float],
    version: str,
    *,
    error_code: re.Pattern[str],
    labels: SeriesLabels = SeriesLabels(),
) -> VersionCounts:
    """One version's totals: requests, requests whose code matches ``error_code`` (the whole
    code), and latency buckets by bound, each summed over the version's series."""
    total = errors = 0.0
    for key, increase in _of_version(requests, labels.version, version):
        total += increase
        if error_code.fullmatch(dict(key).get(labels.code, "")):
            errors += increase
    by_bound: dict[float, float] = {}
    for key, increase in _of_version(buckets, labels.version, version):
        bound = _bound(dict(key).get(labels.bound, ""))
        if bound is not None:
            by_bound[bound] = by_bound.get(bound, 0.0) + increase
    return VersionCounts(total, errors, _cumulative(by_bound))


def _of_version(
    increases: Mapping[SeriesKey, float], label: str, version: str
) -> Iterable[tuple[SeriesKey, float]]:
    return ((key, value) for key, value in increases.items() if dict(key).get(label) == version)


def _bound(text: str) -> float | None:
    try:
        bound = float(text)  # Prometheus writes "+Inf", which float() reads
    except ValueError:
        return None
    return bound if not math.isnan(bound) else None


def _cumulative(by_bound: Mapping[float, float]) -> dict[float, float]:
    """Buckets made cumulative in the bound again: series tracked one by one can disagree by a
    reset seen in one of them, and a bucket never holds more than a wider one."""
    result: dict[float, float] = {}
    widest = math.inf
    for bound in sorted(by_bound, reverse=True):
        widest = min(widest, by_bound[bound])
        result[bound] = widest
    return dict(sorted(result.items()))
