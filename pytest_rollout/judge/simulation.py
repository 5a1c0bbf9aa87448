"""The judge's validity and power, by simulation: many canaries, looked at every second.

Each simulated canary is a stream of one-second intervals. In each, ``Poisson(rate)`` requests
arrive; each goes to the canary with the traffic share of that second (the router's random
split), fails with the version's error rate, and is slower than each latency bound with the
version's tail probability. The judge (:mod:`.statistic`, the same functions the service runs)
and a fixed-threshold gate look at the counts after every second.

- A/A streams (both versions alike; several traffic rates, error rates, traffic splits, a
  split that steps 5% -> 25% -> 50% as a Rollout does, and a burst of errors and latency on
  both versions) measure the false-abort rate: the share of streams a gate aborts at any look.
- Power streams (a canary failing 50% of its requests, one failing 5% against stable's 1%, one
  300 ms slower) measure how many canary requests the judge needs to abort.

``python -m pytest_rollout.judge.simulation`` prints both tables.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy import special, stats

from pytest_rollout.judge.sequential import JudgeConfig
from pytest_rollout.judge.statistic import (
    FloatArray,
    log_e_value,
    log_judge_e_value,
    share_log_terms,
)

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

LATENCY_BOUNDS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""The reference service's histogram bounds; the judge tests those at or above its floor."""
BASE_LATENCY_MEDIAN_S = 0.03
BASE_LATENCY_SIGMA = 1.0
FIXED_THRESHOLD = 0.05
FIXED_WINDOWS_S = (1, 5, 20)
"""Rate windows of the fixed-threshold gate; the first listed in a report is its headline."""
HEADLINE_FIXED_WINDOW_S = 5
DURATION_S = 300
STREAMS_PER_CONFIG = 500
CONFIDENCE = 0.95
CHUNK_STREAMS = 50
"""Streams computed together: small enough for the (streams, seconds, ratios) arrays to stay in
the processor's cache."""

Schedule = Callable[[FloatArray], FloatArray]
"""Maps second indexes ``0..T-1`` to a value per second (a traffic share, a multiplier)."""


def constant(value: float) -> Schedule:
    return lambda seconds: np.full(seconds.shape, value)


def steps(*changes: tuple[float, float]) -> Schedule:
    """A value per ``(from_second, value)``, like a Rollout's setWeight steps."""

    def schedule(seconds: FloatArray) -> FloatArray:
        values = np.zeros(seconds.shape)
        for start, value in changes:
            values[seconds >= start] = value
        return values

    return schedule


def tail_probabilities(shift_s: float = 0.0, slowdown: float = 1.0) -> FloatArray:
    """P(latency > bound) per bound for a log-normal latency (median 30 ms), plus ``shift_s``."""
    bounds = np.asarray(LATENCY_BOUNDS_S) - shift_s
    positive = np.maximum(bounds, 1e-12) / (BASE_LATENCY_MEDIAN_S * slowdown)
    tails = stats.norm.sf(np.log(positive) / BASE_LATENCY_SIGMA)
    return np.asarray(np.where(bounds <= 0, 1.0, tails), dtype=np.float64)


@dataclass(frozen=True)
class Scenario:
    """One kind of simulated canary."""

    name: str
    rate: float
    """Requests per second, both versions together."""
    share: Schedule
    stable_error_rate: float
    canary_error_rate: float
    stable_tails: FloatArray = field(default_factory=tail_probabilities)
    canary_tails: FloatArray = field(default_factory=tail_probabilities)
    burst: Schedule = field(default=constant(1.0))
    """A multiplier of both versions' error rate and slowdown per second (a shared incident)."""


@dataclass(frozen=True)
class Streams:
    """Per-second increments of ``streams`` simulated canaries: arrays (streams, seconds)."""

    canary_requests: IntArray
    stable_requests: IntArray
    canary_errors: IntArray
    stable_errors: IntArray
    canary_slower: IntArray
    """(streams, seconds, bounds)"""
    stable_slower: IntArray


