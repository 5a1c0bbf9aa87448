"""The canary judge: a pure function from cumulative counts to ``fail``, ``pass`` or ``continue``.

Input is what Prometheus has: for each look since the judge first saw the canary, the
cumulative requests, 5xx answers and latency-histogram buckets of the canary and of the stable
version (:class:`Snapshot`). Two one-sided sequential tests run over it (:mod:`.statistic`):

- errors: the canary's 5xx answers against the share of all 5xx answers its traffic share
  predicts;
- latency: for every histogram bound ``le`` at or above ``latency_floor_s``, the canary's
  requests slower than ``le`` against the share of all such requests its traffic share predicts
  (a slower canary has a heavier tail at some bound). The bounds' e-values are averaged.

The judge's e-value is the average of the two tests' e-values; its anytime-valid p-value is
``1 / max`` of the e-values seen so far (capped at 1).

Decisions, checked in this order:

- ``fail`` when the p-value is ``<= alpha``: evidence that the canary is worse. Under the null
  (the canary is no worse than stable) this happens with probability at most ``alpha`` over
  the whole canary, however often the judge is asked;
- ``pass`` when the canary has served at least ``pass_after_requests`` requests without
  ``fail``: the test's horizon, not proof of equality. It is not final: the judge keeps testing
  while it is asked, and a later ``fail`` overrides it;
- ``continue`` otherwise, including before the canary has served anything.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, NamedTuple

import numpy as np

from pytest_rollout.errors import ConfigError
from pytest_rollout.judge.statistic import (
    FloatArray,
    RatioGrid,
    expected_canary_events,
    log_e_value,
    log_judge_e_value,
    log_mean_exp,
    share_log_terms,
)

Decision = Literal["fail", "pass", "continue"]
DECISIONS: tuple[Decision, ...] = ("fail", "pass", "continue")

DEFAULT_ALPHA = 0.01
DEFAULT_PASS_AFTER_REQUESTS = 1000
DEFAULT_LATENCY_FLOOR_S = 0.025
# JSON (and Go's decoder in Argo's web provider) has no infinity.
_MAX_REPORTED = 1e300


@dataclass(frozen=True)
class JudgeConfig:
    """The judge's parameters.

    ``alpha``: the false-abort probability bound. ``pass_after_requests``: the canary requests
    after which an unrejected canary is reported ``pass``. ``latency_floor_s``: latency bounds
    below it are not tested (sub-floor differences are scheduling noise on a shared host, not
    regressions a user sees). ``grid``: which rate ratios the tests expect.
    """

    alpha: float = DEFAULT_ALPHA
    pass_after_requests: float = DEFAULT_PASS_AFTER_REQUESTS
    latency_floor_s: float = DEFAULT_LATENCY_FLOOR_S
    grid: RatioGrid = field(default_factory=RatioGrid)

    def __post_init__(self) -> None:
        if not (isinstance(self.alpha, int | float) and 0 < self.alpha < 1):
            raise ConfigError(f"judge alpha: expected a number in (0, 1), got {self.alpha!r}")
        for name in ("pass_after_requests", "latency_floor_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"judge {name}: expected a number >= 0, got {value!r}")


@dataclass(frozen=True)
class VersionCounts:
    """One version's cumulative counts since the judge's baseline.

    ``latency_buckets`` maps a histogram bound ``le`` (seconds, ``math.inf`` included) to the
    requests answered within it, as Prometheus's cumulative ``_bucket`` series do; empty when the
    service exports no histogram.
    """

    requests: float = 0.0
    errors: float = 0.0
    latency_buckets: Mapping[float, float] = field(default_factory=dict)

    def slower_than(self, bound: float) -> float:
        """Requests slower than ``bound`` (0 when the histogram lacks the bound)."""
        buckets = self.latency_buckets
        if bound not in buckets:
            return 0.0
        return buckets.get(math.inf, self.requests) - buckets[bound]

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "latency_buckets": {_le_text(le): n for le, n in sorted(self.latency_buckets.items())},
        }


@dataclass(frozen=True)
class Snapshot:
    """Both versions' cumulative counts at one look."""

    canary: VersionCounts
    stable: VersionCounts


@dataclass(frozen=True)
class Evidence:
    """One test's state: its e-value now and the counts behind it.

    For the latency test the counts are those of ``bound_s``, the bound with the largest
    e-value now.
    """

    test: str
    e_value: float
    canary_events: float
    expected_canary_events: float
    bound_s: float | None = None

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "e_value": self.e_value,
            "canary_events": self.canary_events,
            "expected_canary_events": round(self.expected_canary_events, 6),
        }
        if self.test == "latency":
            data["slower_than_s"] = self.bound_s
        return data


