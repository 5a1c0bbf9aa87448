"""The AnalysisRun executor: measures each metric on its schedule and rolls the results up.

The loop mirrors Argo's reconciliation (argoproj/argo-rollouts ``analysis/analysis.go``:
``reconcileAnalysisRun``, ``generateMetricTasks``, ``runMeasurements``,
``calculateNextReconcileTime``), driven by an injectable clock instead of a work queue:

- a metric's first measurement is taken at the start, or ``initialDelay`` after it;
- the next one ``interval`` after the previous finished, until ``count`` measurements were
  taken (no interval and no count: one; an interval without count: until terminated);
- an errored measurement is retried 10 s after it finished, whatever the interval
  (``DefaultErrorRetryInterval``); errors do not add to ``count``;
- once a metric is Failed, Error or Inconclusive, or :meth:`AnalysisRun.terminate` was called,
  no new measurement starts, in-flight Job measurements are terminated (counted Successful,
  ``Metric Terminated``), and the run ends with the worst completed metric phase (Successful
  when none), message ``Run Terminated`` unless a metric exceeded a limit.

Roll-up rules live in :mod:`~pytest_rollout.engine.analysis.rollup`. Arguments are merged and
resolved when the run is created (a missing one is a ConfigError, as a Rollout referencing the
templates would be invalid); a metric that cannot be resolved or validated makes the run end
in Error with Argo's message (``Unable to resolve metric arguments: ...`` or ``Analysis spec
invalid: metrics[0]: ...``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pytest_rollout.engine.analysis.args import (
    ArgResolver,
    Argument,
    ArgumentError,
    flatten_args,
    merge_args,
    resolve_values,
)
from pytest_rollout.engine.analysis.clock import Clock, RealClock
from pytest_rollout.engine.analysis.model import (
    AnalysisSpecError,
    AnalysisTemplate,
    Metric,
    flatten_metrics,
    resolve_metrics,
)
from pytest_rollout.engine.analysis.phases import AnalysisPhase
from pytest_rollout.engine.analysis.providers import (
    MeasureContext,
    MetricProvider,
    Outcome,
    ProviderError,
    ProviderFactory,
    error_outcome,
)
from pytest_rollout.engine.analysis.rollup import (
    METRIC_TERMINATED_MESSAGE,
    Limits,
    Measurement,
    MetricResult,
    assess_run,
    is_terminating,
    record,
)
from pytest_rollout.errors import ConfigError

ERROR_RETRY_INTERVAL_S = 10.0
"""Argo's ``DefaultErrorRetryInterval``."""


# --------------------------------------------------------------------------------------------
# Status snapshots and events


@dataclass(frozen=True)
class MeasurementStatus:
    """One measurement as it stands."""

    phase: AnalysisPhase
    started_at: float
    finished_at: float | None
    value: str
    result: Any
    message: str
    metadata: Mapping[str, str]

    def to_dict(self) -> dict[str, Any]:
        """Argo's ``Measurement`` fields (times as epoch seconds)."""
        out: dict[str, Any] = {"phase": str(self.phase), "startedAt": self.started_at}
        if self.finished_at is not None:
            out["finishedAt"] = self.finished_at
        if self.value:
            out["value"] = self.value
        if self.message:
            out["message"] = self.message
        if self.metadata:
            out["metadata"] = dict(self.metadata)
        return out


@dataclass(frozen=True)
class MetricStatus:
    """One metric's phase, counters and measurements."""

    name: str
    phase: AnalysisPhase
    message: str = ""
    count: int = 0
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    error: int = 0
    consecutive_error: int = 0
    measurements: tuple[MeasurementStatus, ...] = ()

    @property
    def values(self) -> list[str]:
        """The value of each finished measurement, in order."""
        return [m.value for m in self.measurements if m.finished_at is not None]

    def to_dict(self) -> dict[str, Any]:
        """Argo's ``MetricResult`` fields."""
        return {
            "name": self.name,
            "phase": str(self.phase),
            "message": self.message,
            "count": self.count,
            "successful": self.successful,
            "failed": self.failed,
            "inconclusive": self.inconclusive,
            "error": self.error,
            "consecutiveError": self.consecutive_error,
            "measurements": [m.to_dict() for m in self.measurements],
        }