def simulate(scenario: Scenario, streams: int, seconds: int, rng: np.random.Generator) -> Streams:
    """Draw ``streams`` canaries of ``seconds`` one-second intervals."""
    index = np.arange(seconds, dtype=np.float64)
    share = np.broadcast_to(scenario.share(index), (streams, seconds))
    burst = np.broadcast_to(scenario.burst(index), (streams, seconds))
    total = rng.poisson(scenario.rate, (streams, seconds))
    canary = rng.binomial(total, share)
    stable = total - canary

    def errors(requests: IntArray, rate: float) -> IntArray:
        return rng.binomial(requests, np.minimum(rate * burst, 1.0))

    def slower(requests: IntArray, tails: FloatArray) -> IntArray:
        # Each request falls in one latency bin; "slower than bound j" sums the bins above it.
        bursty = np.minimum(tails[None, :] * burst[0][:, None], 1.0)  # (seconds, bounds)
        bursty = np.minimum.accumulate(bursty, axis=-1)  # a tail never grows with the bound
        edges = np.concatenate([np.ones((seconds, 1)), bursty, np.zeros((seconds, 1))], axis=1)
        bins = rng.multinomial(requests, -np.diff(edges, axis=1))
        above = np.cumsum(bins[..., ::-1], axis=-1)[..., ::-1]
        return np.asarray(above[..., 1:], dtype=np.int64)

    return Streams(
        canary_requests=canary,
        stable_requests=stable,
        canary_errors=errors(canary, scenario.canary_error_rate),
        stable_errors=errors(stable, scenario.stable_error_rate),
        canary_slower=slower(canary, scenario.canary_tails),
        stable_slower=slower(stable, scenario.stable_tails),
    )


def judge_log_e(streams: Streams, config: JudgeConfig) -> FloatArray:
    """The judge's ``log e`` after every second: (streams, seconds)."""
    return np.concatenate(
        [_judge_log_e(streams, rows, config) for rows in _chunks(streams, CHUNK_STREAMS)]
    )


def _chunks(streams: Streams, size: int) -> list[slice]:
    count = streams.canary_requests.shape[0]
    return [slice(start, start + size) for start in range(0, count, size)]


def _judge_log_e(streams: Streams, rows: slice, config: JudgeConfig) -> FloatArray:
    canary_requests = streams.canary_requests[rows]
    terms = share_log_terms(canary_requests, streams.stable_requests[rows], config.grid)

    def test(canary: IntArray, stable: IntArray) -> FloatArray:
        if not (canary.any() or stable.any()):
            return np.zeros(canary.shape)  # no events: e = 1 throughout
        compensator = np.cumsum((canary + stable)[..., None] * terms, axis=1)
        return log_e_value(np.cumsum(canary, axis=1), compensator, config.grid)

    log_errors = test(streams.canary_errors[rows], streams.stable_errors[rows])
    canary_slower, stable_slower = streams.canary_slower[rows], streams.stable_slower[rows]
    tested = [j for j, bound in enumerate(LATENCY_BOUNDS_S) if bound >= config.latency_floor_s]
    log_latency = np.stack(
        [test(canary_slower[..., j], stable_slower[..., j]) for j in tested], axis=-1
    )
    return log_judge_e_value(log_errors, log_latency)


def judge_aborts(streams: Streams, config: JudgeConfig) -> tuple[FloatArray, IntArray]:
    """Per stream: whether the judge aborted, and at which second (index; -1: never)."""
    return _first(judge_log_e(streams, config) >= -math.log(config.alpha))


def fixed_gate_aborts(
    streams: Streams, window_s: int, threshold: float = FIXED_THRESHOLD
) -> tuple[FloatArray, IntArray]:
    """The fixed gate, checked every second: the canary's error ratio over the last
    ``window_s`` seconds is above ``threshold`` (no requests in the window: no verdict)."""
    requests = _trailing(streams.canary_requests, window_s)
    errors = _trailing(streams.canary_errors, window_s)
    ratio = np.divide(errors, requests, out=np.zeros(errors.shape), where=requests > 0)
    return _first(ratio > threshold)


def _trailing(values: IntArray, window: int) -> FloatArray:
    cumulative = np.cumsum(values, axis=1, dtype=np.float64)
    shifted = np.zeros_like(cumulative)
    shifted[:, window:] = cumulative[:, :-window]
    return cumulative - shifted


def _first(hit: BoolArray) -> tuple[FloatArray, IntArray]:
    aborted = np.asarray(hit.any(axis=1))
    first = np.asarray(np.where(aborted, np.argmax(hit, axis=1), -1), dtype=np.int64)
    return aborted.astype(np.float64), first


# --------------------------------------------------------------------------------------------
# A/A validity