@dataclass(frozen=True)
class Verdict:
    """The judge's answer: the decision, the evidence and the counts it used."""

    decision: Decision
    e_value: float
    p_value: float
    alpha: float
    reason: str
    canary: VersionCounts
    stable: VersionCounts
    errors: Evidence
    latency: Evidence
    looks: int

    def as_json(self) -> dict[str, Any]:
        """The JSON body of the judge's HTTP answer (finite numbers only)."""
        return {
            "decision": self.decision,
            "e_value": self.e_value,
            "p_value": self.p_value,
            "alpha": self.alpha,
            "reason": self.reason,
            "looks": self.looks,
            "counts": {"canary": self.canary.as_json(), "stable": self.stable.as_json()},
            "tests": {"errors": self.errors.as_json(), "latency": self.latency.as_json()},
        }


def judge(snapshots: Sequence[Snapshot], config: JudgeConfig | None = None) -> Verdict:
    """Judge the canary from its looks so far (oldest first); see the module docstring.

    Counts must not decrease from one look to the next, and no version may have more errors
    than requests; a ValueError says which look broke that.
    """
    config = config or JudgeConfig()
    looks = len(snapshots)
    canary = snapshots[-1].canary if snapshots else VersionCounts()
    stable = snapshots[-1].stable if snapshots else VersionCounts()
    series = _Series.of(snapshots, config.grid)
    log_errors = series.errors().log_e(config.grid)
    bounds = tuple(b for b in series.bounds if b >= config.latency_floor_s)
    log_latency = np.zeros((looks, 1))
    if bounds:
        log_latency = np.stack([series.slower(b).log_e(config.grid) for b in bounds], axis=-1)
    log_judge = log_judge_e_value(log_errors, log_latency)
    e_value = _e(float(log_judge[-1])) if looks else 1.0
    p_value = 1.0 / _e(float(np.max(log_judge, initial=0.0)))
    errors = _evidence("errors", series.errors(), log_errors)
    latency = _latency_evidence(series, bounds, log_latency)
    decision, reason = _decide(p_value, canary, stable, config, errors, latency)
    return Verdict(
        decision=decision,
        e_value=e_value,
        p_value=p_value,
        alpha=config.alpha,
        reason=reason,
        canary=canary,
        stable=stable,
        errors=errors,
        latency=latency,
        looks=looks,
    )


class _Counts(NamedTuple):
    """One kind of event, per look: cumulative canary events, the compensators of the ratio
    grid (looks, ratios) and the null's expected canary events (for reports)."""

    canary: FloatArray
    compensator: FloatArray
    expected: FloatArray

    def log_e(self, grid: RatioGrid) -> FloatArray:
        return log_e_value(self.canary, self.compensator, grid)


@dataclass(frozen=True)
class _Series:
    """The looks as arrays: cumulative counts per look (rows) and the intervals between them."""

    requests: FloatArray  # (looks, 2): canary, stable
    errors_: FloatArray  # (looks, 2)
    slower_: Mapping[float, FloatArray]  # bound -> (looks, 2)
    grid: RatioGrid

    @property
    def bounds(self) -> tuple[float, ...]:
        return tuple(sorted(self.slower_))

    @classmethod
    def of(cls, snapshots: Sequence[Snapshot], grid: RatioGrid) -> _Series:
        pairs = [(s.canary, s.stable) for s in snapshots]
        requests = np.array([[c.requests, s.requests] for c, s in pairs], dtype=np.float64)
        errors = np.array([[c.errors, s.errors] for c, s in pairs], dtype=np.float64)
        requests, errors = requests.reshape(-1, 2), errors.reshape(-1, 2)
        bounds = _bounds(snapshots)
        slower = {
            b: np.array(
                [[c.slower_than(b), s.slower_than(b)] for c, s in pairs], dtype=np.float64
            ).reshape(-1, 2)
            for b in bounds
        }
        _check_counts(requests, errors, slower)
        return cls(requests, errors, slower, grid)

    @cached_property
    def _intervals(self) -> tuple[FloatArray, FloatArray]:
        """Each interval's requests (intervals, 2) and share terms (intervals, ratios)."""
        requests = np.diff(self.requests, axis=0, prepend=np.zeros((1, 2)))
        return requests, share_log_terms(requests[:, 0], requests[:, 1], self.grid)

    def _counts(self, cumulative: FloatArray) -> _Counts:
        steps = np.diff(cumulative, axis=0, prepend=np.zeros((1, 2)))
        requests, terms = self._intervals
        events = steps.sum(axis=1)
        expected = expected_canary_events(steps[:, 0], steps[:, 1], requests[:, 0], requests[:, 1])
        compensator = np.cumsum(events[:, None] * terms, axis=0)
        return _Counts(cumulative[:, 0], compensator, np.cumsum(expected))

    def errors(self) -> _Counts:
        return self._counts(self.errors_)

    def slower(self, bound: float) -> _Counts:
        return self._counts(self.slower_[bound])