@dataclass(frozen=True)
class AnalysisRunStatus:
    """A snapshot of a run."""

    name: str
    phase: AnalysisPhase
    message: str
    started_at: float | None
    finished_at: float | None
    terminate_requested: bool
    metrics: tuple[MetricStatus, ...]

    def metric(self, name: str) -> MetricStatus:
        for metric in self.metrics:
            if metric.name == name:
                return metric
        raise KeyError(f"no metric {name!r} in {self.name} ({[m.name for m in self.metrics]})")

    def to_dict(self) -> dict[str, Any]:
        """Argo's ``AnalysisRunStatus`` layout."""
        return {
            "name": self.name,
            "phase": str(self.phase),
            "message": self.message,
            "startedAt": self.started_at,
            "finishedAt": self.finished_at,
            "terminate": self.terminate_requested,
            "metricResults": [m.to_dict() for m in self.metrics],
        }


EventKind = Literal["run", "metric", "measurement"]


@dataclass(frozen=True)
class AnalysisRunEvent:
    """A change: the run's phase (``run``), a metric's phase (``metric``), or a measurement
    that finished (``measurement``). ``previous`` is None for measurements; a run's first
    transition is from Pending (Argo's empty phase)."""

    kind: EventKind
    time: float
    run: str
    phase: AnalysisPhase
    previous: AnalysisPhase | None = None
    message: str = ""
    metric: str | None = None
    measurement: MeasurementStatus | None = None


Listener = Callable[[AnalysisRunEvent], None]


# --------------------------------------------------------------------------------------------
# The run


@dataclass
class _InFlight:
    task: asyncio.Task[None]
    terminable: bool
    measurement: Measurement = field(repr=False)