def aa_scenarios() -> list[Scenario]:
    """Both versions alike: traffic rates x error rates x traffic splits, and a shared burst."""
    splits: list[tuple[str, Schedule]] = [
        ("5%", constant(0.05)),
        ("25%", constant(0.25)),
        ("50%", constant(0.5)),
        ("5->25->50%", steps((0, 0.05), (60, 0.25), (120, 0.5))),
    ]
    scenarios = [
        Scenario(f"{rate:g} req/s, {p:.1%} errors, split {split}", rate, share, p, p)
        for rate in (20.0, 200.0)
        for p in (0.005, 0.01, 0.02)
        for split, share in splits
    ]
    burst = steps((0, 1.0), (90, 10.0), (110, 1.0))
    scenarios.append(
        Scenario(
            "200 req/s, 1.0% errors, 10x errors and latency 90-110 s on both, split 5->25->50%",
            200.0,
            splits[3][1],
            0.01,
            0.01,
            burst=burst,
        )
    )
    return scenarios


@dataclass(frozen=True)
class Rate:
    """A false-abort rate with its Clopper-Pearson confidence interval."""

    aborted: int
    runs: int
    low: float
    high: float

    @property
    def value(self) -> float:
        return self.aborted / self.runs if self.runs else 0.0

    @classmethod
    def of(cls, aborted: int, runs: int, confidence: float = CONFIDENCE) -> Rate:
        tail = (1 - confidence) / 2
        low = float(special.betaincinv(aborted, runs - aborted + 1, tail)) if aborted else 0.0
        high = (
            float(special.betaincinv(aborted + 1, runs - aborted, 1 - tail))
            if aborted < runs
            else 1.0
        )
        return cls(aborted, runs, low, high)

    def __str__(self) -> str:
        return f"{self.value:.4f} [{self.low:.4f}, {self.high:.4f}] ({self.aborted}/{self.runs})"


@dataclass(frozen=True)
class ValidityRow:
    scenario: str
    judge: Rate
    fixed: dict[int, Rate]


@dataclass(frozen=True)
class ValidityReport:
    """False-abort rates of the judge and of the fixed gate over A/A streams."""

    rows: tuple[ValidityRow, ...]
    judge: Rate
    fixed: dict[int, Rate]
    seconds: int
    cpu_s: float
    """Processor time the simulation took (the machine may be shared; this is what it costs)."""
    wall_s: float
    alpha: float

    @property
    def runs(self) -> int:
        return self.judge.runs

    def format(self) -> str:
        windows = sorted(self.fixed)
        head = "  ".join(f"fixed 5% / {w}s window".ljust(36) for w in windows)
        lines = [
            f"A/A false-abort rates over {self.runs} streams of {self.seconds} s, looked at "
            f"every second; {CONFIDENCE:.0%} Clopper-Pearson intervals; "
            f"{self.cpu_s:.1f} s CPU, {self.wall_s:.1f} s wall",
            f"{'scenario':<84}{'judge (alpha ' + format(self.alpha, 'g') + ')':<36}{head}",
        ]
        for row in self.rows:
            fixed = "  ".join(str(row.fixed[w]).ljust(36) for w in windows)
            lines.append(f"{row.scenario:<84}{row.judge!s:<36}{fixed}")
        fixed = "  ".join(str(self.fixed[w]).ljust(36) for w in windows)
        lines.append(f"{'all':<84}{self.judge!s:<36}{fixed}")
        return "\n".join(lines)


def validity(
    config: JudgeConfig | None = None,
    *,
    streams_per_scenario: int = STREAMS_PER_CONFIG,
    seconds: int = DURATION_S,
    seed: int = 20220814,
) -> ValidityReport:
    """Run every A/A scenario; count the streams each gate aborts."""
    config = config or JudgeConfig()
    rng = np.random.default_rng(seed)
    started, started_cpu = time.perf_counter(), time.process_time()
    rows: list[ValidityRow] = []
    totals = {"judge": 0, **{f"fixed{w}": 0 for w in FIXED_WINDOWS_S}}
    for scenario in aa_scenarios():
        drawn = simulate(scenario, streams_per_scenario, seconds, rng)
        judged = int(judge_aborts(drawn, config)[0].sum())
        fixed = {w: int(fixed_gate_aborts(drawn, w)[0].sum()) for w in FIXED_WINDOWS_S}
        totals["judge"] += judged
        for w, n in fixed.items():
            totals[f"fixed{w}"] += n
        rows.append(
            ValidityRow(
                scenario.name,
                Rate.of(judged, streams_per_scenario),
                {w: Rate.of(n, streams_per_scenario) for w, n in fixed.items()},
            )
        )
    runs = streams_per_scenario * len(rows)
    return ValidityReport(
        rows=tuple(rows),
        judge=Rate.of(totals["judge"], runs),
        fixed={w: Rate.of(totals[f"fixed{w}"], runs) for w in FIXED_WINDOWS_S},
        seconds=seconds,
        cpu_s=time.process_time() - started_cpu,
        wall_s=time.perf_counter() - started,
        alpha=config.alpha,
    )