def _bounds(snapshots: Sequence[Snapshot]) -> tuple[float, ...]:
    """The finite histogram bounds the looks report (a histogram's bounds never change)."""
    found: set[float] = set()
    for snapshot in snapshots:
        for counts in (snapshot.canary, snapshot.stable):
            found.update(le for le in counts.latency_buckets if math.isfinite(le))
    return tuple(sorted(found))


def _check_counts(
    requests: FloatArray, errors: FloatArray, slower: Mapping[float, FloatArray]
) -> None:
    named = {"requests": requests, "errors": errors}
    named.update({f"requests slower than {_le_text(b)}s": v for b, v in slower.items()})
    for name, values in named.items():
        if values.size and (not np.all(np.isfinite(values)) or np.any(values < 0)):
            raise ValueError(f"judge input: {name} must be finite and >= 0")
        decreasing = np.argwhere(np.diff(values, axis=0) < 0)
        if decreasing.size:
            look, side = decreasing[0]
            raise ValueError(
                f"judge input: cumulative {name} of the {('canary', 'stable')[side]} fell at "
                f"look {look + 2} ({values[look, side]:g} -> {values[look + 1, side]:g})"
            )
    over = np.argwhere(errors > requests)
    if over.size:
        look, side = over[0]
        raise ValueError(
            f"judge input: the {('canary', 'stable')[side]} has more errors "
            f"({errors[look, side]:g}) than requests ({requests[look, side]:g}) at look {look + 1}"
        )


def _e(log_value: float) -> float:
    """``exp(log_value)`` as a finite JSON number."""
    return min(math.exp(min(log_value, 700.0)), _MAX_REPORTED)


def _evidence(test: str, counts: _Counts, log_values: FloatArray) -> Evidence:
    if not log_values.size:
        return Evidence(test, 1.0, 0.0, 0.0)
    return Evidence(
        test, _e(float(log_values[-1])), float(counts.canary[-1]), float(counts.expected[-1])
    )


def _latency_evidence(
    series: _Series, bounds: tuple[float, ...], log_latency: FloatArray
) -> Evidence:
    if not bounds or not log_latency.size:
        return Evidence("latency", 1.0, 0.0, 0.0)
    column = int(np.argmax(log_latency[-1]))
    bound = bounds[column]
    single = _evidence("latency", series.slower(bound), log_latency[:, column])
    combined = _e(float(log_mean_exp(log_latency[-1])))
    return Evidence("latency", combined, single.canary_events, single.expected_canary_events, bound)


def _decide(
    p_value: float,
    canary: VersionCounts,
    stable: VersionCounts,
    config: JudgeConfig,
    errors: Evidence,
    latency: Evidence,
) -> tuple[Decision, str]:
    if p_value <= config.alpha:
        worse = errors if errors.e_value >= latency.e_value else latency
        what = (
            "5xx answers"
            if worse.test == "errors"
            else f"requests slower than {_le_text(worse.bound_s or 0.0)}s"
        )
        return "fail", (
            f"canary worse than stable (anytime p {p_value:.2g} <= alpha {config.alpha:g}): "
            f"{worse.canary_events:g} canary {what} where its traffic share predicts "
            f"{worse.expected_canary_events:.3g}"
        )
    if canary.requests >= config.pass_after_requests:
        return "pass", (
            f"no evidence against the canary after {canary.requests:g} requests "
            f"(>= {config.pass_after_requests:g}; anytime p {p_value:.2g})"
        )
    if canary.requests == 0:
        return "continue", "no canary requests yet"
    return "continue", (
        f"{canary.requests:g} canary and {stable.requests:g} stable requests, "
        f"anytime p {p_value:.2g} > alpha {config.alpha:g}"
    )


def _le_text(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else f"{bound:g}"
