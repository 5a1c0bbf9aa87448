"""How measurements roll up into a metric's phase, and metrics into the run's phase.

Pure bookkeeping, no time and no I/O, so the rules can be checked exhaustively. Followed:
argoproj/argo-rollouts ``analysis/analysis.go`` (``runMeasurements`` counters,
``assessMetricStatus``, ``assessMetricFailureInconclusiveOrError``, ``assessRunStatus``) and
``utils/analysis/helpers.go`` (``IsTerminating``, ``IsWorse``).

- Each completed measurement counts: Successful/Failed/Inconclusive add to ``count`` and reset
  the consecutive errors; Error adds to ``error`` and ``consecutiveError`` only.
- A metric is Failed when ``failed > failureLimit``, Inconclusive when ``inconclusive >
  inconclusiveLimit``, Error when ``consecutiveError > consecutiveErrorLimit`` (checked in that
  order, the later one winning), else Successful once ``count`` reaches the effective count, or
  when the run is terminating; otherwise it keeps Running.
- The run is Running until every metric completed, then takes the worst metric phase
  (Successful < Running < Pending < Inconclusive < Error < Failed). Once a metric is
  Failed/Error/Inconclusive, or termination was asked for, the run is terminating: it ends at
  once with the worst phase of the completed metrics, Successful when there is none.
- The message names the worst metric: ``Metric "x" assessed Failed due to failed (1) >
  failureLimit (0)``, with ``: "Error Message: ..."`` when its last measurement had one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pytest_rollout.engine.analysis.model import Metric
from pytest_rollout.engine.analysis.phases import AnalysisPhase, is_worse

TERMINATED_MESSAGE = "Run Terminated"
METRIC_TERMINATED_MESSAGE = "Metric Terminated"


@dataclass
class Measurement:
    """One measurement of a metric; ``finished_at`` is None while it is in flight."""

    phase: AnalysisPhase
    started_at: float
    finished_at: float | None = None
    value: str = ""
    result: Any = None
    message: str = ""
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def in_flight(self) -> bool:
        return self.finished_at is None


@dataclass
class MetricResult:
    """The running tally of one metric (Argo's ``MetricResult``)."""

    name: str
    phase: AnalysisPhase = AnalysisPhase.RUNNING
    message: str = ""
    measurements: list[Measurement] = field(default_factory=list)
    count: int = 0
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    error: int = 0
    consecutive_error: int = 0

    @property
    def last(self) -> Measurement | None:
        return self.measurements[-1] if self.measurements else None


@dataclass(frozen=True)
class Limits:
    """The parts of a metric that decide its phase."""

    failure_limit: int = 0
    inconclusive_limit: int = 0
    consecutive_error_limit: int = 4
    effective_count: int | None = 1

    @classmethod
    def of(cls, metric: Metric) -> Limits:
        return cls(
            failure_limit=metric.failure_limit,
            inconclusive_limit=metric.inconclusive_limit,
            consecutive_error_limit=metric.consecutive_error_limit,
            effective_count=metric.effective_count,
        )


def record(result: MetricResult, phase: AnalysisPhase) -> None:
    """Count one completed measurement of ``phase`` into ``result``."""
    if phase is AnalysisPhase.SUCCESSFUL:
        result.successful += 1
    elif phase is AnalysisPhase.FAILED:
        result.failed += 1
    elif phase is AnalysisPhase.INCONCLUSIVE:
        result.inconclusive += 1
    elif phase is AnalysisPhase.ERROR:
        result.error += 1
        result.consecutive_error += 1
        return
    else:
        raise ValueError(f"a measurement cannot complete as {phase}")
    result.count += 1
    result.consecutive_error = 0


def limit_exceeded(limits: Limits, result: MetricResult) -> tuple[AnalysisPhase | None, str]:
    """The phase a breached limit forces, and why (``failed (1) > failureLimit (0)``)."""
    phase: AnalysisPhase | None = None
    message = ""
    if result.failed > limits.failure_limit:
        phase = AnalysisPhase.FAILED
        message = f"failed ({result.failed}) > failureLimit ({limits.failure_limit})"
    if result.inconclusive > limits.inconclusive_limit:
        phase = AnalysisPhase.INCONCLUSIVE
        message = (
            f"inconclusive ({result.inconclusive}) > "
            f"inconclusiveLimit ({limits.inconclusive_limit})"
        )
    if result.consecutive_error > limits.consecutive_error_limit:
        phase = AnalysisPhase.ERROR
        message = (
            f"consecutiveErrors ({result.consecutive_error}) > "
            f"consecutiveErrorLimit ({limits.consecutive_error_limit})"
        )
    return phase, message


def assess_metric(limits: Limits, result: MetricResult, terminating: bool) -> AnalysisPhase:
    """The metric's phase now (a completed phase never changes)."""
    if result.phase.completed:
        return result.phase
    last = result.last
    if last is None:
        return AnalysisPhase.SUCCESSFUL if terminating else AnalysisPhase.PENDING
    if last.in_flight:
        return AnalysisPhase.RUNNING
    breached, _ = limit_exceeded(limits, result)
    if breached is not None:
        return breached
    if limits.effective_count is not None and result.count >= limits.effective_count:
        return AnalysisPhase.SUCCESSFUL
    if terminating:
        return AnalysisPhase.SUCCESSFUL
    return AnalysisPhase.RUNNING


def is_terminating(results: Sequence[MetricResult | None], terminate_requested: bool) -> bool:
    """Whether the run is ending: asked to, or a metric already Failed/Error/Inconclusive."""
    if terminate_requested:
        return True
    return any(
        result is not None
        and result.phase in (AnalysisPhase.FAILED, AnalysisPhase.ERROR, AnalysisPhase.INCONCLUSIVE)
        for result in results
    )


@dataclass(frozen=True)
class MetricTransition:
    """A metric whose phase changed during an assessment."""

    name: str
    previous: AnalysisPhase
    phase: AnalysisPhase


def assess_run(
    metrics: Sequence[tuple[Limits, MetricResult | None]], terminate_requested: bool
) -> tuple[AnalysisPhase, str, list[MetricTransition]]:
    """The run's phase and message; updates each metric's phase and message in place.

    ``metrics`` pairs each metric's limits with its result (None: never measured yet).
    """
    terminating = is_terminating([result for _, result in metrics], terminate_requested)
    worst_phase: AnalysisPhase | None = None
    worst_message = TERMINATED_MESSAGE if terminate_requested else ""
    everything_completed = True
    transitions: list[MetricTransition] = []
    for limits, result in metrics:
        if result is None:
            everything_completed = False
            continue
        phase = assess_metric(limits, result, terminating)
        if phase != result.phase:
            transitions.append(MetricTransition(result.name, result.phase, phase))
            if result.last is not None:
                result.message = result.last.message
            result.phase = phase
        if not phase.completed:
            everything_completed = False
            continue
        _, reason = limit_exceeded(limits, result)
        if worst_phase is None or is_worse(worst_phase, phase):
            worst_phase = phase
            if reason:
                worst_message = f'Metric "{result.name}" assessed {phase} due to {reason}'
                if result.message:
                    worst_message += f': "Error Message: {result.message}"'
    worst_message = worst_message.strip()
    if terminating:
        return worst_phase or AnalysisPhase.SUCCESSFUL, worst_message, transitions
    if not everything_completed or worst_phase is None:
        return AnalysisPhase.RUNNING, "", transitions
    return worst_phase, worst_message, transitions