# --------------------------------------------------------------------------------------------
# Power


def power_scenarios() -> list[Scenario]:
    """The experiment's bad releases at 200 req/s and a 5% canary, stable at 1% errors."""
    five = constant(0.05)
    return [
        Scenario("bad: canary 50% errors, stable 1%", 200.0, five, 0.01, 0.5),
        Scenario("subtle: canary 5% errors, stable 1%", 200.0, five, 0.01, 0.05),
        Scenario(
            "slow: canary +300 ms, both 1% errors",
            200.0,
            five,
            0.01,
            0.01,
            canary_tails=tail_probabilities(shift_s=0.3),
        ),
    ]


@dataclass(frozen=True)
class PowerRow:
    scenario: str
    detected: Rate
    median_canary_requests: float
    median_canary_errors: float
    median_seconds: float
    fixed_detected: Rate
    fixed_median_seconds: float


@dataclass(frozen=True)
class PowerReport:
    rows: tuple[PowerRow, ...]
    seconds: int
    fixed_window_s: int

    def row(self, prefix: str) -> PowerRow:
        return next(r for r in self.rows if r.scenario.startswith(prefix))

    def format(self) -> str:
        lines = [
            f"Power at 200 req/s, 5% canary, {self.rows[0].detected.runs} streams of "
            f"{self.seconds} s (medians over detected streams; 'seconds' counts whole looks)",
            f"{'scenario':<40}{'judge detected':<36}{'canary req':>11}{'canary err':>11}"
            f"{'seconds':>9}   {'fixed 5%/' + str(self.fixed_window_s) + 's detected':<36}"
            f"{'seconds':>8}",
        ]
        for r in self.rows:
            lines.append(
                f"{r.scenario:<40}{r.detected!s:<36}{r.median_canary_requests:>11g}"
                f"{r.median_canary_errors:>11g}{r.median_seconds:>9g}   {r.fixed_detected!s:<36}"
                f"{r.fixed_median_seconds:>8g}"
            )
        return "\n".join(lines)


def power(
    config: JudgeConfig | None = None,
    *,
    streams: int = 2000,
    seconds: int = 120,
    seed: int = 20221128,
) -> PowerReport:
    """How often and how fast the judge aborts the experiment's bad releases."""
    config = config or JudgeConfig()
    rng = np.random.default_rng(seed)
    rows = []
    for scenario in power_scenarios():
        drawn = simulate(scenario, streams, seconds, rng)
        aborted, first = judge_aborts(drawn, config)
        fixed_aborted, fixed_first = fixed_gate_aborts(drawn, HEADLINE_FIXED_WINDOW_S)
        hit = aborted > 0
        rows_index = np.nonzero(hit)[0]
        cumulative_requests = np.cumsum(drawn.canary_requests, axis=1)
        cumulative_errors = np.cumsum(drawn.canary_errors, axis=1)
        at = first[hit]
        rows.append(
            PowerRow(
                scenario=scenario.name,
                detected=Rate.of(int(hit.sum()), streams),
                median_canary_requests=_median(cumulative_requests[rows_index, at]),
                median_canary_errors=_median(cumulative_errors[rows_index, at]),
                median_seconds=_median(at + 1),
                fixed_detected=Rate.of(int(fixed_aborted.sum()), streams),
                fixed_median_seconds=_median(fixed_first[fixed_aborted > 0] + 1),
            )
        )
    return PowerReport(tuple(rows), seconds, HEADLINE_FIXED_WINDOW_S)


def _median(values: IntArray) -> float:
    return float(np.median(values)) if values.size else math.nan


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pytest_rollout.judge.simulation",
        description="Simulate the canary judge: A/A false-abort rates and power.",
    )
    parser.add_argument("--streams-per-scenario", type=int, default=STREAMS_PER_CONFIG)
    parser.add_argument("--seconds", type=int, default=DURATION_S)
    args = parser.parse_args(argv)
    print(validity(streams_per_scenario=args.streams_per_scenario, seconds=args.seconds).format())
    print()
    print(power().format())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