class AnalysisRun:
    """One AnalysisRun over one or more templates.

    ``args`` are the caller's (a Rollout's) arguments, laid over the templates'; a
    ``valueFrom`` is resolved by ``resolve_arg``. ``providers`` gives each metric its
    provider; ``clock`` defaults to real time. Await :meth:`run` to execute it (once).
    """

    def __init__(
        self,
        name: str,
        templates: AnalysisTemplate | Sequence[AnalysisTemplate],
        args: Sequence[Argument] = (),
        *,
        providers: ProviderFactory,
        clock: Clock | None = None,
        resolve_arg: ArgResolver | None = None,
    ) -> None:
        template_list = [templates] if isinstance(templates, AnalysisTemplate) else list(templates)
        if not template_list:
            raise ConfigError(f"AnalysisRun {name}: no templates given")
        self.name = name
        self.templates = tuple(template_list)
        metric_templates = flatten_metrics(template_list)
        merged = merge_args(args, flatten_args(t.args for t in template_list))
        self.args: Mapping[str, str] = resolve_values(merged, resolve_arg)
        self._providers = providers
        self._clock: Clock = clock if clock is not None else RealClock()
        self._metric_names = [m.name for m in metric_templates]
        self._metrics: list[Metric] = []
        self.spec_error = ""
        try:
            self._metrics = resolve_metrics(metric_templates, self.args)
        except ArgumentError as exc:
            self.spec_error = f"Unable to resolve metric arguments: {exc}"
        except AnalysisSpecError as exc:
            self.spec_error = f"Analysis spec invalid: {exc}"
        self._limits = {m.name: Limits.of(m) for m in self._metrics}
        self._results: dict[str, MetricResult] = {}
        self._phase = AnalysisPhase.PENDING
        self._message = ""
        self._started_at: float | None = None
        self._finished_at: float | None = None
        self._terminate_requested = False
        self._started = False
        self._wake = asyncio.Event()
        self._in_flight: dict[str, _InFlight] = {}
        self._stopping: list[asyncio.Task[None]] = []
        self._listeners: list[Listener] = []

    def __repr__(self) -> str:
        return f"<AnalysisRun {self.name} {self._phase}>"

    # -- observing ---------------------------------------------------------------------------

    @property
    def phase(self) -> AnalysisPhase:
        return self._phase

    @property
    def message(self) -> str:
        return self._message

    @property
    def completed(self) -> bool:
        return self._phase.completed

    @property
    def metrics(self) -> tuple[Metric, ...]:
        """The resolved metrics (empty when they could not be resolved: see ``spec_error``)."""
        return tuple(self._metrics)

    def status(self) -> AnalysisRunStatus:
        """A snapshot of the run, its metrics and their measurements."""
        metrics = []
        for name in self._metric_names:
            result = self._results.get(name)
            if result is None:
                metrics.append(MetricStatus(name, AnalysisPhase.PENDING))
                continue
            metrics.append(
                MetricStatus(
                    name=name,
                    phase=result.phase,
                    message=result.message,
                    count=result.count,
                    successful=result.successful,
                    failed=result.failed,
                    inconclusive=result.inconclusive,
                    error=result.error,
                    consecutive_error=result.consecutive_error,
                    measurements=tuple(_snapshot(m) for m in result.measurements),
                )
            )
        return AnalysisRunStatus(
            name=self.name,
            phase=self._phase,
            message=self._message,
            started_at=self._started_at,
            finished_at=self._finished_at,
            terminate_requested=self._terminate_requested,
            metrics=tuple(metrics),
        )

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener`` on every change; returns a function that unsubscribes it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    # -- controlling -------------------------------------------------------------------------

    def terminate(self) -> None:
        """Stop the run (Argo's ``spec.terminate``): Successful unless a limit was exceeded."""
        if self.completed:
            return
        self._terminate_requested = True
        self._wake.set()

    async def run(self) -> AnalysisRunStatus:
        """Execute the run until it completes; returns the final status."""
        if self._started:
            raise RuntimeError(f"AnalysisRun {self.name} was already started")
        self._started = True
        self._started_at = self._clock.now()
        if self.spec_error:
            self._set_phase(AnalysisPhase.ERROR, self.spec_error)
            return self.status()
        self._set_phase(AnalysisPhase.RUNNING, "")
        try:
            while True:
                self._wake.clear()
                self._reconcile()
                if self.completed:
                    break
                deadline = self._next_measurement_time()
                if deadline is None and not self._in_flight and not self._wake.is_set():
                    raise RuntimeError(f"AnalysisRun {self.name}: nothing left to wait for")
                await self._clock.wait(deadline, self._wake)
        finally:
            await self._stop_everything()
        return self.status()

    # -- reconciliation ----------------------------------------------------------------------

    def _reconcile(self) -> None:
        # Repeat until stable: a metric that just failed makes the run terminating, which
        # ends it in the same pass (Argo re-reconciles at once after the status update).
        while True:
            now = self._clock.now()
            terminating = is_terminating(list(self._results.values()), self._terminate_requested)
            for metric in self._metrics:
                result = self._results.get(metric.name)
                if result is not None and result.phase.completed:
                    continue
                flight = self._in_flight.get(metric.name)
                if flight is not None:
                    if terminating and flight.terminable and result is not None:
                        self._terminate_measurement(metric.name, result, flight, now)
                    continue
                if terminating:
                    continue
                if self._due(metric, result, now):
                    self._start_measurement(metric, result, now)
            if terminating and self._in_flight:
                return  # measurements that cannot be terminated finish first
            phase, message, transitions = assess_run(
                [(self._limits[m.name], self._results.get(m.name)) for m in self._metrics],
                self._terminate_requested,
            )
            for transition in transitions:
                self._emit(
                    AnalysisRunEvent(
                        "metric",
                        now,
                        self.name,
                        transition.phase,
                        transition.previous,
                        self._results[transition.name].message,
                        metric=transition.name,
                    )
                )
            if phase != self._phase:
                self._set_phase(phase, message)
            if not transitions or self.completed:
                return

    def _due(self, metric: Metric, result: MetricResult | None, now: float) -> bool:
        due_at = self._due_at(metric, result)
        return due_at is not None and now >= due_at

    def _due_at(self, metric: Metric, result: MetricResult | None) -> float | None:
        """When the metric's next measurement starts; None: no further measurement."""
        assert self._started_at is not None
        last = result.last if result is not None else None
        if last is None:
            return self._started_at + (metric.initial_delay or 0.0)
        if last.finished_at is None:
            return None
        count = metric.effective_count
        if result is not None and count is not None and result.count >= count:
            return None
        if last.phase is AnalysisPhase.ERROR or metric.interval is None:
            return last.finished_at + ERROR_RETRY_INTERVAL_S
        return last.finished_at + metric.interval

    def _next_measurement_time(self) -> float | None:
        times = []
        for metric in self._metrics:
            result = self._results.get(metric.name)
            if result is not None and result.phase.completed:
                continue
            if metric.name in self._in_flight:
                continue
            due_at = self._due_at(metric, result)
            if due_at is not None:
                times.append(due_at)
        return min(times, default=None)

    # -- measurements ------------------------------------------------------------------------

    def _start_measurement(self, metric: Metric, result: MetricResult | None, now: float) -> None:
        if result is None:
            result = self._results[metric.name] = MetricResult(metric.name)
        context = MeasureContext(self.name, metric.name, result.count + result.error + 1)
        measurement = Measurement(AnalysisPhase.RUNNING, started_at=now)
        result.measurements.append(measurement)
        try:
            provider = self._providers.provider_for(metric)
        except ProviderError as exc:
            self._finish(result, measurement, error_outcome(str(exc)))
            return
        task = asyncio.create_task(
            self._measure(provider, metric, result, measurement, context),
            name=f"analysis {self.name}/{metric.name}#{context.index}",
        )
        self._in_flight[metric.name] = _InFlight(task, provider.terminable, measurement)

    async def _measure(
        self,
        provider: MetricProvider,
        metric: Metric,
        result: MetricResult,
        measurement: Measurement,
        context: MeasureContext,
    ) -> None:
        try:
            outcome = await provider.measure(metric, context)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a provider bug must not wedge the run: record it as Error
            outcome = error_outcome(f"{type(exc).__name__}: {exc}")
        flight = self._in_flight.get(metric.name)
        if flight is not None and flight.measurement is measurement:
            del self._in_flight[metric.name]
        self._finish(result, measurement, outcome)

    def _finish(self, result: MetricResult, measurement: Measurement, outcome: Outcome) -> None:
        if not measurement.in_flight:
            return  # already terminated
        measurement.phase = outcome.phase
        measurement.finished_at = self._clock.now()
        measurement.value = outcome.value
        measurement.result = outcome.result
        measurement.message = outcome.message
        measurement.metadata.update(outcome.metadata)
        record(result, outcome.phase)
        self._emit_measurement(result.name, measurement)
        self._wake.set()

    def _terminate_measurement(
        self, name: str, result: MetricResult, flight: _InFlight, now: float
    ) -> None:
        del self._in_flight[name]
        flight.task.cancel()
        self._stopping.append(flight.task)
        measurement = flight.measurement
        measurement.phase = AnalysisPhase.SUCCESSFUL
        measurement.finished_at = now
        measurement.message = METRIC_TERMINATED_MESSAGE
        record(result, AnalysisPhase.SUCCESSFUL)
        self._emit_measurement(name, measurement)

    async def _stop_everything(self) -> None:
        for name, flight in list(self._in_flight.items()):
            del self._in_flight[name]
            flight.task.cancel()
            self._stopping.append(flight.task)
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)
            self._stopping.clear()

    # -- events ------------------------------------------------------------------------------

    def _set_phase(self, phase: AnalysisPhase, message: str) -> None:
        previous = self._phase
        self._phase = phase
        self._message = message
        now = self._clock.now()
        if phase.completed:
            self._finished_at = now
        self._emit(AnalysisRunEvent("run", now, self.name, phase, previous, message))

    def _emit_measurement(self, metric: str, measurement: Measurement) -> None:
        self._emit(
            AnalysisRunEvent(
                "measurement",
                measurement.finished_at or self._clock.now(),
                self.name,
                measurement.phase,
                message=measurement.message,
                metric=metric,
                measurement=_snapshot(measurement),
            )
        )

    def _emit(self, event: AnalysisRunEvent) -> None:
        for listener in list(self._listeners):
            listener(event)


def _snapshot(measurement: Measurement) -> MeasurementStatus:
    return MeasurementStatus(
        phase=measurement.phase,
        started_at=measurement.started_at,
        finished_at=measurement.finished_at,
        value=measurement.value,
        result=measurement.result,
        message=measurement.message,
        metadata=dict(measurement.metadata),
    )
